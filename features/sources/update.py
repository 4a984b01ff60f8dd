"""`cascade-radar data update`: fetch, per series, only the days after the last stored one (plus a
small overlap for provider revisions), validate, append atomically; one failing provider leaves its
series as they were and the others still update."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from features.build import DERIVED_INPUTS, first_available
from features.schemas import SERIES, SchemaError
from features.sources.base import Connector, FetchContext, last_complete_day, load_connectors
from features.sources.http import NoNetwork, ProviderError, QuotaExhausted
from features.store import HistoryStore, SpliceError

OVERLAP_DAYS = 3  # re-fetch the last days: providers revise recent bars
# A spent quota is the key's (or the IP's), not one coin's: remembered for the process, per provider, host and key, so the
# next coin of the same run does not spend five more calls to learn it again (CoinGlass answers 429 for the hour).
QUOTA_STOPS: dict[tuple[str, str | None, str | None], tuple[pd.Timestamp, str]] = {}


def _quota_key(connector: Connector) -> tuple[str, str | None, str | None]:
    return connector.name, connector.base_url, connector.key


@dataclass
class SeriesOutcome:
    source: str
    series: str
    new_rows: int = 0
    revised_rows: int = 0
    last_day: pd.Timestamp | None = None
    skipped: str = ""
    network_down: bool = False
    quota_exhausted: bool = False
    resume_at: pd.Timestamp | None = None


def build_connectors(asset: str, only: list[str] | None = None, base_urls: dict[str, str] | None = None,
                     sleep: Callable[[float], None] | None = None, keys: dict[str, str] | None = None) -> list[Connector]:
    """The registered live connectors (optionally only those named), each with its key from the environment
    (or ``keys``) and an optional base-URL override."""
    known = load_connectors()
    unknown = [n for n in only or [] if n not in known]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; known: {', '.join(known)}")
    out = []
    for name, cls in known.items():
        if only and name not in only:
            continue
        kwargs = {"key": (keys or {}).get(name) or cls.key_from_environment(), "base_url": (base_urls or {}).get(name)}
        if sleep is not None:
            kwargs["sleep"] = sleep
        out.append(cls(asset, **kwargs))
    return out


def price_lookup(store: HistoryStore) -> pd.Series:
    """The best stored daily USD price, in the order the feature panel uses."""
    sources = list(DERIVED_INPUTS["price_usd"])
    series = [name for name, schema in SERIES.items() if set(schema.columns) & set(sources)]
    return first_available(store.panel(series), sources)  # only the series that hold a price, not the whole store


def update_series(connector: Connector, series: str, first_day: str, store: HistoryStore, until: pd.Timestamp) -> SeriesOutcome:
    outcome = SeriesOutcome(connector.name, series)
    last = store.last_day(series)
    start = pd.Timestamp(first_day) if last is None else last - pd.Timedelta(days=OVERLAP_DAYS)
    if start > until:
        outcome.last_day = last
        return outcome
    try:
        context = FetchContext(store.read(series), price_lookup(store) if connector.needs_price else None)
        frame = connector.fetch(series, start, until, context)
    except QuotaExhausted as exc:
        if exc.partial is not None and len(exc.partial):
            try:
                result = store.append(series, exc.partial, source=connector.name)
                outcome.new_rows, outcome.revised_rows = result.new_rows, result.revised_rows
            except (SpliceError, SchemaError) as splice:
                outcome.skipped, outcome.last_day = f"splice refused — {splice}", last
                return outcome
        outcome.skipped, outcome.quota_exhausted, outcome.resume_at = exc.message, True, exc.resume_at
        outcome.last_day = store.last_day(series)
        return outcome
    except NoNetwork as exc:
        outcome.skipped, outcome.network_down = f"no network ({exc.message})", True
        return outcome
    except ProviderError as exc:
        outcome.skipped = f"{exc.endpoint}: {exc.message}"
        outcome.last_day = last
        return outcome
    if frame is None or frame.empty:
        outcome.last_day = last
        outcome.skipped = "" if last is not None else "provider returned no data"
        return outcome
    try:
        result = store.append(series, frame, source=connector.name)
    except SpliceError as exc:  # a level shift against the stored days: refused, the series stays as it was
        outcome.skipped, outcome.last_day = f"splice refused — {exc}", last
        return outcome
    except SchemaError as exc:  # rows the store's schema refuses (a negative price, a duplicate day): nothing appended
        outcome.skipped, outcome.last_day = f"rows refused by the store's schema — {exc}", last
        return outcome
    outcome.new_rows, outcome.revised_rows, outcome.last_day = result.new_rows, result.revised_rows, result.last_day
    return outcome


def run_update(store: HistoryStore, connectors: list[Connector], until: pd.Timestamp | None = None,
               progress: Callable[[SeriesOutcome], None] | None = None) -> list[SeriesOutcome]:
    """Update every series of every connector; never raises for a provider's failure."""
    until = until or last_complete_day()
    outcomes = []
    for connector in connectors:
        reason = connector.unavailable()
        stop = QUOTA_STOPS.get(_quota_key(connector))
        if not reason and stop and pd.Timestamp.now(tz="UTC").tz_localize(None) < stop[0]:
            reason = f"{stop[1]} (said earlier in this run)"
        down = False
        for plan in connector.plans:
            if reason:
                outcome = SeriesOutcome(connector.name, plan.series, skipped=reason, last_day=store.last_day(plan.series))
            elif down:
                outcome = SeriesOutcome(connector.name, plan.series, skipped="no network", network_down=True)
            else:
                outcome = update_series(connector, plan.series, plan.first_day, store, until)
                down = outcome.network_down
                if outcome.quota_exhausted:
                    reason = outcome.skipped  # the rest of this provider's series wait too, and its other coins
                    QUOTA_STOPS[_quota_key(connector)] = (outcome.resume_at or pd.Timestamp.now(tz="UTC").tz_localize(None), outcome.skipped)
            outcomes.append(outcome)
            if progress:
                progress(outcome)
    return outcomes


def series_read_by(families: list[str] | tuple[str, ...]) -> set[str]:
    """The stored series that feed ``families`` (their inputs, and the series a derived input is taken from)."""
    from features.families import load_families

    registry = load_families()
    columns = {c for fam in families if fam in registry for name in (*registry[fam].inputs, *registry[fam].optional_inputs)
               for c in (name, *DERIVED_INPUTS.get(name, ()))}
    return {series for series, schema in SERIES.items() if columns & set(schema.columns)}


def not_refreshed(outcomes: list[SeriesOutcome], read: set[str]) -> dict[str, list[str]]:
    """Series the model reads for which every provider that serves them was skipped, with each one's reason."""
    by_series: dict[str, list[SeriesOutcome]] = {}
    for outcome in outcomes:
        by_series.setdefault(outcome.series, []).append(outcome)
    stale = {series: [f"{o.source}: {o.skipped}" for o in found] for series, found in by_series.items()
             if series in read and all(o.skipped for o in found)}
    fresh = {series for series, found in by_series.items() if not all(o.skipped for o in found)}
    # a multi-source input stays fed while any series behind it is refreshed (chain-linked): a source without its key is
    # then not a stale family (OI from Bybit while Coinalyze's needs a key)
    covered: set[str] = set()
    for name, derived in DERIVED_INPUTS.items():
        feeding = {series for series, schema in SERIES.items() if set(schema.columns) & {name, *derived}}
        if feeding & fresh:
            covered |= feeding
    return {series: reasons for series, reasons in stale.items() if series not in covered}
