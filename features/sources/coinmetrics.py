"""Coin Metrics community API v4: exchange flows, supply on exchanges, reference price, MVRV.

Community data is licensed CC BY-NC 4.0 (non-commercial). Limit: 10 requests per 6 s per IP.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import HttpSource, ProviderError, RateLimit, as_float, require, require_list

METRICS = {
    "FlowInExNtv": "inflow_coin",
    "FlowOutExNtv": "outflow_coin",
    "SplyExNtv": "supply_on_exchanges_coin",
    "PriceUSD": "reference_price_usd",
    "CapMrktCurUSD": "market_cap_usd",
    "CapMVRVCur": "mvrv",
}


class CoinMetrics(Connector):
    name = "coinmetrics"
    key_env = "CASCADE_RADAR_COINMETRICS_API_KEY"
    plans = (SeriesPlan("exchange_flows"),)
    limits = "community: 10 requests / 6 s per IP; 10,000 rows per page"
    licence = "CC BY-NC 4.0 (non-commercial)"

    def source(self) -> HttpSource:
        key = self.key
        base = self.base_url or ("https://api.coinmetrics.io/v4" if key else "https://community-api.coinmetrics.io/v4")
        return HttpSource(self.name, base, rate=RateLimit(10, 6.0), sleep=self.sleep)

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        http = self.source()
        endpoint = "/timeseries/asset-metrics"
        params: dict[str, Any] = {"assets": self.asset.lower(), "metrics": ",".join(METRICS), "frequency": "1d",
                                  "start_time": f"{start:%Y-%m-%d}", "end_time": f"{end:%Y-%m-%d}", "page_size": 10000}
        if self.key:
            params["api_key"] = self.key
        rows: list[dict[str, Any]] = []
        for _ in range(1000):
            body = http.get_json(endpoint, params)
            if isinstance(body, dict) and "error" in body:
                raise ProviderError(self.name, endpoint, str(body["error"])[:200])
            data = require_list(require(body, "data", self.name, endpoint), "daily rows in 'data'", self.name, endpoint)
            rows += data
            token = body.get("next_page_token")
            if not token or not data:
                break
            params = {**params, "next_page_token": token}
        if not rows:
            return pd.DataFrame()
        days = pd.DatetimeIndex(pd.to_datetime([require(r, "time", self.name, endpoint) for r in rows], utc=True).tz_localize(None).normalize(), name="date")
        out = pd.DataFrame(index=days)
        for metric, column in METRICS.items():
            out[column] = [as_float(r[metric], metric, self.name, endpoint) if r.get(metric) is not None else float("nan") for r in rows]
        if out[["inflow_coin", "outflow_coin"]].isna().all().any():
            raise ProviderError(self.name, endpoint, "no FlowInExNtv / FlowOutExNtv in the response (metric not available to this key?)")
        out = out[~out.index.duplicated(keep="last")].sort_index()
        return out.dropna(subset=["inflow_coin", "outflow_coin"]).loc[start:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /timeseries/asset-metrics: {data: [{asset, time (RFC 3339), <metric>: string}], next_page_token?}."""
        rows = [{"asset": self.asset.lower(), "time": f"{start + pd.Timedelta(days=i):%Y-%m-%d}T00:00:00.000000000Z", "FlowInExNtv": "100.5",
                 "FlowOutExNtv": "90.25", "SplyExNtv": "2000000", "PriceUSD": "42000.5", "CapMrktCurUSD": "8.2e11", "CapMVRVCur": "1.9"}
                for i in range(days)]
        return {"/timeseries/asset-metrics": {"data": rows}}
