"""Every live connector against responses of the providers' documented shapes, served locally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import Settings
from features.schemas import SERIES
from features.sources.base import Connector, FetchContext, load_connectors
from features.sources.coinalyze import Coinalyze
from features.sources.coinglass import CoinGlass
from features.sources.coinmetrics import CoinMetrics
from features.sources.exchanges import BinanceFunding, BinanceOpenInterest, BinanceSpot, BybitOpenInterest
from features.sources.http import HttpSource, ProviderError, QuotaExhausted, RateLimit, RetryPolicy
from features.sources.update import QUOTA_STOPS, build_connectors, price_lookup, run_update
from features.store import HistoryStore
from tests.contract.provider_server import ProviderServer

DAY_MS = 86_400_000
T0 = pd.Timestamp("2024-01-01")


def ms(day: pd.Timestamp) -> int:
    return int(day.value // 1_000_000)


@pytest.fixture()
def server():  # noqa: ANN201
    with ProviderServer() as s:
        yield s


def ctx(store: HistoryStore, series: str, price: bool = False) -> FetchContext:
    return FetchContext(store.read(series), price_lookup(store) if price else None)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def candles(start: pd.Timestamp, n: int) -> list[list]:
    out = []
    for i in range(n):
        t = ms(start + pd.Timedelta(days=i))
        p = 40000.0 + i
        out.append([t, str(p), str(p + 100), str(p - 100), str(p + 50), "1000.5", t + DAY_MS - 1, str(1000.5 * p), 12345, "1", "1", "0"])
    return out


# ----------------------------------------------------------------------------- exchanges (ccxt)
def test_binance_klines_paginate_and_validate(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/api/v3/klines", (200, candles(T0, 1000), {}), (200, candles(T0 + pd.Timedelta(days=1000), 5), {}))
    conn = BinanceSpot("BTC", base_url=server.url, sleep=Sleeps())
    frame = conn.fetch("ohlcv", T0, T0 + pd.Timedelta(days=1004), ctx(store, "ohlcv"))
    assert len(frame) == 1005 and frame.index[0] == T0
    assert frame["close_usd"].iloc[0] == 40050.0 and frame["volume_usd"].iloc[0] == pytest.approx(1000.5 * 40000)
    q = server.queries("/api/v3/klines")
    assert [int(x["startTime"]) for x in q] == [ms(T0), ms(T0 + pd.Timedelta(days=1000))]
    assert q[0]["symbol"] == "BTCUSDT" and q[0]["interval"] == "1d" and q[0]["limit"] == "1000"
    assert store.append("ohlcv", frame, "binance-spot").new_rows == 1005


def test_binance_funding_retries_a_429_and_averages_8h_events(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    events = [{"symbol": "BTCUSDT", "fundingTime": ms(T0) + h * 3_600_000, "fundingRate": r, "markPrice": "1"}
              for h, r in [(0, "0.0001"), (8, "0.0002"), (16, "0.0003"), (24, "-0.0001")]]
    server.add("/fapi/v1/fundingRate", (429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "2"}), (200, events, {}))
    sleeps = Sleeps()
    frame = BinanceFunding("BTC", base_url=server.url, sleep=sleeps).fetch("funding_binance", T0, T0 + pd.Timedelta(days=1), ctx(store, "funding_binance"))
    assert len(server.queries("/fapi/v1/fundingRate")) == 2 and len(sleeps) == 1
    assert frame.loc[T0, "funding_rate_binance_frac8h"] == pytest.approx(0.0002)
    assert frame.loc[T0, "funding_events"] == 3 and frame["funding_events"].iloc[1] == 1


def test_binance_open_interest_is_shifted_to_the_previous_days_close(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    rows = [{"symbol": "BTCUSDT", "sumOpenInterest": "100", "sumOpenInterestValue": str(1e9 + i), "timestamp": ms(T0 + pd.Timedelta(days=i))} for i in range(1, 4)]
    server.add("/futures/data/openInterestHist", (200, rows, {}))
    frame = BinanceOpenInterest("BTC", base_url=server.url).fetch("open_interest_exchange", T0, T0 + pd.Timedelta(days=5), ctx(store, "open_interest_exchange"))
    assert frame.index[0] == T0 and frame["exchange_oi_close_usd"].iloc[0] == 1e9 + 1


def test_bybit_open_interest_follows_the_cursor_and_values_coins_at_the_close(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    store.append("ohlcv", pd.DataFrame({c: [100.0, 200.0, 300.0] for c in ("open_usd", "high_usd", "low_usd", "close_usd", "volume_base")},
                                       index=pd.date_range(T0, periods=3)), "t")

    def page(points: list[int], cursor: str) -> tuple[int, dict, dict]:
        return 200, {"retCode": 0, "retMsg": "OK", "result": {"symbol": "BTCUSDT", "category": "linear",
                     "list": [{"openInterest": str(20.0 * d), "singleOpenInterest": str(10.0 * d), "timestamp": str(ms(T0 + pd.Timedelta(days=d)))}
                              for d in points],
                     "nextPageCursor": cursor}, "time": 0}, {}

    server.add("/v5/market/open-interest", page([3, 2], "next-1"), page([1], ""))
    frame = BybitOpenInterest("BTC", base_url=server.url).fetch("open_interest_bybit", T0, T0 + pd.Timedelta(days=2), ctx(store, "open_interest_bybit", price=True))
    assert server.queries("/v5/market/open-interest")[1]["cursor"] == "next-1"
    assert frame["bybit_oi_coin"].tolist() == [10.0, 20.0, 30.0]
    assert frame["bybit_oi_close_usd"].tolist() == [1000.0, 4000.0, 9000.0]  # coins x that day's close


def test_bybit_error_code_names_provider_and_endpoint(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/v5/market/open-interest", (200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {}}, {}))
    with pytest.raises(ProviderError, match=r"bybit-oi GET /v5/market/open-interest: .*params error: symbol invalid"):
        BybitOpenInterest("BTC", base_url=server.url).fetch("open_interest_bybit", T0, T0, ctx(store, "open_interest_bybit", price=True))


# ----------------------------------------------------------------------------- Coin Metrics
def cm_rows(start: pd.Timestamp, n: int) -> list[dict]:
    return [{"asset": "btc", "time": f"{start + pd.Timedelta(days=i):%Y-%m-%d}T00:00:00.000000000Z", "FlowInExNtv": str(100 + i),
             "FlowOutExNtv": "90", "SplyExNtv": "2000000", "PriceUSD": "42000.5", "CapMrktCurUSD": "8.2e11", "CapMVRVCur": "1.9"} for i in range(n)]


def test_coinmetrics_follows_next_page_token(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/timeseries/asset-metrics", (200, {"data": cm_rows(T0, 2), "next_page_token": "tok2", "next_page_url": "x"}, {}),
               (200, {"data": cm_rows(T0 + pd.Timedelta(days=2), 1)}, {}))
    frame = CoinMetrics("BTC", base_url=server.url).fetch("exchange_flows", T0, T0 + pd.Timedelta(days=2), ctx(store, "exchange_flows"))
    q = server.queries("/timeseries/asset-metrics")
    assert q[0]["metrics"] == "FlowInExNtv,FlowOutExNtv,SplyExNtv,PriceUSD,CapMrktCurUSD,CapMVRVCur" and q[1]["next_page_token"] == "tok2"
    assert frame["inflow_coin"].tolist() == [100.0, 101.0, 100.0] and frame["mvrv"].iloc[0] == 1.9


def test_coinmetrics_missing_field_and_forbidden_metric(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/timeseries/asset-metrics", (200, {"rows": []}, {}))
    with pytest.raises(ProviderError, match=r"coinmetrics /timeseries/asset-metrics: response row lacks field 'data'"):
        CoinMetrics("BTC", base_url=server.url).fetch("exchange_flows", T0, T0, ctx(store, "exchange_flows"))


def test_coinmetrics_403_is_a_provider_error(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/timeseries/asset-metrics", (403, {"error": {"type": "forbidden", "message": "Requested metric 'SplyExNtv' is not available"}}, {}))
    with pytest.raises(ProviderError, match=r"HTTP 403.*not available"):
        CoinMetrics("BTC", base_url=server.url).fetch("exchange_flows", T0, T0, ctx(store, "exchange_flows"))


# ----------------------------------------------------------------------------- BGeometrics
def bg(field: str, days: int, value: float) -> list[dict]:
    return [{"d": f"{T0 + pd.Timedelta(days=i):%Y-%m-%d}", "unixTs": int((T0 + pd.Timedelta(days=i)).timestamp()), field: value} for i in range(days)]


def test_bgeometrics_quota_stops_cleanly_keeps_what_it_got_and_resumes_only_the_missing(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/sth-sopr", (200, bg("sthSopr", 3, 1.01), {}))
    server.add("/asopr", (429, {"error": "quota"}, {"Retry-After": "1800"}))
    connectors = build_connectors("BTC", ["bgeometrics"], base_urls={"bgeometrics": server.url}, sleep=Sleeps())
    (first,) = run_update(store, connectors, until=T0 + pd.Timedelta(days=2))
    assert "quota exhausted; resume after" in first.skipped
    stored = store.read("onchain_cohorts")
    assert stored["sth_sopr"].tolist() == [1.01, 1.01, 1.01] and stored["sopr"].isna().all()
    # next run (a new process: the spent quota is forgotten): STH-SOPR is complete, so only the overlap is asked again; the
    # other metrics from the start
    QUOTA_STOPS.clear()
    server.routes.clear()
    server.calls.clear()
    server.add("/sth-sopr", (200, bg("sthSopr", 3, 1.01), {}))
    server.add("/asopr", (200, bg("asopr", 3, 1.002), {}))
    server.add("/sth-mvrv", (200, bg("sthMvrv", 3, 1.25), {}))
    server.add("/sth-realized-price", (200, bg("sthRealizedPrice", 3, 90000.0), {}))
    (second,) = run_update(store, build_connectors("BTC", ["bgeometrics"], base_urls={"bgeometrics": server.url}), until=T0 + pd.Timedelta(days=2))
    assert not second.skipped
    assert server.queries("/sth-sopr") == []  # nothing missing there: not a wasted request
    assert server.queries("/asopr")[0]["startday"] == "2018-01-01"  # never filled: its whole history
    stored = store.read("onchain_cohorts")
    assert stored["sth_nupl"].iloc[0] == pytest.approx(1 - 1 / 1.25)  # NUPL from MVRV of the same cohort
    assert stored["sopr"].iloc[-1] == 1.002


# ----------------------------------------------------------------------------- Coinalyze
def test_coinalyze_sums_major_exchange_perpetuals(server: ProviderServer, store: HistoryStore) -> None:
    server.add("/exchanges", (200, [{"name": "Binance", "code": "A"}, {"name": "Bybit", "code": "6"}, {"name": "Tiny DEX", "code": "Z"}], {}))
    server.add("/future-markets", (200, [
        {"symbol": "BTCUSDT_PERP.A", "base_asset": "BTC", "is_perpetual": True},
        {"symbol": "BTCUSD_PERP.6", "base_asset": "BTC", "is_perpetual": True},
        {"symbol": "BTCUSDT.A", "base_asset": "BTC", "is_perpetual": False},
        {"symbol": "BTCUSDT_PERP.Z", "base_asset": "BTC", "is_perpetual": True},
        {"symbol": "ETHUSDT_PERP.A", "base_asset": "ETH", "is_perpetual": True}], {}))
    t = int(T0.timestamp())
    server.add("/liquidation-history", (200, [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t, "l": 100.0, "s": 10.0}]},
                                              {"symbol": "BTCUSD_PERP.6", "history": [{"t": t, "l": 50.0, "s": 5.0}, {"t": t + 86400, "l": 1.0, "s": 2.0}]}], {}))
    frame = Coinalyze("BTC", key="ca-key", base_url=server.url).fetch("liquidations_coinalyze", T0, T0 + pd.Timedelta(days=1), ctx(store, "liquidations_coinalyze"))
    q = server.queries("/liquidation-history")[0]
    assert q["symbols"] == "BTCUSDT_PERP.A,BTCUSD_PERP.6" and q["interval"] == "daily" and q["convert_to_usd"] == "true"
    assert int(q["from"]) == t  # seconds, not milliseconds
    assert frame["coinalyze_liq_long_usd"].tolist() == [150.0, 1.0] and frame["coinalyze_liq_short_usd"].tolist() == [15.0, 2.0]
    assert all({k.lower(): v for k, v in headers.items()}["api_key"] == "ca-key" for _, _, headers in server.calls)


def test_coinalyze_malformed_body(server: ProviderServer, store: HistoryStore) -> None:
    server.add("/exchanges", (200, "<html>gateway</html>", {}))
    with pytest.raises(ProviderError, match=r"coinalyze /exchanges: malformed body \(not JSON\)"):
        Coinalyze("BTC", key="ca-key", base_url=server.url).fetch("liquidations_coinalyze", T0, T0, ctx(store, "liquidations_coinalyze"))


# ----------------------------------------------------------------------------- CoinGlass
def test_coinglass_series_units_and_errors(server: ProviderServer, store: HistoryStore) -> None:
    liq = [{"time": ms(T0 + pd.Timedelta(days=i)), "aggregated_long_liquidation_usd": 1e8 * (i + 1), "aggregated_short_liquidation_usd": 2e7} for i in range(2)]
    server.add("/api/futures/liquidation/aggregated-history", (200, {"code": "0", "msg": "success", "data": liq}, {}))
    conn = CoinGlass("BTC", key="cg-key", base_url=server.url)
    frame = conn.fetch("liquidations_binance", T0, T0 + pd.Timedelta(days=1), ctx(store, "liquidations_binance"))
    assert frame["binance_liq_long_usd"].tolist() == [1e8, 2e8]
    assert server.queries("/api/futures/liquidation/aggregated-history")[0]["exchange_list"] == "Binance"
    assert {k.lower(): v for k, v in server.calls[0][2].items()}["cg-api-key"] == "cg-key"
    funding = [{"time": ms(T0), "open": "0.01", "high": "0.02", "low": "0.0", "close": "0.015"}]
    server.add("/api/futures/funding-rate/oi-weight-history", (200, {"code": "0", "msg": "success", "data": funding}, {}))
    server.add("/api/futures/funding-rate/vol-weight-history", (200, {"code": "0", "msg": "success", "data": []}, {}))  # empty page
    frame = conn.fetch("funding_aggregated", T0, T0, ctx(store, "funding_aggregated"))
    assert frame["funding_rate_oiw_frac8h"].iloc[0] == pytest.approx(0.00015)  # percent -> fraction
    server.add("/api/futures/open-interest/aggregated-history", (200, {"code": "40001", "msg": "Upgrade plan", "data": None}, {}))
    with pytest.raises(ProviderError, match="coinglass /api/futures/open-interest/aggregated-history: error response: Upgrade plan"):
        conn.fetch("open_interest", T0, T0, ctx(store, "open_interest"))


# ----------------------------------------------------------------------------- shared HTTP behaviour
def test_http_retries_5xx_then_succeeds_and_gives_up_with_a_named_error(server: ProviderServer) -> None:
    server.add("/x", (503, "busy", {}), (502, "busy", {}), (200, {"ok": 1}, {}))
    sleeps = Sleeps()
    http = HttpSource("prov", server.url, rate=RateLimit(100, 1.0), retry=RetryPolicy(attempts=4, backoff=0.5), sleep=sleeps)
    assert http.get_json("/x") == {"ok": 1}
    assert sleeps == [0.5, 1.0]  # exponential backoff
    server.add("/y", (500, "down", {}))
    with pytest.raises(ProviderError, match=r"prov /y: gave up after 4 attempts \(HTTP 500: down\)"):
        http.get_json("/y")
    server.add("/z", (429, "slow down", {"Retry-After": "7200"}))
    before = len(server.calls)
    with pytest.raises(QuotaExhausted, match="quota exhausted; resume after"):
        http.get_json("/z")
    assert len(server.calls) == before + 1  # a long Retry-After is a spent quota: no retries burning it


def test_rate_limit_waits_for_the_window() -> None:
    now = [0.0]
    sleeps: list[float] = []
    rl = RateLimit(2, 10.0)
    for _ in range(3):
        rl.wait(clock=lambda: now[0], sleep=lambda s: (sleeps.append(s), now.__setitem__(0, now[0] + s)))
    assert sleeps == [10.0]


# ----------------------------------------------------------------------------- the update command
def test_a_failing_provider_leaves_its_series_byte_identical_and_others_update(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    flows = pd.DataFrame({"inflow_coin": [1.0], "outflow_coin": [2.0]}, index=pd.DatetimeIndex([T0]))
    store.append("exchange_flows", flows, "t")
    before = store.path("exchange_flows").read_bytes()
    server.add("/api/v3/klines", (200, candles(T0, 3), {}))
    server.add("/timeseries/asset-metrics", (500, "internal error", {}))
    connectors = build_connectors("BTC", ["binance-spot", "coinmetrics"], base_urls={"binance-spot": server.url, "coinmetrics": server.url}, sleep=Sleeps())
    outcomes = {o.source: o for o in run_update(store, connectors, until=T0 + pd.Timedelta(days=2))}
    spot, cm = outcomes["binance-spot"], outcomes["coinmetrics"]
    assert spot.new_rows == 3 and not spot.skipped
    assert "HTTP 500" in cm.skipped and cm.new_rows == 0
    assert store.path("exchange_flows").read_bytes() == before


def test_a_level_shift_at_the_splice_is_refused_by_the_update_and_the_others_go_on(server: ProviderServer, store: HistoryStore) -> None:
    """A provider answering at 3x the stored level on the overlap (a wider exchange list) is refused, named, and leaves the
    series byte-identical; another provider in the same run still appends."""
    days = pd.date_range(T0, periods=10)
    store.append("liquidations", pd.DataFrame({"liq_long_usd": 1e8, "liq_short_usd": 2e7}, index=days), "reference")
    before = store.path("liquidations").read_bytes()
    scaled = [{"time": ms(T0 + pd.Timedelta(days=i)), "aggregated_long_liquidation_usd": 3e8, "aggregated_short_liquidation_usd": 6e7}
              for i in range(6, 13)]
    server.add("/api/futures/liquidation/aggregated-history", (200, {"code": "0", "msg": "success", "data": scaled}, {}))
    server.add("/api/v3/klines", (200, candles(T0, 3), {}))
    connectors = [CoinGlass("BTC", key="cg-key", base_url=server.url, sleep=Sleeps()),
                  *build_connectors("BTC", ["binance-spot"], base_urls={"binance-spot": server.url}, sleep=Sleeps())]
    connectors[0].plans = connectors[0].plans[:1]  # the liquidations series only
    outcomes = {(o.source, o.series): o for o in run_update(store, connectors, until=T0 + pd.Timedelta(days=12))}
    refused = outcomes[("coinglass", "liquidations")]
    assert refused.skipped.startswith("splice refused — series 'liquidations', column liq_long_usd: the new days from coinglass are 3.00x")
    assert refused.new_rows == 0 and store.path("liquidations").read_bytes() == before
    assert outcomes[("binance-spot", "ohlcv")].new_rows == 3


def test_missing_keys_are_skipped_with_one_clear_reason(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CASCADE_RADAR_COINGLASS_API_KEY", raising=False)
    monkeypatch.delenv("CASCADE_RADAR_COINALYZE_API_KEY", raising=False)
    outcomes = run_update(store, build_connectors("BTC", ["coinglass", "coinalyze"]), until=T0)
    assert {o.skipped for o in outcomes} == {"needs an API key: set CASCADE_RADAR_COINGLASS_API_KEY", "needs an API key: set CASCADE_RADAR_COINALYZE_API_KEY"}
    assert store.is_empty()


def test_no_network_leaves_the_store_as_it_was(settings: Settings, store: HistoryStore, tmp_path: Path) -> None:
    store.append("ohlcv", pd.DataFrame({c: [1.0] for c in ("open_usd", "high_usd", "low_usd", "close_usd", "volume_base")}, index=pd.DatetimeIndex([T0])), "t")
    before = {p.name: p.read_bytes() for p in store.root.iterdir()}
    closed = "http://127.0.0.1:9"  # nothing listens on the discard port
    names = ["binance-spot", "binance-usdm-funding", "bybit-oi", "coinmetrics", "bgeometrics"]
    connectors = build_connectors("BTC", names, base_urls={n: closed for n in names})
    outcomes = run_update(store, connectors, until=T0 + pd.Timedelta(days=3))
    assert len(outcomes) == sum(len(c.plans) for c in connectors) == 5 and all(o.network_down for o in outcomes)
    assert {p.name: p.read_bytes() for p in store.root.iterdir()} == before


def test_incremental_update_fetches_only_after_the_last_day_with_overlap(server: ProviderServer, settings: Settings, store: HistoryStore) -> None:
    server.add("/api/v3/klines", lambda q: (200, [c for c in candles(T0, 10) if c[0] >= int(q["startTime"])], {}))
    connectors = build_connectors("BTC", ["binance-spot"], base_urls={"binance-spot": server.url})
    run_update(store, connectors, until=T0 + pd.Timedelta(days=5))
    first = store.path("ohlcv").read_bytes()
    (again,) = run_update(store, connectors, until=T0 + pd.Timedelta(days=5))
    assert int(server.queries("/api/v3/klines")[-1]["startTime"]) == ms(T0 + pd.Timedelta(days=2))  # last day minus 3 overlap days
    assert again.new_rows == 0 and store.path("ohlcv").read_bytes() == first  # idempotent
    (later,) = run_update(store, connectors, until=T0 + pd.Timedelta(days=9))
    assert later.new_rows == 4 and store.last_day("ohlcv") == T0 + pd.Timedelta(days=9)
    assert np.isfinite(store.read("ohlcv").to_numpy()).all()


# ----------------------------------------------------------------------------- one contract for every registered connector
REGISTERED = load_connectors()


def serve_example(server: ProviderServer, connector: Connector, series: str, days: int) -> None:
    server.routes.clear()
    for path, body in connector.documented_example(series, T0, days).items():
        server.add(path, (200, body, {}))


def contract_cases() -> list[tuple[str, str]]:
    return [(name, plan.series) for name, cls in REGISTERED.items() for plan in cls.plans]


@pytest.mark.parametrize(("name", "series"), contract_cases())
def test_connector_contract(name: str, series: str, server: ProviderServer, store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = REGISTERED[name]
    asset = cls.assets[0]
    connector = cls(asset, key="test-key", base_url=server.url, sleep=Sleeps())
    if cls.needs_price:
        store.append("ohlcv", pd.DataFrame({c: [100.0] * 5 for c in ("open_usd", "high_usd", "low_usd", "close_usd", "volume_base")},
                                           index=pd.date_range(T0, periods=5)), "t")
    end = T0 + pd.Timedelta(days=2)
    if hasattr(connector, "today"):  # a provider that keeps only recent days: the run happens at the end of the range
        connector.today = lambda: end
    # the documented shape parses into the store's schema, within the days asked
    serve_example(server, connector, series, 3)
    frame = connector.fetch(series, T0, end, ctx(store, series, cls.needs_price))
    assert len(frame) >= 1 and frame.index.min() >= T0 and frame.index.max() <= end
    assert store.append(series, frame, name).new_rows == len(frame)
    if name == "binance-usdm-candles":  # hand-written values of the documented kline
        # [open time, "100.0", "110.0", "90.0", "105.0", base volume "12.5", close time, quote volume "1312.5", trades,
        #  taker-buy base "6", taker-buy quote "630", ignore]
        assert frame.iloc[0][["perp_open_usd", "perp_high_usd", "perp_low_usd", "perp_close_usd", "perp_volume_usd", "perp_taker_buy_usd",
                              "perp_taker_sell_usd"]].tolist() == [100.0, 110.0, 90.0, 105.0, 1312.5, 630.0, 682.5]  # quote (USDT) volumes
    required = SERIES[series].required_columns
    assert frame[required].notna().all().all(), f"{name} left required columns of {series} empty"
    # an empty page is no data, not an error
    serve_example(server, connector, series, 0)
    nothing = ctx(HistoryStore(store.root / "empty"), series)
    assert connector.fetch(series, T0, end, nothing).empty
    # a malformed body is a ProviderError naming the provider
    server.routes.clear()
    for path in connector.documented_example(series, T0, 1):
        server.add(path, (200, "<html>bad gateway</html>", {}))
    with pytest.raises(ProviderError, match=name):
        connector.fetch(series, T0, end, nothing)
    # a missing key: a required one makes the connector unavailable, naming the variable to set
    if cls.key_env:
        monkeypatch.delenv(cls.key_env, raising=False)
        (bare,) = build_connectors(asset, [name])
        assert (bare.unavailable() == f"needs an API key: set {cls.key_env}") == cls.key_required


def test_a_coin_outside_a_providers_list_is_refused_by_it_without_a_call(server: ProviderServer, tmp_path: Path) -> None:
    """Issue 37: the coin list is any tickers, a provider knows the symbols of its own coins. Another coin is refused by
    every provider, saying so, before any request; the coins a provider lists still reach it."""
    (coin,) = Settings(assets=["c001"]).assets  # a ticker the settings accept, as CASCADE_RADAR_ASSETS would give it
    urls, keys = {name: server.url for name in REGISTERED}, {name: "test-key" for name in REGISTERED}
    connectors = build_connectors(coin, base_urls=urls, keys=keys, sleep=Sleeps())
    assert {c.name: c.unavailable() for c in connectors} == {name: "no C001 data at this provider" for name in REGISTERED}
    outcomes = run_update(HistoryStore(tmp_path / "c001"), connectors, until=T0)
    assert len(outcomes) == sum(len(cls.plans) for cls in REGISTERED.values())
    assert all(o.skipped == "no C001 data at this provider" and o.new_rows == 0 for o in outcomes)
    assert server.calls == []  # refused before asking: no symbol is guessed for a coin the provider was not set up for
    for name, cls in REGISTERED.items():  # the seven keep their providers, as before
        for asset in cls.assets:
            assert build_connectors(asset, [name], base_urls=urls, keys=keys)[0].unavailable() is None, (name, asset)


def test_every_provider_module_registers_a_connector_and_the_cli_lists_it() -> None:
    import pkgutil

    import features.sources as package
    from cli.main import build_parser

    helpers = {"base", "http", "update", "reference", "synthetic"}
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)} - helpers
    owners = {cls.__module__.rsplit(".", 1)[-1] for cls in REGISTERED.values()}
    assert owners == modules
    update = build_parser()._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0].choices["update"]  # noqa: SLF001
    update_help = "".join(update.format_help().split())  # argparse wraps lines at hyphens
    for name, cls in REGISTERED.items():
        assert name in update_help
        if cls.key_env:
            assert cls.key_env in update_help


def test_binance_positioning_asks_30_days_at_most_values_taker_coins_at_the_close_and_never_stamps_early(
        server: ProviderServer, store: HistoryStore) -> None:
    from features.sources.exchanges import TAKER_ENDPOINT, BinancePositioning

    connector = BinancePositioning("SOL", base_url=server.url, sleep=Sleeps())
    end = T0 + pd.Timedelta(days=59)
    connector.today = lambda: end  # type: ignore[method-assign] - the day the run happens
    days = pd.date_range(T0, periods=60)
    store.append("ohlcv_perp", pd.DataFrame({c: 20.0 for c in ("perp_open_usd", "perp_high_usd", "perp_low_usd", "perp_close_usd")}, index=days), "t")
    serve_example(server, connector, "positioning", 3)
    frame = connector.fetch("positioning", T0, end, ctx(store, "positioning", price=True))
    # the provider keeps 30 days and refuses an older startTime (-1130): the request starts 27 days before today, not at T0
    (query,) = server.queries(TAKER_ENDPOINT)
    assert int(query["startTime"]) == ms(end - pd.Timedelta(days=27)) and query["symbol"] == "SOLUSDT" and query["period"] == "1d"
    # the example's points are stamped 00:00 UTC of T0..T0+2: each lands on the day of its timestamp, none earlier
    assert list(frame.index) == list(pd.date_range(T0, periods=3))
    assert frame["binance_taker_buy_usd"].iloc[0] == pytest.approx(298.28 * 20.0)
    # a range older than the provider keeps asks nothing (the refusal would cost every endpoint)
    calls = len(server.calls)
    connector.today = lambda: end + pd.Timedelta(days=90)  # type: ignore[method-assign]
    assert connector.fetch("positioning", T0, end, ctx(store, "positioning", price=True)).empty and len(server.calls) == calls
    assert frame["lsr_top_accounts"].iloc[0] == pytest.approx(1.8105)
    assert "taker_buy_usd" not in frame  # Binance-only volume never fills the three-exchange column


def test_taker_share_continues_on_binance_only_volume_where_the_aggregate_is_missing() -> None:
    from features.build import assemble_panel

    days = pd.date_range(T0, periods=8)
    raw = pd.DataFrame({"taker_buy_usd": [6.0] * 6 + [None] * 2, "taker_sell_usd": [4.0] * 6 + [None] * 2,
                        "binance_taker_buy_usd": [1.0] * 6 + [3.0, None], "binance_taker_sell_usd": [1.0] * 6 + [1.0, None]}, index=days)
    panel = assemble_panel(raw, min_overlap_days=5)
    # Binance's share 0.75 on day 6, chain-linked onto the three-exchange share (0.6 vs 0.5 over the six days before)
    assert panel["taker_buy_share"].tolist()[5:7] == pytest.approx([0.6, 0.85]) and panel["taker_buy_share"].isna().iloc[7]
    assert panel["taker_buy_usd"].isna().iloc[6]  # Binance-only dollars never fill the three-exchange column


def test_a_provider_error_that_echoes_the_url_never_shows_the_key(server: ProviderServer, store: HistoryStore,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sEcReT-token-0123456789"
    monkeypatch.setenv("CASCADE_RADAR_BGEOMETRICS_TOKEN", secret)
    page = ("<html><body><h1>500 Internal Server Error</h1>\n\n<p>GET /sth-sopr?startday=2018-01-01&token=" + secret
            + " failed</p><p>" + "x" * 400 + "</p></body></html>")
    server.add("/sth-sopr", *[(500, page, {})] * 6)
    (connector,) = build_connectors("BTC", ["bgeometrics"], base_urls={"bgeometrics": server.url}, sleep=Sleeps())
    (outcome,) = run_update(store, [connector], until=T0 + pd.Timedelta(days=2))
    assert server.queries("/sth-sopr")[0]["token"] == secret  # it was sent, as the provider wants it
    assert outcome.skipped and secret not in outcome.skipped and "token=***" in outcome.skipped
    assert "<html>" not in outcome.skipped and len(outcome.skipped) < 300  # the page is one short line, not copied verbatim
    # any key-like query value is masked, configured or not
    from features.sources.http import ProviderError

    err = ProviderError("x", "GET /y", "https://api.example.com/v1?api_key=abc123def&symbol=BTC")
    assert "abc123def" not in str(err) and "api_key=***" in str(err) and "symbol=BTC" in str(err)


def test_binance_refuses_an_old_start_time_with_1130_and_the_error_names_it(server: ProviderServer, store: HistoryStore) -> None:
    """The documented refusal (HTTP 400, {"code": -1130, "msg": "Parameter 'startTime' is invalid."}) is a named error."""
    from features.sources.exchanges import TAKER_ENDPOINT, BinancePositioning

    connector = BinancePositioning("BTC", base_url=server.url, sleep=Sleeps())
    connector.today = lambda: T0 + pd.Timedelta(days=10)  # type: ignore[method-assign]
    refusal = (400, {"code": -1130, "msg": "Parameter 'startTime' is invalid."}, {})
    for path in ("/futures/data/globalLongShortAccountRatio", "/futures/data/topLongShortAccountRatio",
                 "/futures/data/topLongShortPositionRatio", TAKER_ENDPOINT):
        server.add(path, refusal)
    with pytest.raises(ProviderError, match="startTime"):
        connector.fetch("positioning", T0, T0 + pd.Timedelta(days=10), ctx(store, "positioning", price=True))


def test_bybit_open_interest_is_one_sided(server: ProviderServer, store: HistoryStore) -> None:
    """Bybit v5 documents `openInterest` as both sides: the one-sided `singleOpenInterest` is stored, else half the sum."""
    store.append("ohlcv", pd.DataFrame({c: [100.0, 100.0] for c in ("open_usd", "high_usd", "low_usd", "close_usd", "volume_base")},
                                       index=pd.date_range(T0, periods=2)), "t")
    rows = [{"openInterest": "30.0", "singleOpenInterest": "15.0", "timestamp": str(ms(T0 + pd.Timedelta(days=2)))},
            {"openInterest": "20.0", "timestamp": str(ms(T0 + pd.Timedelta(days=1)))}]  # an older response shape: no one-sided field
    server.add("/v5/market/open-interest", (200, {"retCode": 0, "retMsg": "OK", "result": {"list": rows, "nextPageCursor": ""}, "time": 0}, {}))
    frame = BybitOpenInterest("BTC", base_url=server.url).fetch("open_interest_bybit", T0, T0 + pd.Timedelta(days=1),
                                                                ctx(store, "open_interest_bybit", price=True))
    assert frame["bybit_oi_coin"].tolist() == [10.0, 15.0] and frame["bybit_oi_close_usd"].tolist() == [1000.0, 1500.0]


def test_coinglass_asks_the_reference_scope_pages_by_1000_and_shares_one_rate_window_per_key(server: ProviderServer, store: HistoryStore) -> None:
    from features.sources.coinglass import KEY_RATES, PAGE_LIMIT

    first = [{"time": ms(T0 + pd.Timedelta(days=i)), "aggregated_long_liquidation_usd": 1.0, "aggregated_short_liquidation_usd": 2.0}
             for i in range(PAGE_LIMIT)]
    rest = [{"time": ms(T0 + pd.Timedelta(days=PAGE_LIMIT + i)), "aggregated_long_liquidation_usd": 3.0, "aggregated_short_liquidation_usd": 4.0}
            for i in range(5)]
    path = "/api/futures/liquidation/aggregated-history"
    server.add(path, (200, {"code": "0", "msg": "success", "data": first}, {}), (200, {"code": "0", "msg": "success", "data": rest}, {}))
    end = T0 + pd.Timedelta(days=PAGE_LIMIT + 4)
    frame = CoinGlass("BTC", key="cg-key", base_url=server.url).fetch("liquidations", T0, end, ctx(store, "liquidations"))
    queries = server.queries(path)
    assert len(frame) == PAGE_LIMIT + 5 and len(queries) == 2  # a full page did not end the backfill
    assert {q["limit"] for q in queries} == {"1000"} and {q["exchange_list"] for q in queries} == {"Binance,OKX,Bybit"}
    assert int(queries[1]["start_time"]) == ms(T0 + pd.Timedelta(days=PAGE_LIMIT))
    # two coins, one key: one rate window (CoinGlass counts calls per key)
    a = CoinGlass("BTC", key="cg-key", base_url=server.url).source(path)
    b = CoinGlass("ETH", key="cg-key", base_url=server.url).source(path)
    assert a.rate is b.rate is KEY_RATES[("cg-key", server.url)]


def test_coinalyze_counts_every_symbol_as_a_call_names_huobi_htx_and_keeps_complete_windows_on_a_quota_stop(
        server: ProviderServer, store: HistoryStore) -> None:
    """Coinalyze v1: 40 calls / min where each symbol of a request is one call; 'Huobi' is HTX (code 4); a 429 whose
    Retry-After is past the minute stops the provider but keeps every window every symbol batch answered."""
    from features.sources.coinalyze import DAYS_PER_CALL, SYMBOLS_PER_CALL

    server.add("/exchanges", (200, [{"name": "Binance", "code": "A"}, {"name": "Huobi", "code": "4"}], {}))
    symbols = [f"BTC{i:02d}USDT_PERP.A" for i in range(SYMBOLS_PER_CALL)] + ["BTCUSDT_PERP.4"]  # 21 markets: two batches a window
    server.add("/future-markets", (200, [{"symbol": s, "base_asset": "BTC", "is_perpetual": True} for s in symbols], {}))
    t = int(T0.timestamp())
    window = (200, [{"symbol": s, "history": [{"t": t, "l": 1.0, "s": 2.0}]} for s in symbols[:1]], {})
    server.add("/liquidation-history", window, window, (429, {"error": "limit"}, {"Retry-After": "3600"}))
    sleeps = Sleeps()
    connector = Coinalyze("BTC", key="ca-key", base_url=server.url, sleep=sleeps)
    with pytest.raises(QuotaExhausted) as stop:
        connector.fetch("liquidations_coinalyze", T0, T0 + pd.Timedelta(days=DAYS_PER_CALL + 5), ctx(store, "liquidations_coinalyze"))
    batches = [q["symbols"].split(",") for q in server.queries("/liquidation-history")]
    assert "BTCUSDT_PERP.4" in batches[1]  # HTX's market is read although the list calls it Huobi
    assert stop.value.partial is not None and stop.value.partial.index.tolist() == [T0]  # the first window, complete, is kept
    assert sleeps and max(sleeps) > 0  # 2 + 20 + 1 + 20 calls within a minute exceed 40: the limiter waited, no 429 was provoked
    limiter = RateLimit(40, 60.0)
    waits: list[float] = []
    clock = iter([0.0, 0.0, 1.0, 1.0])
    limiter.wait(clock=lambda: next(clock), sleep=waits.append, cost=30)
    limiter.wait(clock=lambda: next(clock), sleep=waits.append, cost=20)  # 50 > 40: waits for the window
    assert waits == [59.0]


def test_a_spent_coinglass_quota_stops_coinglass_for_the_other_coins_of_the_run(server: ProviderServer, settings: Settings) -> None:
    """CoinGlass's quota is the key's: after BTC's 429s (no Retry-After: retried, then a stop), ETH sends nothing more."""
    server.add("/api/futures/liquidation/aggregated-history", (429, {"code": "429", "msg": "Too Many Requests"}, {}))
    btc = run_update(HistoryStore(settings.for_asset("BTC").data_path),
                     build_connectors("BTC", ["coinglass"], base_urls={"coinglass": server.url}, sleep=Sleeps(), keys={"coinglass": "k"}))
    assert len(server.calls) == 5 and all("quota exhausted" in o.skipped for o in btc)  # 5 attempts, then every BTC series waits
    eth = run_update(HistoryStore(settings.for_asset("ETH").data_path),
                     build_connectors("ETH", ["coinglass"], base_urls={"coinglass": server.url}, sleep=Sleeps(), keys={"coinglass": "k"}))
    assert len(server.calls) == 5 and all(o.skipped.endswith("(said earlier in this run)") for o in eth)
    assert [o.series for o in eth] == ["liquidations", "liquidations_binance", "open_interest", "funding_aggregated", "positioning"]


def test_bgeometrics_never_retries_a_429_and_a_null_value_is_one_missing_day(server: ProviderServer, store: HistoryStore) -> None:
    from features.sources.bgeometrics import BGeometrics

    rows = bg("sthSopr", 3, 1.01)
    rows[1]["sthSopr"] = None  # a day the provider has not computed
    server.add("/sth-sopr", (200, rows, {}))
    server.add("/asopr", (429, {"error": "quota"}, {}))  # no Retry-After: stop, do not spend the day's quota on retries
    with pytest.raises(QuotaExhausted) as stop:
        BGeometrics("BTC", base_url=server.url, sleep=Sleeps()).fetch("onchain_cohorts", T0, T0 + pd.Timedelta(days=2), ctx(store, "onchain_cohorts"))
    assert len(server.queries("/asopr")) == 1
    kept = stop.value.partial
    assert kept.index.tolist() == [T0, T0 + pd.Timedelta(days=2)] and kept["sth_sopr"].tolist() == [1.01, 1.01]  # the null day stays missing


def test_an_http_451_from_binance_is_a_named_refusal_and_not_retried(server: ProviderServer, store: HistoryStore) -> None:
    """ccxt maps 400/403/451 to ExchangeNotAvailable; a 451 (restricted region, ccxt#16044) is said once, never retried."""
    from features.sources.exchanges import BinanceSpot

    server.add("/api/v3/klines", (451, {"code": 0, "msg": "Service unavailable from a restricted location"}, {}))
    sleeps = Sleeps()
    with pytest.raises(ProviderError, match="HTTP 451: the exchange refuses requests from this region"):
        BinanceSpot("BTC", base_url=server.url, sleep=sleeps).fetch("ohlcv", T0, T0 + pd.Timedelta(days=2), ctx(store, "ohlcv"))
    assert len(server.queries("/api/v3/klines")) == 1 and sleeps == []


def test_a_series_the_model_reads_that_no_provider_refreshed_is_named() -> None:
    """`data update` exits 4 on these: every provider of the series skipped it (positioning, refreshed by Binance although
    CoinGlass had no key, is not one)."""
    from features.sources.update import SeriesOutcome, not_refreshed, series_read_by

    read = series_read_by(["funding", "positioning", "liqmem"])
    assert {"funding_binance", "positioning", "liquidations"} <= read and "exchange_flows" not in read
    outcomes = [SeriesOutcome("coinglass", "positioning", skipped="needs an API key: set CASCADE_RADAR_COINGLASS_API_KEY"),
                SeriesOutcome("binance-usdm-positioning", "positioning", new_rows=3),
                SeriesOutcome("coinglass", "liquidations", skipped="needs an API key: set CASCADE_RADAR_COINGLASS_API_KEY"),
                SeriesOutcome("coinalyze", "liquidations_coinalyze", skipped="quota exhausted; resume after 2026-12-02 12:00 UTC"),
                SeriesOutcome("coinmetrics", "exchange_flows", skipped="HTTP 500")]
    assert not_refreshed(outcomes, read) == {
        "liquidations": ["coinglass: needs an API key: set CASCADE_RADAR_COINGLASS_API_KEY"],
        "liquidations_coinalyze": ["coinalyze: quota exhausted; resume after 2026-12-02 12:00 UTC"]}


def test_the_daily_job_reads_provider_urls_from_settings(server: ProviderServer, settings: Settings, store: HistoryStore,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """CASCADE_RADAR_PROVIDER_URLS points a connector at another host (an emulator): the daily job's update goes there."""
    import json as _json

    from operations.daily import update_stores

    server.add("/api/v3/klines", (200, candles(T0, 3), {}))
    monkeypatch.setenv("CASCADE_RADAR_PROVIDER_URLS", _json.dumps({"binance-spot": server.url}))
    configured = Settings(data_dir=settings.data_dir, assets=["BTC"])
    assert configured.provider_urls == {"binance-spot": server.url}
    monkeypatch.setattr("features.sources.update.load_connectors", lambda: {"binance-spot": load_connectors()["binance-spot"]})
    monkeypatch.setattr("features.sources.update.last_complete_day", lambda: T0 + pd.Timedelta(days=2))
    notes, outcomes = update_stores(configured, log=lambda m: None)
    assert notes == ["BTC: +3 new rows"] and server.queries("/api/v3/klines")
    assert [(o.source, o.series, o.new_rows) for o in outcomes["BTC"]] == [("binance-spot", "ohlcv", 3)]
    assert HistoryStore(configured.data_path).last_day("ohlcv") == T0 + pd.Timedelta(days=2)


# ----------------------------------------------------------------------------- free taker flow, OI and long/short ratio
def test_binance_perpetual_klines_store_the_taker_flow_in_usd(server: ProviderServer, store: HistoryStore) -> None:
    """Kline field 10 is the taker-buy quote volume; taker sell = quote volume (field 7) - field 10. A null volume is missing."""
    from features.sources.exchanges import BinancePerpetualCandles

    t0, t1 = ms(T0), ms(T0 + pd.Timedelta(days=1))
    rows = [[t0, "2.00", "2.20", "1.90", "2.10", "1000", t0 + DAY_MS - 1, "2050.5", 77, "480", "984.25", "0"],
            [t1, "2.10", "2.30", "2.00", "2.20", "1200", t1 + DAY_MS - 1, None, 80, None, None, "0"]]
    server.add("/fapi/v1/klines", (200, rows, {}))
    frame = BinancePerpetualCandles("SOL", base_url=server.url, sleep=Sleeps()).fetch("ohlcv_perp", T0, T0 + pd.Timedelta(days=1),
                                                                                      ctx(store, "ohlcv_perp"))
    (query,) = server.queries("/fapi/v1/klines")
    assert query["symbol"] == "SOLUSDT" and query["interval"] == "1d" and int(query["startTime"]) == t0
    assert frame.loc[T0, "perp_taker_buy_usd"] == 984.25 and frame.loc[T0, "perp_taker_sell_usd"] == 2050.5 - 984.25 == 1066.25
    assert frame.loc[T0, "perp_volume_usd"] == 2050.5 and frame.loc[T0, "perp_close_usd"] == 2.10
    second = frame.loc[T0 + pd.Timedelta(days=1)]
    assert second["perp_close_usd"] == 2.20 and second[["perp_volume_usd", "perp_taker_buy_usd", "perp_taker_sell_usd"]].isna().all()
    assert store.append("ohlcv_perp", frame, "binance-usdm-candles").new_rows == 2
    # a price that is not a number, or a kline short of the taker fields, is the provider's error, named
    server.routes.clear()
    server.add("/fapi/v1/klines", (200, [[t0, "n/a", "2.2", "1.9", "2.1", "1000", t0 + DAY_MS - 1, "2050.5", 77, "480", "984.25", "0"]], {}))
    with pytest.raises(ProviderError, match=r"binance-usdm-candles GET /fapi/v1/klines: field 'kline field 1' is not a number"):
        BinancePerpetualCandles("SOL", base_url=server.url).fetch("ohlcv_perp", T0, T0, ctx(store, "ohlcv_perp"))
    server.routes.clear()
    server.add("/fapi/v1/klines", (200, [[t0, "2.0", "2.2", "1.9", "2.1", "1000", t0 + DAY_MS - 1, "2050.5"]], {}))
    with pytest.raises(ProviderError, match="too few fields"):
        BinancePerpetualCandles("SOL", base_url=server.url).fetch("ohlcv_perp", T0, T0, ctx(store, "ohlcv_perp"))


def coinalyze_markets(server: ProviderServer, asset: str = "BTC") -> None:
    server.add("/exchanges", (200, [{"name": "Binance", "code": "A"}, {"name": "Bybit", "code": "6"}, {"name": "Huobi", "code": "4"},
                                    {"name": "Tiny DEX", "code": "Z"}], {}))
    server.add("/future-markets", (200, [
        {"symbol": f"{asset}USDT_PERP.A", "exchange": "A", "base_asset": asset, "quote_asset": "USDT", "is_perpetual": True},
        {"symbol": f"{asset}USD_PERP.A", "exchange": "A", "base_asset": asset, "quote_asset": "USD", "is_perpetual": True},
        {"symbol": f"{asset}USDT.6", "exchange": "6", "base_asset": asset, "quote_asset": "USDT", "is_perpetual": True},
        {"symbol": f"{asset}USDT_PERP.Z", "exchange": "Z", "base_asset": asset, "quote_asset": "USDT", "is_perpetual": True},
        {"symbol": f"{asset}USDT_250926.A", "exchange": "A", "base_asset": asset, "quote_asset": "USDT", "is_perpetual": False},
        {"symbol": "ETHUSDT_PERP.A", "exchange": "A", "base_asset": "ETH", "quote_asset": "USDT", "is_perpetual": True}], {}))


def test_coinalyze_open_interest_sums_the_daily_close_of_every_major_perpetual_in_usd(server: ProviderServer, store: HistoryStore) -> None:
    """/open-interest-history: the major exchanges' perpetuals in one request (each symbol one call), interval daily, from/to
    in seconds (the running bar excluded), convert_to_usd=true; the bars' closes summed per UTC day; the key in the header."""
    from features.sources.coinalyze import Coinalyze

    coinalyze_markets(server)
    t = int(T0.timestamp())
    server.add("/open-interest-history", (200, [
        {"symbol": "BTCUSDT_PERP.A", "history": [{"t": t, "o": 7.0e9, "h": 7.4e9, "l": 6.9e9, "c": 7.2e9},
                                                 {"t": t + 86400, "o": 7.2e9, "h": 7.3e9, "l": 6.0e9, "c": 6.1e9}]},
        {"symbol": "BTCUSDT.6", "history": [{"t": t, "o": 5.0e9, "h": 5.5e9, "l": 4.9e9, "c": 5.3e9},
                                            {"t": t + 86400, "o": 5.3e9, "h": 5.3e9, "l": 4.1e9, "c": 4.2e9}]},
        {"symbol": "BTCUSD_PERP.A", "history": [{"t": t + 86400, "o": 1.0e9, "h": 1.0e9, "l": 0.9e9, "c": 0.95e9}]}], {}))
    connector = Coinalyze("BTC", key="ca-key", base_url=server.url, sleep=Sleeps())
    frame = connector.fetch("open_interest_coinalyze", T0, T0 + pd.Timedelta(days=1), ctx(store, "open_interest_coinalyze"))
    (query,) = server.queries("/open-interest-history")
    assert query["symbols"] == "BTCUSDT.6,BTCUSDT_PERP.A,BTCUSD_PERP.A"  # Binance and Bybit perpetuals; not the DEX, not the dated future
    assert query["interval"] == "daily" and query["convert_to_usd"] == "true"
    assert int(query["from"]) == t and int(query["to"]) == t + 2 * 86400 - 1  # seconds; today's running bar is not asked
    assert frame["coinalyze_oi_close_usd"].tolist() == [7.2e9 + 5.3e9, 6.1e9 + 4.2e9 + 0.95e9]  # the closes, summed per day
    assert all({k.lower(): v for k, v in headers.items()}["api_key"] == "ca-key" for _, _, headers in server.calls)
    assert store.append("open_interest_coinalyze", frame, "coinalyze").new_rows == 2
    # the market lists are asked once per coin and run, whatever the series
    server.add("/long-short-ratio-history", (200, [{"symbol": "BTCUSDT_PERP.A", "history": []}], {}))
    connector.fetch("positioning_coinalyze", T0, T0, ctx(store, "positioning_coinalyze"))
    assert len(server.queries("/exchanges")) == len(server.queries("/future-markets")) == 1


def test_coinalyze_long_short_ratio_reads_binances_usdt_perpetual_alone(server: ProviderServer, store: HistoryStore) -> None:
    """/long-short-ratio-history: a ratio does not sum over markets, so only the Binance USDT perpetual is asked (no
    convert_to_usd: a ratio has no currency); `r` is stored, one value per UTC day of the bar's open."""
    from features.sources.coinalyze import Coinalyze

    coinalyze_markets(server, "SOL")
    t = int(T0.timestamp())
    server.add("/long-short-ratio-history", (200, [{"symbol": "SOLUSDT_PERP.A", "history": [
        {"t": t, "r": 2.35, "l": 70.15, "s": 29.85}, {"t": t + 86400, "r": 0.81, "l": 44.75, "s": 55.25}]}], {}))
    frame = Coinalyze("SOL", key="ca-key", base_url=server.url, sleep=Sleeps()).fetch(
        "positioning_coinalyze", T0, T0 + pd.Timedelta(days=1), ctx(store, "positioning_coinalyze"))
    (query,) = server.queries("/long-short-ratio-history")
    assert query["symbols"] == "SOLUSDT_PERP.A" and query["interval"] == "daily" and "convert_to_usd" not in query
    assert int(query["from"]) == t and int(query["to"]) == t + 2 * 86400 - 1
    assert list(frame.index) == [T0, T0 + pd.Timedelta(days=1)] and frame["coinalyze_lsr_accounts"].tolist() == [2.35, 0.81]
    assert store.append("positioning_coinalyze", frame, "coinalyze").new_rows == 2
    # a coin with no Binance USDT perpetual listed is named, not read from another exchange
    server.routes.clear()
    coinalyze_markets(server, "SOL")
    with pytest.raises(ProviderError, match="no ADAUSDT perpetual of Binance listed"):
        Coinalyze("ADA", key="ca-key", base_url=server.url).fetch("positioning_coinalyze", T0, T0, ctx(store, "positioning_coinalyze"))


@pytest.mark.parametrize("series", ["open_interest_coinalyze", "positioning_coinalyze"])
def test_coinalyze_refusals_401_and_429(series: str, server: ProviderServer, store: HistoryStore) -> None:
    """A wrong key (401) is a named provider error; a 429 whose Retry-After is within the minute is waited out and retried, one
    beyond it stops Coinalyze at once (a spent quota, resumed later) — and one window of 40 calls / min serves every coin of a key."""
    from features.sources.coinalyze import HISTORIES, KEY_RATES, Coinalyze

    endpoint = HISTORIES[series].endpoint
    coinalyze_markets(server)
    server.add(endpoint, (401, {"message": "Unauthorized: invalid api_key"}, {}))
    with pytest.raises(ProviderError, match=rf"coinalyze {endpoint}: HTTP 401: .*invalid api_key"):
        Coinalyze("BTC", key="bad-key", base_url=server.url, sleep=Sleeps()).fetch(series, T0, T0, ctx(store, series))
    t = int(T0.timestamp())
    bar = {"t": t, "o": 1.0, "h": 1.0, "l": 1.0, "c": 1.0, "r": 1.0, "s": 50.0}
    server.routes.clear()
    server.calls.clear()
    coinalyze_markets(server)
    server.add(endpoint, (429, {"message": "Too many requests"}, {"Retry-After": "7"}),
               (200, [{"symbol": "BTCUSDT_PERP.A", "history": [bar]}], {}))
    sleeps = Sleeps()
    frame = Coinalyze("BTC", key="ca-key", base_url=server.url, sleep=sleeps).fetch(series, T0, T0, ctx(store, series))
    assert len(frame) == 1 and 7.0 in sleeps and len(server.queries(endpoint)) == 2
    server.routes.clear()
    coinalyze_markets(server)
    server.add(endpoint, (429, {"message": "Too many requests"}, {"Retry-After": "120"}))
    before = len(server.queries(endpoint))
    with pytest.raises(QuotaExhausted, match="quota exhausted; resume after"):
        Coinalyze("BTC", key="ca-key", base_url=server.url, sleep=Sleeps()).fetch(series, T0, T0, ctx(store, series))
    assert len(server.queries(endpoint)) == before + 1  # not retried
    a = Coinalyze("BTC", key="ca-key", base_url=server.url).source()
    b = Coinalyze("ETH", key="ca-key", base_url=server.url).source()
    assert a.rate is b.rate is KEY_RATES[("ca-key", server.url)]


def test_the_emulator_answers_coinalyze_histories_as_documented() -> None:
    """Seconds, daily bars only, at most 20 symbols, USD only when asked (coins at the day's close otherwise), the key."""
    import httpx

    from operations.emulator import ProviderEmulator

    days = pd.date_range(T0, periods=3, name="date")
    data = {"BTC": {"open_interest_coinalyze": pd.DataFrame({"coinalyze_oi_close_usd": [8e9, 9e9, 1e10]}, index=days),
                    "positioning_coinalyze": pd.DataFrame({"coinalyze_lsr_accounts": [1.5, 2.0, 0.5]}, index=days),
                    "ohlcv_perp": pd.DataFrame({"perp_close_usd": [40000.0, 45000.0, 50000.0]}, index=days)}}
    t = int(T0.timestamp())
    query = {"symbols": "BTCUSDT_PERP.A", "interval": "daily", "from": t + 86400, "to": t + 3 * 86400 - 1}
    with ProviderEmulator(data) as emulator:
        url, key = f"{emulator.url}/coinalyze", {"api_key": "k"}
        oi = httpx.get(f"{url}/open-interest-history", params={**query, "convert_to_usd": "true"}, headers=key).json()
        assert oi == [{"symbol": "BTCUSDT_PERP.A", "history": [{"t": t + 86400, "o": 9e9, "h": 9e9, "l": 9e9, "c": 9e9},
                                                              {"t": t + 2 * 86400, "o": 1e10, "h": 1e10, "l": 1e10, "c": 1e10}]}]
        coins = httpx.get(f"{url}/open-interest-history", params=query, headers=key).json()[0]["history"]
        assert [bar["c"] for bar in coins] == [pytest.approx(9e9 / 45000), pytest.approx(1e10 / 50000)]
        lsr = httpx.get(f"{url}/long-short-ratio-history", params=query, headers=key).json()[0]["history"][0]
        assert lsr == {"t": t + 86400, "r": 2.0, "l": pytest.approx(200 / 3), "s": pytest.approx(100 / 3)}
        assert httpx.get(f"{url}/long-short-ratio-history", params={**query, "interval": "1hour"}, headers=key).status_code == 400
        many = ",".join(f"C{i}USDT_PERP.A" for i in range(21))
        assert httpx.get(f"{url}/open-interest-history", params={**query, "symbols": many}, headers=key).status_code == 400
        assert httpx.get(f"{url}/open-interest-history", params=query).status_code == 401
