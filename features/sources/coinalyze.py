"""Coinalyze (free API key): daily long / short liquidations of the asset's perpetuals on the major exchanges, summed
per UTC day. Limit (Coinalyze v1 docs): 40 calls per minute per key, where *each symbol* of a request counts as one call;
an over-limit answer is a 429 with Retry-After.

A symbol's suffix is its exchange (``BTCUSDT_PERP.A`` = Binance), not an aggregate: the markets
are listed, filtered to the configured exchanges, and summed here. ``convert_to_usd=true`` makes
the provider value coin-margined markets at the day's price.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import HttpSource, ProviderError, QuotaExhausted, RateLimit, require, require_float, require_list, utc_days

MAJOR_EXCHANGES = ("Binance", "Bybit", "OKX", "Bitget", "BitMEX", "Deribit", "Hyperliquid", "Gate.io", "HTX")
ALIASES = {"huobi": "htx"}  # Coinalyze's exchange list still names HTX "Huobi" (code 4)
SYMBOLS_PER_CALL = 20
DAYS_PER_CALL = 300


class Coinalyze(Connector):
    name = "coinalyze"
    key_required = True
    key_env = "CASCADE_RADAR_COINALYZE_API_KEY"
    plans = (SeriesPlan("liquidations_coinalyze", "2020-01-01"),)
    limits = "40 calls / min per key, each symbol of a request counted as one call; 20 symbols per call"
    licence = "Coinalyze API terms (free key)"

    def source(self) -> HttpSource:
        key = self.require_key("/liquidation-history")
        return HttpSource(self.name, self.base_url or "https://api.coinalyze.net/v1", headers={"api_key": key}, rate=RateLimit(40, 60.0), sleep=self.sleep)

    def markets(self, http: HttpSource) -> list[str]:
        exchanges = require_list(http.get_json("/exchanges"), "exchanges", self.name, "/exchanges")
        wanted = {name.lower() for name in MAJOR_EXCHANGES}
        codes = {str(require(e, "code", self.name, "/exchanges")) for e in exchanges
                 if ALIASES.get(str(require(e, "name", self.name, "/exchanges")).lower(), str(e["name"]).lower()) in wanted}
        markets = require_list(http.get_json("/future-markets"), "markets", self.name, "/future-markets")
        symbols = [require(m, "symbol", self.name, "/future-markets") for m in markets
                   if m.get("base_asset") == self.asset and m.get("is_perpetual") and str(m.get("symbol", "")).rsplit(".", 1)[-1] in codes]
        if not symbols:
            raise ProviderError(self.name, "/future-markets", f"no {self.asset} perpetual on {', '.join(MAJOR_EXCHANGES)}")
        return sorted(symbols)

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        http = self.source()
        symbols = self.markets(http)
        endpoint = "/liquidation-history"
        points: list[tuple[int, float, float]] = []  # of the windows every symbol batch answered
        window_start = start
        while window_start <= end:
            window_end = min(end, window_start + pd.Timedelta(days=DAYS_PER_CALL - 1))
            window: list[tuple[int, float, float]] = []
            for i in range(0, len(symbols), SYMBOLS_PER_CALL):
                batch = symbols[i : i + SYMBOLS_PER_CALL]
                params: dict[str, Any] = {"symbols": ",".join(batch), "interval": "daily",
                                          "from": int(window_start.timestamp()), "to": int((window_end + pd.Timedelta(days=1)).timestamp()) - 1,
                                          "convert_to_usd": "true"}
                try:
                    body = http.get_json(endpoint, params, cost=len(batch))
                except QuotaExhausted as exc:  # keep every window already complete; the next run resumes after them
                    exc.partial = self._daily(points, start, end)
                    raise
                for market in require_list(body, "symbol histories", self.name, endpoint):
                    for row in require(market, "history", self.name, endpoint):
                        window.append((int(require(row, "t", self.name, endpoint)),
                                       require_float(row, "l", self.name, endpoint), require_float(row, "s", self.name, endpoint)))
            points += window
            window_start = window_end + pd.Timedelta(days=1)
        return self._daily(points, start, end)

    @staticmethod
    def _daily(points: list[tuple[int, float, float]], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """The points summed per UTC day over every market."""
        if not points:
            return pd.DataFrame()
        frame = pd.DataFrame(points, columns=["t", "long", "short"])
        frame["date"] = utc_days(frame["t"].to_numpy(), "s")
        daily = frame.groupby("date")[["long", "short"]].sum()
        return daily.rename(columns={"long": "coinalyze_liq_long_usd", "short": "coinalyze_liq_short_usd"}).loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /exchanges [{name, code}], /future-markets [{symbol, base_asset, is_perpetual}],
        /liquidation-history [{symbol, history: [{t (s), l, s}]}]."""
        symbol = f"{self.asset}USDT_PERP.A"
        history = [{"t": int((start + pd.Timedelta(days=i)).timestamp()), "l": 1.5e6, "s": 2.5e5} for i in range(days)]
        return {"/exchanges": [{"name": "Binance", "code": "A"}],
                "/future-markets": [{"symbol": symbol, "base_asset": self.asset, "is_perpetual": True}],
                "/liquidation-history": [{"symbol": symbol, "history": history}] if days else []}
