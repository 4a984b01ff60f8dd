"""Walk-forward (expanding window) folds with a purge gap of at least the label horizon."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cascade_radar.config import FoldConfig


@dataclass(frozen=True)
class Fold:
    number: int
    train_end: pd.Timestamp  # last training day; its target window (t, t+H] ends before test_start
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    train_days: pd.DatetimeIndex
    test_days: pd.DatetimeIndex

    def describe(self) -> dict[str, object]:
        return {
            "fold": self.number, "train_first": str(self.train_days[0].date()), "train_last": str(self.train_end.date()),
            "test_first": str(self.test_start.date()), "test_last": str(self.test_end.date()),
            "train_days": len(self.train_days), "test_days": len(self.test_days),
        }


def walk_forward_folds(labelled: pd.DatetimeIndex, cfg: FoldConfig, purge_days: int) -> list[Fold]:
    """Split the labelled days after ``min_train_days`` into ``n_folds`` consecutive test blocks.

    Training for a block uses every labelled day t with t + purge_days < block start, so no
    training target window (t, t+H] (H <= purge_days) reaches a test day.
    """
    labelled = pd.DatetimeIndex(sorted(labelled))
    if len(labelled) == 0:
        raise ValueError("no labelled days: the feature table has no target (is the liquidation history loaded?)")
    first_test = labelled[0] + pd.Timedelta(days=cfg.min_train_days + purge_days)
    candidates = labelled[labelled >= first_test]
    if len(candidates) < cfg.n_folds * 30:
        raise ValueError(
            f"too little labelled history for {cfg.n_folds} folds: {len(labelled)} labelled days "
            f"({labelled[0].date()}..{labelled[-1].date()}), need min_train_days={cfg.min_train_days} + purge {purge_days} "
            f"+ {cfg.n_folds}x30 test days"
        )
    blocks = np.array_split(np.arange(len(candidates)), cfg.n_folds)
    folds = []
    for number, block in enumerate(blocks, start=1):
        test_days = candidates[block]
        start, end = test_days[0], test_days[-1]
        train_days = labelled[labelled < start - pd.Timedelta(days=purge_days)]
        folds.append(Fold(number, train_days[-1], start, end, train_days, test_days))
    return folds
