"""Coinalyze (free API key): daily long / short liquidations and open interest of the asset's perpetuals on the major
exchanges, summed per UTC day, and the long/short account ratio of its Binance USDT perpetual — the free, full-history
stand-ins for the paid aggregates.

API: https://api.coinalyze.net/v1/doc/ — header ``api_key``; ``GET /exchanges`` [{name, code}], ``/future-markets``
[{symbol, exchange, base_asset, quote_asset, is_perpetual, ...}]; the history endpoints take ``symbols`` (comma-separated, at
most 20), ``interval`` (``daily`` here), ``from`` / ``to`` (UNIX **seconds**, inclusive) and answer
[{symbol, history: [{t (s, the bar's open), ...}]}] in ascending order:
``/liquidation-history`` (``l`` longs, ``s`` shorts liquidated), ``/open-interest-history`` (``o h l c``), both with
``convert_to_usd=true`` (coin-denominated markets valued by the provider at the bar's price), and
``/long-short-ratio-history`` (``r`` ratio, ``l`` / ``s`` the long / short shares in percent; no ``convert_to_usd``).
Limit: 40 calls per minute per key, where *each symbol* of a request counts as one call; an over-limit answer is a 429
with Retry-After; intraday bars are kept for 1,500-2,000 points, **daily bars forever**.

A symbol's suffix is its exchange (``BTCUSDT_PERP.A`` = Binance), not an aggregate: the markets are listed, filtered to the
configured exchanges, and summed here (liquidations, OI). A ratio does not sum: the long/short ratio is read from one market,
the Binance USDT perpetual — the same account ratio Binance publishes for 30 days (``globalLongShortAccountRatio``) and the
reference history holds since 2020.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from cascade_radar.config import ASSETS
from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import HttpSource, ProviderError, QuotaExhausted, RateLimit, require, require_float, require_list, utc_days

MAJOR_EXCHANGES = ("Binance", "Bybit", "OKX", "Bitget", "BitMEX", "Deribit", "Hyperliquid", "Gate.io", "HTX")
ALIASES = {"huobi": "htx"}  # Coinalyze's exchange list still names HTX "Huobi" (code 4)
SYMBOLS_PER_CALL = 20  # the documented maximum of `symbols`
DAYS_PER_CALL = 300
BASE_URL = "https://api.coinalyze.net/v1"
# one window per API key (and endpoint base) for every call of the process: the 40 calls / min are the key's, not a coin's
KEY_RATES: dict[tuple[str, str], RateLimit] = {}


@dataclass(frozen=True)
class History:
    """One history endpoint: the response fields stored (field -> column), and which markets are asked."""

    endpoint: str
    fields: dict[str, str]
    usd: bool  # send convert_to_usd=true
    binance_only: bool = False  # one market, the Binance USDT perpetual (a ratio does not sum over markets)


HISTORIES: dict[str, History] = {
    "liquidations_coinalyze": History("/liquidation-history", {"l": "coinalyze_liq_long_usd", "s": "coinalyze_liq_short_usd"}, usd=True),
    # the daily bar's close: OI at 24:00 UTC of the bar's day (its open `t` is 00:00 of that day)
    "open_interest_coinalyze": History("/open-interest-history", {"c": "coinalyze_oi_close_usd"}, usd=True),
    "positioning_coinalyze": History("/long-short-ratio-history", {"r": "coinalyze_lsr_accounts"}, usd=False, binance_only=True),
}


class Coinalyze(Connector):
    name = "coinalyze"
    key_required = True
    key_env = "CASCADE_RADAR_COINALYZE_API_KEY"
    plans = (SeriesPlan("liquidations_coinalyze", "2020-01-01"), SeriesPlan("open_interest_coinalyze", "2020-01-01"),
             SeriesPlan("positioning_coinalyze", "2020-01-01"))
    assets = ASSETS
    limits = "40 calls / min per key (one window for every coin), each symbol of a request counted as one call; 20 symbols per call"
    licence = "Coinalyze API terms (free key)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init__(*args, **kwargs)
        self._listing: tuple[dict[str, str], list[dict[str, Any]]] | None = None  # the market lists, asked once per coin and run

    def source(self, endpoint: str = "/liquidation-history") -> HttpSource:
        key = self.require_key(endpoint)
        base = self.base_url or BASE_URL
        rate = KEY_RATES.setdefault((key, base), RateLimit(40, 60.0))
        return HttpSource(self.name, base, headers={"api_key": key}, rate=rate, sleep=self.sleep)

    def listing(self, http: HttpSource) -> tuple[dict[str, str], list[dict[str, Any]]]:
        """(exchange code -> lower-case name, of the major exchanges; the asset's perpetual markets on them)."""
        if self._listing is None:
            exchanges = require_list(http.get_json("/exchanges"), "exchanges", self.name, "/exchanges")
            wanted = {name.lower() for name in MAJOR_EXCHANGES}
            codes = {}
            for e in exchanges:
                name = str(require(e, "name", self.name, "/exchanges")).lower()
                if ALIASES.get(name, name) in wanted:
                    codes[str(require(e, "code", self.name, "/exchanges"))] = ALIASES.get(name, name)
            markets = require_list(http.get_json("/future-markets"), "markets", self.name, "/future-markets")
            perpetuals = [m for m in markets if isinstance(m, dict) and m.get("base_asset") == self.asset and m.get("is_perpetual")
                          and str(require(m, "symbol", self.name, "/future-markets")).rsplit(".", 1)[-1] in codes]
            self._listing = codes, perpetuals
        return self._listing

    def markets(self, http: HttpSource, binance_only: bool = False) -> list[str]:
        """The asset's perpetuals on the major exchanges (sorted), or only its Binance USDT perpetual."""
        codes, perpetuals = self.listing(http)
        if binance_only:
            binance = [code for code, name in codes.items() if name == "binance"]
            wanted = {f"{self.asset}USDT_PERP.{code}" for code in binance}
            symbols = [str(m["symbol"]) for m in perpetuals if m["symbol"] in wanted]
            if not symbols:
                raise ProviderError(self.name, "/future-markets", f"no {self.asset}USDT perpetual of Binance listed")
            return symbols[:1]
        symbols = sorted(str(m["symbol"]) for m in perpetuals)
        if not symbols:
            raise ProviderError(self.name, "/future-markets", f"no {self.asset} perpetual on {', '.join(MAJOR_EXCHANGES)}")
        return symbols

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        spec = HISTORIES[series]
        http = self.source(spec.endpoint)
        symbols = self.markets(http, spec.binance_only)
        points: list[tuple[float, ...]] = []  # (t, one value per field) of the windows every symbol batch answered
        window_start = start
        while window_start <= end:
            window_end = min(end, window_start + pd.Timedelta(days=DAYS_PER_CALL - 1))
            window: list[tuple[float, ...]] = []
            for i in range(0, len(symbols), SYMBOLS_PER_CALL):
                batch = symbols[i : i + SYMBOLS_PER_CALL]
                params: dict[str, Any] = {"symbols": ",".join(batch), "interval": "daily", "from": int(window_start.timestamp()),
                                          "to": int((window_end + pd.Timedelta(days=1)).timestamp()) - 1}  # today's running bar excluded
                if spec.usd:
                    params["convert_to_usd"] = "true"
                try:
                    body = http.get_json(spec.endpoint, params, cost=len(batch))
                except QuotaExhausted as exc:  # keep every window already complete; the next run resumes after them
                    exc.partial = self._daily(points, spec, start, end)
                    raise
                for market in require_list(body, "symbol histories", self.name, spec.endpoint):
                    for row in require_list(require(market, "history", self.name, spec.endpoint), "bars", self.name, spec.endpoint):
                        window.append((int(require(row, "t", self.name, spec.endpoint)),
                                       *(require_float(row, f, self.name, spec.endpoint) for f in spec.fields)))
            points += window
            window_start = window_end + pd.Timedelta(days=1)
        return self._daily(points, spec, start, end)

    @staticmethod
    def _daily(points: list[tuple[float, ...]], spec: History, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The points summed per UTC day over every market asked (one market for a ratio: its value)."""
        if not points:
            return pd.DataFrame()
        frame = pd.DataFrame(points, columns=["t", *spec.fields.values()])
        frame["date"] = utc_days(frame["t"].to_numpy(), "s")
        return frame.groupby("date")[list(spec.fields.values())].sum().loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /exchanges [{name, code}], /future-markets [{symbol, base_asset, is_perpetual}], and the series' history:
        [{symbol, history: [{t (s), l, s}]}] (liquidations), [{t, o, h, l, c}] (OI), [{t, r, l, s}] (long/short ratio)."""
        symbol = f"{self.asset}USDT_PERP.A"
        bars = {"liquidations_coinalyze": {"l": 1.5e6, "s": 2.5e5}, "open_interest_coinalyze": {"o": 7.9e9, "h": 8.2e9, "l": 7.7e9, "c": 8.0e9},
                "positioning_coinalyze": {"r": 1.86, "l": 65.03, "s": 34.97}}[series]
        history = [{"t": int((start + pd.Timedelta(days=i)).timestamp()), **bars} for i in range(days)]
        return {"/exchanges": [{"name": "Binance", "code": "A"}],
                "/future-markets": [{"symbol": symbol, "base_asset": self.asset, "is_perpetual": True}],
                HISTORIES[series].endpoint: [{"symbol": symbol, "history": history}] if days else []}
