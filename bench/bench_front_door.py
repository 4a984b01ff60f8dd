"""`make bench` (front door): what an anonymous client can grow or hold, on a real `bentoml serve` on loopback.

* /metrics size, scrape time and the server's memory before and after 3,000 requests to distinct unknown paths
  (BentoML labelled its metrics by raw path: 1.8 -> 19.6 MB, +52 MB; the front door labels by route);
* /predict p50/p99 unloaded (the baseline, same run) and while 16 clients pull whole-history CSVs, with the download
  cache and limit on (the defaults) and off (cache 0 MB, 64 at once: how it was), as ratios to the baseline;
* 50 sockets that send half their headers: how many are still open after the idle timeout.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from common import serving_champion  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tests.support.process import free_port, settings_env, start_server, stop_server  # noqa: E402

HEAVY_CLIENTS = int(os.environ.get("BENCH_HEAVY_CLIENTS", "16"))
HEAVY_SECONDS = float(os.environ.get("BENCH_HEAVY_SECONDS", "15"))
IDLE_TIMEOUT = 3.0


def tree_rss_mb(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 1e6


def predict_latencies(url: str, n: int, asset: str = "BTC") -> list[float]:
    import httpx

    out = []
    with httpx.Client(base_url=url, timeout=120) as h:
        for _ in range(10):
            h.post("/predict", json={"asset": asset})
        for _ in range(n):
            t0 = time.perf_counter()
            h.post("/predict", json={"asset": asset})
            out.append(time.perf_counter() - t0)
    return out


def p50_p99(samples: list[float]) -> tuple[float, float]:
    arr = np.array(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def metrics_growth(url: str, pid: int) -> dict[str, float]:
    import httpx

    with httpx.Client(base_url=url, timeout=60) as h:
        h.get("/nope")
        t0 = time.perf_counter()
        before = len(h.get("/metrics").content)
        scrape_before = time.perf_counter() - t0
        rss_before = tree_rss_mb(pid)
        for i in range(3000):
            h.get(f"/x{i}")
        t0 = time.perf_counter()
        after = len(h.get("/metrics").content)
        scrape_after = time.perf_counter() - t0
        rss_after = tree_rss_mb(pid)
    return {"kb_before": before / 1e3, "kb_after": after / 1e3, "scrape_ms_before": scrape_before * 1000, "scrape_ms_after": scrape_after * 1000,
            "rss_mb_delta": rss_after - rss_before}


def under_heavy_downloads(url: str) -> tuple[tuple[float, float], int]:
    """/predict latencies while HEAVY_CLIENTS pull whole-history CSVs; and how many downloads completed."""
    import httpx

    routes = ["/v1/signals?asset=BTC&format=csv", "/v1/timeline?asset=BTC&format=csv", "/v1/events?asset=BTC&format=csv",
              "/v1/episodes?asset=BTC&format=csv"]
    stop = threading.Event()
    done = [0]
    lock = threading.Lock()

    def heavy(i: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as h:
            k = i
            while not stop.is_set():
                h.get(routes[k % len(routes)])
                k += 1
                with lock:
                    done[0] += 1

    workers = [threading.Thread(target=heavy, args=(i,), daemon=True) for i in range(HEAVY_CLIENTS)]
    for w in workers:
        w.start()
    time.sleep(1.0)
    samples: list[float] = []
    deadline = time.monotonic() + HEAVY_SECONDS
    import httpx as _httpx

    with _httpx.Client(base_url=url, timeout=300) as h:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            h.post("/predict", json={"asset": "BTC"})
            samples.append(time.perf_counter() - t0)
    stop.set()
    for w in workers:
        w.join(timeout=300)
    return p50_p99(samples), done[0]


def idle_sockets(port: int, n: int = 50) -> int:
    """Sockets still open ``IDLE_TIMEOUT`` + 2 s after sending half their headers."""
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    for s in socks:
        s.sendall(b"GET /v1/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    time.sleep(IDLE_TIMEOUT + 2)
    still = 0
    for s in socks:
        s.settimeout(0.5)
        try:
            still += s.recv(1) != b""
        except TimeoutError:
            still += 1
        except ConnectionResetError:
            pass
        s.close()
    return still


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings, what, _ = serving_champion(workdir)
        base_env = {**settings_env(settings), "BENTOML_HOME": str(workdir / "bentoml"), "CASCADE_RADAR_ASSETS": '["BTC"]',
                    "CASCADE_RADAR_SERVING_IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT)}
        results = {}
        for label, extra in (("cache + limit (defaults)", {}),
                             ("no cache, no limit (as before)", {"CASCADE_RADAR_SERVING_DOWNLOAD_CACHE_MB": "0",
                                                                  "CASCADE_RADAR_SERVING_DOWNLOAD_CONCURRENCY": "64",
                                                                  "CASCADE_RADAR_SERVING_DOWNLOAD_SHARE": "1"})):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = start_server({**base_env, **extra}, port, timeout=300)
            try:
                unloaded = p50_p99(predict_latencies(url, 300))
                loaded, downloads = under_heavy_downloads(url)
                results[label] = (unloaded, loaded, downloads)
                if not extra:
                    grown = metrics_growth(url, proc.pid)
                    open_after = idle_sockets(port)
            finally:
                stop_server(proc)

    print(f"data: {what}; server: bentoml serve on 127.0.0.1, BTC")
    print(f"\n/metrics after 3,000 requests to distinct unknown paths: {grown['kb_before']:.1f} -> {grown['kb_after']:.1f} kB "
          f"({grown['kb_after'] / grown['kb_before']:.2f}x), scrape {grown['scrape_ms_before']:.1f} -> {grown['scrape_ms_after']:.1f} ms, "
          f"server memory {grown['rss_mb_delta']:+.1f} MB (BentoML's raw-path labels: 1.8 -> 19.6 MB, 10.9x, +52 MB)")
    rows = []
    for label, ((u50, u99), (l50, l99), n) in results.items():
        rows.append([label, f"{u50:.1f}", f"{u99:.1f}", f"{l50:.1f}", f"{l99:.1f}", f"{l99 / u99:.1f}x", n])
    print(f"\n/predict while {HEAVY_CLIENTS} clients pull whole-history CSVs for {HEAVY_SECONDS:g} s (ratio: loaded p99 / unloaded p99, same server)")
    print(tabulate(rows, headers=["downloads", "unloaded p50 ms", "unloaded p99 ms", "loaded p50 ms", "loaded p99 ms", "p99 ratio", "downloads done"]))
    print(f"\nidle sockets: 50 sent half their headers; open {IDLE_TIMEOUT + 2:g} s later (idle timeout {IDLE_TIMEOUT:g} s): {open_after}")


if __name__ == "__main__":
    main()
