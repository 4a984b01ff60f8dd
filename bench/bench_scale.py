"""`make bench` (scale part): how the cost of each stage grows with the number of coins.

For N synthetic coins (default 7, 50, 200; each a generated history with its own fixed random-number seed, one store
per coin) and, as the anchor, the seven real coins of the reference history (when ../shared/data is present), it
measures per stage the wall time and the peak memory (RSS high-water mark) of the real process:

1. features — ``features.build.load_feature_tables``: every coin's feature table (a fresh process);
2. train    — ``training.train.train(settings)``, what `make train` runs: pooled walk-forward, final fit, reports, MLflow run
              and registration (a fresh process, MLflow in a scratch sqlite store);
3. serve    — `bentoml serve` from start until /readyz answers 200, then one /predict per coin; its RSS after them (every
              process of the server) and, the baseline measured in the same server, the median /predict latency of the
              latest day against /ping's.

Each table gives rows (coin-days), seconds, peak MB and the growth exponents: the least-squares slope of log(seconds) and
log(MB) against log(rows) over the synthetic Ns (1 = linear in rows). A stage that would exceed the per-stage time limit
(estimated from the smaller Ns at the growth measured so far, never less than linear) is skipped, saying why; one that runs
over it is stopped and said to have timed out. The synthetic coins pass the evaluation gate by construction (no baselines
to beat), so that each gets a champion to serve: the bench measures cost, not skill.

    .venv/bin/python bench/bench_scale.py                       # 7, 50, 200 coins of 1,100 days, the real seven
    .venv/bin/python bench/bench_scale.py --coins 2,3 --days 500 --stages features,train --no-anchor
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the project's packages and tests.support
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

DEFAULT_COINS = os.environ.get("BENCH_SCALE_COINS", "7,50,200")
DEFAULT_DAYS = int(os.environ.get("BENCH_SCALE_DAYS", "1100"))  # the generator's own default history length
# 50 coins' training took 389 s here (2 shared cores): the limit leaves it room, and stops what would not end
DEFAULT_TIMEOUT = float(os.environ.get("BENCH_SCALE_TIMEOUT", "900"))
STAGES = ("features", "train", "serve")
LATENCY_REQUESTS = 50
ANCHOR = "7 real"
# train()'s progress steps as the breakdown names them (the folds are one step: they and the out-of-fold scoring after them)
PHASES = {"feature tables": "feature tables", "walk-forward": "walk-forward folds + scoring", "skill by missing families":
          "skill by missing families", "final fit": "final fit", "reports": "reports", "MLflow run and registry":
          "MLflow run, registration, champion explanations"}


# ------------------------------------------------------------------ one stage, measured in a process of its own
def _status_kb(field_name: str) -> float:
    """A VmRSS / VmHWM line of /proc/self/status, in kB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return float(line.split()[1])
    return float("nan")


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and the children it waited for: less sensitive than wall time to other
    work on a shared machine (though OpenMP threads spinning against another process's count too)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_stage_here(stage: str) -> dict[str, object]:
    """Run ``stage`` in this process on the settings of the environment; its seconds, rows and memory: the high-water mark
    after the imports (``imports_mb``) and at the end (``peak_mb``; the larger of this process and any child it waited for)."""
    from cascade_radar.config import get_settings
    from features.build import load_feature_tables
    from training.train import train

    settings = get_settings()
    imports_mb = _status_kb("VmHWM") / 1024
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    out: dict[str, object] = {}
    phases: dict[str, float] = {}  # train's own progress steps, timed: which part grows faster than the rows
    current = ["", started]

    def progress(step: str) -> None:
        now = time.perf_counter()
        if current[0]:
            phases[current[0]] = phases.get(current[0], 0.0) + now - current[1]
        current[:] = [PHASES.get(step.split(" fold ")[0], step), now]

    if stage == "features":  # the build itself, every time: not read from (nor written to) the frames' cache
        tables = load_feature_tables(settings.model_copy(update={"frame_cache": False}))
    elif stage == "train":
        result = train(settings, progress=progress)
        progress("")
        tables = result.tables
        out.update(passed=sum(v.passed for v in result.verdicts.values()), champions=sum(bool(c) for c in result.champions.values()),
                   phases=phases)
    else:
        raise SystemExit(f"unknown stage {stage!r}; one of features, train")
    seconds = time.perf_counter() - started
    out["cpu_s"] = cpu_seconds() - cpu_before
    peak_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {**out, "seconds": seconds, "rows": sum(len(ft.table) for ft in tables.values()), "coins": len(tables),
            "imports_mb": imports_mb, "peak_mb": peak_kb / 1024}


@dataclass
class Measure:
    """One stage at one N: what was measured, or why not."""

    status: str = "ok"  # ok | timed out | skipped | failed
    why: str = ""
    seconds: float = float("nan")
    rows: int = 0
    peak_mb: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the stage (train)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def run_stage_process(stage: str, env: dict[str, str], timeout: float, workdir: Path) -> Measure:
    """``stage`` in a fresh Python process (its own memory, nothing warm); stopped, with its children, after ``timeout``."""
    log = workdir / f"{stage}.log"
    with open(log, "w") as err, tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--stage", stage], cwd=ROOT, env={**os.environ, **env},
                                stdout=out, stderr=err, start_new_session=True)  # its own group: a timeout stops its workers too
        load = os.getloadavg()[0]
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return Measure("timed out", f"timed out after {timeout:g} s")
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = log.read_text()[-600:].strip().splitlines()
        return Measure("failed", f"exit {proc.returncode}: {tail[-1] if tail else 'no output'}")
    got = json.loads(lines[-1])
    return Measure(seconds=got["seconds"], rows=got["rows"], peak_mb=got["peak_mb"], phases=got.get("phases", {}),
                   extra={"load": load, **{k: v for k, v in got.items() if k not in ("seconds", "rows", "peak_mb", "phases")}})


# ------------------------------------------------------------------ the service
def tree_memory_mb(pid: int) -> tuple[float, float, float]:
    """(RSS now, sum of each process's RSS high-water mark, the largest process's RSS now) of ``pid`` and its descendants,
    in MB: `bentoml serve` is an arbiter and a worker process, the worker holding the service."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    rss = hwm = largest = 0.0
    for p in procs:
        try:
            own = p.memory_info().rss / 2**20
            rss, largest = rss + own, max(largest, own)
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    hwm += float(line.split()[1]) / 1024
        except (psutil.NoSuchProcess, FileNotFoundError):
            continue
    return rss, hwm, largest


def median_ms(call, n: int) -> float:  # noqa: ANN001 - a no-argument callable
    for _ in range(5):  # warm-up: connection, caches
        call()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


def measure_service(env: dict[str, str], coins: list[str], rows: int, timeout: float, workdir: Path) -> tuple[Measure, Measure]:
    """`bentoml serve` of ``coins``' champions: (start — seconds to /readyz 200, then one /predict per coin and the RSS after
    them; latency — median /predict of the latest day, with /ping's as the baseline)."""
    import httpx

    from tests.support.process import free_port, stop_server

    port, load = free_port(), os.getloadavg()[0]
    url = f"http://127.0.0.1:{port}"
    with open(workdir / "serve.log", "w") as log:  # a file, not a pipe: a chatty server never blocks on a full pipe
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "serving.service:CascadeRadar", "--host", "127.0.0.1", "--port", str(port)],
                                cwd=ROOT, env={**os.environ, **env, "BENTOML_HOME": str(workdir / "bentoml")}, stdout=log, stderr=log)
        try:
            ready = None
            while time.perf_counter() - started < timeout:
                if proc.poll() is not None:
                    tail = (workdir / "serve.log").read_text()[-600:].strip().splitlines()
                    return Measure("failed", f"bentoml serve exited {proc.returncode}: {tail[-1] if tail else ''}"), Measure("skipped", "no server")
                try:
                    if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                        ready = time.perf_counter() - started
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            if ready is None:
                return Measure("timed out", f"not ready: timed out after {timeout:g} s"), Measure("skipped", "the service never became ready")
            with httpx.Client(base_url=url, timeout=timeout) as client:
                t0, answered = time.perf_counter(), 0
                for asset in coins:  # the first request of every coin: whatever it computes on first use is in the RSS below
                    if time.perf_counter() - t0 > timeout:
                        return (Measure("timed out", f"one /predict per coin: timed out after {timeout:g} s ({answered} of {len(coins)} answered)"),
                                Measure("skipped", "first requests timed out"))
                    answered += client.post("/predict", json={"asset": asset}).status_code == 200
                first_requests = time.perf_counter() - t0
                rss, hwm, largest = tree_memory_mb(proc.pid)
                start = Measure(seconds=ready, rows=rows, peak_mb=rss, extra={"hwm_mb": hwm, "largest_mb": largest, "answered": answered, "first_requests_s": first_requests,
                                                                               "load": load})
                predict = median_ms(lambda: client.post("/predict", json={"asset": coins[0]}), LATENCY_REQUESTS)
                ping = median_ms(lambda: client.post("/ping", json={}), LATENCY_REQUESTS)
            return start, Measure(seconds=predict, rows=rows, extra={"ping_ms": ping})
        finally:
            stop_server(proc)


# ------------------------------------------------------------------ the runs
def coin_names(n: int) -> list[str]:
    """C001, C002, ...: tickers the coin rule accepts, sorting as they are numbered."""
    return [f"C{i:03d}" for i in range(1, n + 1)]


def make_synthetic_stores(data_dir: Path, coins: list[str], days: int) -> float:
    """Every coin of ``coins`` without a store gets its own seeded history (seed = its number; levels spread over four
    orders of magnitude, as real coins' are); returns the seconds it took."""
    from cascade_radar.config import Settings
    from features.sources.synthetic import generate_history, load_into
    from features.store import HistoryStore

    started = time.perf_counter()
    base = Settings(data_dir=data_dir, assets=coins)
    for i, coin in enumerate(coins, start=1):
        store = HistoryStore(base.for_asset(coin).data_path)
        if store.is_empty():
            load_into(store, generate_history(seed=i, n_days=days, asset_scale=10.0 ** -(i % 5)))
    return time.perf_counter() - started


def run_env(data_dir: Path, run_dir: Path, coins: list[str], synthetic: bool) -> dict[str, str]:
    """The environment a stage process and the server read their settings from: scratch stores and MLflow, these coins."""
    env = {"CASCADE_RADAR_DATA_DIR": str(data_dir), "CASCADE_RADAR_REPORTS_DIR": str(run_dir / "reports"),
           "CASCADE_RADAR_MLRUNS_DIR": str(run_dir / "mlruns"), "CASCADE_RADAR_MLFLOW_TRACKING_URI": f"sqlite:///{run_dir / 'mlruns' / 'mlflow.db'}",
           "CASCADE_RADAR_ASSETS": json.dumps(coins)}
    if synthetic:  # the first synthetic coin is the context coin; every coin passes the gate (cost, not skill, is measured)
        env.update({"CASCADE_RADAR_FEATURES__CONTEXT_ASSET": coins[0], "CASCADE_RADAR_GATE__BASELINES": "[]",
                    "CASCADE_RADAR_REFERENCE_DIR": str(run_dir / "no-reference")})
    return env


def exponent(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of log(value) on log(rows); None with fewer than two distinct row counts."""
    import numpy as np

    points = [(r, v) for r, v in points if r > 0 and v > 0 and math.isfinite(v)]
    if len({r for r, _ in points}) < 2:
        return None
    x, y = np.log([r for r, _ in points]), np.log([v for _, v in points])
    return float(np.polyfit(x, y, 1)[0])


def estimate(done: list[Measure], rows: int) -> tuple[float, float] | None:
    """(estimated seconds at ``rows``, the exponent used) from the stage's measurements at two or more smaller Ns: the
    fitted growth, never assumed better than linear. None from fewer: at one small N a stage is mostly fixed cost, so
    extrapolating it linearly would skip what would finish; the time limit bounds it instead."""
    points = [(m.rows, m.seconds) for m in done if m.ok and m.rows]
    if len(points) < 2:
        return None
    k = max(1.0, exponent(points) or 1.0)
    last_rows, last_seconds = points[-1]
    return last_seconds * (rows / last_rows) ** k, k


@dataclass
class Bench:
    """The run: which stages, the time limit of each, and every measure taken so far."""

    timeout: float
    stages: tuple[str, ...]
    workdir: Path
    results: dict[str, dict[str, Measure]] = field(default_factory=dict)  # stage -> label (N or the anchor) -> measure

    def put(self, stage: str, label: str, measure: Measure) -> None:
        self.results.setdefault(stage, {})[label] = measure
        said = f"{measure.seconds:.1f} s, {measure.peak_mb:.0f} MB" if measure.ok else measure.why
        print(f"  {label:>7} {stage:<9} {said}", flush=True)

    def blocked(self, stage: str, rows: int) -> str | None:
        """Why ``stage`` is not run at this N: a smaller N did not finish, or the estimate is over the time limit."""
        earlier = [m for lab, m in self.results.get(stage, {}).items() if lab != ANCHOR]
        if any(m.status in ("timed out", "failed") for m in earlier):
            return "skipped: it did not finish at a smaller N"
        guess = estimate(earlier, rows)
        if guess and guess[0] > self.timeout:
            return (f"skipped: estimated {guess[0]:.0f} s from the smaller Ns (growth exponent {guess[1]:.2f}) exceeds the "
                    f"{self.timeout:.0f} s limit")
        return None

    def run(self, label: str, env: dict[str, str], coins: list[str], rows: int, run_dir: Path) -> None:
        """Every requested stage for one coin list, in order, each only when it can finish (the anchor is always tried)."""
        run_dir.mkdir(parents=True, exist_ok=True)
        for stage in ("features", "train"):
            if stage in self.stages:
                why = self.blocked(stage, rows) if label != ANCHOR else None
                measure = Measure("skipped", why) if why else run_stage_process(stage, env, self.timeout, run_dir)
                rows = measure.rows or rows
                self.put(stage, label, measure)
        if "serve" in self.stages:
            if not self.results.get("train", {}).get(label, Measure("skipped")).ok:
                why = "skipped: the service needs this N's champions (the train stage)"
            else:
                why = self.blocked("serve", rows) if label != ANCHOR else None
            start, latency = (Measure("skipped", why), Measure("skipped", why)) if why else measure_service(env, coins, rows, self.timeout, run_dir)
            self.put("serve", label, start)
            self.results.setdefault("predict", {})[label] = latency


def table(bench: Bench, stage: str, title: str) -> None:
    """One stage's table: per N rows, seconds, seconds per 1,000 rows against the smallest N's, peak MB; the exponents."""
    from tabulate import tabulate

    got = bench.results.get(stage, {})
    if not got:
        return
    synthetic = [(lab, m) for lab, m in got.items() if lab != ANCHOR]
    first = next((m for _, m in synthetic if m.ok and m.rows), None)
    rows = []
    for lab, m in got.items():
        if not m.ok:
            rows.append([lab, m.rows or "-", "-", "-", "-", "-", "-", m.why])
            continue
        per_row = f"{(m.seconds / m.rows) / (first.seconds / first.rows):.2f}x" if first and m.rows else "-"
        note = ""
        if stage == "serve":
            note = (f"{m.extra['answered']:.0f}/{lab.split()[0]} coins answered one /predict in {m.extra['first_requests_s']:.1f} s; "
                    f"the worker {m.extra['largest_mb']:.0f} MB; high-water {m.extra['hwm_mb']:.0f} MB")
        elif "imports_mb" in m.extra:
            note = f"{m.peak_mb - m.extra['imports_mb']:.0f} MB over the imports ({m.extra['imports_mb']:.0f} MB)"
            if "champions" in m.extra:
                note += f"; {m.extra['champions']:.0f} champions"
        cpu = f"{m.extra['cpu_s']:.1f}" if "cpu_s" in m.extra else "-"
        load = f"{m.extra['load']:.1f}" if "load" in m.extra else "-"
        rows.append([lab, m.rows, f"{m.seconds:.1f}", cpu, load, per_row, f"{m.peak_mb:.0f}", note])
    memory = "RSS after one /predict per coin (MB)" if stage == "serve" else "peak RSS (MB)"
    print(f"\n{title}")
    print(tabulate(rows, headers=["coins", "rows (coin-days)", "seconds", "CPU s", "load", "s per row vs smallest N", memory, ""]))
    ok = [m for _, m in synthetic if m.ok]
    k_time, k_mem = exponent([(m.rows, m.seconds) for m in ok]), exponent([(m.rows, m.peak_mb) for m in ok])
    said = lambda k: "-" if k is None else f"{k:.2f}"  # noqa: E731
    line = f"growth exponent over N = {', '.join(lab for lab, m in synthetic if m.ok) or '-'} (1 = linear in rows): time {said(k_time)}, memory {said(k_mem)}"
    if stage != "serve" and ok and all("imports_mb" in m.extra for m in ok):
        line += f", memory over the imports {said(exponent([(m.rows, m.peak_mb - m.extra['imports_mb']) for m in ok]))}"
    print(line)
    measured = [(lab, m) for lab, m in got.items() if m.ok and m.phases]
    if measured:  # where the time goes, step by step, and how each step grows
        steps = list(dict.fromkeys(step for _, m in measured for step in m.phases))
        print(tabulate([[step, *(f"{m.phases.get(step, 0):.1f}" for _, m in measured),
                         said(exponent([(m.rows, m.phases.get(step, 0)) for lab, m in measured if lab != ANCHOR]))] for step in steps],
                       headers=["step (seconds)", *(lab for lab, _ in measured), "exponent"]))


def latency_table(bench: Bench) -> None:
    from tabulate import tabulate

    got = bench.results.get("predict", {})
    if not got:
        return
    rows = [[lab, f"{m.seconds:.2f}", f"{m.extra['ping_ms']:.2f}", f"{m.seconds / m.extra['ping_ms']:.2f}x"] if m.ok else [lab, "-", "-", m.why]
            for lab, m in got.items()]
    print(f"\n/predict of the latest day over HTTP, median of {LATENCY_REQUESTS} (keep-alive), against /ping in the same server")
    print(tabulate(rows, headers=["coins", "/predict ms", "/ping ms", "ratio to /ping"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coins", default=DEFAULT_COINS, help="synthetic coin counts, comma-separated (BENCH_SCALE_COINS; default %(default)s)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of history per coin (BENCH_SCALE_DAYS; default %(default)s)")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated, of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds a stage may take at one N; a stage "
                        "estimated to take longer is skipped (BENCH_SCALE_TIMEOUT; default %(default)s)")
    parser.add_argument("--threads", type=int, help="LightGBM threads of every stage (CASCADE_RADAR_MODEL__N_JOBS; default: the "
                        "settings', 2). On a machine other work shares, 1 keeps OpenMP from spinning against it: a 2-thread fit "
                        "there was measured up to 9x slower, which the growth exponents would read as growth")
    parser.add_argument("--no-anchor", action="store_true", help="leave out the seven real coins of the reference history")
    parser.add_argument("--workdir", type=Path, help="keep the stores, MLflow runs and logs here (default: a temporary folder)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: one stage, in this process, printing its measure as JSON
    args = parser.parse_args(argv)
    if args.stage:
        print(json.dumps(run_stage_here(args.stage)), flush=True)
        return 0
    try:
        counts = sorted({int(n) for n in args.coins.split(",") if n.strip()})
    except ValueError:
        parser.error(f"--coins {args.coins!r}: expected whole numbers separated by commas, e.g. 7,50,200")
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown or not counts or min(counts) < 1:
        parser.error(f"--stages {args.stages!r} / --coins {args.coins!r}: stages are {', '.join(STAGES)}; coin counts >= 1")
    if args.threads is not None:  # inherited by every stage process and the server
        os.environ["CASCADE_RADAR_MODEL__N_JOBS"] = str(args.threads)
    from cascade_radar.config import get_settings

    threads = get_settings().model.n_jobs
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        workdir = args.workdir or Path(tmp)
        bench = Bench(args.timeout, stages, workdir)
        print(f"scale bench: N = {', '.join(map(str, counts))} synthetic coins x {args.days} days; stages {', '.join(stages)}; "
              f"{args.timeout:g} s per stage at most; LightGBM threads {threads}; {os.cpu_count()} cores (load average "
              f"{os.getloadavg()[0]:.1f}: other work on the machine slows every stage)", flush=True)
        for n in counts:
            coins = coin_names(n)
            setup = make_synthetic_stores(workdir / "synthetic", coins, args.days)
            print(f"{n} coins: stores ready ({setup:.1f} s to generate the new ones)", flush=True)
            run_dir = workdir / f"run-{n}"
            bench.run(str(n), run_env(workdir / "synthetic", run_dir, coins, synthetic=True), coins, n * args.days, run_dir)
        anchor(bench, workdir, args.no_anchor)
        print(f"\nscale bench results ({args.days} days per synthetic coin; '{ANCHOR}': the reference history, not in the exponents)")
        table(bench, "features", "1. feature build, every coin (load_feature_tables), a fresh process")
        table(bench, "train", "2. pooled training as `make train` runs it (walk-forward, final fit, reports, MLflow run, registration)")
        table(bench, "serve", "3. `bentoml serve`: seconds from start to /readyz 200; RSS of every server process after one /predict per coin")
        latency_table(bench)
    return 0


def anchor(bench: Bench, workdir: Path, skip: bool) -> None:
    """The seven real coins of the reference history through the same stages, when the reference is present."""
    from cascade_radar.config import ASSETS, Settings
    from features.sources.reference import import_reference
    from features.store import HistoryStore

    reference = Settings().reference_path
    if skip:
        return
    if not (reference / "README.md").exists():
        print(f"anchor: reference history not found at {reference}; the seven real coins are left out")
        return
    data_dir = workdir / "reference"
    for asset in ASSETS:
        store = HistoryStore(Settings(data_dir=data_dir, asset=asset).data_path)
        if store.is_empty():
            import_reference(store, reference, asset)
    print(f"{ANCHOR}: stores imported from {reference}", flush=True)
    env = {**run_env(data_dir, workdir / "run-real", list(ASSETS), synthetic=False), "CASCADE_RADAR_REFERENCE_DIR": str(reference)}
    bench.run(ANCHOR, env, list(ASSETS), 0, workdir / "run-real")


if __name__ == "__main__":
    sys.exit(main())
