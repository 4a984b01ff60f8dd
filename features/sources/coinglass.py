"""CoinGlass API v4 (paid key): aggregated liquidations (Binance+OKX+Bybit, and Binance only),
aggregated open interest, OI- and volume-weighted funding, and positioning (Binance long/short ratios,
Binance+OKX+Bybit taker volume), for the seven coins.

The reference history came from these endpoints with ``exchange_list=Binance,OKX,Bybit`` (the reference's README,
section 7), so the connector asks for the same three exchanges: a wider list would change the level of every appended
day, and the label is a multiple of the trailing median. Limits (CoinGlass v4 docs, "timestamps and pagination" and
the plan table): ``limit`` at most 1000 bars per call; Hobbyist 30 requests per minute *per key*; a 429 carries no
Retry-After. Exchange names as in its supported-exchanges list ("HTX", "Bitmex").
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from cascade_radar.config import ASSETS
from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import HttpSource, ProviderError, RateLimit, converted, day_start, require, require_float, require_list, utc_days

REFERENCE_EXCHANGES = "Binance,OKX,Bybit"  # the reference history's scope, for liquidations and taker volume alike
PERCENT = 0.01
PAGE_LIMIT = 1000  # the documented maximum of `limit`
# one window per API key (and endpoint base) for every call of the process: the quota is per key, not per series or coin
KEY_RATES: dict[tuple[str, str], RateLimit] = {}
RATIO_ENDPOINTS = {  # endpoint -> (ratio field, stored column); CoinGlass serves Binance's own ratios per pair
    "/api/futures/global-long-short-account-ratio/history": ("global_account_long_short_ratio", "lsr_global_accounts"),
    "/api/futures/top-long-short-account-ratio/history": ("top_account_long_short_ratio", "lsr_top_accounts"),
    "/api/futures/top-long-short-position-ratio/history": ("top_position_long_short_ratio", "lsr_top_positions"),
}
TAKER_ENDPOINT = "/api/futures/aggregated-taker-buy-sell-volume/history"


class CoinGlass(Connector):
    name = "coinglass"
    key_required = True
    key_env = "CASCADE_RADAR_COINGLASS_API_KEY"
    plans = (SeriesPlan("liquidations", "2020-12-23"), SeriesPlan("liquidations_binance", "2020-12-23"),
             SeriesPlan("open_interest", "2020-02-27"), SeriesPlan("funding_aggregated", "2020-03-31"), SeriesPlan("positioning", "2020-05-16"))
    assets = ASSETS
    limits = "Hobbyist: 30 calls / min per key (no Retry-After on 429); 1,000 bars per call; daily interval needs Hobbyist or above (>=4h)"
    licence = "CoinGlass API terms (paid key)"

    def source(self, endpoint: str) -> HttpSource:
        key = self.require_key(endpoint)
        base = self.base_url or "https://open-api-v4.coinglass.com"
        rate = KEY_RATES.setdefault((key, base), RateLimit(30, 60.0))
        return HttpSource(self.name, base, headers={"CG-API-KEY": key, "accept": "application/json"}, rate=rate, sleep=self.sleep)

    def bars(self, endpoint: str, params: dict[str, Any], start: pd.Timestamp, end: pd.Timestamp) -> list[dict[str, Any]]:
        http = self.source(endpoint)
        rows: list[dict[str, Any]] = []
        cursor, stop = day_start(start), day_start(end)
        while cursor <= stop:
            body = http.get_json(endpoint, {**params, "interval": "1d", "start_time": cursor, "end_time": stop + 86_400_000 - 1, "limit": PAGE_LIMIT})
            if not isinstance(body, dict) or str(body.get("code")) != "0":
                msg = body.get("msg") if isinstance(body, dict) else str(body)[:100]
                raise ProviderError(self.name, endpoint, f"error response: {msg}")
            data = require_list(require(body, "data", self.name, endpoint), "bars in 'data'", self.name, endpoint)
            if not data:
                break
            rows += data
            last = int(require(data[-1], "time", self.name, endpoint))
            if len(data) < PAGE_LIMIT or last <= cursor:  # a short page is the last one; a full page may have more behind it
                break
            cursor = last + 86_400_000
        return rows

    def _frame(self, rows: list[dict[str, Any]], endpoint: str, fields: dict[str, tuple[str, float]]) -> pd.DataFrame:
        if not rows:
            return pd.DataFrame()
        index = utc_days([int(require(r, "time", self.name, endpoint)) for r in rows], "ms")
        out = pd.DataFrame(index=index)
        for field, (column, scale) in fields.items():
            values = [require_float(r, field, self.name, endpoint) for r in rows]
            out[column] = converted([v * scale for v in values]) if scale != 1.0 else values
        return out[~out.index.duplicated(keep="last")].sort_index()

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        symbol = self.asset
        if series in ("liquidations", "liquidations_binance"):
            endpoint = "/api/futures/liquidation/aggregated-history"
            exchanges = REFERENCE_EXCHANGES if series == "liquidations" else "Binance"
            prefix = "liq" if series == "liquidations" else "binance_liq"
            rows = self.bars(endpoint, {"symbol": symbol, "exchange_list": exchanges}, start, end)
            frame = self._frame(rows, endpoint, {"aggregated_long_liquidation_usd": (f"{prefix}_long_usd", 1.0),
                                                 "aggregated_short_liquidation_usd": (f"{prefix}_short_usd", 1.0)})
        elif series == "open_interest":
            endpoint = "/api/futures/open-interest/aggregated-history"
            rows = self.bars(endpoint, {"symbol": symbol, "unit": "usd"}, start, end)
            frame = self._frame(rows, endpoint, {"close": ("oi_close_usd", 1.0), "high": ("oi_high_usd", 1.0), "low": ("oi_low_usd", 1.0)})
        elif series == "funding_aggregated":
            endpoint = "/api/futures/funding-rate/oi-weight-history"
            frame = self._frame(self.bars(endpoint, {"symbol": symbol}, start, end), endpoint, {"close": ("funding_rate_oiw_frac8h", PERCENT)})
            vol_endpoint = "/api/futures/funding-rate/vol-weight-history"
            vol = self._frame(self.bars(vol_endpoint, {"symbol": symbol}, start, end), vol_endpoint, {"close": ("funding_rate_volw_frac8h", PERCENT)})
            if len(vol):
                frame = frame.join(vol, how="left") if len(frame) else frame
        elif series == "positioning":
            frames = [self._frame(self.bars(endpoint, {"exchange": "Binance", "symbol": f"{symbol}USDT"}, start, end), endpoint, {field: (column, 1.0)})
                      for endpoint, (field, column) in RATIO_ENDPOINTS.items()]
            frames.append(self._frame(self.bars(TAKER_ENDPOINT, {"exchange_list": REFERENCE_EXCHANGES, "symbol": symbol, "unit": "usd"}, start, end),
                                      TAKER_ENDPOINT, {"aggregated_buy_volume_usd": ("taker_buy_usd", 1.0),
                                                       "aggregated_sell_volume_usd": ("taker_sell_usd", 1.0)}))
            frames = [f for f in frames if len(f)]
            frame = pd.concat(frames, axis=1) if frames else pd.DataFrame()
        else:
            raise ValueError(f"coinglass has no series '{series}'")
        return frame.loc[start:end] if len(frame) else frame

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """CoinGlass v4: {code: "0", msg, data: [{time (ms), ...fields}]} per endpoint."""
        times = [day_start(start + pd.Timedelta(days=i)) for i in range(days)]
        liq = [{"time": t, "aggregated_long_liquidation_usd": 1.2e8, "aggregated_short_liquidation_usd": 3.4e7} for t in times]
        ohlc = [{"time": t, "open": "10", "high": "12", "low": "9", "close": "11"} for t in times]
        funding = [{"time": t, "open": "0.01", "high": "0.02", "low": "0.0", "close": "0.01"} for t in times]
        ratios = {endpoint: [{"time": t, field.replace("long_short_ratio", "long_percent"): 58.7, field.replace("long_short_ratio", "short_percent"): 41.3,
                              field: 1.42} for t in times] for endpoint, (field, _) in RATIO_ENDPOINTS.items()}
        taker = [{"time": t, "aggregated_buy_volume_usd": 968834542.38, "aggregated_sell_volume_usd": 1054582654.81} for t in times]

        def ok(data: list[dict[str, Any]]) -> dict[str, Any]:
            return {"code": "0", "msg": "success", "data": data}

        return {"/api/futures/liquidation/aggregated-history": ok(liq), "/api/futures/open-interest/aggregated-history": ok(ohlc),
                "/api/futures/funding-rate/oi-weight-history": ok(funding), "/api/futures/funding-rate/vol-weight-history": ok(funding),
                **{endpoint: ok(rows) for endpoint, rows in ratios.items()}, TAKER_ENDPOINT: ok(taker)}
