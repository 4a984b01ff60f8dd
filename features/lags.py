"""Lagged copies of selected features, declared once in config; names derive from the spec.

Only positive shifts exist here: ``oi_change_14d_lag3`` at day t is ``oi_change_14d`` at t-3.
"""

from __future__ import annotations

import pandas as pd


def lag_name(feature: str, lag: int) -> str:
    return f"{feature}_lag{lag}"


def add_lags(features: pd.DataFrame, lagged: list[str], lags: list[int]) -> pd.DataFrame:
    """Return ``features`` with ``<name>_lag<k>`` for every listed feature and lag (k >= 1)."""
    missing = [f for f in lagged if f not in features.columns]
    if missing:
        raise ValueError(f"config features.lagged_features names unknown feature(s) {missing}; see `cascade-radar features list`")
    if any(k < 1 for k in lags):
        raise ValueError(f"config features.lags must be positive (no look-ahead), got {lags}")
    extra = {lag_name(f, k): features[f].shift(k) for f in lagged for k in lags}
    return pd.concat([features, pd.DataFrame(extra, index=features.index)], axis=1)
