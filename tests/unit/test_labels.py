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


# ------------------------------------------------------------------ the side of an event (issue 34)
def test_the_side_rule_by_hand() -> None:
    from cascade_radar.rules import event_side

    share, sigmas = 0.60, 1.5
    assert event_side(70.0, 30.0, 0.10, 0.03, 1, share, sigmas) == ("long", "dollars")  # the dollars decide, whatever the move
    assert event_side(35.0, 65.0, 0.0, 0.03, 1, share, sigmas) == ("short", "dollars")
    assert event_side(54.0, 46.0, np.log(0.88), 0.03, 1, share, sigmas) == ("long", "price move")  # -12 % against 3 % daily vol
    assert event_side(46.0, 54.0, np.log(0.88), 0.03, 1, share, sigmas) == ("long", "price move")  # 2025-10-10: shorts out-dollar longs
    assert event_side(54.0, 46.0, np.log(1.12), 0.03, 1, share, sigmas) == ("short", "price move")  # a rise liquidates shorts
    assert event_side(54.0, 46.0, 0.005, 0.03, 1, share, sigmas) == ("two-sided", "neither")  # a tiny move names no side
    assert event_side(54.0, 46.0, 0.06, 0.03, 3, share, sigmas) == ("two-sided", "neither")  # 2σ over 1 day, 1.15σ over 3
    assert event_side(54.0, 46.0, float("nan"), 0.03, 1, share, sigmas) == ("two-sided", "neither")  # no price: no side from it
    assert event_side(54.0, 46.0, -0.2, float("nan"), 1, share, sigmas) == ("two-sided", "neither")  # no volatility yet


def _side_panel(seed: int = 3) -> pd.DataFrame:
    """80 days: calm liquidations, ~3 % daily price noise; day 60 a 54/46 cascade while price falls 12 %, day 70 a 54/46
    cascade on a flat day."""
    days = pd.date_range("2024-01-01", periods=80, freq="D")
    rng = np.random.default_rng(seed)
    returns = 0.03 * rng.standard_normal(80)
    returns[60], returns[70] = np.log(0.88), 0.002
    long, short = np.full(80, 10.0), np.full(80, 10.0)
    long[60], short[60] = 108.0, 92.0
    long[70], short[70] = 108.0, 92.0
    return pd.DataFrame({"liq_long_usd": long, "liq_short_usd": short, "price_usd": 100 * np.exp(np.cumsum(returns))}, index=days)


def test_events_carry_their_side_and_why_and_two_sided_is_a_target() -> None:
    panel = _side_panel()
    labels = build_labels(panel, LabelConfig(min_trailing_days=20, horizon_days=5))
    events = labels.events.set_index("start")
    fall, flat = panel.index[60], panel.index[70]
    assert events.loc[fall, "direction"] == "long" and events.loc[fall, "side_basis"] == "price move"
    assert events.loc[fall, "long_share"] == pytest.approx(0.54)
    assert events.loc[fall, "price_move"] == pytest.approx(np.log(0.88))
    assert events.loc[fall, "move_sigmas"] < -1.5
    assert events.loc[flat, "direction"] == "two-sided" and events.loc[flat, "side_basis"] == "neither"
    daily = labels.daily
    assert daily.loc[fall, "day_direction"] == "long" and daily.loc[flat, "day_direction"] == "two-sided"  # the same rule, day by day
    assert daily.loc[fall - pd.Timedelta(days=1), "target"] == "long"
    assert daily.loc[flat - pd.Timedelta(days=1), "target"] == "two-sided"
    from features.labels import TARGETS

    assert set(daily["target"].dropna()) <= set(TARGETS)


def test_the_volatility_an_event_is_measured_against_ignores_the_event_and_after() -> None:
    from features.labels import price_terms

    panel = _side_panel()
    cfg = LabelConfig(min_trailing_days=20)
    before = panel.index[59]
    wild = panel.copy()
    wild.loc[panel.index > before, "price_usd"] *= np.exp(np.linspace(0, 3, int((panel.index > before).sum())))  # a different future
    assert price_terms(wild, cfg).loc[:before].equals(price_terms(panel, cfg).loc[:before])
    # the day before the event: the std of the 30 daily log returns up to it, by hand
    by_hand = np.log(panel["price_usd"]).diff().loc[:before].tail(cfg.side_vol_days).std()
    assert price_terms(panel, cfg).at[before, "daily_vol"] == pytest.approx(by_hand)
    # prices after the event's last day do not move its side or its sigmas
    later = panel.copy()
    later.loc[panel.index > panel.index[61], "price_usd"] *= 3.0
    ev, ev_later = (build_labels(p, cfg).events.set_index("start").loc[panel.index[60]] for p in (panel, later))
    assert ev["direction"] == ev_later["direction"] and ev["move_sigmas"] == pytest.approx(ev_later["move_sigmas"])


def test_direction_is_learnt_and_scored_on_long_and_short_events_only() -> None:
    from training.metrics import direction_metrics, event_metrics
    from training.model import BaseRate, has_side, is_cascade

    target = pd.Series(["none", "long", "long", "short", "two-sided"])
    assert is_cascade(target).tolist() == [False, True, True, True, True]  # a two-sided event IS a cascade
    assert has_side(target).tolist() == [False, True, True, True, False]
    base = BaseRate().fit(pd.DataFrame(index=target.index), target)
    assert base.rate == pytest.approx(0.8) and base.long_share == pytest.approx(2 / 3)  # the side's prior: long/short events only

    days = pd.date_range("2024-01-01", periods=5, freq="D")
    pred = pd.DataFrame({"p_cascade": 0.5, "p_long": [0.1, 0.4, 0.4, 0.1, 0.4], "p_short": [0.4, 0.1, 0.1, 0.4, 0.1],
                         "target": target.to_numpy()}, index=days)
    m = direction_metrics(pred)
    assert m["direction_day_accuracy"] == 1.0 and m["direction_events_days"] == 3 and m["two_sided_days"] == 1

    # event level: a caught two-sided event is counted apart, never a wrong side
    days = pd.date_range("2024-01-01", periods=30, freq="D")
    pred = pd.DataFrame({"p_cascade": 0.1, "p_long": 0.06, "p_short": 0.04, "target": "none"}, index=days)
    pred.loc[days[[4, 19]], "p_cascade"] = 0.9  # alerts (side long) before an event on day 6 (long) and day 21 (two-sided)
    events = pd.DataFrame({"start": days[[6, 21]], "direction": ["long", "two-sided"]})
    m = event_metrics(pred, events, horizon=4, threshold=0.5)
    assert m["events"] == 2 and m["event_recall"] == 1.0
    assert m["two_sided_events"] == 1 and m["direction_accuracy"] == 1.0  # it was 0.5 when the two-sided event was called "short"
