"""The contract of a live provider connector and the helpers connectors share."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from cascade_radar.config import Settings
from features.sources.http import MissingKey
from features.store import HistoryStore


@dataclass(frozen=True)
class SeriesPlan:
    """One stored series a connector fills: how far back a first download goes."""

    series: str
    first_day: str = "2018-01-01"


class Connector:
    """A live provider: fetches complete UTC days of its series as frames in the store's schema."""

    name: str = ""
    key_setting: str | None = None  # Settings attribute holding the API key, if one is needed
    key_env: str | None = None
    assets: tuple[str, ...] = ("BTC", "ETH")
    plans: tuple[SeriesPlan, ...] = ()
    limits: str = ""
    licence: str = ""

    def __init__(self, settings: Settings, base_url: str | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.asset = settings.asset
        self.base_url = base_url
        self.sleep = sleep

    def key(self) -> str | None:
        if self.key_setting is None:
            return None
        secret = getattr(self.settings, self.key_setting)
        return secret.get_secret_value() if secret else None

    def unavailable(self) -> str | None:
        """Why this connector cannot run here (missing key, unsupported asset), else None."""
        if self.asset not in self.assets:
            return f"no {self.asset} data at this provider"
        if self.key_setting is not None and not self.key():
            return f"needs an API key: set {self.key_env}"
        return None

    def require_key(self, endpoint: str) -> str:
        key = self.key()
        if not key:
            raise MissingKey(self.name, endpoint, f"needs an API key: set {self.key_env}")
        return key

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, store: HistoryStore) -> pd.DataFrame:
        """Complete days ``start..end`` (inclusive) of ``series``; columns in the store's names and units."""
        raise NotImplementedError


def last_complete_day(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Yesterday (UTC): today's bar is still running and must not be stored as a day."""
    now = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    return now.normalize() - pd.Timedelta(days=1)


def price_lookup(store: HistoryStore) -> pd.Series:
    """The best stored daily USD price (exchange close, else a provider's reference price)."""
    close = store.read("ohlcv")["close_usd"]
    ref = store.read("exchange_flows")["reference_price_usd"]
    cohort = store.read("onchain_cohorts")["cohort_price_usd"]
    return close.combine_first(ref).combine_first(cohort)
