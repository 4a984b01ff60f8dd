from __future__ import annotations

import pandas as pd
import pytest

from cascade_radar.config import FoldConfig
from training.splits import walk_forward_folds


def test_folds_expand_and_purge_at_least_the_horizon() -> None:
    days = pd.date_range("2021-01-01", "2024-12-31", freq="D")
    folds = walk_forward_folds(days, FoldConfig(n_folds=4, min_train_days=365), purge_days=14)
    assert len(folds) == 4
    for prev, fold in zip(folds, folds[1:], strict=False):
        assert fold.test_start == prev.test_end + pd.Timedelta(days=1)  # consecutive blocks
        assert len(fold.train_days) > len(prev.train_days)  # expanding window
    for fold in folds:
        # a training day t has target window (t, t+14]: it must end before the test block starts
        assert (fold.train_days + pd.Timedelta(days=14) < fold.test_start).all()
        assert fold.train_end + pd.Timedelta(days=15) == fold.test_start
        assert not fold.train_days.isin(fold.test_days).any()
    assert folds[0].test_start == pd.Timestamp("2021-01-01") + pd.Timedelta(days=365 + 14)
    assert folds[-1].test_end == days[-1]


def test_too_little_history_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too little labelled history for 4 folds"):
        walk_forward_folds(pd.date_range("2024-01-01", periods=400, freq="D"), FoldConfig(), purge_days=14)
