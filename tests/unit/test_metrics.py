"""Event-level metrics on a tiny hand-made timeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import alert_episodes, direction_day_accuracy, event_metrics, judge_episodes, probability_metrics


def timeline() -> tuple[pd.DataFrame, pd.DataFrame]:
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    p = np.full(30, 0.1)
    p[5:8] = 0.8  # alert 5..7, event A starts day 9 -> caught, lead 4
    p[20:22] = 0.9  # alert 20..21, nothing follows -> one false alarm
    p_long = p * np.where(np.arange(30) < 10, 0.7, 0.2)
    target = ["none"] * 30
    for d in range(5, 9):
        target[d] = "long"  # days 5..8 have event A within H = 4
    for d in range(11, 15):
        target[d] = "short"  # event B (day 15) is missed: no alert in 11..14
    pred = pd.DataFrame({"p_cascade": p, "p_long": p_long, "p_short": p - p_long, "target": target}, index=days)
    events = pd.DataFrame({"start": [days[9], days[15], days[2]], "direction": ["long", "short", "long"]})
    return pred, events


def test_event_recall_lead_time_false_alarms_and_direction() -> None:
    pred, events = timeline()
    m = event_metrics(pred, events, horizon=4, threshold=0.5)
    assert m["events"] == 2  # the day-2 event's warning window starts before the predictions: not scored
    assert m["event_recall"] == 0.5
    assert m["median_lead_days"] == 4
    assert m["false_alarms_per_30d"] == pytest.approx(1.0)
    assert m["direction_accuracy"] == 1.0  # first alert day 5: p_long 0.56 > p_short 0.24, event long
    assert m["alert_share"] == pytest.approx(5 / 30)


def test_direction_day_accuracy() -> None:
    pred, _ = timeline()
    # days 5..8 (long ahead): p_long 0.7 share -> right; days 11..14 (short ahead): p_long 0.2 share -> right
    assert direction_day_accuracy(pred) == 1.0
    pred.loc[pred.index[11:13], ["p_long", "p_short"]] = [[0.09, 0.01], [0.09, 0.01]]
    assert direction_day_accuracy(pred) == 0.75


def test_alert_episodes() -> None:
    pred, _ = timeline()
    runs = alert_episodes(pred["p_cascade"] >= 0.5)
    assert [(a.day, b.day) for a, b in runs] == [(6, 8), (21, 22)]


def test_judge_episodes_tells_hits_false_alarms_and_pending_apart() -> None:
    pred, events = timeline()
    judged = judge_episodes(pred["p_cascade"], 0.5, events, horizon=4)
    # 01-06..01-08 warns of the long event of 01-10 (in (01-06, 01-12]), 4 days ahead; 01-21..01-22: nothing by 01-26
    assert judged["outcome"].tolist() == ["hit", "false alarm"]
    assert judged["days"].tolist() == [3, 2]
    assert judged.loc[0, "event_start"] == pd.Timestamp("2024-01-10") and judged.loc[0, "event_direction"] == "long"
    assert judged.loc[0, "lead_days"] == 4 and judged.loc[0, "peak_probability"] == pytest.approx(0.8)
    assert pd.isna(judged.loc[1, "event_start"]) and pd.isna(judged.loc[1, "lead_days"])
    # the labels judge only up to 01-25: the second episode's horizon (to 01-26) is not over yet
    known = pd.Series(pred.index <= pd.Timestamp("2024-01-25"), index=pred.index)
    assert judge_episodes(pred["p_cascade"], 0.5, events, 4, known)["outcome"].tolist() == ["hit", "pending"]
    known = pd.Series(pred.index <= pd.Timestamp("2024-01-26"), index=pred.index)
    assert judge_episodes(pred["p_cascade"], 0.5, events, 4, known)["outcome"].tolist() == ["hit", "false alarm"]
    # no liquidation data on 01-24 (inside its horizon 01-22..01-26): nothing says it was false
    known[pd.Timestamp("2024-01-24")] = False
    assert judge_episodes(pred["p_cascade"], 0.5, events, 4, known)["outcome"].tolist() == ["hit", "unjudged"]
    # the same count of false alarms as the evaluation's (targets) on a fully labelled timeline
    assert (judged["outcome"] == "false alarm").sum() == event_metrics(pred, events, 4, 0.5)["false_alarms_per_30d"] * len(pred) / 30


def test_probability_metrics_by_hand() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.1, 0.6, 0.4])
    m = probability_metrics(y, p, np.full(4, 0.5))
    assert m["brier"] == pytest.approx((0.01 + 0.01 + 0.16 + 0.16) / 4)
    assert m["brier_skill"] == pytest.approx(1 - 0.085 / 0.25)
    assert m["pr_auc"] == pytest.approx(1.0) and m["roc_auc"] == pytest.approx(1.0)


def test_direction_metrics_are_accuracy_and_auc_on_days_with_an_event_ahead() -> None:
    from training.metrics import direction_metrics

    # P(long | event) = 0.9, 0.6, 0.4, 0.2 on four event-ahead days (targets long, short, long, short); a 'none' day is ignored
    p = pd.Series([0.5, 0.5, 0.5, 0.5, 0.5])
    given = pd.Series([0.9, 0.6, 0.4, 0.2, 0.99])
    pred = pd.DataFrame({"p_cascade": p, "p_long": p * given, "p_short": p * (1 - given),
                         "target": ["long", "short", "long", "short", "none"]})
    m = direction_metrics(pred)
    assert m["direction_day_accuracy"] == 0.5  # long right, short wrong (0.6 -> long), long wrong (0.4 -> short), short right
    assert m["direction_auc"] == 0.75  # long scores {0.9, 0.4} vs short {0.6, 0.2}: 3 of 4 pairs ordered right


def test_event_tallies_of_coins_add_up_to_the_pooled_metrics() -> None:
    from training.metrics import EventTally

    a = EventTally(scored=2, caught=1, correct=1, false_runs=1, days=30, alert_days=3, leads=[5])
    b = EventTally(scored=2, caught=2, correct=1, false_runs=0, days=30, alert_days=6, leads=[1, 3])
    m = (a + b).metrics()
    assert m["event_recall"] == 0.75 and m["median_lead_days"] == 3.0
    assert m["false_alarms_per_30d"] == 0.5 and m["direction_accuracy"] == 2 / 3 and m["alert_share"] == 0.15
