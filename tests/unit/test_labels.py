"""Labels: planted cascades become the right events, directions and targets, judged without the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import LabelConfig
from features.labels import build_labels, judge_days, make_targets
from features.schemas import SERIES
from features.sources.synthetic import SyntheticHistory


@pytest.fixture(scope="module")
def raw(synthetic: SyntheticHistory) -> pd.DataFrame:
    return pd.concat(synthetic.series.values(), axis=1)


def test_planted_cascades_are_found_with_their_direction(raw: pd.DataFrame, synthetic: SyntheticHistory) -> None:
    labels = build_labels(raw, LabelConfig())
    found = labels.events[["start", "direction"]].reset_index(drop=True)
    planted = synthetic.events.rename(columns={"date": "start"}).reset_index(drop=True)
    pd.testing.assert_frame_equal(found, planted, check_dtype=False)
    # the last events fall after the all-exchange series ends: judged on Binance-only data, same result; each event names
    # its series by the stored series' scope (what a size is shown with: "$404M (Binance only)")
    assert labels.events["series"].iloc[-1] == SERIES["liquidations_binance"].scope == "Binance only"
    assert labels.events["series"].iloc[0] == SERIES["liquidations"].scope == "Binance+OKX+Bybit"


def test_targets_point_at_the_first_event_within_the_horizon(raw: pd.DataFrame, synthetic: SyntheticHistory) -> None:
    cfg = LabelConfig(horizon_days=14)
    daily = build_labels(raw, cfg).daily
    event = synthetic.events.iloc[3]
    day = event["date"]
    assert daily.loc[day - pd.Timedelta(days=1), "target"] == event["direction"]
    assert daily.loc[day - pd.Timedelta(days=1), "days_to_event"] == 1
    assert daily.loc[day - pd.Timedelta(days=14), "days_to_event"] == 14
    assert daily.loc[day - pd.Timedelta(days=15), "target"] == "none"
    assert daily.loc[day, "target"] == "none"  # (t, t+H] excludes the day itself
    assert daily["target"].iloc[-5:].isna().all()  # the future window is not observed yet


def test_hand_made_timeline() -> None:
    days = pd.date_range("2024-01-01", periods=10, freq="D")
    judged = pd.DataFrame({"cascade_day": pd.array([False] * 10, dtype="boolean")}, index=days)
    events = pd.DataFrame({"start": [days[3], days[5]], "direction": ["short", "long"]})
    out = make_targets(judged, events, horizon=3)
    assert out["target"].tolist()[:6] == ["short", "short", "short", "long", "long", "none"]
    assert out["days_to_event"].tolist()[:5] == [3, 2, 1, 2, 1]
    assert out["target"].iloc[7:].isna().all()


def test_adjacent_days_merge_and_direction_is_by_dollars() -> None:
    days = pd.date_range("2024-01-01", periods=60, freq="D")
    long = np.full(60, 10.0)
    short = np.full(60, 10.0)
    long[40], short[40] = 200.0, 10.0  # long-dominated day ...
    long[41], short[41] = 50.0, 120.0  # ... then a short-heavy day: one event, long by total dollars
    short[50] = 400.0
    panel = pd.DataFrame({"liq_long_usd": long, "liq_short_usd": short}, index=days)
    events = build_labels(panel, LabelConfig(min_trailing_days=20)).events
    assert events["start"].dt.day.tolist() == [10, 20]  # 2024-02-10, 2024-02-20
    assert events["days"].tolist() == [2, 1]
    assert events["direction"].tolist() == ["long", "short"]


def test_a_days_judgement_ignores_the_future(raw: pd.DataFrame) -> None:
    cfg = LabelConfig()
    full = judge_days(raw, cfg)
    rng = np.random.default_rng(5)
    for pos in rng.choice(np.arange(100, len(raw) - 1), size=8, replace=False):
        day = raw.index[pos]
        future_changed = raw.copy()
        cols = ["liq_long_usd", "liq_short_usd", "binance_liq_long_usd", "binance_liq_short_usd"]
        future_changed.loc[raw.index > day, cols] *= 50
        again = judge_days(future_changed, cfg)
        assert again.loc[:day, "cascade_day"].equals(full.loc[:day, "cascade_day"])
        assert again.loc[:day, "liq_ratio"].equals(full.loc[:day, "liq_ratio"])


def test_a_fixed_dollar_day_is_judged_against_its_own_time() -> None:
    days = pd.date_range("2021-01-01", periods=200, freq="D")
    total = np.r_[np.full(100, 1000.0), np.full(100, 100.0)]  # 2021 busy, later quiet
    total[60], total[160] = 3000.0, 600.0  # 3x a busy median is no cascade, 6x a quiet one is
    panel = pd.DataFrame({"liq_long_usd": total / 2, "liq_short_usd": total / 2}, index=days)
    judged = judge_days(panel, LabelConfig(trailing_median_days=30))
    assert not judged["cascade_day"].iloc[60]
    assert judged["cascade_day"].iloc[160]


def test_label_study_counts_events_per_year_and_definition() -> None:
    from cascade_radar.config import LabelConfig
    from features.labels import label_study

    days = pd.date_range("2022-01-01", "2023-12-31", freq="D")
    total = pd.Series(100.0, index=days)
    total["2022-06-01"] = 500.0  # 5x: a cascade at 4x, not at 6x or 8x
    total["2023-03-01"] = 900.0  # 9x: a cascade at every multiple
    total["2023-09-01"] = 700.0  # 7x
    panel = pd.DataFrame({"liq_long_usd": total * 0.7, "liq_short_usd": total * 0.3}, index=days)
    table = label_study({"BTC": panel}, LabelConfig(), baselines=(90,), multiples=(4.0, 6.0, 8.0))
    assert table.loc[("BTC", 2022)].tolist() == [1, 0, 0]
    assert table.loc[("BTC", 2023)].tolist() == [2, 2, 1]


def test_the_major_tier_marks_the_days_before_a_major_event_only() -> None:
    from features.labels import major_ahead

    days = pd.date_range("2024-01-01", periods=30, freq="D")
    target = pd.Series("none", index=days, dtype="string")
    target.iloc[-3:] = pd.NA  # future not observed
    events = pd.DataFrame({"start": [days[10], days[20]], "peak_ratio": [5.0, 9.0]})
    major = major_ahead(target, events, horizon=3, multiple=8.0)
    # only the 9x event is major: days 17, 18, 19 have it within (t, t+3]; the 5x event on day 10 marks nothing
    assert major.iloc[17:20].tolist() == [1.0, 1.0, 1.0]
    assert major.iloc[:17].sum() == 0 and major.iloc[20:27].sum() == 0
    assert major.iloc[-3:].isna().all()
