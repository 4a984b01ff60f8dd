"""Helpers shared by the benchmarks: timing and a printed table with ratios to a baseline."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tabulate import tabulate

from cascade_radar.config import Settings
from features.sources.reference import import_reference
from features.sources.synthetic import generate_history, load_into
from features.store import HistoryStore


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeat`` calls (seconds) and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def bench_settings(workdir: Path) -> tuple[Settings, str]:
    """Settings on a scratch store and MLflow store; loads the reference history when present."""
    settings = Settings(data_dir=workdir / "data", reports_dir=workdir / "reports", mlruns_dir=workdir / "mlruns", assets=["BTC"])
    store = HistoryStore(settings.data_path)
    if (settings.reference_path / "README.md").exists():
        import_reference(store, settings.reference_path, settings.asset)
        return settings, f"reference history ({settings.reference_path})"
    load_into(store, generate_history(seed=0))
    return settings, "synthetic history (reference data not found)"


def print_table(title: str, rows: list[tuple[str, float]], baseline: str, unit: str = "s") -> None:
    base = dict(rows)[baseline]
    print(f"\n{title}")
    print(tabulate([[name, f"{value:.3f}", f"{value / base:.1f}x"] for name, value in rows],
                   headers=["step", unit, f"ratio to '{baseline}'"]))


def serving_champion(workdir: Path) -> tuple[Settings, str, object]:
    """A champion to serve, trained in a scratch store as `make train` does: the seven coins pooled on the reference
    history (the committed model choice is tuned for the pool), else BTC on synthetic history. (settings, data, TrainResult)"""
    from cascade_radar.config import ASSETS
    from training.train import train

    settings, what = bench_settings(workdir)
    if what.startswith("reference"):
        settings = settings.model_copy(update={"assets": list(ASSETS)})
        for asset in ASSETS[1:]:
            import_reference(HistoryStore(settings.for_asset(asset).data_path), settings.reference_path, asset)
    result = train(settings, store=HistoryStore(settings.data_path))
    if not result.passed_gate:
        raise SystemExit(f"no champion to serve: the gate failed ({'; '.join(result.reasons)})")
    return settings, what, result


@contextmanager
def served_champion() -> Iterator[tuple[str, Settings, str, object]]:
    """A real `bentoml serve` of ``serving_champion``'s champion (every coin it pooled) on a free loopback port, in a
    scratch directory: (url, settings, data, TrainResult); stopped on exit. Needs the project root on sys.path (the
    harness in tests.support)."""
    from tests.support.process import free_port, settings_env, start_server, stop_server

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        settings, what, result = serving_champion(workdir)
        port = free_port()
        env = {**settings_env(settings), "BENTOML_HOME": str(workdir / "bentoml"), "CASCADE_RADAR_ASSETS": json.dumps(settings.assets)}
        proc = start_server(env, port, timeout=300)
        try:
            yield f"http://127.0.0.1:{port}", settings, what, result
        finally:
            stop_server(proc)
