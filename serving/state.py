"""What the service holds in memory: every coin's forecaster, and the answers about the past it gives the dashboard.

Kept free of BentoML so it can be tested and benchmarked directly. Every answer about a day comes from the one forecast
path (``forecast.predict.CoinForecaster``), exactly as the CLI, the daily job and the ledger get it. Labels are computed
only to *show* the past (the events, how alert episodes turned out), on the first such question; no prediction reads
them. Loading never raises: a missing champion or an empty store leaves the coin *not ready* with the reason, which
/v1/ready reports. A coin whose registry cannot be read keeps serving the champion it loaded, *degraded* with the reason.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from cascade_radar.config import Settings
from cascade_radar.rules import AUTO, OUT_OF_FOLD, coin_key, first_warning, shown, side, today_utc
from features.build import MarketContext
from features.labels import Labels, build_labels
from features.schemas import FIRST_DAY
from forecast.predict import EXPLANATIONS, CoinForecaster, NotReady, Unanswerable, load_coins


class RequestError(ValueError):
    """Bad input from the caller; ``field`` names what is wrong, ``status`` the HTTP code."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.status = status


OUTCOMES = ("hit", "false alarm", "pending", "unjudged")
T = TypeVar("T")


def _day_or_none(day: pd.Timestamp | None) -> str | None:
    return None if day is None or pd.isna(day) else str(pd.Timestamp(day).date())


def _number_or_none(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


def _last_judged_day(labels: Labels) -> str | None:
    """The last day the liquidation data judge (cascade or not): later alerts are still pending."""
    return _day_or_none(labels.daily["cascade_day"].dropna().index.max())


@dataclass
class ServingState:
    """One coin as the service serves it: its forecaster, or the reason it is not ready."""

    settings: Settings
    forecaster: CoinForecaster | None = None
    reason: str = ""
    context: MarketContext | None = None  # the context coin's data (None for the context coin itself)
    degraded: str = ""  # ready, but the registry could not confirm the champion at the last check: why (see CoinStates.refresh)
    _past: dict[str, object] = field(default_factory=dict)  # the labels and the answers about the past, computed once (see _once)
    _latest: dict[tuple[str, int, dt.date], dict[str, object]] = field(default_factory=dict)  # (basis, top, UTC day) -> the latest answer

    @property
    def ready(self) -> bool:
        return not self.reason

    @classmethod
    def load(cls, settings: Settings, context: MarketContext | None = None) -> ServingState:
        """The champion and history of ``settings.asset``; ``context``: the market context if already read (other coins)."""
        try:
            forecaster = CoinForecaster.load(settings, context)
        except NotReady as exc:
            return cls(settings, reason=str(exc))
        return cls.of(settings, forecaster)

    @classmethod
    def of(cls, settings: Settings, forecaster: CoinForecaster | None, reason: str = "") -> ServingState:
        """The state of a loaded forecaster (or of a coin that has none, with the reason)."""
        if forecaster is None:
            return cls(settings, reason=reason or "not loaded")
        forecaster.warm(AUTO)  # every day scored and the latest explained: /predict of the latest day is a lookup
        return cls(settings, forecaster, context=forecaster.context)

    @property
    def identity(self) -> dict[str, str]:
        return self.forecaster.champion.identity if self.forecaster else {}

    def model_info(self) -> dict[str, str]:
        return self.forecaster.champion.info

    @property
    def first_day(self) -> pd.Timestamp:
        return self.forecaster.first_day

    @property
    def last_day(self) -> pd.Timestamp:
        return self.forecaster.last_day

    def _ask(self, fn: Callable[[], T], field_name: str) -> T:
        try:
            return fn()
        except Unanswerable as exc:
            raise RequestError(field_name, exc.message, exc.status) from None

    # ------------------------------------------------------------------ a day, many days
    def prediction(self, day: dt.date | None, basis: str = AUTO, top: int = 5) -> dict[str, object]:
        """The answer for ``day`` (default: the last answerable day), as /predict gives it. The latest day's answer is
        worked out once per UTC day (its age counts whole days) and handed out again: the question asked most costs a
        lookup, not ~1 ms of Python on top of the HTTP round trip (issue 37: /predict within 1.1x /ping). Read-only."""
        latest = self.forecaster.data_through
        if latest is None or (day is not None and day != latest.date()):
            return self._ask(lambda: self.forecaster.forecast(day, basis, top), "day")
        key = (basis, top, today_utc())
        found = self._latest.get(key)
        if found is None:
            found = self._ask(lambda: self.forecaster.forecast(latest, basis, top, today=key[2]), "day")
            self._latest = {k: v for k, v in self._latest.items() if k[2] == key[2]} | {key: found}  # yesterday's are stale
        return found

    def explanation(self, day: dt.date | None, basis: str = AUTO) -> dict[str, object]:
        """The answer with every SHAP value (/explain)."""
        return self._ask(lambda: self.forecaster.forecast(day, basis, top=10, detail=True), "day")

    def range(self, start: dt.date, end: dt.date, max_days: int = 4000, basis: str = AUTO, families: bool = False) -> dict[str, object]:
        """Every answerable day of [start, end] (/predict_range; with each family's push: /v1/timeline), and the refused
        runs with why."""
        if end < start:
            raise RequestError("end", f"end {end} is before start {start}", 422)
        field_name = "start" if not self.first_day.date() <= start <= self.last_day.date() else "end"
        self._ask(lambda: self.forecaster.check_span(start, end), field_name)  # outside the history: 404 first
        if (end - start).days + 1 > max_days:
            raise RequestError("end", f"at most {max_days} days per request")
        return self.forecaster.forecast_range(start, end, basis, families)

    def signals(self, start: dt.date | None, end: dt.date | None, form: str = "json") -> dict[str, object] | str:
        """The signals behind the forecasts (/v1/signals): price, liquidations, OI, funding, positioning, flows, SOPR,
        STH-NUPL per day of [start, end] (default: the whole history), each column in its own unit — JSON, CSV with
        ``form='csv'``; with ``form='signals'`` a /predict_signals body of every family input (default start: as many days
        before ``end`` as one body may hold, ``serving_max_signal_rows``)."""
        from forecast.signals import signals_answer, signals_body, signals_csv

        first, last = self.first_day.date(), self.last_day.date()
        for name, day in (("start", start), ("end", end)):
            if day is not None and not first <= day <= last:
                raise RequestError(name, f"{name} {day} is outside the history ({first}..{last})", 404)
        if start is not None and end is not None and end < start:
            raise RequestError("end", f"end {end} is before start {start}", 422)
        if form == "signals" and start is None:
            start = max(first, (end or last) - dt.timedelta(days=self.settings.serving_max_signal_rows - 1))
        make = {"csv": signals_csv, "signals": signals_body}.get(form, signals_answer)
        return make(self.settings.asset, self.forecaster.panel.loc[: self.last_day], start, end)

    def reconstruction(self, event: dt.date) -> dict[str, object]:
        """The build-up before the event starting on ``event`` (/v1/reconstruction): every family's move, the warning onsets,
        the sequence, the RSI divergence, a text — and the model's path (first alert, lead, side) as /v1/events counts it."""
        from features.reconstruction import reconstruct

        day = pd.Timestamp(event)
        if not self.first_day + pd.Timedelta(days=self.settings.replay.window_days) <= day <= self.last_day + pd.Timedelta(days=1):
            raise RequestError("event", f"event {event} leaves no {self.settings.replay.window_days}-day window inside the history "
                                        f"({self.first_day.date()}..{self.last_day.date()})", 404)
        built = reconstruct(self.forecaster.panel, self.forecaster.features, day, self.settings.replay.window_days)
        labelled = [e for e in self.events_answer()["events"] if abs((pd.Timestamp(e["start"]) - day).days) <= 1]
        built["event"] = labelled[0] if labelled else None  # the labelled event it matches (within a day), with the model's first alert
        built["model"] = ({k: labelled[0].get(k) for k in ("first_alert", "lead_days", "side_at_first_alert", "basis_at_first_alert")}
                          if labelled else None)
        return {"asset": self.settings.asset, **built}

    # ------------------------------------------------------------------ the past: events and alert episodes
    def events_answer(self) -> dict[str, object]:
        """The labelled events (/v1/events): side, size in dollars and in multiples of the trailing median, whether each
        is *notable* (a configured replay event, or among the largest the out-of-fold period covers), and the first alert
        that warned of it (the 'auto' basis on answerable days) with its lead and side."""
        return self._once("events", self._events)

    def episodes_answer(self, basis: str = AUTO) -> dict[str, object]:
        """Every alert episode of ``basis``'s answerable days (/v1/episodes), judged: hit, false alarm, pending or unjudged."""
        return self._once(f"episodes/{basis}", lambda: self._episodes(basis))

    def _once(self, key: str, compute: Callable[[], T]) -> T:
        # a state's history never changes while it serves (a reload builds a new state): compute each answer once
        if key not in self._past:
            self._past[key] = compute()
        return self._past[key]  # type: ignore[return-value]

    def _labels(self) -> Labels:
        # built on the first question about the past, not at start-up (~80 ms a coin, for answers only the dashboard asks)
        return self._once("labels", lambda: build_labels(self.forecaster.panel, self.settings.labels))

    def _answered(self, basis: str) -> pd.DataFrame:
        """p_cascade, p_long, p_short and basis of every answerable day."""
        ex = self.forecaster.explained(basis)
        frame = pd.DataFrame(ex.probs, index=ex.days, columns=["p_cascade", "p_long", "p_short"]).assign(basis=ex.basis)
        return frame.loc[self.forecaster.answerable_days]

    def _events(self) -> dict[str, object]:
        from training.replay import select_events

        cfg, labels = self.settings.labels, self._labels()
        events = labels.events
        answered = self._answered(AUTO)
        oof = answered[answered["basis"] == OUT_OF_FOLD]
        notable = set(select_events(events, self.settings, oof)[0].index) if len(oof) and len(events) else set()
        alert_days = answered.index[answered["p_cascade"].to_numpy() >= self.forecaster.alert_threshold]
        rows = []
        for i, e in zip(events.index, events.itertuples(), strict=True):
            first = first_warning(alert_days, e.start, cfg.horizon_days)
            rows.append({"start": str(e.start.date()), "end": str(e.end.date()), "days": int(e.days), "side": e.direction,
                         "side_basis": e.side_basis, "long_share": _number_or_none(e.long_share), "price_move": _number_or_none(e.price_move),
                         "move_sigmas": _number_or_none(e.move_sigmas),
                         "long_usd": float(e.long_usd), "short_usd": float(e.short_usd), "total_usd": float(e.total_usd),
                         "peak_ratio": float(e.peak_ratio), "major": bool(e.peak_ratio >= cfg.major_multiple), "notable": i in notable,
                         "series": e.series, "first_alert": _day_or_none(first), "lead_days": None if first is None else (e.start - first).days,
                         "side_at_first_alert": None if first is None else str(side(answered.at[first, "p_long"], answered.at[first, "p_short"])),
                         "basis_at_first_alert": None if first is None else str(answered.at[first, "basis"])})
        return {"asset": self.settings.asset, "cascade_multiple": cfg.cascade_multiple, "major_multiple": cfg.major_multiple,
                "horizon_days": cfg.horizon_days, "replay_window_days": self.settings.replay.window_days,
                "last_judged_day": _last_judged_day(labels), "count": len(rows), "events": rows}

    def _episodes(self, basis: str) -> dict[str, object]:
        from training.metrics import judge_episodes

        answered = self._answered(basis)
        cfg, labels = self.settings.labels, self._labels()
        judged = judge_episodes(answered["p_cascade"], self.forecaster.alert_threshold, labels.events, cfg.horizon_days,
                                labels.daily["cascade_day"].notna())
        rows = [{"first": str(e.first.date()), "last": str(e.last.date()), "days": int(e.days), "peak_p_cascade": float(e.peak_probability),
                 "outcome": e.outcome, "event_start": _day_or_none(e.event_start),
                 "event_side": None if pd.isna(e.event_direction) else e.event_direction,
                 "lead_days": None if pd.isna(e.lead_days) else int(e.lead_days),
                 "basis": sorted(set(answered.loc[e.first:e.last, "basis"]))} for e in judged.itertuples()]
        counts = judged["outcome"].value_counts()
        # per basis of the day the alert fired: the out-of-fold record is the honest one, in-sample days are hindsight
        fired = answered.loc[judged["first"], "basis"].to_numpy() if len(judged) else np.array([])
        by_basis = {b: {o: int(((fired == b) & (judged["outcome"] == o)).sum()) for o in OUTCOMES} for b in sorted(set(fired))}
        return {"asset": self.settings.asset, "basis": basis, "threshold": self.forecaster.alert_threshold, "horizon_days": cfg.horizon_days,
                "last_judged_day": _last_judged_day(labels), "hits": int(counts.get("hit", 0)),
                "false_alarms": int(counts.get("false alarm", 0)), "pending": int(counts.get("pending", 0)),
                "unjudged": int(counts.get("unjudged", 0)), "by_basis": by_basis, "episodes": rows}

    # ------------------------------------------------------------------ posted signals
    def min_signal_rows(self) -> int:
        return self.settings.serving_min_signal_rows

    def signals_panel(self, signals: list[BaseModel]) -> pd.DataFrame:
        """The posted rows as a raw panel (columns named like the families' inputs)."""
        # cross-row rules a schema cannot state: a well-formed request that breaks them is a 422
        first, last = FIRST_DAY, dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
        for i, row in enumerate(signals):
            if not first <= row.date <= last:
                raise RequestError(f"signals.{i}.date", f"{row.date}: signals are dated from {first} (Bitcoin's first block) to {last} "
                                   "(tomorrow, UTC)", 422)
        for i in range(1, len(signals)):
            step = (signals[i].date - signals[i - 1].date).days
            if step != 1:
                what = "duplicate" if step == 0 else "not increasing" if step < 0 else f"a gap of {step - 1} day(s)"
                raise RequestError(f"signals.{i}.date", f"{signals[i].date}: days must be consecutive, oldest first ({what} after "
                                   f"{signals[i - 1].date})", 422)
        if len(signals) < self.min_signal_rows():
            raise RequestError("signals", f"{len(signals)} rows posted, at least {self.min_signal_rows()} consecutive days are needed "
                               f"(the longest feature window plus lags)", 422)
        frame = pd.DataFrame([s.model_dump() for s in signals])
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date")
        return frame.astype("float64")

    def predict_signals(self, signals: list[BaseModel], top: int = 5) -> dict[str, object]:
        """The answer for the last posted day, through the same forecast path as a stored day."""
        # another coin's posted rows read the context coin's on-chain families from the stored history, like training did
        posted = CoinForecaster.build(self.settings, self.forecaster.champion, self.signals_panel(signals), self.context)
        last = posted.last_day
        return self._ask(lambda: posted.forecast(last, AUTO, top), f"signals.{len(signals) - 1}")


@dataclass
class CoinStates:
    """Every served coin's state; a coin without a champion (failed gate) or history is *not ready* with its reason.

    It follows the registry: at most every ``serving_registry_check_seconds`` a request triggers a cheap look at
    each coin's `champion` alias; a coin whose alias moved (a new champion, or a first one) is reloaded in the
    background and swapped in when ready, while the old state keeps answering. A champion *withdrawn* (the alias
    removed, the model deleted) stops being served; a registry that cannot be read (store missing, locked, corrupt,
    unreachable) says nothing about the alias, so the loaded champion keeps answering, *degraded* with why, until a
    check reads the registry again.
    """

    settings: Settings
    states: dict[str, ServingState]
    context: MarketContext | None = None
    checked_at: float = field(default_factory=time.monotonic)
    reloading: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, settings: Settings) -> CoinStates:
        from serving.package import served_assets

        served = served_assets(settings)  # inside a Bento: the coins that were packaged
        if served != settings.assets:  # the default coin among them, as the settings choose it for their own list
            default = settings.asset if settings.asset in served or "asset" in settings.model_fields_set else served[0]
            settings = settings.model_copy(update={"assets": served, "asset": default})
        EXPLANATIONS.budget_bytes = settings.serving_explanation_cache_mb * 2**20
        coins = load_coins(settings)  # the context coin's data read and turned into features once, for every coin
        states = {asset: ServingState.of(settings.for_asset(asset), coins.forecasters.get(asset), coins.reasons.get(asset, ""))
                  for asset in settings.assets}
        return cls(settings, states, coins.context)

    @property
    def ready(self) -> bool:
        return any(s.ready for s in self.states.values())

    @property
    def reason(self) -> str:
        return "; ".join(f"{a}: {s.reason}" for a, s in self.states.items() if s.reason)

    def get(self, asset: str) -> ServingState:
        """The state of ``asset``; unknown coin -> 404 naming the served ones; a coin that is not ready -> 503 with why."""
        self.refresh(force=False)
        state = self.states.get(coin_key(asset))
        if state is None:
            raise RequestError("asset", f"{shown(asset)} is not served (served: {', '.join(self.states)})", 404)
        if not state.ready:
            raise RequestError("asset", f"{coin_key(asset)} is not ready: {state.reason}", 503)
        return state

    def refresh(self, force: bool = True, wait: bool = False) -> list[str]:
        """Reload the coins whose `champion` moved; returns them. Due at most every ``serving_registry_check_seconds``
        unless ``force``; with ``wait`` the reload happens before returning (tests, the CLI)."""
        from training.register import champion_lookup

        now = time.monotonic()
        with self.lock:  # requests and readiness probes run in threads: one of them checks, once per interval
            if not force and now - self.checked_at < self.settings.serving_registry_check_seconds:
                return []
            self.checked_at = now
        moved = []
        if self.settings.packaged_path is not None:
            return []  # a Bento serves what it was built with
        for asset, state in list(self.states.items()):
            found = champion_lookup(state.settings)
            was = state.identity.get("version")
            if not found.readable:  # nothing is known about the alias: the loaded champion is still the best answer
                if state.ready:
                    state.degraded = f"{found.why}; serving version {was} as loaded until the registry reads again"
                continue
            if found.withdrawn and state.ready:  # the last good model is not served as the champion
                with self.lock:
                    self.states[asset] = ServingState(state.settings, reason=f"no champion any more: {found.why} (was version {was}); "
                                                      "answers resume when a champion is registered again")
                moved.append(asset)
                continue
            if found.version == was:
                state.degraded = ""  # the registry confirms what is served
            with self.lock:
                due = found.version is not None and found.version != was and asset not in self.reloading
                if due:
                    self.reloading.add(asset)
            if due:
                moved.append(asset)
                worker = threading.Thread(target=self._reload, args=(asset, found.version), daemon=True, name=f"reload-{asset}")
                worker.start()
                if wait:
                    worker.join()
        return moved

    def _reload(self, asset: str, version: str) -> None:
        try:
            self._swap_in(asset, version)
        finally:
            self.reloading.discard(asset)
        release_freed_memory()  # the replaced state's last reference went with _swap_in's locals

    def _swap_in(self, asset: str, version: str) -> None:
        fresh = ServingState.load(self.settings.for_asset(asset), self.context)
        with self.lock:
            current = self.states[asset]
            if fresh.ready or not current.ready:
                self.states[asset] = fresh
            else:  # the new champion did not load (its store unreadable since the look, say): the loaded one keeps answering
                current.degraded = (f"champion version {version} could not be loaded ({fresh.reason}); serving version "
                                    f"{current.identity.get('version')} until it loads (tried again at the next check)")


def release_freed_memory() -> None:
    """Give the heap a replaced state freed back to the system. glibc keeps freed memory in the arena of the thread that
    allocated it (up to 8 arenas per core), and every reload runs in a thread of its own, building ~100 MB that it mostly
    frees again: without this, swap after swap left its high-water mark in another arena and RSS climbed for dozens of
    swaps (bench/bench_swaps.py: +132 MB over 25 swaps on the reference history, then flat at 16 arenas on 2 cores; more
    cores, more arenas, a longer climb). A replaced state is freed by reference counting (no cycles: measured), so no
    garbage collection is needed first (a full one holds the interpreter ~0.3 s); the trim takes ~5 ms."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator's own policy applies
        pass
