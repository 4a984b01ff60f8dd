"""Alert thresholds chosen, not fixed: per coin, the lowest P(cascade) line whose out-of-fold alert episodes stay within a
false-alarm budget (``Settings.false_alarm_budget_per_30d`` false-alarm episodes per 30 days).

Why: one fixed line (0.5) means different things for coins whose base rates differ (BTC's 40 %, BNB's 50 %): BTC sat in
alert on 37 % of out-of-fold days, and a warning that is always on warns of nothing. A budget in the desk's terms —
how often may it cry wolf — fixes what an alert costs and lets each coin's line follow from it.

Honest by construction: the walk-forward evaluates fold k's days at the line chosen from the out-of-fold days of folds
before k only (the first fold keeps the configured default line), so the reported event metrics never see the days that
chose their threshold; the champion's line is chosen from every out-of-fold day and is what every answer uses.

A *false-alarm episode* is counted as the evaluation's event tally counts it: a run of consecutive alert days none of
which has an event ahead within the horizon (target ``none`` on every day of the run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# candidate lines: 0.05 .. 0.95 by 0.01 (finer is noise: the budget is counted in whole episodes)
GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


@dataclass(frozen=True)
class ThresholdChoice:
    """A coin's alert line and what it costs on the days that chose it."""

    threshold: float
    false_alarms_per_30d: float  # false-alarm episodes per 30 days at this line, on the choosing days
    alert_share: float  # share of the choosing days in alert
    days: int  # days that chose it (0: the configured default, nothing to choose from)
    basis: str  # how it was chosen, in words

    def as_dict(self) -> dict[str, object]:
        return {"alert_threshold": self.threshold, "false_alarms_per_30d": self.false_alarms_per_30d,
                "alert_share": self.alert_share, "days": self.days, "basis": self.basis}


def false_alarm_runs(alert: np.ndarray, calm: np.ndarray) -> int:
    """Runs of consecutive True in ``alert`` (consecutive positions = consecutive days) whose every day is ``calm``."""
    if not alert.any():
        return 0
    edges = np.diff(np.concatenate(([0], alert.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    # a run is all-calm when its count of non-calm days is 0: cumulative sums make every run's count O(1)
    busy = np.concatenate(([0], np.cumsum(~calm)))
    return int(np.sum(busy[ends] - busy[starts] == 0))


def _contiguous(pred: pd.DataFrame) -> pd.DataFrame:
    """One row per calendar day between the first and the last (missing days: no alert), so runs are runs of days."""
    days = pd.date_range(pred.index.min(), pred.index.max(), freq="D")
    return pred.reindex(days)


def choose_threshold(pred: pd.DataFrame, budget_per_30d: float | None, default: float) -> ThresholdChoice:
    """The lowest line of ``GRID`` whose false-alarm episodes per 30 days of ``pred`` (one coin's date-indexed rows:
    ``p_cascade``, ``target``) are at most ``budget_per_30d`` and whose share of days in alert is at most the share with a
    cascade ahead; ``default`` when there is no budget or no labelled day."""
    labelled = pred[pred["target"].notna()] if len(pred) else pred
    if budget_per_30d is None or not len(labelled):
        return ThresholdChoice(default, float("nan"), float("nan"), 0, f"fixed at {default:g}")
    rows = _contiguous(labelled)
    p = rows["p_cascade"].to_numpy(dtype=float)
    calm = (rows["target"] == "none").fillna(False).to_numpy(dtype=bool)
    n = len(labelled)
    # a line that alerts on more days than have an event ahead cries wolf by construction, however few its episodes (one
    # alert that never ends is one episode): the share of days in alert is kept at most the coin's base rate
    most = float((labelled["target"] != "none").mean())
    for threshold in GRID:
        alert = np.nan_to_num(p, nan=-1.0) >= threshold
        rate, share = 30.0 * false_alarm_runs(alert, calm) / n, float(alert.sum() / n)
        if rate <= budget_per_30d and share <= most:
            return ThresholdChoice(float(threshold), rate, share, n,
                                   f"the lowest line with at most {budget_per_30d:g} false-alarm episode(s) per 30 days, in alert "
                                   f"on no more days than have a cascade ahead ({most:.0%}), over {n} out-of-fold days")
    top = float(GRID[-1])
    alert = np.nan_to_num(p, nan=-1.0) >= top
    return ThresholdChoice(top, 30.0 * false_alarm_runs(alert, calm) / n, float(alert.sum() / n), n,
                           f"no line met {budget_per_30d:g} false-alarm episode(s) per 30 days; the highest candidate")


def walk_forward_thresholds(pred: pd.DataFrame, budget_per_30d: float | None, default: float) -> pd.Series:
    """Per row of ``pred`` (one coin's out-of-fold rows: ``fold``, ``p_cascade``, ``target``), the line its fold is judged
    at: chosen from the earlier folds' rows only; the first fold (nothing earlier) at ``default``."""
    out = pd.Series(default, index=pred.index, dtype=float)
    folds = sorted(pred["fold"].dropna().unique())
    for fold in folds:
        earlier = pred[pred["fold"] < fold]
        if len(earlier):
            out[(pred["fold"] == fold).to_numpy()] = choose_threshold(earlier, budget_per_30d, default).threshold
    return out


def champion_thresholds(oof: pd.DataFrame, budget_per_30d: float | None, default: float) -> dict[str, dict[str, object]]:
    """Each coin's line chosen from all its out-of-fold rows (``oof``: rows of every coin with ``asset``): what the
    champion's answers use."""
    return {str(asset): choose_threshold(rows, budget_per_30d, default).as_dict() for asset, rows in oof.groupby("asset")}


def line_of(yardstick: dict[str, object] | None, asset: str, default: float) -> tuple[float, str]:
    """A coin's alert line from a yardstick saved with a champion (or an evaluation's), and how it was chosen; ``default``
    where it has none."""
    line = (((yardstick or {}).get("coins") or {}).get(asset) or {}).get("alert_line")
    return (float(line["alert_threshold"]), str(line["basis"])) if line else (default, f"fixed at {default:g}")
