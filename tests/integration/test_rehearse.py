"""The live loop rehearsed: every connector against the provider emulator (real sockets, loopback), then `rehearse` on the
reference history — the daily job's update, feature table, forecasts, ledger and alerts checked against the reference,
with and without faults."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import Settings
from features.schemas import SERIES
from features.sources.update import build_connectors, run_update
from features.store import HistoryStore
from operations.emulator import PROVIDES, Fault, ProviderEmulator
from operations.rehearse import REHEARSAL_KEYS, differing_cells, rehearse
from tests.conftest import REFERENCE_DIR

TODAY = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
DAYS = pd.date_range(TODAY - pd.Timedelta(days=25), TODAY - pd.Timedelta(days=1), freq="D", name="date")  # inside Binance's 30 days
CUT = DAYS[9]


def served_history(seed: int = 5) -> dict[str, pd.DataFrame]:
    """Every column a provider delivers, for DAYS: positive values of a plausible size (seeded), ratios near 1, NUPL in (-1, 1)."""
    rng = np.random.default_rng(seed)
    out: dict[str, pd.DataFrame] = {}
    for by_series in PROVIDES.values():
        for series, columns in by_series.items():
            frame = out.setdefault(series, pd.DataFrame(index=DAYS))
            for column in columns:
                if column == "funding_events":
                    values = np.full(len(DAYS), 3.0)
                elif column.startswith(("funding_rate", "sth_nupl")):
                    values = rng.normal(0.0001 if column.startswith("funding") else 0.1, 0.00005 if column.startswith("funding") else 0.05, len(DAYS))
                elif column.startswith(("lsr_", "coinalyze_lsr_", "sopr", "sth_sopr", "mvrv")):
                    values = rng.uniform(0.8, 2.5, len(DAYS))
                else:
                    values = rng.lognormal(np.log(1e6), 0.2, len(DAYS))
                frame[column] = values
    # the two high/low pairs must straddle the close, as the providers' do
    out["ohlcv"]["high_usd"] = out["ohlcv"][["open_usd", "close_usd"]].max(axis=1) * 1.01
    out["ohlcv"]["low_usd"] = out["ohlcv"][["open_usd", "close_usd"]].min(axis=1) * 0.99
    out["ohlcv_perp"]["perp_high_usd"] = out["ohlcv_perp"][["perp_open_usd", "perp_close_usd"]].max(axis=1) * 1.01
    out["ohlcv_perp"]["perp_low_usd"] = out["ohlcv_perp"][["perp_open_usd", "perp_close_usd"]].min(axis=1) * 0.99
    # a kline's taker buys and sells are its quote volume split in two
    perp = out["ohlcv_perp"]
    perp["perp_taker_buy_usd"] = perp["perp_volume_usd"] * rng.uniform(0.4, 0.6, len(DAYS))
    perp["perp_taker_sell_usd"] = perp["perp_volume_usd"] - perp["perp_taker_buy_usd"]
    out["open_interest"]["oi_high_usd"] = out["open_interest"]["oi_close_usd"] * 1.02
    out["open_interest"]["oi_low_usd"] = out["open_interest"]["oi_close_usd"] * 0.98
    return out


def stored_until_cut(root: Path, history: dict[str, pd.DataFrame]) -> HistoryStore:
    store = HistoryStore(root)
    for series, frame in history.items():
        store.append(series, frame.loc[:CUT], source="before", check_splice=False)
    return store


def test_every_connector_extends_the_store_with_exactly_what_the_emulator_served(tmp_path: Path) -> None:
    """No reference data needed: seeded days served in every provider's documented shape and units come back into the store
    unchanged (units converted both ways, OI stamped a day later, funding as 8-hourly events, pages of 1,000), for every series."""
    history = served_history()
    store = stored_until_cut(tmp_path / "btc", history)
    with ProviderEmulator({"BTC": history}) as emulator:
        connectors = build_connectors("BTC", base_urls=emulator.provider_urls(), keys=REHEARSAL_KEYS, sleep=lambda s: None)
        outcomes = run_update(store, connectors, until=DAYS[-1])
    extended = {(o.source, o.series): o.new_rows for o in outcomes if not o.skipped}
    assert extended[("coinglass", "liquidations")] == 15 and extended[("binance-spot", "ohlcv")] == 15
    assert extended[("binance-usdm-oi", "open_interest_exchange")] == 15  # recent days: inside the provider's 30-day window
    assert {o.source for o in outcomes if o.skipped} == {"coinalyze", "bybit-oi"}  # the emulator holds no series of theirs
    for series, frame in history.items():
        got = store.read(series)[list(frame.columns)]
        assert differing_cells(got, frame) == [], series
    assert emulator.requests_to("coinglass") == 9  # one page per endpoint: liquidations x2, OI, funding x2, ratios x3, taker


def test_the_emulator_answers_as_the_providers_document(tmp_path: Path) -> None:
    """The limits a client could break, and each fault, answered as the provider does."""
    with ProviderEmulator({"BTC": served_history()}, faults={"binance-spot": Fault("451")}) as emulator:
        base = emulator.url
        old = int((TODAY - pd.Timedelta(days=40)).value // 1_000_000)
        r = httpx.get(f"{base}/binance-usdm-oi/futures/data/openInterestHist", params={"symbol": "BTCUSDT", "period": "1d", "startTime": old})
        assert (r.status_code, r.json()["code"]) == (400, -1130)
        r = httpx.get(f"{base}/coinglass/api/futures/open-interest/aggregated-history", params={"symbol": "BTC", "interval": "1d", "limit": 4500},
                      headers={"CG-API-KEY": "k"})
        assert r.json() == {"code": "400", "msg": "limit must be at most 1000"}
        r = httpx.get(f"{base}/coinglass/api/futures/open-interest/aggregated-history", params={"symbol": "BTC", "interval": "1d"})
        assert r.status_code == 401
        r = httpx.get(f"{base}/coinglass/api/futures/liquidation/aggregated-history",
                      params={"symbol": "BTC", "interval": "1d", "exchange_list": "Binance,OKX,Bybit,Hyperliquid"}, headers={"CG-API-KEY": "k"})
        assert r.json()["code"] == "400"  # another scope is another series
        assert httpx.get(f"{base}/binance-spot/api/v3/klines", params={"symbol": "BTCUSDT"}).status_code == 451
        r = httpx.get(f"{base}/bgeometrics/sth-mvrv", params={"startday": f"{DAYS[0]:%Y-%m-%d}", "endday": f"{DAYS[0]:%Y-%m-%d}"})
        nupl = served_history()["onchain_cohorts"]["sth_nupl"].iloc[0]
        assert r.json()[0]["sthMvrv"] == pytest.approx(1 / (1 - nupl), rel=1e-12)
    statuses = {kind: Fault(kind).reply()[0] for kind in ("429", "429-retry-after", "5xx", "451", "-1130", "malformed")}
    assert statuses == {"429": 429, "429-retry-after": 429, "5xx": 503, "451": 451, "-1130": 400, "malformed": 200}
    once = Fault("5xx-once")
    assert once.reply()[0] == 503 and once.reply() is None  # then the real answer


def _settings(tmp_path: Path) -> Settings:
    if not (REFERENCE_DIR / "README.md").exists():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (clone without ../shared)")
    return Settings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports", mlruns_dir=tmp_path / "mlruns", reference_dir=REFERENCE_DIR,
                    assets=["BTC"])


def test_the_daily_job_rehearsed_against_the_reference(tmp_path: Path) -> None:
    """`make rehearse`, shorter (BTC, 20 replayed days): no mismatch with the reference, with and without faults."""
    result = rehearse(_settings(tmp_path), tmp_path / "rehearsal", replay_days=20, log=lambda line: None)
    assert result.mismatches == []
    said = "\n".join(result.lines)
    assert "store cut at 2025-07-10" in said
    # 60 reference days after the cut reach the store through CoinGlass, exactly (no mismatch above)
    assert "BTC liquidations +60 new, 0 revised" in said and "BTC funding_aggregated +60 new" in said
    assert "forecasts: 21 compared with the reference's" in said and ", 0 differing" in said
    alerts = next(line for line in result.lines if line.startswith("alerts:"))
    triggered = int(alerts.split()[1])
    assert triggered >= 1 and f"{triggered} delivered, {triggered} received by the loopback webhook" in alerts
    # the free tiers: no CoinGlass key, with and without Coinalyze's — every replayed day still answered, each with its skill
    for tier in ("free keys (Coinalyze)", "no key"):
        line = next(line for line in result.lines if line.startswith(f"tier '{tier}'"))
        assert "BTC 20 of 20 day(s) after the cut answered" in line and "expected ROC-AUC" in line, line
    free_keys = next(line for line in result.lines if line.startswith("  BTC on") and "coinalyze" in line)
    assert "open interest: coinalyze_oi_close_usd (coinalyze)" in free_keys and "price & momentum: close_usd (binance-spot)" in free_keys
    faults = said.split("with faults", 1)[1]
    for why in ("HTTP 451", "quota exhausted", "-1130", "unavailable after 5 attempts", "expected a list of funding events"):
        assert why in faults, why
    assert "coinmetrics [2 request(s)]: BTC exchange_flows +255 new" in faults  # the transient 503 ridden out


def test_a_unit_slip_in_a_connector_is_a_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rehearsal can fail: CoinGlass funding stored in percent instead of a fraction is caught, value by value."""
    monkeypatch.setattr("features.sources.coinglass.PERCENT", 1.0)
    result = rehearse(_settings(tmp_path), tmp_path / "rehearsal", replay_days=2, faults=False, log=lambda line: None)
    slips = [m for m in result.mismatches if "funding_aggregated" in m]
    assert slips and "funding_rate_oiw_frac8h: 64 value(s) differ" in slips[0]  # 60 days after the cut + the 4 re-fetched before it
    assert set(SERIES) >= {m.split()[2] for m in result.mismatches if m.startswith("clean: BTC")}
