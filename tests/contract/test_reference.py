"""The reference history, read through the same validated path as provider data."""

from __future__ import annotations

from pathlib import Path

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
