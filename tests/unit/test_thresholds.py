"""Alert lines chosen by a false-alarm budget: the episode count by hand, the lowest line meeting it, no fold judged at a
line chosen with its own days."""

import numpy as np
import pandas as pd

from training.thresholds import choose_threshold, false_alarm_runs, walk_forward_thresholds


def test_false_alarm_runs_counts_all_calm_runs_only() -> None:
    alert = np.array([1, 1, 0, 1, 0, 1, 1, 1, 0], dtype=bool)
    calm = np.array([1, 1, 1, 0, 1, 1, 0, 1, 1], dtype=bool)
    # runs: [0,1] all calm -> false; [3] not calm (an event ahead) -> hit; [5,6,7] has a busy day -> not false
    assert false_alarm_runs(alert, calm) == 1
    assert false_alarm_runs(np.zeros(4, dtype=bool), np.ones(4, dtype=bool)) == 0


def _days(p: list[float], target: list[str], start: str = "2024-01-01", fold: list[int] | None = None) -> pd.DataFrame:
    index = pd.date_range(start, periods=len(p), freq="D")
    frame = pd.DataFrame({"p_cascade": p, "target": pd.Series(target, index=index, dtype="string")}, index=index)
    if fold is not None:
        frame["fold"] = fold
    return frame


def test_the_lowest_line_within_the_budget() -> None:
    # 30 days; two calm bumps at 0.40 and 0.60 (false alarms below their lines), an event ahead on days 20-22 at 0.70
    p = [0.1] * 30
    p[3], p[10], p[20], p[21], p[22] = 0.40, 0.60, 0.70, 0.70, 0.70
    target = ["none"] * 30
    target[20] = target[21] = target[22] = "long"
    pred = _days(p, target)
    # base rate 3/30: at 0.05..0.10 every day is in alert (one run, with the event: no false alarm, but 100 % of days);
    # budget 1 per 30 days over 30 days = 1 false episode: at 0.11..0.40 the two bumps are false (2), above 0.40 one (1),
    # and 4 days of 30 in alert is more than the 3 with an event ahead; above 0.60 none, 3 days in alert
    choice = choose_threshold(pred, 1.0, default=0.5)
    assert choice.threshold == 0.61
    assert choice.false_alarms_per_30d == 0.0
    assert choice.alert_share == 3 / 30
    # a bigger event (six days ahead): 0.41 alerts on 4 days of 30 <= 6, with one false episode
    target[17] = target[18] = target[19] = "long"
    choice = choose_threshold(_days(p, target), 1.0, default=0.5)
    assert (choice.threshold, choice.false_alarms_per_30d, choice.alert_share) == (0.41, 1.0, 4 / 30)
    # no budget: the configured default, said as fixed
    fixed = choose_threshold(pred, None, default=0.5)
    assert fixed.threshold == 0.5 and fixed.basis == "fixed at 0.5"


def test_a_gap_in_the_days_ends_a_run() -> None:
    pred = _days([0.01, 0.01, 0.9, 0.9, 0.01], ["long", "long", "none", "none", "long"])
    pred.index = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05", "2024-01-06"])
    # at 0.05: 2 of 5 days in alert (base rate 3/5); 01-03 and 01-05 are two runs (01-04 is not a day of the record),
    # both calm: 2 false alarms over 5 days = 12 per 30 days (one run, 6, if the gap were ignored)
    choice = choose_threshold(pred, 100.0, default=0.5)
    assert (choice.threshold, choice.false_alarms_per_30d) == (0.05, 12.0)


def test_each_fold_is_judged_at_a_line_chosen_from_earlier_folds_only() -> None:
    p = [0.3, 0.3, 0.7, 0.1, 0.6, 0.1, 0.1, 0.1]
    target = ["none", "none", "long", "long", "none", "none", "none", "none"]
    pred = _days(p, target, fold=[0, 0, 0, 0, 1, 1, 1, 1])
    lines = walk_forward_thresholds(pred, 0.0, default=0.5)
    assert lines.iloc[:4].tolist() == [0.5] * 4  # nothing earlier: the default
    # fold 1 is judged at the line fold 0 chose (clears its 0.3 run), not one that knows of fold 1's 0.6 false alarm
    assert lines.iloc[4:].tolist() == [0.31] * 4
