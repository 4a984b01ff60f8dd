"""`make bench` (memory part): server memory across champion swaps, in process.

Issue 31 saw a server's RSS rise by ~7 MB per champion swap after the first dozen (521 -> 1,062 MB over 14 swaps).
This bench trains one champion on synthetic history, then performs ``BENCH_SWAPS`` swaps the way a running service sees
them: a new version is registered (from a new run holding its own copy of the fold models, so every swap downloads and
loads a model of its own) and the `champion` alias moved to it; ``CoinStates.refresh(force=True, wait=True)`` reloads
the coin. After each swap: RSS (after a garbage collection) and the serving objects still alive. Printed: RSS at swaps
1, 10, 25 and 50, the slope over the last 40 swaps (MB per swap), the live objects at the end, and the RSS once glibc
has returned its free pages (``malloc_trim``): growth that a trim gives back is the allocator's, not a kept reference.
"""

from __future__ import annotations

import ctypes
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MPLBACKEND", "Agg")

import psutil  # noqa: E402
from common import bench_settings  # noqa: E402
from tabulate import tabulate  # noqa: E402

from cascade_radar.config import ModelConfig, Settings  # noqa: E402

SWAPS = int(os.environ.get("BENCH_SWAPS", "50"))
SHOWN = (1, 10, 25, 50)
SLOPE_OVER = 40  # the last swaps the slope is fitted on: the first ones fill caches and the allocator's arenas
SLOPE_LIMIT_MB = 1.0  # a slope above this per swap is growth worth a look
# On synthetic history the model is pinned, as the tests pin it (the committed choice is tuned on the real coins).
BENCH_MODEL = ModelConfig(families=["price", "oi", "funding", "flows", "sopr", "nupl"], direction_families=None, direction_inputs=None)
WATCHED = ("ServingState", "CoinForecaster", "Champion", "CascadeModel", "Explainer", "Booster", "Figure")


def rss_mb() -> float:
    """Resident memory of this process (MB), after a full garbage collection: what a swap left behind."""
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def live_objects() -> dict[str, int]:
    """How many objects of the serving classes (and LightGBM boosters, matplotlib figures) are alive."""
    counts = dict.fromkeys(WATCHED, 0)
    for obj in gc.get_objects():
        name = type(obj).__name__
        if name in counts:
            counts[name] += 1
    return counts


def malloc_trim() -> bool:
    """Ask glibc to return free heap pages to the system (False where there is no glibc)."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def slope(values: list[float]) -> float:
    """Least-squares MB per swap."""
    return float(np.polyfit(np.arange(len(values)), values, 1)[0])


def champion(workdir: Path) -> tuple[Settings, str]:
    """One champion of BTC, trained as `make train` does, in a scratch store: on the reference history when present (as
    the other benches), else on synthetic history. (settings, which history)"""
    from training.register import set_champion
    from training.train import train

    settings, what = bench_settings(workdir)
    if what.startswith("synthetic"):
        settings = settings.model_copy(update={"model": BENCH_MODEL})
    result = train(settings)
    if result.champion is None:  # memory is measured here, not skill: serve the version even if the gate refused it
        set_champion(settings.registered_model_name, result.model_version)
    return settings, what


def new_champion(settings: Settings, reports: Path) -> str:
    """A new version in a new run (its own fold models, its own metrics) from the logged model, and the alias moved to it,
    as a `make train` that passed the gate leaves the registry. Returns the version."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    name = settings.registered_model_name
    current = client.get_model_version_by_alias(name, "champion")
    metrics = client.get_run(current.run_id).data.metrics
    with mlflow.start_run(experiment_id=client.get_run(current.run_id).info.experiment_id, run_name="bench swap") as run:
        mlflow.log_artifacts(str(reports / "fold_models"), artifact_path="evaluation/fold_models")
        mlflow.log_metrics({k: v for k, v in metrics.items() if k.startswith("BTC.")})
    version = client.create_model_version(name, current.source, run.info.run_id).version
    client.set_registered_model_alias(name, "champion", version)
    return str(version)


def main() -> None:
    from serving.state import CoinStates

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        settings, what = champion(workdir)
        trained = time.perf_counter() - started
        coins = CoinStates.load(settings)
        assert coins.states["BTC"].ready, coins.reason
        rss = [rss_mb()]  # swap 0: the first champion loaded
        loads = []
        for _ in range(SWAPS):
            version = new_champion(settings, settings.reports_path)
            start = time.perf_counter()
            assert coins.refresh(force=True, wait=True) == ["BTC"]
            loads.append(time.perf_counter() - start)
            assert coins.states["BTC"].identity["version"] == version, coins.states["BTC"].reason
            rss.append(rss_mb())
        alive = live_objects()
        trimmed = rss_mb() if malloc_trim() else None
    print(f"\nchampion swaps in process: BTC on {what} ({trained:.0f} s to train the first), {SWAPS} swaps, "
          f"reload {np.median(loads):.2f} s median")
    rows = [[f"swap {n}", f"{rss[n]:.0f}", f"{rss[n] - rss[0]:+.0f}"] for n in (0, *SHOWN) if n <= SWAPS]
    print(tabulate(rows, headers=["after", "RSS MB", "vs first load"]))
    last = rss[-min(SLOPE_OVER, SWAPS):]
    per_swap = slope(last)
    print(f"\nslope over the last {len(last)} swaps: {per_swap:+.2f} MB per swap "
          f"({'growth worth a look' if per_swap > SLOPE_LIMIT_MB else 'flat'}: limit {SLOPE_LIMIT_MB:g} MB)")
    print("alive at the end: " + ", ".join(f"{k} {v}" for k, v in alive.items()))
    if trimmed is not None:
        print(f"RSS after malloc_trim: {trimmed:.0f} MB ({trimmed - rss[-1]:+.0f} MB: free heap glibc had kept)")


if __name__ == "__main__":
    main()
