"""Exchanges through ccxt: Binance spot candles, Binance USD-M funding and OI, Bybit v5 open interest.

ccxt's implicit REST methods are used (``public_get_klines`` …): they go through ccxt's request
machinery and per-exchange rate limiter without downloading every market at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import (
    NoNetwork,
    ProviderError,
    QuotaExhausted,
    RetryPolicy,
    day_start,
    require,
    require_float,
    require_list,
    utc_days,
)

DAY_MS = 86_400_000


def ccxt_call(provider: str, endpoint: str, method: Callable[[dict], Any], params: dict[str, Any], retry: RetryPolicy,
              sleep: Callable[[float], None]) -> Any:  # noqa: ANN401 - JSON
    """One ccxt request with backoff on 429 and 5xx, and errors that name provider and endpoint."""
    for attempt in range(retry.attempts):
        try:
            return method(params)
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection) as exc:
            if attempt + 1 == retry.attempts:
                raise QuotaExhausted(provider, endpoint, pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(minutes=5)) from exc
        except (ccxt.ExchangeNotAvailable, ccxt.RequestTimeout) as exc:
            if attempt + 1 == retry.attempts:
                raise ProviderError(provider, endpoint, f"unavailable after {retry.attempts} attempts: {str(exc)[:150]}") from None
        except ccxt.NetworkError as exc:
            raise NoNetwork(provider, endpoint, f"cannot reach the exchange ({str(exc)[:120]})") from None
        except ccxt.BaseError as exc:
            raise ProviderError(provider, endpoint, str(exc)[:200]) from None
        sleep(retry.delay(attempt, None))
    raise AssertionError("unreachable")


def make_exchange(cls: type, base_url: str | None, keys: tuple[str, ...], timeout_ms: int = 30_000) -> ccxt.Exchange:
    """A ccxt exchange; with ``base_url`` its REST hosts point there (tests serve recorded shapes locally)."""
    exchange = cls({"enableRateLimit": True, "timeout": timeout_ms})
    if base_url:
        for key in keys:
            original = exchange.urls["api"][key]
            path = original.split("://", 1)[1].split("/", 1)
            exchange.urls["api"][key] = base_url.rstrip("/") + ("/" + path[1] if len(path) > 1 else "")
    return exchange


def _ms(day: pd.Timestamp) -> int:
    return day_start(day)


def _days(start: pd.Timestamp, days: int) -> list[pd.Timestamp]:
    return [start + pd.Timedelta(days=i) for i in range(days)]


class ExchangeConnector(Connector):
    retry = RetryPolicy(attempts=5, backoff=1.0)

    def call(self, endpoint: str, method: Callable[[dict], Any], params: dict[str, Any]) -> Any:  # noqa: ANN401
        return ccxt_call(self.name, endpoint, method, params, self.retry, self.sleep)

    def pair(self) -> str:
        return f"{self.asset}USDT"


class BinanceSpot(ExchangeConnector):
    name = "binance-spot"
    plans = (SeriesPlan("ohlcv"),)
    limits = "klines: weight 2 of 6,000/min; 1,000 days per request"
    assets = ("BTC", "ETH")

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binance, self.base_url, ("public",))
        endpoint = "GET /api/v3/klines"
        rows: list[list[Any]] = []
        cursor = day_start(start)
        stop = day_start(end)
        while cursor <= stop:
            page = require_list(self.call(endpoint, ex.public_get_klines, {"symbol": self.pair(), "interval": "1d", "startTime": cursor,
                                                                           "endTime": stop + DAY_MS - 1, "limit": 1000}),
                                "candles", self.name, endpoint)
            if not page:
                break
            for candle in page:
                if not isinstance(candle, list) or len(candle) < 8:
                    raise ProviderError(self.name, endpoint, f"candle has too few fields: {str(candle)[:80]}")
            rows += page
            cursor = int(page[-1][0]) + DAY_MS
            if len(page) < 1000:
                break
        if not rows:
            return pd.DataFrame()
        arr = np.array([[float(c[i]) for i in (0, 1, 2, 3, 4, 5, 7)] for c in rows])
        frame = pd.DataFrame(arr[:, 1:], columns=["open_usd", "high_usd", "low_usd", "close_usd", "volume_base", "volume_usd"],
                             index=utc_days(arr[:, 0].astype("int64"), "ms"))
        return frame[~frame.index.duplicated(keep="last")].loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /api/v3/klines: [open time, open, high, low, close, volume, close time, quote volume, trades, ...] as strings."""
        return {"/api/v3/klines": [[_ms(d), "100.0", "110.0", "90.0", "105.0", "12.5", _ms(d) + DAY_MS - 1, "1312.5", 50, "6", "630", "0"]
                                   for d in _days(start, days)]}


class BinanceFunding(ExchangeConnector):
    name = "binance-usdm-funding"
    plans = (SeriesPlan("funding_binance", "2019-09-10"),)
    limits = "fundingRate: 500 requests / 5 min; 1,000 events (~333 days) per request"

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binanceusdm, self.base_url, ("fapiPublic",))
        endpoint = "GET /fapi/v1/fundingRate"
        events: list[tuple[int, float]] = []
        cursor, stop = day_start(start), day_start(end) + DAY_MS - 1
        while cursor <= stop:
            page = require_list(self.call(endpoint, ex.fapipublic_get_fundingrate,
                                          {"symbol": self.pair(), "startTime": cursor, "endTime": stop, "limit": 1000}),
                                "funding events", self.name, endpoint)
            if not page:
                break
            for row in page:
                events.append((int(require(row, "fundingTime", self.name, endpoint)), require_float(row, "fundingRate", self.name, endpoint)))
            cursor = events[-1][0] + 1
            if len(page) < 1000:
                break
        if not events:
            return pd.DataFrame()
        frame = pd.DataFrame(events, columns=["t", "rate"]).drop_duplicates("t")
        frame["date"] = utc_days(frame["t"].to_numpy(), "ms")
        daily = frame.groupby("date")["rate"].agg(["mean", "count"])
        return pd.DataFrame({"funding_rate_binance_frac8h": daily["mean"], "funding_events": daily["count"].astype(float)}).loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /fapi/v1/fundingRate: [{symbol, fundingTime (ms), fundingRate (string fraction), markPrice}] every 8 h."""
        return {"/fapi/v1/fundingRate": [{"symbol": self.pair(), "fundingTime": _ms(d) + h * 3_600_000, "fundingRate": "0.00010000", "markPrice": "100.0"}
                                         for d in _days(start, days) for h in (0, 8, 16)]}


class BinanceOpenInterest(ExchangeConnector):
    name = "binance-usdm-oi"
    plans = (SeriesPlan("open_interest_exchange", "2018-01-01"),)
    limits = "openInterestHist: last 30 days only, 500 points per request; 1,000 requests / 5 min"

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binanceusdm, self.base_url, ("fapiData",))
        endpoint = "GET /futures/data/openInterestHist"
        # the provider serves ~30 days; the value stamped 00:00 of D is the close of D-1
        first = max(start, end - pd.Timedelta(days=28))
        page = require_list(self.call(endpoint, ex.fapidata_get_openinteresthist, {"symbol": self.pair(), "period": "1d", "limit": 500,
                                                                                  "startTime": day_start(first + pd.Timedelta(days=1)),
                                                                                  "endTime": day_start(end + pd.Timedelta(days=1))}),
                            "open-interest points", self.name, endpoint)
        if not page:
            return pd.DataFrame()
        t = [int(require(r, "timestamp", self.name, endpoint)) for r in page]
        v = [require_float(r, "sumOpenInterestValue", self.name, endpoint) for r in page]
        frame = pd.DataFrame({"exchange_oi_close_usd": v}, index=utc_days(t, "ms") - pd.Timedelta(days=1))
        return frame[~frame.index.duplicated(keep="last")].sort_index().loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /futures/data/openInterestHist: [{symbol, sumOpenInterest, sumOpenInterestValue, timestamp (ms)}]."""
        return {"/futures/data/openInterestHist": [{"symbol": self.pair(), "sumOpenInterest": "1000.0", "sumOpenInterestValue": "100000000.0",
                                                    "timestamp": _ms(d + pd.Timedelta(days=1))} for d in _days(start, days)]}


class BybitOpenInterest(ExchangeConnector):
    name = "bybit-oi"
    needs_price = True  # coins are valued at the stored close of each day
    plans = (SeriesPlan("open_interest_bybit", "2020-03-01"),)
    limits = "v5 open-interest: 200 points per page (cursor); 600 requests / 5 s per IP"

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.bybit, self.base_url, ("public",))
        endpoint = "GET /v5/market/open-interest"
        points: list[tuple[int, float]] = []
        params: dict[str, Any] = {"category": "linear", "symbol": self.pair(), "intervalTime": "1d", "limit": 200,
                                  "startTime": day_start(start + pd.Timedelta(days=1)), "endTime": day_start(end + pd.Timedelta(days=1))}
        for _ in range(1000):  # pages; a bound instead of trusting the cursor forever
            body = self.call(endpoint, ex.public_get_v5_market_open_interest, params)
            if not isinstance(body, dict) or str(body.get("retCode")) != "0":
                msg = body.get("retMsg") if isinstance(body, dict) else str(body)[:100]
                raise ProviderError(self.name, endpoint, f"error response: {msg}")
            result = require(body, "result", self.name, endpoint)
            rows = require(result, "list", self.name, endpoint)
            for row in rows:
                points.append((int(require(row, "timestamp", self.name, endpoint)), require_float(row, "openInterest", self.name, endpoint)))
            cursor = result.get("nextPageCursor")
            if not rows or not cursor:
                break
            params = {**params, "cursor": cursor}
        if not points:
            return pd.DataFrame()
        frame = pd.DataFrame(points, columns=["t", "coins"]).drop_duplicates("t").sort_values("t")
        # stamped at 00:00 UTC of D = the close of D-1, as Binance's
        index = utc_days(frame["t"].to_numpy(), "ms") - pd.Timedelta(days=1)
        coins = pd.Series(frame["coins"].to_numpy(), index=index)
        price = context.price.reindex(index) if context.price is not None else pd.Series(float("nan"), index=index)
        out = pd.DataFrame({"bybit_oi_coin": coins, "bybit_oi_close_usd": coins * price})
        return out.loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /v5/market/open-interest: {retCode, retMsg, result: {list: [{openInterest, timestamp}], nextPageCursor}}."""
        rows = [{"openInterest": "5000.0", "timestamp": str(_ms(d + pd.Timedelta(days=1)))} for d in reversed(_days(start, days))]
        return {"/v5/market/open-interest": {"retCode": 0, "retMsg": "OK", "result": {"symbol": self.pair(), "category": "linear", "list": rows,
                                                                                         "nextPageCursor": ""}, "time": 0}}
