"""The one splicing rule (features.splice) and its use by every multi-source input (features.build DERIVED_INPUTS):
hand-computed links, a refused link that stops the series, the OI family unchanged by a 3x scope switch, no look-ahead."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import FeatureConfig, Settings
from features.build import assemble, assemble_panel, build_feature_table, feature_frame, input_spec
from features.families import load_families, optional_inputs, required_inputs
from features.sources.synthetic import SyntheticHistory
from features.splice import DIFFERENCE, FIRST_AVAILABLE, RATIO, Refusal, chain_link, first_available

NAN = np.nan


def days(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", name="date")


def series(values: list[float]) -> pd.Series:
    return pd.Series(values, index=days(len(values)), dtype="float64")


# ------------------------------------------------------------------ the rule, by hand
def test_a_switch_relevels_the_new_source_by_the_median_ratio_over_the_overlap_before_it() -> None:
    a = series([100, 110, 120, 130, NAN, NAN, NAN, NAN])
    b = series([NAN, 50, 60, 65, 70, 80, NAN, 90])
    out = chain_link({"a": a, "b": b}, RATIO, min_overlap=3)
    # overlap before day 4: days 1..3, a/b = 2.2, 2.0, 2.0 -> median 2.0; day 6: no source (a gap, not a refusal)
    np.testing.assert_allclose(out.values, [100, 110, 120, 130, 140, 160, NAN, 180])
    assert out.level_source.tolist() == ["a"] * 6 + [pd.NA, "a"]  # the level stays the one a set
    assert out.change_source.tolist() == ["a"] * 4 + ["b", "b", pd.NA, "b"]
    assert out.refusals == ()


def test_a_rate_is_linked_by_the_median_difference_and_may_go_negative() -> None:
    binance = series([1.0, 1.2, 0.8, 1.1, NAN, NAN])  # bp per 8 h
    weighted = series([0.7, 0.9, 0.6, 0.8, 0.5, -0.2])
    out = chain_link({"binance": binance, "weighted": weighted}, DIFFERENCE, min_overlap=3)
    # binance - weighted over days 0..3 = 0.3, 0.3, 0.2, 0.3 -> median 0.3
    np.testing.assert_allclose(out.values, [1.0, 1.2, 0.8, 1.1, 0.8, 0.1])
    assert out.level_source.unique().tolist() == ["binance"] and out.change_source.tolist()[-2:] == ["weighted", "weighted"]


def test_too_little_overlap_is_refused_named_and_the_series_stops_instead_of_jumping() -> None:
    raw = pd.DataFrame({"oi_close_usd": [100, 110, 120, NAN, NAN, 130, 140],
                        "bybit_oi_close_usd": [NAN, NAN, 60, 65, 70, 75, 80]}, index=days(7))
    made = assemble(raw, min_overlap_days=3)
    # day 3: the aggregate stops and Bybit overlaps the series on one day (day 2) only: refused, the series is missing
    # until the aggregate returns on day 5, at its own level again
    np.testing.assert_allclose(made.panel["oi_close_usd"], [100, 110, 120, NAN, NAN, 130, 140])
    assert made.refusals == (Refusal("oi_close_usd", pd.Timestamp("2024-01-04"), "oi_close_usd", "bybit_oi_close_usd", 1, 3),)
    text = str(made.refusals[0])
    assert text.startswith("oi_close_usd: stops on 2024-01-04") and "bybit_oi_close_usd overlaps the series on 1 of the 30 days" in text
    assert "at least 3 needed" in text and "rather than jumping" in text


def test_the_feature_build_logs_a_refused_link(caplog: pytest.LogCaptureFixture) -> None:
    n = 120
    oi = np.linspace(1e10, 2e10, n)
    raw = pd.DataFrame({"close_usd": 100.0, "oi_close_usd": np.where(np.arange(n) < 100, oi, NAN),
                        "exchange_oi_close_usd": np.where(np.arange(n) >= 98, oi / 3, NAN)}, index=days(n))
    with caplog.at_level(logging.WARNING, logger="features.build"):
        panel, features, _ = feature_frame(raw, Settings(features=FeatureConfig(splice_min_overlap_days=5)))
    [message] = [r.getMessage() for r in caplog.records]
    assert message.startswith("BTC: oi_close_usd: stops on 2024-04-10 — ") and "exchange_oi_close_usd overlaps the series on 2 of" in message
    assert panel["oi_close_usd"].iloc[100:].isna().all() and features["oi_usd_bn"].iloc[100:].isna().all()


def test_a_higher_source_that_cannot_be_linked_yet_is_not_used_and_not_reported() -> None:
    top = series([NAN, NAN, NAN, NAN, 30, 31, 32, 33, 34, 35])
    low = series([10, 11, 12, 13, 14, 15, 16, 17, 18, 19])
    out = chain_link({"top": top, "low": low}, RATIO, min_overlap=3)
    # top appears on day 4 but overlaps the chain on 3 days only from day 7 (days 4..6): it takes over then, re-levelled
    # by the median of low/top over days 4..6 (14/30, 15/31, 16/32 -> 15/31); the level stays low's, nothing is refused
    np.testing.assert_allclose(out.values, [10, 11, 12, 13, 14, 15, 16, 33 * 15 / 31, 34 * 15 / 31, 35 * 15 / 31])
    assert out.change_source.tolist() == ["low"] * 7 + ["top"] * 3 and set(out.level_source) == {"low"}
    assert out.refusals == ()


def test_where_sources_agree_chain_linking_is_first_available() -> None:
    a, b = series([1.0, 2.0, 3.0, NAN, NAN]), series([1.0, 2.0, 3.0, 4.0, 5.0])
    frame = pd.DataFrame({"a": a, "b": b})
    for link in (RATIO, DIFFERENCE, FIRST_AVAILABLE):
        np.testing.assert_allclose(chain_link({"a": a, "b": b}, link, min_overlap=3).values, first_available(frame, ["a", "b"]))


def test_the_price_is_still_the_first_available_source_and_says_which() -> None:
    raw = pd.DataFrame({"close_usd": [10.0, NAN, 12.0], "reference_price_usd": [11.0, 11.5, 13.0]}, index=days(3))
    panel = assemble_panel(raw)
    assert panel["price_usd"].tolist() == [10.0, 11.5, 12.0]  # same quantity: no re-levelling, a missing close is filled
    assert panel["price_usd__level_source"].tolist() == ["close_usd", "reference_price_usd", "close_usd"]


def test_absent_sources_are_skipped_and_a_single_source_passes_through_unchanged() -> None:
    raw = pd.DataFrame({"oi_close_usd": [5.0, NAN, 7.0]}, index=days(3))
    panel = assemble_panel(raw)
    assert panel["oi_close_usd"].equals(raw["oi_close_usd"])
    assert panel["oi_close_usd__level_source"].tolist() == ["oi_close_usd", pd.NA, "oi_close_usd"]
    assert panel["taker_buy_share"].isna().all() and panel["taker_buy_share__level_source"].isna().all()


# ------------------------------------------------------------------ the inputs that use it
def test_the_taker_buy_share_continues_on_binance_flow_shifted_by_the_median_difference() -> None:
    n = 12
    agg_buy = np.where(np.arange(n) < 8, 6.0, NAN)  # share 0.6 on days 0..7
    binance_buy = np.array([5, 5, 5, 5, 5, 5, 4, 5, 5, 3, 5, 5], dtype=float)  # share 0.5 but 0.4 on day 6, 0.3 on day 9
    raw = pd.DataFrame({"taker_buy_usd": agg_buy, "taker_sell_usd": 10.0 - agg_buy,
                        "binance_taker_buy_usd": binance_buy, "binance_taker_sell_usd": 10.0 - binance_buy}, index=days(n))
    panel = assemble_panel(raw)
    # 0.6 - binance share over days 0..7 = 0.1 except 0.2 on day 6 -> median 0.1
    np.testing.assert_allclose(panel["taker_buy_share"], [0.6] * 8 + [0.6, 0.4, 0.6, 0.6])
    assert panel["taker_buy_share__change_source"].tolist()[7:9] == ["taker_buy_usd", "binance_taker_buy_usd"]
    shares = load_families()["positioning"].compute(panel, FeatureConfig()).frame()["positioning_taker_buy_share"]
    np.testing.assert_allclose(shares, panel["taker_buy_share"])  # the family reads the spliced share itself


def test_every_family_input_has_a_unit_and_bounds_for_posted_signals() -> None:
    for name in required_inputs() + optional_inputs():  # /predict_signals builds a field from each (serving.schemas)
        assert input_spec(name).unit, name
    share = input_spec("taker_buy_share")
    assert (share.unit, share.lower, share.upper) == ("fraction", 0.0, 1.0)
    assert input_spec("oi_close_usd").unit == "USD" and input_spec("funding_rate_frac8h").unit == "fraction per 8 h"


def _oi_panel(oi: pd.Series, extra: dict[str, pd.Series] | None = None) -> pd.DataFrame:
    n = len(oi)
    price = pd.Series(100 * np.exp(np.cumsum(np.random.default_rng(5).normal(0, 0.02, n))), index=oi.index)
    return assemble_panel(pd.DataFrame({"close_usd": price, "market_cap_usd": price * 19e6, "oi_close_usd": oi, **(extra or {})}))


def test_the_oi_familys_scale_free_features_survive_a_3x_scope_switch_and_the_level_stays_the_first_sources() -> None:
    n = 420
    index = days(n)
    truth = pd.Series(2e10 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.03, n))), index=index)
    aggregate = truth.where(np.arange(n) < 260)  # the paid all-exchange series stops on day 260
    one_exchange = (truth / 3).where(np.arange(n) >= 150)  # one exchange, a third of the level, from day 150
    spliced = _oi_panel(aggregate, {"bybit_oi_close_usd": one_exchange})
    single = _oi_panel(truth)
    np.testing.assert_allclose(spliced["oi_close_usd"], truth, rtol=1e-12)  # anchored to the aggregate's level
    assert set(spliced["oi_close_usd__level_source"]) == {"oi_close_usd"}
    assert spliced["oi_close_usd__change_source"].iloc[[259, 260]].tolist() == ["oi_close_usd", "bybit_oi_close_usd"]
    oi = load_families()["oi"]
    got, want = oi.compute(spliced, FeatureConfig()).frame(), oi.compute(single, FeatureConfig()).frame()
    scale_free = [c for c in want.columns if c != "oi_usd_bn" and c != "oi_to_market_cap_pct"]
    assert {"oi_change_7d", "oi_zscore", "oi_range_position_180d"} <= set(scale_free)
    np.testing.assert_allclose(got[scale_free].iloc[180:], want[scale_free].iloc[180:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got["oi_usd_bn"], truth / 1e9, rtol=1e-12)
    # what taking the first available source per day did: a 67 % "collapse" of open interest on the switch
    naive = _oi_panel(aggregate.combine_first(one_exchange))
    assert oi.compute(naive, FeatureConfig()).frame()["oi_change_3d"].iloc[261] == pytest.approx(
        truth.iloc[261] / 3 / truth.iloc[258] - 1)


# ------------------------------------------------------------------ no look-ahead
def _switching(synthetic: SyntheticHistory) -> pd.DataFrame:
    """The synthetic history with every multi-source input switching source: aggregated OI stops on day 700 (Bybit, ~1/3,
    from day 600), the three-exchange taker flow on day 800 (Binance's, from day 780), Binance funding on day 900."""
    raw = pd.concat(synthetic.series.values(), axis=1)
    rng = np.random.default_rng(2)
    n = len(raw)
    pos = np.arange(n)
    raw["bybit_oi_close_usd"] = (raw["oi_close_usd"] * 0.31 * (1 + 0.02 * rng.standard_normal(n))).where(pos >= 600)
    raw["oi_close_usd"] = raw["oi_close_usd"].where(pos < 700)
    share = (raw["taker_buy_usd"] / (raw["taker_buy_usd"] + raw["taker_sell_usd"]) - 0.01 + 0.005 * rng.standard_normal(n))
    raw["binance_taker_buy_usd"] = (share * 1e8).where(pos >= 780)
    raw["binance_taker_sell_usd"] = ((1 - share) * 1e8).where(pos >= 780)
    raw.loc[pos >= 800, ["taker_buy_usd", "taker_sell_usd"]] = NAN
    raw.loc[pos >= 900, "funding_rate_binance_frac8h"] = NAN
    return raw


def test_a_spliced_day_reads_no_later_data(synthetic: SyntheticHistory) -> None:
    raw = _switching(synthetic)
    full = assemble(raw)
    assert full.refusals == ()
    sources = {name: full.panel[f"{name}__change_source"] for name in ("oi_close_usd", "taker_buy_share", "funding_rate_frac8h")}
    assert sources["oi_close_usd"].iloc[[699, 700]].tolist() == ["oi_close_usd", "bybit_oi_close_usd"]
    assert sources["taker_buy_share"].iloc[[799, 800]].tolist() == ["taker_buy_usd", "binance_taker_buy_usd"]
    assert sources["funding_rate_frac8h"].iloc[[899, 900]].tolist() == ["funding_rate_binance_frac8h", "funding_rate_oiw_frac8h"]
    for pos in (600, 700, 701, 706, 800, 805, 900, 901, len(raw) - 2):
        day = raw.index[pos]
        cut = assemble(raw.loc[:day]).panel
        pd.testing.assert_frame_equal(cut, full.panel.loc[:day])  # the whole prefix, levels and sources alike
    settings = Settings()
    table = build_feature_table(raw, settings)
    for pos in (700, 703, 800, 901):
        day = raw.index[pos]
        a, b = build_feature_table(raw, settings, until=day).X.loc[day], table.X.loc[day]
        assert ((a == b) | (a.isna() & b.isna())).all(), f"feature row of {day.date()} changed with later data"
    assert table.X["oi_zscore"].iloc[700:].notna().all() and table.X["positioning_taker_buy_share_mean_7d"].iloc[800:].notna().all()
