"""A provider emulator: one local HTTP server (real sockets, 127.0.0.1 only) that answers every live provider's documented
endpoints with responses of the documented shape, built from stored days (the reference history after a cut date) —
so the daily job can be rehearsed end to end on a machine without internet (`cascade-radar rehearse`).

Each provider is served under its own path prefix (``http://127.0.0.1:PORT/<connector name>``), which is what the
connectors' ``provider_urls`` setting points at; ccxt keeps the API's own path behind it (``/binance-spot/api/v3/klines``).
The values are converted *to* the provider's documented units here (CoinGlass funding in percent per 8 h, BGeometrics
STH-MVRV rather than NUPL, Binance funding as 8-hourly events, OI stamped 00:00 UTC of the next day, Coin Metrics numbers
as strings), independently of the connectors that convert them back: a unit or stamping slip on either side shows up as
a mismatch in the rehearsal.

Limits are played as documented where a client could break them: CoinGlass ``limit`` at most 1,000 bars, Binance
futures/data only the last 30 days (older ``startTime``: HTTP 400, code -1130), CoinGlass and Coinalyze keys checked.
``faults`` makes a provider answer a documented failure instead: 429 with or without Retry-After, 5xx, 451, -1130 or a
malformed page.

Sources (the same documents the connectors cite): Binance spot ``GET /api/v3/klines`` and USD-M ``/fapi/v1/klines`` (12 fields,
taker-buy base and quote volume in fields 9 and 10), ``/fapi/v1/fundingRate``, ``/futures/data/openInterestHist`` and the
long/short ratio and taker endpoints (Binance API docs); Bybit v5 ``/v5/market/open-interest``; CoinGlass API v4
(``{code, msg, data}``, ``time`` in ms); Coinalyze v1 (``/exchanges``, ``/future-markets``, ``/liquidation-history``,
``/open-interest-history``, ``/long-short-ratio-history``: ``interval=daily``, ``from`` / ``to`` in seconds, at most 20
symbols, ``convert_to_usd``); Coin Metrics API v4 ``/timeseries/asset-metrics``; bitcoin-data.com (BGeometrics) ``/v1/<metric>``.

Where the reference has no value of a field a provider always fills (a Binance kline's taker volume before the reference's
klines files start), the field is sent as ``null``, which the connector keeps missing: the emulator never invents a value.
The reference holds no Coinalyze series: ``STAND_INS`` serves the reference series that measures the same quantity in
their place (the rehearsal then expects exactly those values stored under the Coinalyze series).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pandas as pd

DAY_MS = 86_400_000
BINANCE_WINDOW_DAYS = 30  # futures/data keeps the latest 30 days (Binance USD-M docs)
COINGLASS_MAX_LIMIT = 1000  # CoinGlass v4: `limit` at most 1,000
REFERENCE_SCOPE = "Binance,OKX,Bybit"

# What each provider delivers, by connector and stored series: the store columns its documented fields map to. The
# rehearsal's expectation is the reference's values of exactly these columns after the cut (nothing else can arrive live).
PROVIDES: dict[str, dict[str, tuple[str, ...]]] = {
    "binance-spot": {"ohlcv": ("open_usd", "high_usd", "low_usd", "close_usd", "volume_base", "volume_usd")},
    "binance-usdm-candles": {"ohlcv_perp": ("perp_open_usd", "perp_high_usd", "perp_low_usd", "perp_close_usd", "perp_volume_usd",
                                            "perp_taker_buy_usd", "perp_taker_sell_usd")},
    "binance-usdm-funding": {"funding_binance": ("funding_rate_binance_frac8h", "funding_events")},
    "binance-usdm-oi": {"open_interest_exchange": ("exchange_oi_close_usd",)},
    "binance-usdm-positioning": {"positioning": ("lsr_global_accounts", "lsr_top_accounts", "lsr_top_positions")},
    "bybit-oi": {},
    "coinglass": {
        "liquidations": ("liq_long_usd", "liq_short_usd"),
        "liquidations_binance": ("binance_liq_long_usd", "binance_liq_short_usd"),
        "open_interest": ("oi_close_usd", "oi_high_usd", "oi_low_usd"),
        "funding_aggregated": ("funding_rate_oiw_frac8h", "funding_rate_volw_frac8h"),
        "positioning": ("lsr_global_accounts", "lsr_top_accounts", "lsr_top_positions", "taker_buy_usd", "taker_sell_usd"),
    },
    "coinalyze": {"open_interest_coinalyze": ("coinalyze_oi_close_usd",), "positioning_coinalyze": ("coinalyze_lsr_accounts",)},
    "coinmetrics": {"exchange_flows": ("inflow_coin", "outflow_coin", "supply_on_exchanges_coin", "reference_price_usd", "market_cap_usd", "mvrv")},
    "bgeometrics": {"onchain_cohorts": ("sth_sopr", "sopr", "sth_nupl", "sth_realized_price_usd")},
}

# Series no reference file holds, served from a reference series in their place: series -> (reference series, {its column:
# the series' column}). Coinalyze's long/short ratio of Binance's USDT perpetual is an account ratio of that market, the quantity
# of the reference's Binance `lsr_global_accounts`; its OI (the major exchanges' perpetuals) is a part of the all-exchange aggregate `oi_close_usd` — a
# stand-in of another level, so the rehearsal checks the plumbing (shape, seconds, USD, the sum over markets), not the level.
STAND_INS: dict[str, tuple[str, dict[str, str]]] = {
    "open_interest_coinalyze": ("open_interest", {"oi_close_usd": "coinalyze_oi_close_usd"}),
    "positioning_coinalyze": ("positioning", {"lsr_global_accounts": "coinalyze_lsr_accounts"}),
    "liquidations_coinalyze": ("liquidations", {"liq_long_usd": "coinalyze_liq_long_usd", "liq_short_usd": "coinalyze_liq_short_usd"}),
}
COINALYZE_MAX_SYMBOLS = 20  # Coinalyze v1: at most 20 symbols per request


def stored_or_stand_in(read: Callable[[str], pd.DataFrame], series: str) -> pd.DataFrame:
    """The stored days of ``series`` (``read`` a store's series); where none are stored and ``STAND_INS`` declares one, its
    reference series' columns under this series' names."""
    frame = read(series)
    if len(frame.dropna(how="all")) or series not in STAND_INS:
        return frame
    source, columns = STAND_INS[series]
    return read(source).reindex(columns=list(columns)).rename(columns=columns).reindex(columns=list(frame.columns))


RECENT_ONLY = ("binance-usdm-oi", "binance-usdm-positioning")  # futures/data: the last 30 days (older startTime: -1130)
FAULTS = ("429", "429-retry-after", "5xx", "5xx-once", "451", "-1130", "malformed")


@dataclass
class Fault:
    """Answer every request to a provider with a documented failure (``kind`` in ``FAULTS``); ``5xx-once`` fails the first
    request only (a transient outage the retry must ride out)."""

    kind: str
    seen: int = 0

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise ValueError(f"unknown fault '{self.kind}'; known: {', '.join(FAULTS)}")

    def reply(self) -> Reply | None:
        self.seen += 1
        if self.kind == "429":  # CoinGlass and Binance send no Retry-After
            return 429, {"code": "429", "msg": "Too Many Requests"}, {}
        if self.kind == "429-retry-after":  # Coinalyze: Retry-After in seconds
            return 429, {"message": "rate limit exceeded"}, {"Retry-After": "120"}
        if self.kind == "5xx" or (self.kind == "5xx-once" and self.seen == 1):
            return 503, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>", {"Content-Type": "text/html"}
        if self.kind == "451":  # Binance's answer from a restricted region
            return 451, {"code": 0, "msg": "Service unavailable from a restricted location according to 'b. Eligibility' in "
                                           "https://www.binance.com/en/terms. Please contact customer service if you believe you "
                                           "received this message in error."}, {}
        if self.kind == "-1130":
            return 400, {"code": -1130, "msg": "Data sent for parameter 'startTime' is not valid."}, {}
        if self.kind == "malformed":
            return 200, '{"code": "0", "data": [{"time": 16', {}
        return None


Reply = tuple[int, Any, dict[str, str]]  # status, JSON-able body or text, headers


Answer = Callable[[str, dict[str, str], dict[str, str]], "Reply"]  # (path, query, lower-cased headers) -> reply


def serve_json(answer: Answer) -> ThreadingHTTPServer:
    """A started loopback server (127.0.0.1, a free port, a daemon thread) that answers every GET with ``answer``: the body as
    JSON (or text as given), ``Content-Type`` from the reply's headers or JSON. Stop it with ``shutdown`` + ``server_close``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parsed = urlparse(self.path)
            query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
            status, body, headers = answer(parsed.path, query, {k.lower(): v for k, v in self.headers.items()})
            headers = dict(headers)
            payload = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _text(value: float) -> str:
    """A number as the providers write it in JSON strings, exactly (repr round-trips a float)."""
    return repr(float(value))


def _num(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _ms(day: pd.Timestamp) -> int:
    return int(pd.Timestamp(day).value // 1_000_000)


def _int(query: dict[str, str], key: str, default: int | None = None) -> int | None:
    value = query.get(key)
    return int(value) if value not in (None, "") else default


@dataclass
class ProviderEmulator:
    """Serves ``data[asset][series]`` (frames in the store's columns and units) as every provider documents it."""

    data: dict[str, dict[str, pd.DataFrame]]
    faults: dict[str, Fault] = field(default_factory=dict)
    now: Callable[[], pd.Timestamp] = lambda: pd.Timestamp.now(tz="UTC").tz_localize(None)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # provider, path, query
    errors: list[str] = field(default_factory=list)  # the emulator's own failures: each one a rehearsal mismatch

    # ------------------------------------------------------------------ server
    def __enter__(self) -> ProviderEmulator:
        def route(path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
            provider, _, rest = path.lstrip("/").partition("/")
            return self.answer(provider, "/" + rest, query, headers)

        self.httpd = serve_json(route)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def provider_urls(self) -> dict[str, str]:
        """The ``provider_urls`` setting that sends every connector here."""
        return {name: f"{self.url}/{name}" for name in PROVIDES}

    def requests_to(self, provider: str) -> int:
        return sum(1 for p, _, _ in self.calls if p == provider)

    # ------------------------------------------------------------------ dispatch
    def answer(self, provider: str, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        self.calls.append((provider, path, query))
        fault = self.faults.get(provider)
        if fault is not None and (reply := fault.reply()) is not None:
            return reply
        handler = {
            "binance-spot": self._binance, "binance-usdm-candles": self._binance, "binance-usdm-funding": self._binance,
            "binance-usdm-oi": self._binance, "binance-usdm-positioning": self._binance, "bybit-oi": self._bybit,
            "coinglass": self._coinglass, "coinalyze": self._coinalyze, "coinmetrics": self._coinmetrics, "bgeometrics": self._bgeometrics,
        }.get(provider)
        if handler is None:
            return 404, {"error": f"no provider '{provider}' here; known: {', '.join(PROVIDES)}"}, {}
        try:
            return handler(path, query, headers)
        except (KeyError, ValueError) as exc:  # a parameter missing or not a number: the providers answer 400
            return 400, {"code": -1102, "msg": f"bad parameter: {exc}"}, {}
        except Exception as exc:  # noqa: BLE001 - the emulator's own slip: an answer, never a dropped connection read as "offline"
            self.errors.append(f"{provider} {path}: {exc.__class__.__name__}: {exc}")
            return 500, {"code": -1000, "msg": f"emulator error: {exc.__class__.__name__}"}, {}

    def frame(self, asset: str, series: str, columns: tuple[str, ...] | list[str], optional: tuple[str, ...] = ()) -> pd.DataFrame:
        """The served days of ``series`` with every one of ``columns`` present (a provider sends whole rows), and the
        ``optional`` columns (missing ones as NaN: sent as null)."""
        stored = self.data.get(asset, {}).get(series)
        if stored is None or not len(stored) or not set(columns) <= set(stored.columns):
            return pd.DataFrame(columns=[*columns, *optional], index=pd.DatetimeIndex([], name="date"))
        return stored.reindex(columns=[*columns, *optional])[stored[list(columns)].notna().all(axis=1)]

    @staticmethod
    def _window(frame: pd.DataFrame, start_ms: int | None, end_ms: int | None, shift_days: int = 0) -> pd.DataFrame:
        """Rows whose stamp (the day, plus ``shift_days``, at 00:00 UTC) lies in [start_ms, end_ms]."""
        if not len(frame):
            return frame
        stamps = (frame.index + pd.Timedelta(days=shift_days)).as_unit("ns").asi8 // 1_000_000
        keep = pd.Series(True, index=frame.index)
        if start_ms is not None:
            keep &= stamps >= start_ms
        if end_ms is not None:
            keep &= stamps <= end_ms
        return frame[keep.to_numpy()]

    # ------------------------------------------------------------------ Binance (spot, USD-M) through ccxt
    def _binance(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        asset = query["symbol"].removesuffix("USDT")
        start, end = _int(query, "startTime"), _int(query, "endTime")
        if path in ("/api/v3/klines", "/fapi/v1/klines"):
            limit = min(_int(query, "limit", 500) or 500, 1000 if path.startswith("/api") else 1500)
            if path == "/api/v3/klines":
                rows = self._window(self.frame(asset, "ohlcv", PROVIDES["binance-spot"]["ohlcv"]), start, end).head(limit)
                candles = [[_ms(d), _text(r.open_usd), _text(r.high_usd), _text(r.low_usd), _text(r.close_usd), _text(r.volume_base),
                            _ms(d) + DAY_MS - 1, _text(r.volume_usd), 0, "0", "0", "0"] for d, r in rows.iterrows()]
            else:
                prices = ("perp_open_usd", "perp_high_usd", "perp_low_usd", "perp_close_usd")
                rows = self._window(self.frame(asset, "ohlcv_perp", prices, ("perp_volume_usd", "perp_taker_buy_usd", "perp_taker_sell_usd")),
                                    start, end).head(limit)
                candles = [self._perp_kline(d, r) for d, r in rows.iterrows()]
            return 200, candles, {}
        if path == "/fapi/v1/fundingRate":
            limit = min(_int(query, "limit", 100) or 100, 1000)
            daily = self.frame(asset, "funding_binance", ("funding_rate_binance_frac8h",))
            counts = self.data.get(asset, {}).get("funding_binance", pd.DataFrame()).get("funding_events")
            events = []
            for day, row in daily.iterrows():
                n = counts.get(day) if counts is not None else None
                n = 3 if n is None or (isinstance(n, float) and math.isnan(n)) else int(n)
                events += [(_ms(day) + i * (DAY_MS // n), row.funding_rate_binance_frac8h) for i in range(n)]  # the day's events
            events = [e for e in events if (start is None or e[0] >= start) and (end is None or e[0] <= end)][:limit]
            return 200, [{"symbol": f"{asset}USDT", "fundingTime": t, "fundingRate": _text(rate), "markPrice": "0"} for t, rate in events], {}
        if path.startswith("/futures/data/"):
            oldest = _ms(self.now().normalize() - pd.Timedelta(days=BINANCE_WINDOW_DAYS))
            if start is not None and start < oldest:  # Binance keeps 30 days and refuses an older startTime
                return 400, {"code": -1130, "msg": "Data sent for parameter 'startTime' is not valid."}, {}
            limit = min(_int(query, "limit", 30) or 30, 500)
            lo = max(start or oldest, oldest)
            if path == "/futures/data/openInterestHist":  # stamped 00:00 UTC of the next day = the close of the day
                rows = self._window(self.frame(asset, "open_interest_exchange", ("exchange_oi_close_usd",)), lo, end, shift_days=1).head(limit)
                return 200, [{"symbol": f"{asset}USDT", "sumOpenInterest": "0", "sumOpenInterestValue": _text(r.exchange_oi_close_usd),
                              "timestamp": _ms(d + pd.Timedelta(days=1))} for d, r in rows.iterrows()], {}
            column = {"/futures/data/globalLongShortAccountRatio": "lsr_global_accounts", "/futures/data/topLongShortAccountRatio": "lsr_top_accounts",
                      "/futures/data/topLongShortPositionRatio": "lsr_top_positions"}.get(path)
            if column:
                rows = self._window(self.frame(asset, "positioning", (column,)), lo, end).head(limit)
                return 200, [{"symbol": f"{asset}USDT", "longShortRatio": _text(r[column]), "longAccount": _text(r[column] / (1 + r[column])),
                              "shortAccount": _text(1 / (1 + r[column])), "timestamp": _ms(d)} for d, r in rows.iterrows()], {}
            if path == "/futures/data/takerlongshortRatio":
                return 200, [], {}  # the reference holds no Binance-only taker volume
        return 404, {"code": -5000, "msg": f"path {path} not found"}, {}

    @staticmethod
    def _perp_kline(day: pd.Timestamp, r: pd.Series) -> list[Any]:
        """A USD-M kline as documented: quote volume in field 7, taker-buy base and quote volume in fields 9 and 10 (Binance's
        quote volume is taker buys + taker sells, which the connector splits back); base volumes at the close (the connector
        reads neither); a volume the reference lacks is null."""
        quote = r.perp_volume_usd if not math.isnan(r.perp_volume_usd) else r.perp_taker_buy_usd + r.perp_taker_sell_usd
        buy, close = r.perp_taker_buy_usd, r.perp_close_usd

        def text(value: float) -> str | None:
            return None if math.isnan(value) else _text(value)

        return [_ms(day), _text(r.perp_open_usd), _text(r.perp_high_usd), _text(r.perp_low_usd), _text(close), text(quote / close),
                _ms(day) + DAY_MS - 1, text(quote), 0, text(buy / close), text(buy), "0"]

    # ------------------------------------------------------------------ Bybit v5
    def _bybit(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if path != "/v5/market/open-interest":
            return 404, {"retCode": 10001, "retMsg": "path not found"}, {}
        # the reference history holds no Bybit series: an answer of the documented shape with no points
        return 200, {"retCode": 0, "retMsg": "OK", "result": {"symbol": query.get("symbol"), "category": query.get("category"), "list": [],
                                                           "nextPageCursor": ""}, "retExtInfo": {}, "time": _ms(self.now())}, {}

    # ------------------------------------------------------------------ CoinGlass v4
    def _coinglass(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if not headers.get("cg-api-key"):
            return 401, {"code": "401", "msg": "API key missing"}, {}
        if query.get("interval") != "1d":
            return 200, {"code": "400", "msg": "the emulator serves interval=1d only"}, {}
        limit = _int(query, "limit", 1000) or 1000
        if limit > COINGLASS_MAX_LIMIT:
            return 200, {"code": "400", "msg": f"limit must be at most {COINGLASS_MAX_LIMIT}"}, {}
        start, end = _int(query, "start_time"), _int(query, "end_time")
        symbol = query["symbol"]

        def bars(frame: pd.DataFrame, fields: Callable[[pd.Series], dict[str, Any]]) -> Reply:
            rows = self._window(frame, start, end).head(limit)
            return 200, {"code": "0", "msg": "success", "data": [{"time": _ms(d), **fields(r)} for d, r in rows.iterrows()]}, {}

        if path == "/api/futures/liquidation/aggregated-history":
            scope = query.get("exchange_list", "")
            series = {REFERENCE_SCOPE: "liquidations", "Binance": "liquidations_binance"}.get(scope)
            if series is None:  # another scope is another series: the reference has no such history
                return 200, {"code": "400", "msg": f"the emulator serves exchange_list {REFERENCE_SCOPE} or Binance, not {scope!r}"}, {}
            prefix = "liq" if series == "liquidations" else "binance_liq"
            return bars(self.frame(symbol, series, (f"{prefix}_long_usd", f"{prefix}_short_usd")),
                        lambda r: {"aggregated_long_liquidation_usd": _num(r.iloc[0]), "aggregated_short_liquidation_usd": _num(r.iloc[1])})
        if path == "/api/futures/open-interest/aggregated-history":
            return bars(self.frame(symbol, "open_interest", ("oi_close_usd", "oi_high_usd", "oi_low_usd")),
                        lambda r: {"open": _text(r.oi_close_usd), "high": _text(r.oi_high_usd), "low": _text(r.oi_low_usd), "close": _text(r.oi_close_usd)})
        if path in ("/api/futures/funding-rate/oi-weight-history", "/api/futures/funding-rate/vol-weight-history"):
            column = "funding_rate_oiw_frac8h" if "oi-weight" in path else "funding_rate_volw_frac8h"
            percent = lambda r: _text(r[column] * 100.0)  # noqa: E731 - CoinGlass sends percent per 8 h
            return bars(self.frame(symbol, "funding_aggregated", (column,)), lambda r: {"open": percent(r), "high": percent(r), "low": percent(r),
                                                                                        "close": percent(r)})
        ratios = {"/api/futures/global-long-short-account-ratio/history": ("global_account", "lsr_global_accounts"),
                  "/api/futures/top-long-short-account-ratio/history": ("top_account", "lsr_top_accounts"),
                  "/api/futures/top-long-short-position-ratio/history": ("top_position", "lsr_top_positions")}
        if path in ratios:
            if query.get("exchange") != "Binance":
                return 200, {"code": "400", "msg": "the reference's ratios are Binance's"}, {}
            name, column = ratios[path]
            return bars(self.frame(symbol.removesuffix("USDT"), "positioning", (column,)),
                        lambda r: {f"{name}_long_percent": 100 * r[column] / (1 + r[column]), f"{name}_short_percent": 100 / (1 + r[column]),
                                   f"{name}_long_short_ratio": float(r[column])})
        if path == "/api/futures/aggregated-taker-buy-sell-volume/history":
            if query.get("exchange_list") != REFERENCE_SCOPE:
                return 200, {"code": "400", "msg": f"the reference's taker volume is {REFERENCE_SCOPE}"}, {}
            return bars(self.frame(symbol, "positioning", ("taker_buy_usd", "taker_sell_usd")),
                        lambda r: {"aggregated_buy_volume_usd": float(r.taker_buy_usd), "aggregated_sell_volume_usd": float(r.taker_sell_usd)})
        return 200, {"code": "404", "msg": f"path {path} not found"}, {}

    # ------------------------------------------------------------------ Coinalyze v1
    def _coinalyze(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if not headers.get("api_key"):
            return 401, {"message": "api_key missing"}, {}
        if path == "/exchanges":
            return 200, [{"name": "Binance", "code": "A"}, {"name": "Bybit", "code": "6"}, {"name": "OKX", "code": "3"}, {"name": "Huobi", "code": "4"}], {}
        if path == "/future-markets":
            return 200, [{"symbol": f"{a}USDT_PERP.A", "exchange": "A", "base_asset": a, "quote_asset": "USDT", "is_perpetual": True}
                         for a in sorted(self.data)], {}
        histories = {  # endpoint -> (series, its columns, the bar's fields from a row, in USD)
            "/liquidation-history": ("liquidations_coinalyze", ("coinalyze_liq_long_usd", "coinalyze_liq_short_usd"),
                                     lambda r: {"l": float(r.iloc[0]), "s": float(r.iloc[1])}, True),
            "/open-interest-history": ("open_interest_coinalyze", ("coinalyze_oi_close_usd",),  # one stored value: a flat bar
                                       lambda r: dict.fromkeys(("o", "h", "l", "c"), float(r.iloc[0])), True),
            "/long-short-ratio-history": ("positioning_coinalyze", ("coinalyze_lsr_accounts",),
                                          lambda r: {"r": float(r.iloc[0]), "l": 100 * float(r.iloc[0]) / (1 + float(r.iloc[0])),
                                                     "s": 100 / (1 + float(r.iloc[0]))}, False),
        }
        if path not in histories:
            return 404, {"message": "not found"}, {}
        if query.get("interval") != "daily":
            return 400, {"message": "the emulator serves interval=daily only"}, {}
        symbols = query["symbols"].split(",")
        if len(symbols) > COINALYZE_MAX_SYMBOLS:
            return 400, {"message": f"at most {COINALYZE_MAX_SYMBOLS} symbols per request"}, {}
        lo, hi = int(query["from"]), int(query["to"])  # seconds, inclusive
        series, columns, fields, in_usd = histories[path]
        out = []
        for symbol in symbols:
            asset = symbol.removesuffix("USDT_PERP.A") if symbol.endswith("USDT_PERP.A") else None
            rows = self.frame(asset, series, columns) if asset else pd.DataFrame(columns=list(columns))
            if in_usd and query.get("convert_to_usd") != "true":  # the market's own unit (coins for a USDT perpetual)
                rows = rows.div(self._close(asset), axis=0).dropna(how="any")
            stamps = [int(d.timestamp()) for d in rows.index]
            out.append({"symbol": symbol, "history": [{"t": t, **fields(r)} for t, (_, r) in zip(stamps, rows.iterrows(), strict=True)
                                                      if lo <= t <= hi]})
        return 200, out, {}

    def _close(self, asset: str) -> pd.Series:
        """The day's close the provider values coins at: the perpetual's, else the spot close."""
        series = [self.data.get(asset, {}).get(s, pd.DataFrame()).get(c) for s, c in (("ohlcv_perp", "perp_close_usd"), ("ohlcv", "close_usd"))]
        found = [s for s in series if s is not None]
        return found[0].combine_first(found[1]) if len(found) == 2 else found[0] if found else pd.Series(dtype=float)

    # ------------------------------------------------------------------ Coin Metrics v4
    def _coinmetrics(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        if path != "/timeseries/asset-metrics":
            return 404, {"error": {"type": "not_found", "message": f"{path} not found"}}, {}
        asset = query["assets"].upper()
        metrics = query["metrics"].split(",")
        names = {"FlowInExNtv": "inflow_coin", "FlowOutExNtv": "outflow_coin", "SplyExNtv": "supply_on_exchanges_coin",
                 "PriceUSD": "reference_price_usd", "CapMrktCurUSD": "market_cap_usd", "CapMVRVCur": "mvrv"}
        unknown = [m for m in metrics if m not in names]
        if unknown:
            return 400, {"error": {"type": "bad_parameter", "message": f"Bad parameter 'metrics'. Metric '{unknown[0]}' is not supported."}}, {}
        stored = self.data.get(asset, {}).get("exchange_flows")
        if stored is None:
            return 200, {"data": []}, {}
        frame = stored.loc[pd.Timestamp(query["start_time"]) : pd.Timestamp(query["end_time"])]
        size = min(_int(query, "page_size", 100) or 100, 10000)
        offset = int(query.get("next_page_token") or 0)
        page = frame.iloc[offset : offset + size]
        rows = [{"asset": asset.lower(), "time": f"{d:%Y-%m-%d}T00:00:00.000000000Z",
                 **{m: _text(r[names[m]]) for m in metrics if not math.isnan(r[names[m]])}} for d, r in page.iterrows()]
        body: dict[str, Any] = {"data": rows}
        if offset + size < len(frame):
            body["next_page_token"] = str(offset + size)
            body["next_page_url"] = f"/timeseries/asset-metrics?next_page_token={offset + size}"
        return 200, body, {}

    # ------------------------------------------------------------------ BGeometrics (bitcoin-data.com)
    def _bgeometrics(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        metrics = {"/sth-sopr": ("sthSopr", "sth_sopr", lambda v: v), "/asopr": ("asopr", "sopr", lambda v: v),
                   "/sth-mvrv": ("sthMvrv", "sth_nupl", lambda v: 1.0 / (1.0 - v)),  # the provider serves MVRV; NUPL = 1 - 1/MVRV
                   "/sth-realized-price": ("sthRealizedPrice", "sth_realized_price_usd", lambda v: v)}
        if path not in metrics:
            return 404, {"error": "not found"}, {}
        stored = self.data.get("BTC", {}).get("onchain_cohorts")
        if stored is None:
            return 200, [], {}
        field_name, column, to_provider = metrics[path]
        frame = stored.loc[pd.Timestamp(query.get("startday", "2009-01-03")) : pd.Timestamp(query.get("endday", "2100-01-01"))]
        # a day the provider has not computed is sent as null (the connector keeps it missing)
        return 200, [{"d": f"{d:%Y-%m-%d}", "unixTs": int(d.timestamp()), field_name: None if math.isnan(v) else to_provider(float(v))}
                     for d, v in frame[column].items()], {}


class WebhookReceiver:
    """A loopback webhook: records every JSON body POSTed to it (the rehearsal's alert destination)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []

    def __enter__(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = min(int(self.headers.get("Content-Length") or 0), 5_000_000)
                try:
                    receiver.received.append(json.loads(self.rfile.read(length)))
                    status = 200
                except ValueError:
                    status = 400
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks/rehearsal"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> bool:
    """Poll ``predicate`` for at most ``seconds`` (a bounded loop)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
