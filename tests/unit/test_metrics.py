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


def _sklearn_probability_metrics(y: np.ndarray, p: np.ndarray, p_reference: np.ndarray) -> dict[str, float]:
    """``probability_metrics`` as it was computed with scikit-learn: the reference the numpy one must equal."""
    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    y = np.asarray(y, dtype=bool)
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    both = len(np.unique(y)) == 2
    brier = float(brier_score_loss(y, p))
    brier_ref = float(brier_score_loss(y, np.clip(p_reference, 1e-6, 1 - 1e-6)))
    return {"pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
            "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
            "brier": brier, "brier_skill": 1.0 - brier / brier_ref if brier_ref > 0 else float("nan"),
            "log_loss": float(log_loss(y, p, labels=[False, True])), "base_rate": float(y.mean())}


def _cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Seeded random outcomes and scores: continuous, heavily tied (rounded, few distinct values), at the clip edges, rare
    and common events, one class only, and tiny inputs."""
    rng = np.random.default_rng(37)
    cases = []
    for n in (2, 3, 5, 17, 200, 3000):
        for rate in (0.05, 0.4, 0.9):
            y = rng.random(n) < rate
            p = np.clip(rng.random(n) * 0.6 + 0.4 * y * rng.random(n), 0, 1)
            cases += [(f"n{n} rate{rate} continuous", y, p), (f"n{n} rate{rate} ties", y, np.round(p, 1)),
                      (f"n{n} rate{rate} few values", y, rng.choice([0.0, 0.25, 0.5, 1.0], n))]
    cases += [("one day, event", np.array([True]), np.array([0.3])), ("one day, none", np.array([False]), np.array([0.3])),
              ("all events", np.ones(50, dtype=bool), rng.random(50)), ("no events", np.zeros(50, dtype=bool), rng.random(50)),
              ("every score tied", rng.random(40) < 0.5, np.full(40, 0.37)), ("clip edges", np.array([True, False, True, False]),
                                                                                  np.array([0.0, 1.0, 1.0, 0.0]))]
    return cases


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_probability_metrics_equal_scikit_learns(name: str, y: np.ndarray, p: np.ndarray) -> None:
    reference = np.full(len(y), 0.3) if len(y) % 2 else np.linspace(0.1, 0.7, len(y))
    got, want = probability_metrics(y, p, reference), _sklearn_probability_metrics(y, p, reference)
    assert got.keys() == want.keys()
    for key in want:
        if np.isnan(want[key]):
            assert np.isnan(got[key]), (name, key)  # one class only: no area, as before
        elif key == "log_loss":  # numpy's log and scipy's may differ in the last bit
            assert got[key] == pytest.approx(want[key], rel=0, abs=1e-12), (name, key)
        else:  # summed as scikit-learn sums them: the same float, so a report's rounded digits never move
            assert got[key] == want[key], (name, key)


@pytest.mark.parametrize(("name", "y", "p"), _cases(), ids=[c[0] for c in _cases()])
def test_each_score_equals_scikit_learns(name: str, y: np.ndarray, p: np.ndarray) -> None:
    import warnings

    from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

    from training.metrics import average_precision, brier_score, roc_auc
    from training.metrics import log_loss as numpy_log_loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns on one class only
        want = {"brier": brier_score_loss(y, p), "log_loss": log_loss(y, p, labels=[False, True]), "roc_auc": roc_auc_score(y, p),
                "pr_auc": average_precision_score(y, p)}
    got = {"brier": brier_score(y, p), "log_loss": numpy_log_loss(y, p), "roc_auc": roc_auc(y, p), "pr_auc": average_precision(y, p)}
    for key, value in want.items():
        if np.isnan(value):  # a ROC-AUC of one class only
            assert np.isnan(got[key]) and not (y.any() and not y.all()), (name, key)
        elif key == "log_loss":
            assert got[key] == pytest.approx(value, rel=0, abs=1e-12), (name, key)
        else:
            assert got[key] == value, (name, key)


def test_scores_refuse_what_scikit_learn_refuses() -> None:
    from training.metrics import brier_score, roc_auc

    with pytest.raises(ValueError):
        probability_metrics(np.array([], dtype=bool), np.array([]), np.array([]))  # no rows: nothing to score
    with pytest.raises(ValueError):
        roc_auc(np.array([True, False]), np.array([0.2, np.nan]))
    with pytest.raises(ValueError):
        brier_score(np.array([True, False]), np.array([0.2, 1.5]))


def test_direction_metrics_equal_scikit_learns() -> None:
    from sklearn.metrics import log_loss, roc_auc_score

    from training.metrics import direction_metrics

    rng = np.random.default_rng(7)
    n = 400
    p_cascade = rng.random(n)
    given = np.round(rng.random(n), 2)  # ties in P(long | event)
    target = rng.choice(["long", "short", "none", "two-sided"], n, p=[0.3, 0.3, 0.3, 0.1])
    pred = pd.DataFrame({"p_cascade": p_cascade, "p_long": p_cascade * given, "p_short": p_cascade * (1 - given), "target": target,
                         "fold": np.repeat([1, 2, 3, 4], n // 4)})
    m = direction_metrics(pred)
    rows = pred[pred["target"].isin(["long", "short"])]
    is_long = (rows["target"] == "long").to_numpy()
    p = np.clip((rows["p_long"] / (rows["p_long"] + rows["p_short"])).to_numpy(), 1e-6, 1 - 1e-6)
    blocks = [roc_auc_score(is_long[f], p[f]) for f in (rows["fold"].to_numpy() == k for k in rows["fold"].unique())]
    assert m["direction_auc"] == roc_auc_score(is_long, p)
    assert m["direction_block_auc"] == np.mean(blocks)
    assert m["direction_log_loss"] == pytest.approx(log_loss(is_long, p, labels=[False, True]), rel=0, abs=1e-12)


def test_positions_of_is_each_values_rows_in_order() -> None:
    from training.metrics import positions_of

    values = np.array(["ETH", "BTC", "ETH", "SOL", "BTC", "ETH"], dtype=object)
    got = positions_of(values)
    assert set(got) == {"BTC", "ETH", "SOL"}
    for value, at in got.items():
        np.testing.assert_array_equal(at, np.flatnonzero(values == value))
    assert positions_of(np.array([], dtype=object)) == {}
    assert positions_of(np.array([3, 1, 3]))[3].tolist() == [0, 2]
