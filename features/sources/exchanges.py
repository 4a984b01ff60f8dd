"""Exchanges through ccxt: Binance spot and USD-M perpetual candles, Binance USD-M funding, OI and positioning
(long/short ratios, taker volume), Bybit v5 open interest.

ccxt's implicit REST methods are used (``public_get_klines`` …): they go through ccxt's request
machinery and per-exchange rate limiter without downloading every market at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import ccxt
import numpy as np
import pandas as pd

from cascade_radar.config import ASSETS
from cascade_radar.rules import today_utc
from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import (
    NoNetwork,
    ProviderError,
    QuotaExhausted,
    RetryPolicy,
    as_float,
    day_start,
    require,
    require_float,
    require_list,
    utc_days,
)

DAY_MS = 86_400_000


REFUSED_STATUS = re.compile(r" (400|403|451) ")
REFUSALS = {"451": "the exchange refuses requests from this region (use a host in an allowed region, or another provider)",
            "403": "forbidden (the exchange blocks this client or region)", "400": "bad request"}


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
            # ccxt (4.5.90, base/exchange.py httpExceptions) maps HTTP 400, 403 and 451 to ExchangeNotAvailable too, and its
            # message carries the status: those are refusals — 451 is Binance's answer to a restricted region (ccxt#16044) —
            # and retrying them only spends the request weight
            refused = REFUSED_STATUS.search(str(exc))
            if refused:
                why = REFUSALS.get(refused.group(1), "the request was refused")
                raise ProviderError(provider, endpoint, f"HTTP {refused.group(1)}: {why}; not retried ({str(exc)[:120]})") from None
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


KLINE_FIELDS = 11  # of the documented 12: open time, OHLC, volume, close time, quote volume, trades, taker-buy base, taker-buy quote
KLINE_COLUMNS = (0, 1, 2, 3, 4, 5, 7, 9, 10)  # open time, open, high, low, close, base volume, quote volume, taker-buy base, taker-buy quote


def fetch_klines(connector: ExchangeConnector, endpoint: str, method: Callable[[dict], Any], start: pd.Timestamp,
                 end: pd.Timestamp) -> np.ndarray:
    """Daily klines start..end as rows (open time, open, high, low, close, base volume, quote volume, taker-buy base volume,
    taker-buy quote volume); Binance's spot and USD-M kline endpoints answer in the same shape:
    https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data
    (``limit`` default 500, max 1,500; weight 5 for 500-1,000, 10 above) and
    https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints (Kline/Candlestick data: max 1,000).
    A null volume (Binance fills every field; the provider emulator sends null where its reference has no value) is kept
    missing; a price or time that is not a number is a ProviderError."""
    rows: list[list[float]] = []
    cursor, stop = day_start(start), day_start(end)
    while cursor <= stop:
        page = require_list(connector.call(endpoint, method, {"symbol": connector.pair(), "interval": "1d", "startTime": cursor,
                                                              "endTime": stop + DAY_MS - 1, "limit": 1000}), "candles", connector.name, endpoint)
        if not page:
            break
        for candle in page:
            if not isinstance(candle, list) or len(candle) < KLINE_FIELDS:
                raise ProviderError(connector.name, endpoint, f"candle has too few fields (documented: 12): {str(candle)[:80]}")
            rows.append([_kline_number(connector, endpoint, candle, i) for i in KLINE_COLUMNS])
        cursor = int(page[-1][0]) + DAY_MS
        if len(page) < 1000:
            break
    return np.array(rows, dtype=float).reshape(-1, len(KLINE_COLUMNS))


def _kline_number(connector: ExchangeConnector, endpoint: str, candle: list[Any], i: int) -> float:
    if candle[i] is None and i >= 5:  # a volume field
        return float("nan")
    return as_float(candle[i], f"kline field {i}", connector.name, endpoint)


def klines_example(path: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
    """Klines as documented: [open time, open, high, low, close, volume, close time, quote volume, trades, taker-buy base volume,
    taker-buy quote volume, ignore]."""
    return {path: [[_ms(d), "100.0", "110.0", "90.0", "105.0", "12.5", _ms(d) + DAY_MS - 1, "1312.5", 50, "6", "630", "0"]
                   for d in _days(start, days)]}


class BinanceSpot(ExchangeConnector):
    name = "binance-spot"
    plans = (SeriesPlan("ohlcv"),)
    limits = "klines: weight 2 of 6,000/min; 1,000 days per request"
    assets = ("BTC", "ETH")

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binance, self.base_url, ("public",))
        arr = fetch_klines(self, "GET /api/v3/klines", ex.public_get_klines, start, end)
        if not len(arr):
            return pd.DataFrame()
        frame = pd.DataFrame(arr[:, 1:7], columns=["open_usd", "high_usd", "low_usd", "close_usd", "volume_base", "volume_usd"],
                             index=utc_days(arr[:, 0].astype("int64"), "ms"))
        return frame[~frame.index.duplicated(keep="last")].loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /api/v3/klines: [open time, open, high, low, close, volume, close time, quote volume, trades, ...] as strings."""
        return klines_example("/api/v3/klines", start, days)


class BinancePerpetualCandles(ExchangeConnector):
    """The price of every coin, and its free taker flow: Binance USD-M ``<COIN>USDT`` perpetual daily candles (the reference
    history's source). Kline field 10 is the taker-buy quote volume and field 7 the quote volume
    (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Kline-Candlestick-Data), so
    taker sell = quote volume - taker-buy quote volume, in USDT (taken as USD), for every day since listing."""

    name = "binance-usdm-candles"
    plans = (SeriesPlan("ohlcv_perp", "2019-09-08"),)
    limits = "fapi klines: weight 5 per 1,000-day request of 2,400/min"
    assets = ASSETS

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binanceusdm, self.base_url, ("fapiPublic",))
        arr = fetch_klines(self, "GET /fapi/v1/klines", ex.fapipublic_get_klines, start, end)
        if not len(arr):
            return pd.DataFrame()
        quote, taker_buy = arr[:, 6], arr[:, 8]
        frame = pd.DataFrame({"perp_open_usd": arr[:, 1], "perp_high_usd": arr[:, 2], "perp_low_usd": arr[:, 3], "perp_close_usd": arr[:, 4],
                              "perp_volume_usd": quote, "perp_taker_buy_usd": taker_buy, "perp_taker_sell_usd": quote - taker_buy},
                             index=utc_days(arr[:, 0].astype("int64"), "ms"))
        return frame[~frame.index.duplicated(keep="last")].loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /fapi/v1/klines: the spot kline shape (open time, OHLC, volume, close time, quote volume, trades, taker-buy base
        and quote volume, ignore)."""
        return klines_example("/fapi/v1/klines", start, days)


RATIO_ENDPOINTS = {  # column -> (endpoint, ccxt method name)
    "lsr_global_accounts": ("/futures/data/globalLongShortAccountRatio", "fapidata_get_globallongshortaccountratio"),
    "lsr_top_accounts": ("/futures/data/topLongShortAccountRatio", "fapidata_get_toplongshortaccountratio"),
    "lsr_top_positions": ("/futures/data/topLongShortPositionRatio", "fapidata_get_toplongshortpositionratio"),
}
TAKER_ENDPOINT = "/futures/data/takerlongshortRatio"


class BinancePositioning(ExchangeConnector):
    """Binance's public long/short ratios (all accounts, top-trader accounts, top-trader positions) and taker volume.

    Free and keyless, but the provider keeps **only the last 30 days**: run `data update` at least monthly, or
    use CoinGlass (key) for history. The ratios are the same Binance series CoinGlass serves; taker volume here is
    Binance only (``binance_taker_*``; CoinGlass's ``taker_*`` is Binance+OKX+Bybit), so it fills the taker share
    only where the aggregate is missing. Each value is stamped with the UTC day of its timestamp: a snapshot taken
    at 00:00 of D is at worst one day late, never early, so nothing reaches a day before it was published.
    """

    name = "binance-usdm-positioning"
    needs_price = True  # taker volume comes in coins; valued at the stored close of the day
    plans = (SeriesPlan("positioning", "2020-05-16"),)
    limits = "futures/data: last 30 days only, 500 points per request; 1,000 requests / 5 min per IP"
    assets = ASSETS

    # Binance keeps the futures/data series for the latest 30 days only and refuses a startTime before that window with
    # HTTP 400, code -1130 "parameter 'startTime' is invalid" (ccxt issue 23712): start 28 days before *today*, not 30
    # days before the last day asked (00:00 UTC of 30 days ago is already outside the window, and one refusal loses all
    # four endpoints).
    WINDOW_DAYS = 28

    @staticmethod
    def today() -> pd.Timestamp:
        """Today (UTC); the tests pin it."""
        return pd.Timestamp(today_utc())

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        ex = make_exchange(ccxt.binanceusdm, self.base_url, ("fapiData",))
        first = max(start, self.today() - pd.Timedelta(days=self.WINDOW_DAYS - 1))
        if first > end:
            return pd.DataFrame()  # every day asked is older than the provider keeps
        params = {"symbol": self.pair(), "period": "1d", "limit": 500, "startTime": day_start(first), "endTime": day_start(end) + DAY_MS - 1}
        columns: dict[str, pd.Series] = {}
        for column, (path, method) in RATIO_ENDPOINTS.items():
            endpoint = f"GET {path}"
            page = require_list(self.call(endpoint, getattr(ex, method), params), "ratio points", self.name, endpoint)
            columns[column] = self._series(page, "longShortRatio", endpoint)
        endpoint = f"GET {TAKER_ENDPOINT}"
        page = require_list(self.call(endpoint, ex.fapidata_get_takerlongshortratio, params), "taker points", self.name, endpoint)
        buy, sell = self._series(page, "buyVol", endpoint), self._series(page, "sellVol", endpoint)
        price = context.price.reindex(buy.index) if context.price is not None else pd.Series(float("nan"), index=buy.index)
        columns["binance_taker_buy_usd"], columns["binance_taker_sell_usd"] = buy * price, sell * price
        frame = pd.DataFrame(columns).dropna(how="all")
        return frame.loc[start:end] if len(frame) else pd.DataFrame()

    def _series(self, page: list[dict[str, Any]], field: str, endpoint: str) -> pd.Series:
        if not page:  # an empty answer: no days (a day index still, or joining it to the other endpoints' days breaks the frame)
            return pd.Series(dtype="float64", index=pd.DatetimeIndex([], name="date"))
        t = [int(require(r, "timestamp", self.name, endpoint)) for r in page]
        values = pd.Series([require_float(r, field, self.name, endpoint) for r in page], index=utc_days(t, "ms"))
        return values[~values.index.duplicated(keep="last")].sort_index()

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """futures/data ratios: [{symbol, longShortRatio, longAccount, shortAccount, timestamp (ms)}] (position ratio: the same
        names); takerlongshortRatio: [{buySellRatio, buyVol, sellVol, timestamp}], volumes in coins."""
        ratio = [{"symbol": self.pair(), "longShortRatio": "1.8105", "longAccount": "0.6442", "shortAccount": "0.3558", "timestamp": _ms(d)}
                 for d in _days(start, days)]
        taker = [{"buySellRatio": "1.1603", "buyVol": "298.28", "sellVol": "257.066", "timestamp": _ms(d)} for d in _days(start, days)]
        return {**{path: ratio for path, _ in RATIO_ENDPOINTS.values()}, TAKER_ENDPOINT: taker}


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
        # https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Open-Interest-Statistics:
        # period 1d, limit max 500, "only the data of the latest 1 month is available", 1,000 requests / 5 min per IP.
        # The provider serves ~30 days; the value stamped 00:00 of D is the close of D-1
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
        # https://bybit-exchange.github.io/docs/v5/market/open-interest: category linear, intervalTime 1d, limit 1-200, cursor
        # pagination, startTime / endTime in ms; history back to the symbol's launch
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
                # Bybit v5 (/v5/market/open-interest, changelog 2025): `openInterest` is the sum of both sides; newer responses
                # carry `singleOpenInterest`, the one-sided figure every other OI series here uses. Without it, half the sum.
                one_side = (require_float(row, "singleOpenInterest", self.name, endpoint) if "singleOpenInterest" in row
                            else require_float(row, "openInterest", self.name, endpoint) / 2.0)
                points.append((int(require(row, "timestamp", self.name, endpoint)), one_side))
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
        """GET /v5/market/open-interest: {retCode, retMsg, result: {list: [{openInterest (both sides), singleOpenInterest (one
        side), timestamp}], nextPageCursor}}."""
        rows = [{"openInterest": "10000.0", "singleOpenInterest": "5000.0", "timestamp": str(_ms(d + pd.Timedelta(days=1)))}
                for d in reversed(_days(start, days))]
        return {"/v5/market/open-interest": {"retCode": 0, "retMsg": "OK", "result": {"symbol": self.pair(), "category": "linear", "list": rows,
                                                                                         "nextPageCursor": ""}, "time": 0}}
