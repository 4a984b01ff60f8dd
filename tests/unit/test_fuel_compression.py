"""The candidate families of issue 34 — the liquidation fuel map and compression against the coin's own history: values
computed by hand on tiny frames, no look-ahead when later days change, and what being a candidate means."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import FeatureConfig, ModelConfig
from features.build import assemble_panel
from features.families import load_families
from features.families.f9_fuel import band_name, leverage_tiers, liquidation_fuel
from features.families.f10_compression import bollinger_width, range_ratio
from features.sources.synthetic import SyntheticHistory

NEW = ("fuel", "compression")
DAYS = pd.date_range("2024-01-01", periods=4, freq="D")


def hand_book(max_age: int) -> dict[str, pd.DataFrame]:
    """Four days, two tiers (10x and 20x, half each, no maintenance margin): longs of 10x die 10 % below entry, of 20x 5 %.

    day 0: OI 100 coins, close 100 (no earlier day: nothing is known to open)
    day 1: OI 110, candle 101/99/100 -> 10 coins open at 100: longs at 90 and 95, shorts at 110 and 105
    day 2: OI 120, candle 106/102/104 -> 10 coins open at 104: longs at 93.6 and 98.8, shorts at 114.4 and 109.2;
           the high of 106 liquidates day 1's 20x shorts (105)
    day 3: OI 108 (every cohort keeps 9 of 10 coins), candle 104/99.5/100: no long level is reached (99.5 > 98.8)
    """
    oi = pd.Series([100.0, 110.0, 120.0, 108.0], index=DAYS)
    close = pd.Series([100.0, 100.0, 104.0, 100.0], index=DAYS)
    high = pd.Series([100.0, 101.0, 106.0, 104.0], index=DAYS)
    low = pd.Series([100.0, 99.0, 102.0, 99.5], index=DAYS)
    return liquidation_fuel(oi, close, high, low, np.array([10.0, 20.0]), np.array([0.5, 0.5]), 0.0, [0.05, 0.10], max_age)


def test_the_fuel_map_by_hand() -> None:
    fuel = hand_book(max_age=2)
    assert fuel["long"].iloc[:3].isna().all().all()  # fewer than 70 % of the map's 3 days of OI changes known before day 3
    day = DAYS[3]
    # within 5 % below 100: the 20x longs of both cohorts (95 and 98.8), 0.5 x 9 coins each, of 108 coins
    assert fuel["long"].at[day, 0.05] == pytest.approx(9 / 108)
    assert fuel["long"].at[day, 0.10] == pytest.approx(18 / 108)  # and the 10x longs (90 and 93.6)
    assert fuel["short"].at[day, 0.05] == pytest.approx(0.0)  # the only short within 105 was liquidated on day 2
    assert fuel["short"].at[day, 0.10] == pytest.approx(9 / 108)  # 110 (day 1, 10x) and 109.2 (day 2, 20x)
    # with a one-day memory day 1's cohort counts as closed: only day 2's 20x long is near
    assert hand_book(max_age=1)["long"].at[day, 0.05] == pytest.approx(4.5 / 108)


def test_a_long_is_liquidated_by_the_low_and_a_position_opened_today_by_the_close() -> None:
    oi = pd.Series([100.0, 100.0, 110.0, 110.0], index=DAYS)
    close = pd.Series([100.0, 100.0, 100.0, 100.0], index=DAYS)
    high = close.copy()
    low = pd.Series([100.0, 100.0, 100.0, 94.0], index=DAYS)  # day 3 trades down to 94 and closes back at 100
    fuel = liquidation_fuel(oi, close, high, low, np.array([20.0]), np.array([1.0]), 0.0, [0.05], 1)
    assert fuel["long"].at[DAYS[2], 0.05] == pytest.approx(10 / 110)  # opened at 100 on day 2: its level 95 is near
    assert fuel["long"].at[DAYS[3], 0.05] == pytest.approx(0.0)  # the low of 94 took it
    assert fuel["short"].at[DAYS[3], 0.05] == pytest.approx(10 / 110)  # its short side (105) is still open
    # a range of 94..106 on the opening day itself (typical price still 100): the order of that day's trades is unknown, so
    # the close judges it — neither side is liquidated on the day it opened
    low.iloc[2], high.iloc[2] = 94.0, 106.0
    again = liquidation_fuel(oi, close, high, low, np.array([20.0]), np.array([1.0]), 0.0, [0.05], 1)
    assert again["long"].at[DAYS[2], 0.05] == pytest.approx(10 / 110) and again["short"].at[DAYS[2], 0.05] == pytest.approx(10 / 110)


def test_a_tier_setting_that_cannot_describe_a_book_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="fuel_tier_weights"):
        leverage_tiers(FeatureConfig(fuel_leverage_tiers=[10, 20], fuel_tier_weights=[1.0]))
    with pytest.raises(ValueError, match="fuel_maintenance_margin"):
        leverage_tiers(FeatureConfig(fuel_leverage_tiers=[300], fuel_tier_weights=[1.0]))
    lev, w = leverage_tiers(FeatureConfig(fuel_leverage_tiers=[5, 10], fuel_tier_weights=[1, 3]))
    assert list(w) == [0.25, 0.75]
    assert band_name(0.05) == "5pct" and band_name(0.1) == "10pct" and band_name(0.025) == "2p5pct"


def test_compression_by_hand() -> None:
    days = pd.date_range("2024-01-01", periods=5, freq="D")
    close = pd.Series([10.0, 12.0, 11.0, 13.0, 14.0], index=days)
    # last 3 closes 11, 13, 14: mean 38/3, sample std sqrt(7/3); width = 2 * 2 * std / mean
    assert bollinger_width(close, 3, 2.0).iloc[-1] == pytest.approx(4 * np.sqrt(7 / 3) / (38 / 3))
    high = pd.Series([11.0, 13.0, 12.0, 14.0, 15.0], index=days)
    low = pd.Series([9.0, 11.0, 10.0, 12.0, 13.0], index=days)
    # last 2 days: 15 - 12 = 3; last 4 days: 15 - 10 = 5
    assert range_ratio(high, low, 2, 4).iloc[-1] == pytest.approx(3 / 5)


@pytest.fixture(scope="module")
def panel(synthetic: SyntheticHistory) -> pd.DataFrame:
    return assemble_panel(pd.concat(synthetic.series.values(), axis=1))


@pytest.mark.parametrize("name", NEW)
def test_no_look_ahead_when_later_days_change(name: str, panel: pd.DataFrame) -> None:
    fam, cfg = load_families()[name], FeatureConfig()
    before = fam.compute(panel, cfg).frame()
    cut = panel.index[600]
    changed = panel.copy()
    rng = np.random.default_rng(5)
    later = changed.index > cut
    for col in ("oi_close_usd", "price_usd", "high_usd", "low_usd", "perp_high_usd", "perp_low_usd"):
        if col in changed.columns:
            changed.loc[later, col] *= rng.uniform(0.7, 1.3, later.sum())
    after = fam.compute(changed, cfg).frame()
    pd.testing.assert_frame_equal(before.loc[:cut], after.loc[:cut])
    assert not before.loc[later].equals(after.loc[later])  # the alteration reached the family at all


def test_every_new_feature_is_in_the_catalogue_with_a_label_and_a_unit() -> None:
    from features.build import feature_catalogue

    catalogue = feature_catalogue()
    new = catalogue[catalogue["family"].isin(NEW)]
    assert {"fuel_long_within_5pct", "fuel_short_within_10pct", "fuel_imbalance_5pct", "compression_bb_width_rank",
            "compression_vol_of_vol_30d", "compression_range_ratio_7d_90d", "compression_squeeze_days"} <= set(new["name"])
    assert new["label"].str.len().gt(0).all() and new["unit"].str.len().gt(0).all() and new["meaning"].str.len().gt(0).all()


def test_a_candidate_family_is_read_only_when_named_and_stays_off_the_checklist() -> None:
    from training.model import model_features, warning_checklist

    features = ["price_return_7d", "fuel_long_within_5pct", "compression_bb_width_rank"]
    every = ModelConfig(families=None, direction_families=None, direction_inputs=None, exclude_features=[])
    assert model_features(features, every) == ["price_return_7d"]
    named = every.model_copy(update={"families": ["price", "fuel"]})
    assert model_features(features, named) == ["price_return_7d", "fuel_long_within_5pct"]
    assert model_features(features, every, ["compression"]) == ["compression_bb_width_rank"]
    assert "Bollinger squeeze" not in [w.label for w in warning_checklist()]
    assert all(load_families()[n].candidate for n in NEW)
