"""Probability and event-level metrics of daily cascade predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score


def probability_metrics(y: np.ndarray, p: np.ndarray, p_reference: np.ndarray) -> dict[str, float]:
    """PR-AUC, ROC-AUC, Brier, Brier skill versus ``p_reference`` (the base rate), log loss."""
    y = np.asarray(y, dtype=bool)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    brier = float(brier_score_loss(y, p))
    brier_ref = float(brier_score_loss(y, np.clip(p_reference, 1e-6, 1 - 1e-6)))
    return {
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "brier": brier,
        "brier_skill": 1.0 - brier / brier_ref if brier_ref > 0 else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[False, True])),
        "base_rate": float(y.mean()),
    }


def alert_episodes(alert: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of consecutive alert days as (first, last)."""
    days = alert.index[alert.to_numpy(dtype=bool)]
    runs: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for day in days:
        if runs and (day - runs[-1][1]).days == 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def event_metrics(pred: pd.DataFrame, events: pd.DataFrame, horizon: int, threshold: float) -> dict[str, float]:
    """Event-level view of daily predictions (``pred``: index date, p_cascade, p_long, p_short, target).

    * an event (start s) is *caught* when some predicted day in [s-H, s-1] has p_cascade >= threshold;
      its lead time is s minus the first such day;
    * a *false alarm* is a run of consecutive alert days none of which has an event within H days
      (target ``none``); counted per 30 predicted days;
    * direction accuracy: on caught events, the side with the larger probability on the first
      alert day versus the event's direction.
    Only events whose whole warning window lies inside the predicted days are scored.
    """
    pred = pred.sort_index()
    alert = pred["p_cascade"] >= threshold
    days = pred.index
    caught, leads, correct, scored = 0, [], 0, 0
    for event in events.itertuples():
        window = pd.date_range(event.start - pd.Timedelta(days=horizon), event.start - pd.Timedelta(days=1), freq="D")
        if not window.isin(days).all():
            continue
        scored += 1
        hits = window[alert.reindex(window).to_numpy(dtype=bool)]
        if len(hits):
            caught += 1
            first = hits[0]
            leads.append((event.start - first).days)
            side = "long" if pred.at[first, "p_long"] >= pred.at[first, "p_short"] else "short"
            correct += side == event.direction
    false_runs = 0
    for first, last in alert_episodes(alert):
        run_targets = pred.loc[first:last, "target"]
        if (run_targets == "none").all():
            false_runs += 1
    return {
        "events": float(scored),
        "event_recall": caught / scored if scored else float("nan"),
        "median_lead_days": float(np.median(leads)) if leads else float("nan"),
        "false_alarms_per_30d": 30.0 * false_runs / len(days) if len(days) else float("nan"),
        "alert_share": float(alert.mean()) if len(days) else float("nan"),
        "direction_accuracy": correct / caught if caught else float("nan"),
    }


def direction_day_accuracy(pred: pd.DataFrame) -> float:
    """On days with an event ahead, the share where the likelier side is the event's side."""
    ahead = pred[pred["target"].isin(["long", "short"])]
    if ahead.empty:
        return float("nan")
    side = np.where(ahead["p_long"] >= ahead["p_short"], "long", "short")
    return float((side == ahead["target"].to_numpy()).mean())
