"""The reference history, read through the same validated path as provider data."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.sources.reference import MAPPINGS, ReferenceDataError, import_reference, read_mapped
from features.store import HistoryStore


def test_percent_funding_is_normalised_to_a_fraction(tmp_path: Path) -> None:
    (tmp_path / "btc_funding_daily.csv").write_text("date,cg_funding_oiw_close_pct,cg_funding_volw_close_pct\n2024-01-01,0.01,\n2024-01-02,-0.05,0.02\n")
    mapping = next(m for m in MAPPINGS if m.series == "funding_aggregated")
    frame = read_mapped(tmp_path / "btc_funding_daily.csv", mapping, "BTC")
    assert frame["funding_rate_oiw_frac8h"].tolist() == pytest.approx([0.0001, -0.0005])
    assert frame["funding_rate_volw_frac8h"].iloc[1] == pytest.approx(0.0002)


def test_binance_oi_at_midnight_is_the_previous_days_close(tmp_path: Path) -> None:
    (tmp_path / "btc_open_interest_daily_binance_usdm.csv").write_text("date,binance_btcusdt_oi_usd_at_0000utc\n2025-11-07,100\n")
    mapping = next(m for m in MAPPINGS if m.series == "open_interest_exchange")
    frame = read_mapped(tmp_path / "btc_open_interest_daily_binance_usdm.csv", mapping, "BTC")
    assert str(frame.index[0].date()) == "2025-11-06"


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    (tmp_path / "btc_liquidations_daily_coinglass.csv").write_text("date,cg_liq_long_usd\n2024-01-01,1\n")
    mapping = next(m for m in MAPPINGS if m.series == "liquidations")
    with pytest.raises(ReferenceDataError, match=r"btc_liquidations_daily_coinglass.csv: column 'cg_liq_short_usd' missing"):
        read_mapped(tmp_path / "btc_liquidations_daily_coinglass.csv", mapping, "BTC")


def test_bad_date_names_file_row_and_value(tmp_path: Path) -> None:
    (tmp_path / "btc_liquidations_daily_coinglass.csv").write_text("date,cg_liq_long_usd,cg_liq_short_usd\n2024-01-01,1,1\n01/02/2024,1,1\n")
    mapping = next(m for m in MAPPINGS if m.series == "liquidations")
    with pytest.raises(ReferenceDataError, match=r"column 'date', row 3: '01/02/2024' is not YYYY-MM-DD"):
        read_mapped(tmp_path / "btc_liquidations_daily_coinglass.csv", mapping, "BTC")


def test_missing_reference_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ReferenceDataError, match="reference-data directory not found"):
        import_reference(HistoryStore(tmp_path / "store"), tmp_path / "nope", "BTC")


@pytest.mark.reference
@pytest.mark.parametrize("asset", ["BTC", "ETH"])
def test_real_reference_history_loads_and_reloads_idempotently(reference_dir: Path, tmp_path: Path, asset: str) -> None:
    store = HistoryStore(tmp_path / asset)
    import_reference(store, reference_dir, asset)
    status = {s.series: s for s in store.status()}
    assert {"open_interest", "funding_binance", "funding_aggregated", "onchain_cohorts", "liquidations", "liquidations_binance"} <= set(status)
    if asset == "BTC":
        assert {"ohlcv", "exchange_flows"} <= set(status)
        assert str(status["ohlcv"].first_day.date()) == "2018-01-01"
        assert status["ohlcv"].missing_days == 2  # 2026-01-08 and 2026-01-20, recorded not filled
        cascade = store.read("liquidations_binance").loc["2025-10-10"]
        assert cascade["binance_liq_long_usd"] == pytest.approx(2.864e8, rel=1e-3)
    assert str(status["open_interest"].last_day.date()) == "2025-11-13"  # daily file extended by the 4h file
    snapshot = {p.name: p.read_bytes() for p in store.root.iterdir()}
    again = import_reference(store, reference_dir, asset)
    assert all(not load.result.changed for load in again)
    assert {p.name: p.read_bytes() for p in store.root.iterdir()} == snapshot


def test_a_bad_file_stops_the_import_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "btc_liquidations_daily_coinglass.csv").write_text("date,cg_liq_long_usd,cg_liq_short_usd\n2024-01-01,1,1\n2024-01-02,2,2\n")
    # funding file with a duplicate day: the schema refuses it
    (tmp_path / "btc_funding_daily.csv").write_text("date,cg_funding_oiw_close_pct,cg_funding_volw_close_pct\n2024-01-01,0.01,\n2024-01-01,0.02,\n")
    store = HistoryStore(tmp_path / "store")
    with pytest.raises(ReferenceDataError, match="btc_funding_daily.csv"):
        import_reference(store, tmp_path, "BTC")
    assert store.is_empty()  # the good liquidation file was not written either


KLINES_BASE = ("date,open_usdt,high_usdt,low_usdt,close_usdt,volume_coin,taker_buy_volume_coin,taker_buy_quote_volume_usdt\n"
               "2025-09-08,100,110,90,105,1000,400,41000\n"
               "2025-09-09,105,120,100,110,2000,1500,165000\n")
KLINES_QUOTE = ("date,open_usdt,high_usdt,low_usdt,close_usdt,volume_coin,quote_volume_usdt,trade_count,taker_buy_quote_volume_usdt\n"
                "2025-09-08,0.5,0.6,0.4,0.55,1000,520,77,250\n")


def test_klines_without_quote_volume_approximate_the_taker_sell_at_the_taker_buy_vwap(tmp_path: Path) -> None:
    """BTC/ETH/XRP/BNB files carry coins only besides the taker-buy quote volume: sell ~ (volume - buy) coins x buy VWAP."""
    (tmp_path / "btc_ohlcv_daily_binance_usdm_klines.csv").write_text(KLINES_BASE)
    mapping = next(m for m in MAPPINGS if m.file.endswith("_klines.csv") and "BTC" in m.assets)
    frame = read_mapped(tmp_path / "btc_ohlcv_daily_binance_usdm_klines.csv", mapping, "BTC")
    assert list(frame.columns) == ["perp_open_usd", "perp_high_usd", "perp_low_usd", "perp_close_usd", "perp_taker_buy_usd", "perp_volume_usd",
                                   "perp_taker_sell_usd"]
    # day 1: buy VWAP 41000 / 400 = 102.5; quote ~ 1000 x 102.5 = 102500; sell = 600 coins x 102.5 = 61500
    assert frame["perp_taker_buy_usd"].tolist() == [41000.0, 165000.0]
    assert frame["perp_volume_usd"].tolist() == pytest.approx([102500.0, 220000.0])  # day 2: VWAP 110, 2000 coins
    assert frame["perp_taker_sell_usd"].tolist() == pytest.approx([61500.0, 55000.0])
    share = frame["perp_taker_buy_usd"] / (frame["perp_taker_buy_usd"] + frame["perp_taker_sell_usd"])
    assert share.tolist() == pytest.approx([400 / 1000, 1500 / 2000])  # the approximation's share is the share in coins


def test_klines_with_quote_volume_split_it_exactly_and_win_over_the_older_candle_file(tmp_path: Path) -> None:
    """ADA/DOGE/SOL files carry the quote volume: sell = quote - buy. On the days both perpetual files hold, the klines (Binance's
    archive) win, one series is written once, and re-importing changes nothing."""
    (tmp_path / "ada_ohlcv_daily_binance_usdm_klines.csv").write_text(KLINES_QUOTE)
    (tmp_path / "ada_ohlcv_daily_binance_usdm.csv").write_text("date,open_usdt,high_usdt,low_usdt,close_usdt,volume_usdt\n"
                                                             "2025-09-07,0.52,0.53,0.49,0.5,400\n2025-09-08,0.50001,0.6,0.4,0.55,536\n")
    store = HistoryStore(tmp_path / "store")
    (load,) = import_reference(store, tmp_path, "ADA")
    assert load.series == "ohlcv_perp" and load.result.new_rows == 2
    perp = store.read("ohlcv_perp")
    assert perp.loc["2025-09-08", ["perp_open_usd", "perp_volume_usd", "perp_taker_buy_usd", "perp_taker_sell_usd"]].tolist() == [0.5, 520.0, 250.0,
                                                                                                                                  270.0]
    assert perp.loc["2025-09-07", "perp_volume_usd"] == 400.0 and perp.loc["2025-09-07", ["perp_taker_buy_usd", "perp_taker_sell_usd"]].isna().all()
    assert store.sources("ohlcv_perp") == ["reference:ada_ohlcv_daily_binance_usdm.csv+ada_ohlcv_daily_binance_usdm_klines.csv"]
    assert not import_reference(store, tmp_path, "ADA")[0].result.changed


@pytest.mark.reference
@pytest.mark.parametrize("asset", ["BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA"])
def test_binance_kline_taker_share_matches_the_coinglass_share_on_the_overlap(reference_dir: Path, tmp_path: Path, asset: str) -> None:
    """Binance's taker-buy share from the klines files (reference README section 10) measures what CoinGlass's
    Binance+OKX+Bybit share does: on their shared days the median absolute difference is at most 0.005 (README: median
    difference -0.0016..+0.003). And the two perpetual candle files join without a break: one row per day."""
    store = HistoryStore(tmp_path / asset)
    import_reference(store, reference_dir, asset)
    perp, positioning = store.read("ohlcv_perp"), store.read("positioning")
    binance = perp["perp_taker_buy_usd"] / (perp["perp_taker_buy_usd"] + perp["perp_taker_sell_usd"])
    coinglass = positioning["taker_buy_usd"] / (positioning["taker_buy_usd"] + positioning["taker_sell_usd"])
    diff = (binance - coinglass).dropna()
    assert len(diff) >= 25  # 2025-08-01 (BTC 08-13) .. 2025-09-08
    assert diff.abs().median() <= 0.005 and abs(diff.median()) <= 0.003
    assert str(perp["perp_taker_buy_usd"].last_valid_index().date()) == "2025-11-15"  # the taker flow carried past CoinGlass's end
    assert (perp["perp_taker_sell_usd"].dropna() > 0).all()
    assert (perp.loc["2025-08-13":"2025-11-15"].notna().all().all())  # no day missing where the klines file runs
    old = pd.read_csv(reference_dir / f"{asset.lower()}_ohlcv_daily_binance_usdm.csv", index_col="date", parse_dates=True)
    shared = old.index.intersection(perp.dropna(subset=["perp_taker_buy_usd"]).index)
    assert len(shared) >= 25 and (perp.loc[shared, "perp_close_usd"] == old.loc[shared, "close_usdt"]).all()  # README: closes identical
