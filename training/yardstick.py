"""The yardstick of a probability: how often a cascade followed on the coin's days, and where a day's P(cascade) stands
among the model's own answers.

A probability alone does not say whether it is high: 46 % is near normal for a coin on which a cascade starts within
the horizon on 40 % of days, and 28 % is below normal for one at 35 %. Measured on the champion's walk-forward
out-of-fold days — each fold's test block, days its model never saw; the same days its skill (``training.skill``), its
calibration and the report's prevalence are measured on — per coin:

* ``base_rate``: the share of those days with a cascade starting within the horizon (``target`` not ``none``);
* ``quantiles``: 101 quantiles (0 %, 1 %, ..., 100 %) of the model's out-of-fold P(cascade): a day's percentile is read
  from them;
* ``calibration``: the reliability diagram — those answers in ~10 equal-count bins, each bin's mean predicted P(cascade)
  beside the share of its days a cascade followed.

Why out-of-fold days and not the final fit's training days: a day's relative risk and percentile compare the answer
with what the model said and what happened on days it had not seen — the same footing as the answer itself; the final
fit's window adds only the days before the first test block, answered in-sample.

The table travels with the champion (``CascadeModel.yardstick``, saved in its meta.json), so every interface reads the
same numbers. No work at import; numpy only (the service reads it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = 101  # 0 %, 1 %, ..., 100 %
CALIBRATION_BINS = 10
WINDOW = "the champion's walk-forward out-of-fold days (each fold's test block, answered by a model that never saw them)"


def reliability_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float | int]]:
    """The reliability diagram of predictions ``p`` and outcomes ``y``: ``bins`` equal-count bins of ``p`` (edges at its
    quantiles; a bin left empty by ties is dropped), each with its edges, mean prediction, observed frequency and days —
    the bins of scikit-learn's ``calibration_curve(strategy="quantile")``."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(p) == 0:
        return []
    edges = np.quantile(p, np.linspace(0.0, 1.0, bins + 1))
    which = np.searchsorted(edges[1:-1], p, side="right")
    out = []
    for b in range(bins):
        at = which == b
        if at.any():
            out.append({"p_low": float(edges[b]), "p_high": float(edges[b + 1]), "mean_predicted": float(p[at].mean()),
                        "observed": float(y[at].mean()), "days": int(at.sum()), "event_days": int(y[at].sum())})
    return out


def coin_yardstick(p: np.ndarray, y: np.ndarray, days: pd.DatetimeIndex) -> dict[str, object]:
    """One coin's yardstick from its out-of-fold answers ``p``, outcomes ``y`` (a cascade within the horizon) and days."""
    p, y = np.asarray(p, dtype=float), np.asarray(y, dtype=bool)
    return {"days": int(len(y)), "event_days": int(y.sum()), "base_rate": float(y.mean()) if len(y) else None,
            "first_day": str(days.min().date()) if len(days) else None, "last_day": str(days.max().date()) if len(days) else None,
            "quantiles": [float(v) for v in np.quantile(p, np.linspace(0.0, 1.0, QUANTILES))] if len(p) else [],
            "calibration": reliability_bins(y, p)}


def yardstick_table(oof: pd.DataFrame, horizon_days: int) -> dict[str, object] | None:
    """Every coin's yardstick from the walk-forward's out-of-fold rows of the model (date-indexed: ``asset``,
    ``p_cascade``, ``target``). Returns ``{"window": ..., "horizon_days": H, "coins": {coin: coin_yardstick}}``."""
    if oof is None or oof.empty:
        return None
    from training.model import is_cascade

    coins = {}
    for asset, rows in oof.groupby("asset", sort=True):
        coins[str(asset)] = coin_yardstick(rows["p_cascade"].to_numpy(), is_cascade(rows["target"]), pd.DatetimeIndex(rows.index))
    return {"window": WINDOW, "horizon_days": int(horizon_days), "coins": coins}


def percentile(quantiles: list[float] | np.ndarray, p: float) -> float:
    """Where ``p`` stands among the answers whose ``quantiles`` (evenly spaced levels, 0 % to 100 %) are given, in percent:
    linear between the quantiles, 0 below the lowest answer, 100 at or above the highest, monotone in ``p``. For one of
    the answers (distinct values) it is its rank, 100 x (answers below it) / (answers - 1) — exactly when there are as many
    answers as quantiles, within a point otherwise; a value many answers share takes the highest level of the tie (the
    percent at or below it)."""
    q = np.asarray(quantiles, dtype=float)
    levels = np.linspace(0.0, 100.0, len(q))
    values, last = np.unique(q[::-1], return_index=True)  # each distinct quantile once, at its highest level
    if p < values[0]:
        return 0.0
    if p >= values[-1]:
        return 100.0
    return float(np.interp(p, values, levels[::-1][last]))


def yardstick_of(coin: dict[str, object] | None, p: float) -> dict[str, float | None]:
    """A day's yardstick: the coin's base rate, ``p`` relative to it, and ``p``'s percentile among the coin's
    out-of-fold answers (None each when the champion's table does not have them)."""
    base = coin.get("base_rate") if coin else None
    quantiles = coin.get("quantiles") if coin else None
    return {"base_rate": base, "relative_risk": float(p / base) if base else None,
            "percentile": percentile(quantiles, p) if quantiles else None}


def base_rate_basis(asset: str, coin: dict[str, object] | None, horizon_days: int) -> str:
    """Whose number the base rate is, in words."""
    if not coin:
        return f"not measured (a champion trained before the yardstick, or without {asset}'s out-of-fold days)"
    return (f"share of {asset}'s {coin['days']:,} out-of-fold days ({coin['first_day']}..{coin['last_day']}: the walk-forward's test "
            f"blocks) followed by a cascade within {horizon_days} days ({coin['event_days']:,} days)")
