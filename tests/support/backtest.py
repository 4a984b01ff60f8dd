"""The synthetic champion's de-risking backtest, written where a service reads it, as `make backtest` writes it."""

from __future__ import annotations

from pathlib import Path

from cascade_radar.config import Settings


def write_synthetic_backtest(trained: Settings, reports_root: Path) -> Settings:
    """Backtest every coin of ``trained`` (its out-of-fold reports and store) and write the files under
    ``reports_root``/backtest/ (no MLflow run); returns ``trained`` pointing its reports there."""
    from training.backtest import coin_backtest, write_backtest

    coins = {asset: coin_backtest(trained, asset) for asset in trained.assets}
    target = trained.model_copy(update={"reports_dir": reports_root})
    write_backtest(coins, target, [])
    return target
