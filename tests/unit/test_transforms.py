"""Hand-computed values of the causal transforms the families are built from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.transforms import range_position, rolling_sum, rsi, rsi_divergence, sign_flips, sign_streak


def series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values), freq="D"), dtype="float64")


def test_rsi_matches_a_hand_computed_wilder_example() -> None:
    # diffs +1 +1 -1 +1 +1, period 3: first averages: gain 2/3, loss 1/3 -> 66.67; then (2/3*2+1)/3=7/9 vs 2/9 -> 77.78;
    # then 23/27 vs 4/27 -> 85.19
    out = rsi(series([1, 2, 3, 2, 3, 4]), period=3)
    assert out.iloc[:3].isna().all()
    assert out.iloc[3:].tolist() == pytest.approx([200 / 3, 100 - 100 / 4.5, 100 - 100 / 6.75])


def test_rsi_extremes() -> None:
    assert rsi(series(list(range(1, 30))), 14).iloc[-1] == 100.0
    assert rsi(series(list(range(30, 1, -1))), 14).iloc[-1] == pytest.approx(0.0)


def test_rsi_skips_a_missing_close_without_filling_it() -> None:
    out = rsi(series([1, 2, 3, np.nan, 2, 3, 4]), period=3)
    assert np.isnan(out.iloc[3])
    assert out.iloc[4:].tolist() == pytest.approx([200 / 3, 100 - 100 / 4.5, 100 - 100 / 6.75])


def _two_swings(first: float, second: float, osc_first: float, osc_second: float, trough: bool = False) -> tuple[pd.Series, pd.Series]:
    close = np.full(30, 100.0)
    close[8:13] = [104, 107, first, 107, 104]  # swing at day 10
    close[18:23] = [104, 107, second, 107, 104]  # swing at day 20
    osc = np.full(30, 50.0)
    osc[10], osc[20] = osc_first, osc_second
    if trough:
        close = 200 - close
    return series(list(close)), series(list(osc))


def test_bearish_divergence_is_detected_once_the_second_swing_is_confirmed() -> None:
    close, osc = _two_swings(110, 112, osc_first=70, osc_second=60)
    div = rsi_divergence(close, osc, pivot_days=2, lookback_days=15, kind="bearish")
    assert (div["strength"].iloc[:22] == 0).all()  # day 20 is a swing only once days 21-22 are known
    assert div["strength"].iloc[22] == pytest.approx(10.0)
    assert div["price_move"].iloc[22] == pytest.approx(112 / 110 - 1)
    assert div["age"].iloc[22:].tolist() == [2, 3, 4, 5, 6, 7, 8, 9]


def test_no_divergence_when_rsi_confirms_the_high() -> None:
    close, osc = _two_swings(110, 112, osc_first=70, osc_second=75)
    div = rsi_divergence(close, osc, pivot_days=2, lookback_days=15, kind="bearish")
    assert (div["strength"] == 0).all()
    assert div["age"].isna().all()


def test_bullish_divergence_mirrors_on_lows() -> None:
    close, osc = _two_swings(110, 112, osc_first=30, osc_second=40, trough=True)  # lows 90 then 88
    div = rsi_divergence(close, 100 - (100 - osc), pivot_days=2, lookback_days=15, kind="bullish")
    assert div["strength"].iloc[22] == pytest.approx(10.0)
    assert (rsi_divergence(close, osc, 2, 15, "bearish")["strength"] == 0).all()


def test_divergence_expires_after_the_lookback() -> None:
    close, osc = _two_swings(110, 112, osc_first=70, osc_second=60)
    div = rsi_divergence(close, osc, pivot_days=2, lookback_days=5, kind="bearish")
    assert (div["strength"] == 0).all()  # swings 10 days apart > lookback 5


def test_sign_streak_counts_runs_and_resets_on_missing() -> None:
    out = sign_streak(series([1, 2, 3, -1, -2, 0, 5, np.nan, 4]))
    assert out.tolist()[:7] == [1, 2, 3, -1, -2, 0, 1]
    assert np.isnan(out.iloc[7]) and out.iloc[8] == 1


def test_sign_flips_and_range_position_and_rolling_sum() -> None:
    assert sign_flips(series([1, -1, 1, 1, -1]), 5).iloc[-1] == 3
    pos = range_position(series(list(np.arange(20.0))), 10)
    assert pos.iloc[-1] == 1.0
    values = series([1.0] * 10)
    values.iloc[3] = np.nan
    assert rolling_sum(values, 7).iloc[-1] == pytest.approx(7.0)  # one missing day rescaled, not summed as 0


def test_a_feature_is_labelled_by_its_declared_label_with_its_value_in_its_unit() -> None:
    """The explanation picture's and the drivers' labels: the family's label, the value scaled to its declared unit."""
    from features.build import feature_display, feature_label
    from features.families import format_value

    assert feature_label("price_realized_vol_30d", 0.278) == "30-day realized volatility 27.8 %"
    assert feature_label("oi_usd_bn", 94.1) == "open interest 94.1 B$"
    assert feature_label("funding_rate", 1.2) == "funding rate 1.2 bp/8h"
    assert feature_label("oi_zscore", 1.7) == "OI z-score (180 days) 1.7 σ"
    assert feature_label("oi_change_7d", 0.221) == "7-day OI change 22.1 %"
    assert feature_label("funding_rate_rank", 0.93) == "funding percentile (180 days) 93 pctl"
    assert feature_label("nupl_sth_change_7d", -0.0412) == "7-day change of STH-NUPL -4.12 pp"
    assert feature_label("oi_zscore", None) == "OI z-score (180 days): no data"
    assert feature_display("liqmem_days_since_cascade_day", 12.0) == {"label": "days since a cascade day", "unit": "days", "value_text": "12 d"}
    assert format_value(1234.5, "k coins") == "1,234k coins" and format_value(-0.00123, "fraction") == "-0.123 %"
