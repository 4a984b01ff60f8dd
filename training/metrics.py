"""Probability and event-level metrics of daily cascade predictions."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cascade_radar.rules import SIDES, TWO_SIDED, alert_episodes, side, side_right, span_warns, warning_window


def positions_of(values: np.ndarray | pd.Series | pd.Index) -> dict[object, np.ndarray]:
    """Each distinct value of ``values`` (a coin, a fold number) -> the positions where it occurs, ascending; found in one
    pass, so that a loop over coins or folds takes each one's rows instead of comparing every row with it (which grows
    with coins x rows). Missing values have no entry."""
    values = np.asarray(values)
    return pd.Series(np.arange(len(values))).groupby(values, sort=False).indices


# The scores below are scikit-learn's (``average_precision_score``, ``roc_auc_score``, ``brier_score_loss``, ``log_loss``) computed
# with numpy alone: the walk-forward scores every predictor per coin, per fold and per horizon — thousands of calls on a
# few hundred rows each, where scikit-learn's input validation cost ten times the arithmetic. Same definitions, summed in
# the same order: the same floats (tests/unit/test_metrics.py holds them equal to scikit-learn's; log loss to 1e-12).


def _checked(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as booleans and ``p`` as floats, refused as scikit-learn refuses them: no rows, lengths that differ, a NaN or
    an infinite score."""
    y, p = np.asarray(y, dtype=bool).ravel(), np.asarray(p, dtype=float).ravel()
    if not len(y) or len(y) != len(p):
        raise ValueError(f"cannot score {len(p)} predictions against {len(y)} outcomes")
    if not np.isfinite(p).all():
        raise ValueError("the predictions contain NaN or infinity")
    return y, p


def _probabilities(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y, p = _checked(y, p)
    if p.max() > 1 or p.min() < 0:
        raise ValueError("probabilities must lie in [0, 1]")
    return y, p


def _ranked(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true positives, false positives) among the rows scored at or above each distinct score, highest score first:
    the counts scikit-learn draws its curves from (a tie is one threshold; whole numbers, exact in float64)."""
    order = np.argsort(p, kind="stable")[::-1]
    ordered = p[order]
    last = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]  # the last row of each run of equal scores
    tps = np.cumsum(y[order], dtype=np.float64)[last]
    return tps, 1.0 + last - tps


def _average_precision(tps: np.ndarray, fps: np.ndarray) -> float:
    """Average precision from ``_ranked``'s counts, as ``average_precision_score`` sums it: precision at each threshold times
    the recall it adds (the step-wise sum, no interpolation), over the thresholds from the lowest score up."""
    precision = np.r_[(tps / (tps + fps))[::-1], 1.0]
    recall = np.r_[(tps / tps[-1] if tps[-1] else np.ones_like(tps))[::-1], 0.0]  # no event at all: recall 1 (scikit-learn's rule)
    return float(max(0.0, -np.sum(np.diff(recall) * precision[:-1])))


def _roc_auc(tps: np.ndarray, fps: np.ndarray) -> float:
    """ROC-AUC from ``_ranked``'s counts: the area under the ROC curve by the trapezoidal rule, a tie of scores a diagonal
    step — the Mann-Whitney statistic (the share of (event, non-event) pairs the score orders right, a tie counting half).
    Summed as ``roc_auc_score`` sums it (points collinear with their neighbours dropped, the curve started at (0, 0)), so
    that the number is the same to the last bit: the exact rank formula differs in it, and a report's rounding can show it."""
    if len(fps) > 2:
        corner = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        tps, fps = tps[corner], fps[corner]
    tpr, fpr = np.r_[0.0, tps] / tps[-1], np.r_[0.0, fps] / fps[-1]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC-AUC of scores ``p`` against outcomes ``y`` (``roc_auc_score``'s number); NaN when ``y`` has one class only."""
    y, p = _checked(y, p)
    if y.all() or not y.any():
        return float("nan")
    return _roc_auc(*_ranked(y, p))


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (PR-AUC) of scores ``p`` against outcomes ``y`` (``average_precision_score``'s number: 0 when ``y``
    has no event, 1 when every day is one)."""
    return _average_precision(*_ranked(*_checked(y, p)))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score of probabilities ``p`` of outcomes ``y`` (``brier_score_loss``'s number)."""
    y, p = _probabilities(y, p)
    outcome = y.astype(np.float64)
    # as scikit-learn sums it (both classes' squared errors, halved), so that the number is the same to the last bit
    return float(np.mean(((1.0 - outcome) - (1.0 - p)) ** 2 + (outcome - p) ** 2) * 0.5)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean negative log-likelihood of outcomes ``y`` under probabilities ``p`` (``log_loss`` with both labels given: either
    class may be absent), each probability clipped to [eps, 1 - eps] as scikit-learn clips it."""
    y, p = _probabilities(y, p)
    eps = np.finfo(np.float64).eps
    return float(np.mean(-np.where(y, np.log(np.clip(p, eps, 1 - eps)), np.log(np.clip(1.0 - p, eps, 1 - eps)))))


def probability_metrics(y: np.ndarray, p: np.ndarray, p_reference: np.ndarray) -> dict[str, float]:
    """PR-AUC, ROC-AUC, Brier, Brier skill versus ``p_reference`` (the base rate), log loss."""
    y = np.asarray(y, dtype=bool)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = bool(y.any() and not y.all())
    brier = brier_score(y, p)
    brier_ref = brier_score(y, np.clip(p_reference, 1e-6, 1 - 1e-6))
    ranked = _ranked(y, p) if both else None  # one sort for both areas
    return {
        "pr_auc": _average_precision(*ranked) if ranked else float("nan"),
        "roc_auc": _roc_auc(*ranked) if ranked else float("nan"),
        "brier": brier,
        "brier_skill": 1.0 - brier / brier_ref if brier_ref > 0 else float("nan"),
        "log_loss": log_loss(y, p),
        "base_rate": float(y.mean()),
    }


EPISODE_COLUMNS = ["first", "last", "days", "peak_probability", "outcome", "event_start", "event_direction", "lead_days"]


def judge_episodes(p_cascade: pd.Series, threshold: float, events: pd.DataFrame, horizon: int,
                   judged: pd.Series | None = None) -> pd.DataFrame:
    """Every alert episode (run of days with P >= ``threshold``) judged against the labelled events.

    ``judged``: per day, whether the liquidation data judge it (cascade or not); None: every day is judged.

    *hit*: an event starts in (first, last + H] — some day of the episode had it within its horizon;
    *false alarm*: none did, and every day of (first, last + H] is judged;
    *pending*: none yet, and the horizon reaches past the last judged day (the outcome is still to come);
    *unjudged*: none, but some day of the horizon has no liquidation data (before coverage began): unknown, not false.
    ``event_start``/``event_direction``/``lead_days`` describe the first event a hit warned of (lead from ``first``).
    """
    p_cascade = p_cascade.sort_index()
    ordered = events.assign(start=pd.to_datetime(events["start"])).sort_values("start") if len(events) else None
    known = judged[judged.astype(bool)].index if judged is not None else None
    last_judged = known.max() if known is not None and len(known) else None
    h = pd.Timedelta(days=horizon)
    rows = []
    for first, last in alert_episodes(p_cascade >= threshold):
        warned = ordered[span_warns(first, last, ordered["start"], horizon)] if ordered is not None else []
        event: tuple[object, object, object] = (pd.NaT, None, None)
        if len(warned):
            start = pd.Timestamp(warned["start"].iloc[0])
            outcome, event = "hit", (start, str(warned["direction"].iloc[0]), (start - first).days)
        elif known is None:
            outcome = "false alarm"
        elif last_judged is None or last + h > last_judged:
            outcome = "pending"
        else:
            horizon_days = pd.date_range(first + pd.Timedelta(days=1), last + h, freq="D")
            outcome = "false alarm" if horizon_days.isin(known).all() else "unjudged"
        rows.append((first, last, (last - first).days + 1, float(p_cascade.loc[first:last].max()), outcome, *event))
    return pd.DataFrame(rows, columns=EPISODE_COLUMNS).astype({"days": "int64", "lead_days": "Int64"})


@dataclass
class EventTally:
    """Counts behind the event-level metrics; tallies of several coins add up to the pooled one."""

    scored: int = 0
    caught: int = 0
    correct: int = 0
    false_runs: int = 0
    days: int = 0
    alert_days: int = 0
    leads: list[int] = field(default_factory=list)
    two_sided: int = 0  # caught events that were two-sided: not scored for side (neither right nor wrong)

    def __add__(self, other: EventTally) -> EventTally:
        return EventTally(self.scored + other.scored, self.caught + other.caught, self.correct + other.correct,
                          self.false_runs + other.false_runs, self.days + other.days, self.alert_days + other.alert_days,
                          self.leads + other.leads, self.two_sided + other.two_sided)

    def metrics(self) -> dict[str, float]:
        nan = float("nan")
        return {
            "events": float(self.scored),
            "event_recall": self.caught / self.scored if self.scored else nan,
            "median_lead_days": float(np.median(self.leads)) if self.leads else nan,
            "false_alarms_per_30d": 30.0 * self.false_runs / self.days if self.days else nan,
            "alert_share": self.alert_days / self.days if self.days else nan,
            "direction_accuracy": self.correct / (self.caught - self.two_sided) if self.caught > self.two_sided else nan,
            "two_sided_events": float(self.two_sided),
        }


def event_tally(pred: pd.DataFrame, events: pd.DataFrame, horizon: int, threshold: float | pd.Series) -> EventTally:
    """Event-level view of one coin's daily predictions (``pred``: index date, p_cascade, p_long, p_short, target).

    * an event (start s) is *caught* when some predicted day in [s-H, s-1] has p_cascade >= threshold;
      its lead time is s minus the first such day;
    * a *false alarm* is a run of consecutive alert days none of which has an event within H days
      (target ``none``); counted per 30 predicted days;
    * direction accuracy: on caught long/short events, the side with the larger probability on the first
      alert day versus the event's direction; a caught two-sided event is counted apart (``two_sided``), never scored.
    Only events whose whole warning window lies inside the predicted days are scored.
    """
    pred = pred.sort_index()
    # ``threshold``: one line, or a line per day (a Series on pred's days: each fold judged at the line earlier folds chose)
    line = threshold.reindex(pred.index).to_numpy(dtype=float) if isinstance(threshold, pd.Series) else threshold
    alert = pred["p_cascade"] >= line
    days = pred.index
    tally = EventTally(days=len(days), alert_days=int(alert.sum()))
    for event in events.itertuples():
        window = pd.date_range(*warning_window(event.start, horizon), freq="D")
        if not window.isin(days).all():
            continue
        tally.scored += 1
        hits = window[alert.reindex(window).to_numpy(dtype=bool)]
        if len(hits):
            tally.caught += 1
            first = hits[0]
            tally.leads.append((event.start - first).days)
            right = side_right(str(side(pred.at[first, "p_long"], pred.at[first, "p_short"])), event.direction)
            tally.two_sided += right is None
            tally.correct += bool(right)
    for first, last in alert_episodes(alert):
        if (pred.loc[first:last, "target"] == "none").all():
            tally.false_runs += 1
    return tally


def event_metrics(pred: pd.DataFrame, events: pd.DataFrame, horizon: int, threshold: float | pd.Series) -> dict[str, float]:
    """``event_tally`` of one coin as metrics: events, event_recall, median_lead_days, false_alarms_per_30d, alert_share,
    direction_accuracy, two_sided_events."""
    return event_tally(pred, events, horizon, threshold).metrics()


def direction_day_accuracy(pred: pd.DataFrame) -> float:
    """On days with a long or short event ahead, the share where the likelier side is the event's side."""
    return direction_metrics(pred)["direction_day_accuracy"]


def direction_metrics(pred: pd.DataFrame, reference: pd.DataFrame | None = None) -> dict[str, float]:
    """On days with a long or short event ahead, P(long | event) against the event's side: accuracy of the likelier side,
    ROC-AUC, the mean ROC-AUC of the test blocks (``fold``), and Brier skill and log loss against ``reference`` — the
    training window's long share (the base-rate predictor's rows; without one, the long share of ``pred``'s own days).
    Days with a two-sided event ahead are not scored for side: ``two_sided_days`` counts them."""
    nan = float("nan")
    ahead = pred["target"].isin(SIDES)
    two_sided = float((pred["target"] == TWO_SIDED).sum())
    if not ahead.any():
        return {k: nan for k in DIRECTION_METRICS} | {"two_sided_days": two_sided}
    rows = pred[ahead.to_numpy()]
    is_long = (rows["target"] == "long").to_numpy()
    p = np.clip((rows["p_long"] / (rows["p_long"] + rows["p_short"])).to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    if reference is not None:
        ref_rows = reference[ahead.to_numpy()]
        prior = np.clip((ref_rows["p_long"] / (ref_rows["p_long"] + ref_rows["p_short"])).to_numpy(dtype=float), 1e-6, 1 - 1e-6)
    else:
        prior = np.full(len(rows), np.clip(is_long.mean(), 1e-6, 1 - 1e-6))
    both = 0 < is_long.mean() < 1
    blocks = [roc_auc(is_long[m], p[m]) for m in (rows["fold"].to_numpy() == k for k in rows["fold"].unique())
              if 0 < is_long[m].mean() < 1] if "fold" in rows.columns else []
    brier, brier_ref = float(np.mean((p - is_long) ** 2)), float(np.mean((prior - is_long) ** 2))
    return {"direction_day_accuracy": float((side(rows["p_long"], rows["p_short"]) == rows["target"].to_numpy()).mean()),
            "direction_auc": roc_auc(is_long, p) if both else nan,
            "direction_block_auc": float(np.mean(blocks)) if blocks else nan,
            "direction_brier_skill": 1.0 - brier / brier_ref if brier_ref > 0 else nan,
            "direction_log_loss": log_loss(is_long, p),
            "direction_events_days": float(len(rows)), "two_sided_days": two_sided}


DIRECTION_METRICS = ("direction_day_accuracy", "direction_auc", "direction_block_auc", "direction_brier_skill", "direction_log_loss",
                     "direction_events_days", "two_sided_days")
