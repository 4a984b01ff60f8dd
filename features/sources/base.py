"""The contract of a live provider connector, and the connector registry.

A provider is one module in ``features.sources``: a ``Connector`` subclass with a ``name`` registers
itself on definition, ``load_connectors`` imports every module of the package. ``data update``, the
list of API-key variables and the CLI help all read ``CONNECTORS``.

A connector gets only what it needs: the asset, its own key (read from the environment variable it
declares), the days to fetch, and a ``FetchContext`` holding the series' stored frame and, if it
declares ``needs_price``, the best stored daily price.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from features.sources.http import MissingKey

CONNECTORS: dict[str, type[Connector]] = {}


@dataclass(frozen=True)
class SeriesPlan:
    """One stored series a connector fills: how far back a first download goes."""

    series: str
    first_day: str = "2018-01-01"


@dataclass(frozen=True)
class FetchContext:
    """What a fetch may read besides the days asked: the stored frame of the series, and a price if needed."""

    stored: pd.DataFrame
    price: pd.Series | None = None


class Connector:
    """A live provider: fetches complete UTC days of its series as frames in the store's schema."""

    name: ClassVar[str] = ""
    key_env: ClassVar[str | None] = None  # environment variable holding the API key
    key_required: ClassVar[bool] = False  # False: the key only lifts a quota or switches tier
    assets: ClassVar[tuple[str, ...]] = ("BTC", "ETH")
    plans: ClassVar[tuple[SeriesPlan, ...]] = ()
    needs_price: ClassVar[bool] = False
    limits: ClassVar[str] = ""
    licence: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:  # noqa: ANN401
        super().__init_subclass__(**kwargs)
        if cls.name:
            if cls.name in CONNECTORS and CONNECTORS[cls.name].__qualname__ != cls.__qualname__:
                raise ValueError(f"connector '{cls.name}' registered twice")
            CONNECTORS[cls.name] = cls

    def __init__(self, asset: str, key: str | None = None, base_url: str | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.asset = asset
        self.key = key or None
        self.base_url = base_url
        self.sleep = sleep

    @classmethod
    def key_from_environment(cls) -> str | None:
        return os.environ.get(cls.key_env) or None if cls.key_env else None

    def unavailable(self) -> str | None:
        """Why this connector cannot run here (missing key, unsupported asset), else None."""
        if self.asset not in self.assets:
            return f"no {self.asset} data at this provider"
        if self.key_required and not self.key:
            return f"needs an API key: set {self.key_env}"
        return None

    def require_key(self, endpoint: str) -> str:
        if not self.key:
            raise MissingKey(self.name, endpoint, f"needs an API key: set {self.key_env}")
        return self.key

    def fetch(self, series: str, start: pd.Timestamp, end: pd.Timestamp, context: FetchContext) -> pd.DataFrame:
        """Complete days ``start..end`` (inclusive) of ``series``; columns in the store's names and units."""
        raise NotImplementedError

    def documented_example(self, series: str, start: pd.Timestamp, days: int) -> dict[str, Any]:
        """Minimal responses of the provider's documented shape for ``days`` days of ``series`` from ``start``
        (``days=0``: an empty page), by URL path. The connector contract test serves them locally."""
        raise NotImplementedError


def load_connectors() -> dict[str, type[Connector]]:
    """Import every provider module of ``features.sources`` and return the registry (by name)."""
    import features.sources as package

    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return CONNECTORS


def key_variables() -> dict[str, tuple[str, bool]]:
    """Provider name -> (environment variable of its key, whether it is required)."""
    return {name: (cls.key_env, cls.key_required) for name, cls in load_connectors().items() if cls.key_env}


def last_complete_day(now: pd.Timestamp | None = None) -> pd.Timestamp:
    """Yesterday (UTC): today's bar is still running and must not be stored as a day."""
    now = now or pd.Timestamp.now(tz="UTC").tz_localize(None)
    return now.normalize() - pd.Timedelta(days=1)
