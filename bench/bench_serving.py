"""`make bench` (serving part): latency, throughput, a bounded load test and API fuzzing, all on localhost.

Floors measured in the same run: a bare single-row LightGBM predict, and the service's trivial
/ping endpoint (framework + HTTP overhead alone). Prints p50/p99 and the ratios.
"""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support: the real server and browser harness
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from common import serving_champion  # noqa: E402
from tabulate import tabulate  # noqa: E402

from features.build import assemble_panel, load_feature_table  # noqa: E402
from features.store import HistoryStore  # noqa: E402
from tests.support.process import free_port, settings_env, signals_payload, start_server, stop_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOAD_SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "60"))
LOAD_RPS = int(os.environ.get("BENCH_LOAD_RPS", "100"))
FUZZ_EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "100"))


def percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def measure(call, n: int) -> tuple[float, float]:  # noqa: ANN001
    for _ in range(min(20, n)):  # warm-up
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return percentiles(samples)


def env_for(settings, workdir: Path) -> dict[str, str]:  # noqa: ANN001
    # BTC only: the fuzzer would count another coin's "not ready" (a coin that fails the gate) as a 5xx
    return {**settings_env(settings), "BENTOML_HOME": str(workdir / "bentoml"), "CASCADE_RADAR_ASSETS": '["BTC"]'}


def throughput(url: str, seconds: float, threads: int = 4) -> float:
    import httpx

    count = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=10) as c:
            n = 0
            while time.monotonic() < stop:
                c.post("/predict", json={"day": "2025-10-05"})
                n += 1
            with lock:
                count[0] += n

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return count[0] / seconds


def load_test(url: str, workdir: Path) -> dict[str, float]:
    prefix = workdir / "locust"
    cmd = [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "-u", str(LOAD_RPS), "-r", str(max(10, LOAD_RPS // 5)),
           "-t", f"{LOAD_SECONDS}s", "--host", url, "--csv", str(prefix), "--only-summary", "--stop-timeout", "5"]
    subprocess.run(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=LOAD_SECONDS + 120, check=False)
    with open(f"{prefix}_stats.csv") as fh:
        rows = {r["Name"]: r for r in csv.DictReader(fh)}
    agg, predict, ping = rows["Aggregated"], rows["/predict"], rows["/ping"]
    return {"requests": float(agg["Request Count"]), "failures": float(agg["Failure Count"]), "rps": float(agg["Requests/s"]),
            "p50_ms": float(predict["50%"]), "p99_ms": float(predict["99%"]), "ping_p50_ms": float(ping["50%"]), "ping_p99_ms": float(ping["99%"])}


def fuzz(url: str) -> dict[str, int]:
    """`schemathesis run --checks all` over the served OpenAPI document (reads schemathesis.toml); counts from its summary."""
    out = subprocess.run([str(Path(sys.executable).parent / "schemathesis"), "run", f"{url}/docs.json", "--checks", "all",
                          "--max-examples", str(FUZZ_EXAMPLES), "--no-color"], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    summary = out.stdout.split("SUMMARY")[-1]
    counts = {"exit_code": out.returncode}
    for key, pattern in (("generated", r"(\d+) generated"), ("passed", r"(\d+) passed"), ("failures", r"(\d+) unique failures"),
                         ("skipped", r"(\d+) skipped")):
        match = re.search(pattern, summary)
        counts[key] = int(match.group(1)) if match else 0
    return counts


def oversized(url: str, megabytes: int = 20) -> tuple[float, int, int, float]:
    """One well-formed oversized /predict_signals body: (seconds to the answer, status, answer bytes, p50 ms of /predict
    calls made meanwhile from another client)."""
    import httpx

    body = b'{"signals": [' + b"1, " * (megabytes * 1_000_000 // 3) + b"1]}"
    side: list[float] = []
    done = threading.Event()

    def other() -> None:
        with httpx.Client(base_url=url, timeout=30) as h:
            while not done.is_set():
                t0 = time.perf_counter()
                h.post("/predict", json={})
                side.append(time.perf_counter() - t0)

    worker = threading.Thread(target=other)
    worker.start()
    started = time.perf_counter()
    r = httpx.post(f"{url}/predict_signals", content=body, headers={"content-type": "application/json"}, timeout=300)
    seconds = time.perf_counter() - started
    done.set()
    worker.join()
    return seconds, r.status_code, len(r.content), float(np.median(side) * 1000) if side else float("nan")


def main() -> None:
    import httpx
    import pandas as pd
    from starlette.testclient import TestClient

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings, what, result = serving_champion(workdir)
        store = HistoryStore(settings.data_path)
        ft = load_feature_table(store, settings)
        day = pd.Timestamp("2025-10-05") if pd.Timestamp("2025-10-05") in ft.table.index else ft.table.index[-30]
        payload = {"day": str(day.date())}
        signals = signals_payload(assemble_panel(store.panel()), day, settings.serving_min_signal_rows)
        print(f"data: {what}; champion v{result.champion}; day {day.date()}; /predict_signals posts {len(signals['signals'])} rows")
        X1 = ft.table.loc[[day], result.model.features]
        bare = measure(lambda: result.model.cascade.predict(X1), 500)

        env = env_for(settings, workdir)
        saved = dict(os.environ)
        os.environ.update(env)
        from serving.service import CascadeRadar

        with TestClient(CascadeRadar.to_asgi()) as c:
            inproc = {
                "/ping": measure(lambda: c.post("/ping", json={}), 500),
                "/predict": measure(lambda: c.post("/predict", json=payload), 500),
                "/predict_signals": measure(lambda: c.post("/predict_signals", json=signals), 50),
            }
        os.environ.clear()
        os.environ.update(saved)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(env, port)
        try:
            with httpx.Client(base_url=url, timeout=30) as h:
                http = {
                    "/ping": measure(lambda: h.post("/ping", json={}), 500),
                    "/predict": measure(lambda: h.post("/predict", json=payload), 500),
                    "/predict_signals": measure(lambda: h.post("/predict_signals", json=signals), 50),
                }
            rps = throughput(url, 10)
            load = load_test(url, workdir)
            big = oversized(url)
            fuzzed = fuzz(url)
        finally:
            stop_server(proc)

    floor_in, floor_http = inproc["/ping"][0], http["/ping"][0]
    rows = [["bare LightGBM single-row predict", "-", f"{bare[0]:.3f}", f"{bare[1]:.3f}", "1.0x", "-"]]
    for where, table, floor in (("in-process (ASGI)", inproc, floor_in), ("HTTP (bentoml serve)", http, floor_http)):
        for route, (p50, p99) in table.items():
            rows.append([route, where, f"{p50:.3f}", f"{p99:.3f}", f"{p50 / bare[0]:.1f}x", f"{p50 / floor:.2f}x"])
    print(tabulate(rows, headers=["call", "where", "p50 ms", "p99 ms", "p50 / bare LightGBM", "p50 / trivial endpoint"]))
    ratio = http["/predict"][0] / floor_http
    print(f"\n/predict over HTTP is {ratio:.2f}x the trivial endpoint (target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"throughput: {rps:.0f} req/s on /predict (4 keep-alive clients, 10 s, 2 cores)")
    print(f"load test (locust, {LOAD_SECONDS} s at {LOAD_RPS} req/s target): {load['requests']:.0f} requests, {load['failures']:.0f} errors, "
          f"{load['rps']:.1f} req/s achieved; /predict p50 {load['p50_ms']:.0f} ms, p99 {load['p99_ms']:.0f} ms; "
          f"/ping under the same load p50 {load['ping_p50_ms']:.0f} ms, p99 {load['ping_p99_ms']:.0f} ms (locust's own overhead on 2 shared cores)")
    print(f"oversized request: a well-formed 20 MB /predict_signals body answered {big[1]} in {big[0] * 1000:.0f} ms with {big[2]} bytes; "
          f"/predict from another client meanwhile: p50 {big[3]:.1f} ms")
    print(f"fuzzing (schemathesis run --checks all, {FUZZ_EXAMPLES} examples per operation): {fuzzed['generated']} cases generated, "
          f"{fuzzed['passed']} passed, {fuzzed['failures']} failures, {fuzzed['skipped']} skipped (exit code {fuzzed['exit_code']})")


if __name__ == "__main__":
    main()
