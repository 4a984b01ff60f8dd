"""BGeometrics bitcoin-data API: SOPR, STH-SOPR and STH-NUPL (from STH-MVRV), STH realized price.

Its free tier allows only a few requests an hour (and ~15 a day): each metric is one request
covering every missing day, and when the quota is spent the connector stops and says when to
resume; columns already fetched are kept.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.sources.base import Connector, FetchContext, SeriesPlan
from features.sources.http import HttpSource, QuotaExhausted, RateLimit, RetryPolicy, converted, require, require_float, require_list

# endpoint -> (value field, store column, transform)
METRICS: dict[str, tuple[str, str]] = {
    "sth-sopr": ("sthSopr", "sth_sopr"),
    "asopr": ("asopr", "sopr"),
    "sth-mvrv": ("sthMvrv", "sth_nupl"),  # NUPL = 1 - 1 / MVRV for the same cohort
    "sth-realized-price": ("sthRealizedPrice", "sth_realized_price_usd"),
}


class BGeometrics(Connector):
    name = "bgeometrics"
    key_env = "CASCADE_RADAR_BGEOMETRICS_TOKEN"
    assets = ("BTC",)
    plans = (SeriesPlan("onchain_cohorts"),)
    limits = "free tier: ~8 requests / hour, ~15 / day per IP; one request per metric"
    licence = "BGeometrics terms (free tier, attribution)"

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        # free tier ~8 requests / hour and ~15 / day per IP (bitcoin-data.com docs): a 429 is not retried — each retry spends
        # the day's quota — it stops the provider and says when to resume
        http = HttpSource(self.name, self.base_url or "https://bitcoin-data.com/v1", rate=RateLimit(8, 3600.0), sleep=self.sleep,
                          retry=RetryPolicy(retry_429=False))
        stored = context.stored
        columns: dict[str, pd.Series] = {}
        for endpoint, (field, column) in METRICS.items():
            # per column, only the days after its own last value (a quota stop may have left columns
            # uneven; a never-filled column starts from the beginning): every request is precious
            have = stored[column].dropna()
            first = have.index[-1] + pd.Timedelta(days=1) if len(have) else pd.Timestamp(self.plans[0].first_day)
            if first > end:
                continue
            params: dict[str, Any] = {"startday": f"{first:%Y-%m-%d}", "endday": f"{end:%Y-%m-%d}"}
            if self.key:
                params["token"] = self.key
            path = f"/{endpoint}"
            try:
                body = require_list(http.get_json(path, params), "daily points", self.name, path)
            except QuotaExhausted as exc:
                exc.partial = pd.DataFrame(columns).sort_index().loc[:end] if columns else None  # the caller keeps these
                raise
            if not body:
                continue
            # a null value is a day the provider has not computed: missing, not a reason to drop the whole metric
            rows = [r for r in body if require(r, field, self.name, path) is not None]
            if not rows:
                continue
            days = pd.DatetimeIndex(pd.to_datetime([require(r, "d", self.name, path) for r in rows], format="%Y-%m-%d"), name="date")
            values = np.array([require_float(r, field, self.name, path) for r in rows])
            if endpoint == "sth-mvrv":
                values = converted(1.0 - 1.0 / np.where(values > 0, values, np.nan))
            columns[column] = pd.Series(values, index=days).groupby(level=0).last()
        if not columns:
            return pd.DataFrame()
        return pd.DataFrame(columns).sort_index().loc[:end]

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """GET /v1/<metric>: [{d: YYYY-MM-DD, unixTs: seconds, <metricField>: number}]."""
        values = {"sthSopr": 1.01, "asopr": 1.002, "sthMvrv": 1.25, "sthRealizedPrice": 90000.0}
        days_list = [start + pd.Timedelta(days=i) for i in range(days)]
        return {f"/{endpoint}": [{"d": f"{d:%Y-%m-%d}", "unixTs": int(d.timestamp()), field: values[field]} for d in days_list]
                for endpoint, (field, _) in METRICS.items()}
