"""What the service holds in memory: the champion, the history, and every day's prediction + explanation.

Kept free of BentoML so it can be tested and benchmarked directly. Features and explanations come from
the same code as training (``features.build.feature_frame``, ``training.explain``). Labels are computed
only to *show* the past (the events, how alert episodes turned out), on the first such question; no
prediction reads them. Loading never raises: a missing champion or an empty store leaves the state
*not ready* with the reason, which /v1/ready reports.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel

from cascade_radar.config import Settings
from features.build import MarketContext, feature_frame, is_context_coin, load_market_context
from features.freshness import Freshness, FreshnessTable, last_present_days, latest_complete_day
from features.families import family_of, required_inputs
from features.labels import Labels, build_labels
from features.store import HistoryStore
from training.explain import AUTO, IN_SAMPLE, OUT_OF_FOLD, Explainer, champion_explainer, champion_fold_sources, day_explanation, fold_model_sources
from training.model import CascadeModel, side


class RequestError(ValueError):
    """Bad input from the caller; ``field`` names what is wrong, ``status`` the HTTP code."""

    def __init__(self, field_name: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.status = status


def missing_inputs(panel: pd.DataFrame, days: pd.DatetimeIndex) -> list[list[str]]:
    """Per day, the family inputs with no value that day (absent columns count as missing every day)."""
    inputs = required_inputs()
    present = panel.reindex(index=days, columns=inputs).notna().to_numpy()
    return [[c for c, ok in zip(inputs, flags, strict=True) if not ok] for flags in present]


OUTCOMES = ("hit", "false alarm", "pending", "unjudged")
T = TypeVar("T")


def _day_or_none(day: pd.Timestamp | None) -> str | None:
    return None if day is None or pd.isna(day) else str(pd.Timestamp(day).date())


def _last_judged_day(labels: Labels) -> str | None:
    """The last day the liquidation data judge (cascade or not): later alerts are still pending."""
    return _day_or_none(labels.daily["cascade_day"].dropna().index.max())


def age_days(day: pd.Timestamp) -> int:
    """Days from ``day`` to today (UTC): how old an answer's data are."""
    return (dt.datetime.now(dt.UTC).date() - pd.Timestamp(day).date()).days


def packaged_champion(settings: Settings) -> tuple[CascadeModel, dict[str, str]]:
    """The champion of ``settings.asset`` as `make bento` packaged it."""
    root = settings.packaged_path / settings.asset.lower()
    if not (root / "model" / "meta.json").exists():
        raise LookupError(f"no packaged champion for {settings.asset} in {settings.packaged_path} (it had none when the Bento was built)")
    return CascadeModel.load(root / "model"), json.loads((root / "identity.json").read_text())


@dataclass(frozen=True)
class DayAnswers:
    """Per-day arrays of explained days: answering for a day is an index lookup and a top-k, no pandas."""

    days: pd.DatetimeIndex
    probs: np.ndarray  # (days, 3) p_cascade, p_long, p_short
    shap: np.ndarray  # (days, features) cascade log-odds contributions
    values: np.ndarray  # (days, features) feature values
    basis: np.ndarray
    missing: list[list[str]]
    drivers: list[tuple[str, str]]  # (feature, family) per column

    @classmethod
    def build(cls, explained: pd.DataFrame, features: pd.DataFrame, panel: pd.DataFrame, model: CascadeModel) -> DayAnswers:
        feats = model.features
        return cls(explained.index, explained[["p_cascade", "p_long", "p_short"]].to_numpy(),
                   explained[[f"cascade_shap__{f}" for f in feats]].to_numpy(), features.loc[explained.index, feats].to_numpy(),
                   explained["basis"].to_numpy(), missing_inputs(panel, explained.index), [(f, family_of(f)) for f in feats])

    def answer(self, i: int, data_through: pd.Timestamp, settings: Settings, model: dict[str, str], top: int = 5) -> dict[str, object]:
        """The prediction answer (/predict, /predict_signals) for the ``i``-th day of ``settings.asset``."""
        p, p_long, p_short = (float(v) for v in self.probs[i])
        shap = self.shap[i]
        drivers = []
        for j in np.argsort(-np.abs(shap), kind="stable")[:top]:
            value = self.values[i, j]
            feature, fam = self.drivers[j]
            drivers.append({"feature": feature, "family": fam, "value": float(value) if np.isfinite(value) else None, "contribution": float(shap[j])})
        return {
            "asset": settings.asset, "as_of": str(self.days[i].date()), "data_through": str(data_through.date()), "horizon_days": settings.labels.horizon_days,
            "cascade_probability": p, "long_probability": p_long, "short_probability": p_short,
            "direction": str(side(p_long, p_short)), "alert": p >= settings.alert_threshold,
            "basis": str(self.basis[i]), "hindsight": str(self.basis[i]) == IN_SAMPLE, "missing_inputs": self.missing[i], "model": model, "top_drivers": drivers,
        }


@dataclass
class ServingState:
    settings: Settings
    model: CascadeModel | None = None
    identity: dict[str, str] = field(default_factory=dict)
    panel: pd.DataFrame | None = None
    features: pd.DataFrame | None = None
    explained: pd.DataFrame | None = None
    explainer: Explainer | None = None
    answers: DayAnswers | None = None
    reason: str = ""

    @property
    def ready(self) -> bool:
        return not self.reason

    context: MarketContext | None = None  # the context coin's data (None for the context coin itself)
    fresh: FreshnessTable | None = None  # per day and family: last day with the family's inputs
    _complete_day: pd.Timestamp | None = None  # derived once at load (see derive)
    _past: dict[str, object] = field(default_factory=dict)  # the labels and the answers about the past, computed once (see _once)
    _champion_view: tuple[pd.DataFrame, DayAnswers] | None = None

    @classmethod
    def load(cls, settings: Settings, context: MarketContext | None = None) -> ServingState:
        """The champion and history of ``settings.asset``; ``context``: the market context if already read (other coins)."""
        from training.register import load_champion

        state = cls(settings)
        try:
            state.model, state.identity = packaged_champion(settings) if settings.packaged_path else load_champion(settings)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not ready", with the reason
            state.reason = f"no champion model: {exc}"
            return state
        store = HistoryStore(settings.data_path)
        if store.is_empty():
            state.reason = f"no history in {settings.data_path}: run `make data-reference` or `make data`"
            return state
        try:
            if not is_context_coin(settings):
                state.context = context if context is not None else load_market_context(settings)
            state.panel, state.features, _ = feature_frame(store.panel(), settings, state.context)
            state.derive(last_present_days(state.panel, state.context))
        except Exception as exc:  # noqa: BLE001
            state.reason = f"history could not be turned into features: {exc}"
            return state
        # default basis, as the CLI's: a past day a fold covered is explained by that fold's model (out-of-fold)
        folds = (fold_model_sources(settings.packaged_path / settings.asset.lower()) if settings.packaged_path
                 else champion_fold_sources(settings, state.identity))
        state.explainer = champion_explainer(state.model, state.identity, settings, folds)
        state.explained = state.explainer.explain(state.features)
        state.answers = DayAnswers.build(state.explained, state.features, state.panel, state.model)
        return state

    def basis_view(self, basis: str) -> tuple[pd.DataFrame, DayAnswers]:
        """(explained days, answers) for ``basis``: 'auto' (precomputed) or 'champion' (computed on first use: the champion
        on every day, in-sample — hindsight — where it was trained)."""
        if basis == AUTO:
            return self.explained, self.answers
        if self._champion_view is None:
            explainer = champion_explainer(self.model, self.identity, self.settings, [])
            explained = explainer.explain(self.features)
            self._champion_view = (explained, DayAnswers.build(explained, self.features, self.panel, self.model))
        return self._champion_view

    # ------------------------------------------------------------------ queries
    @property
    def first_day(self) -> pd.Timestamp:
        return self.features.index[0]

    @property
    def last_day(self) -> pd.Timestamp:
        return self.features.index[-1]

    def derive(self, fresh: FreshnessTable) -> None:
        """Per-request lookups computed once from the panel: the latest complete day and the freshness table."""
        self.fresh = fresh
        self._complete_day = latest_complete_day(self.panel)

    def latest_complete_day(self) -> pd.Timestamp:
        """The latest day on which every family input that the history holds at all has a value."""
        return self._complete_day

    def resolve_day(self, as_of: dt.date | None, field_name: str = "as_of", complete: bool = False) -> pd.Timestamp:
        """The day asked (default: the latest complete one). With ``complete``, a day after the latest complete day is
        refused with the reason instead of being answered from partial inputs."""
        if as_of is None:
            return self.latest_complete_day()
        day = pd.Timestamp(as_of)
        if day < self.first_day or day > self.last_day:
            raise RequestError(field_name, f"{as_of} is outside the history ({self.first_day.date()}..{self.last_day.date()})", 404)
        last_complete = self.latest_complete_day()
        if complete and day > last_complete:
            behind = [f.family for f in self.freshness(day) if f.stale]
            raise RequestError(field_name, f"{as_of} is after the latest complete day {last_complete.date()}: the inputs of "
                               f"{', '.join(behind) or 'some families'} stop before it (update the store: `cascade-radar daily`)", 404)
        return day

    def freshness(self, day: pd.Timestamp) -> list[Freshness]:
        return self.fresh.on(day, self.settings.alerts.stale_after_days)

    def freshness_fields(self, day: pd.Timestamp, fresh: FreshnessTable | None = None) -> dict[str, object]:
        """The freshness part of an answer (of a stored day, or of posted signals with their own ``fresh`` table)."""
        found = (fresh or self.fresh).on(day, self.settings.alerts.stale_after_days)
        return {"freshness": [f.as_dict() for f in found], "stale": [f.family for f in found if f.stale], "as_of_age_days": age_days(day)}

    def model_info(self) -> dict[str, str]:
        return {k: self.identity[k] for k in ("name", "version", "alias")}

    def explanation(self, day: pd.Timestamp, basis: str = AUTO) -> dict[str, object]:
        explained, _ = self.basis_view(basis)
        answer = day_explanation(explained.loc[day], self.features.loc[day], self.settings.labels.horizon_days, self.settings.alert_threshold)
        return {**answer, **self.freshness_fields(day)}

    def prediction(self, day: pd.Timestamp, top: int = 5, basis: str = AUTO) -> dict[str, object]:
        """The /predict answer for a stored day, from the arrays computed at start-up."""
        _, answers = self.basis_view(basis)
        return {**answers.answer(answers.days.get_loc(day), self.last_day, self.settings, self.model_info(), top), **self.freshness_fields(day)}

    def range(self, start: dt.date, end: dt.date, max_days: int = 4000, basis: str = AUTO) -> list[dict[str, object]]:
        if end < start:
            raise RequestError("end", f"end {end} is before start {start}", 422)
        first, last = self.resolve_day(start, "start"), self.resolve_day(end, "end")
        if (last - first).days + 1 > max_days:
            raise RequestError("end", f"at most {max_days} days per request")
        rows = self.basis_view(basis)[0].loc[first:last]
        thr = self.settings.alert_threshold
        sides = side(rows["p_long"].to_numpy(), rows["p_short"].to_numpy())
        return [{"as_of": str(day.date()), "cascade_probability": float(r.p_cascade), "long_probability": float(r.p_long),
                 "short_probability": float(r.p_short), "direction": str(s), "alert": bool(r.p_cascade >= thr), "basis": r.basis,
                 "hindsight": r.basis == IN_SAMPLE}
                for day, r, s in zip(rows.index, rows.itertuples(), sides, strict=True)]

    # ------------------------------------------------------------------ the past: events and alert episodes
    def events_answer(self) -> dict[str, object]:
        """The labelled events (/v1/events): side, size in dollars and in multiples of the trailing median, and whether
        each is *notable* (a configured replay event, or among the largest the out-of-fold period covers)."""
        return self._once("events", self._events)

    def episodes_answer(self, basis: str = AUTO) -> dict[str, object]:
        """Every alert episode of ``basis``'s daily probabilities up to the latest complete day (/v1/episodes), judged:
        hit, false alarm, pending or unjudged."""
        return self._once(f"episodes/{basis}", lambda: self._episodes(basis))

    def _once(self, key: str, compute: Callable[[], T]) -> T:
        # a state's history never changes while it serves (a reload builds a new state): compute each answer once
        if key not in self._past:
            self._past[key] = compute()
        return self._past[key]  # type: ignore[return-value]

    def _labels(self) -> Labels:
        # built on the first question about the past, not at start-up (~80 ms a coin, for answers only the dashboard asks)
        return self._once("labels", lambda: build_labels(self.panel, self.settings.labels))

    def _events(self) -> dict[str, object]:
        from training.replay import select_events

        cfg, labels = self.settings.labels, self._labels()
        events = labels.events
        oof = self.explained[self.explained["basis"] == OUT_OF_FOLD]
        notable = set(select_events(events, self.settings, oof)[0].index) if len(oof) and len(events) else set()
        rows = [{"start": str(e.start.date()), "end": str(e.end.date()), "days": int(e.days), "direction": e.direction,
                 "long_usd": float(e.long_usd), "short_usd": float(e.short_usd), "total_usd": float(e.total_usd),
                 "peak_ratio": float(e.peak_ratio), "major": bool(e.peak_ratio >= cfg.major_multiple), "notable": i in notable,
                 "series": e.series} for i, e in zip(events.index, events.itertuples(), strict=True)]
        return {"asset": self.settings.asset, "cascade_multiple": cfg.cascade_multiple, "major_multiple": cfg.major_multiple,
                "horizon_days": cfg.horizon_days, "replay_window_days": self.settings.replay.window_days,
                "last_judged_day": _last_judged_day(labels), "count": len(rows), "events": rows}

    def _episodes(self, basis: str) -> dict[str, object]:
        from training.metrics import judge_episodes

        # the days /predict answers: after the latest complete day the inputs are partial
        explained = self.basis_view(basis)[0].loc[: self.latest_complete_day()]
        cfg, labels = self.settings.labels, self._labels()
        judged = judge_episodes(explained["p_cascade"], self.settings.alert_threshold, labels.events, cfg.horizon_days,
                                labels.daily["cascade_day"].notna())
        rows = [{"first": str(e.first.date()), "last": str(e.last.date()), "days": int(e.days), "peak_probability": float(e.peak_probability),
                 "outcome": e.outcome, "event_start": _day_or_none(e.event_start),
                 "event_direction": None if pd.isna(e.event_direction) else e.event_direction,
                 "lead_days": None if pd.isna(e.lead_days) else int(e.lead_days),
                 "basis": sorted(set(explained.loc[e.first:e.last, "basis"]))} for e in judged.itertuples()]
        counts = judged["outcome"].value_counts()
        # per basis of the day the alert fired: the out-of-fold record is the honest one, in-sample days are hindsight
        fired = explained.loc[judged["first"], "basis"].to_numpy() if len(judged) else []
        by_basis = {b: {o: int(((fired == b) & (judged["outcome"] == o)).sum()) for o in OUTCOMES} for b in sorted(set(fired))}
        return {"asset": self.settings.asset, "basis": basis, "threshold": self.settings.alert_threshold, "horizon_days": cfg.horizon_days,
                "last_judged_day": _last_judged_day(labels), "hits": int(counts.get("hit", 0)),
                "false_alarms": int(counts.get("false alarm", 0)), "pending": int(counts.get("pending", 0)),
                "unjudged": int(counts.get("unjudged", 0)), "by_basis": by_basis, "episodes": rows}

    # ------------------------------------------------------------------ posted signals
    def min_signal_rows(self) -> int:
        return self.settings.serving_min_signal_rows

    def signals_panel(self, signals: list[BaseModel]) -> pd.DataFrame:
        """The posted rows as a raw panel (columns named like the families' inputs)."""
        # cross-row rules a schema cannot state: a well-formed request that breaks them is a 422
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
        """Prediction for the last posted day, through the same feature and explanation code as a stored day."""
        # another coin's posted rows read the context coin's on-chain families from the stored history, like training did
        panel, features, _ = feature_frame(self.signals_panel(signals), self.settings, self.context)
        day = features.index[-1]
        explained = self.explainer.explain(features.loc[[day]])
        answer = DayAnswers.build(explained, features, panel, self.model).answer(0, day, self.settings, self.model_info(), top)
        return {**answer, **self.freshness_fields(day, last_present_days(panel, self.context))}


@dataclass
class CoinStates:
    """Every served coin's state; a coin without a champion (failed gate) or history is *not ready* with its reason.

    It follows the registry: at most every ``serving_registry_check_seconds`` a request triggers a cheap look at
    each coin's `champion` alias; a coin whose alias moved (a new champion, or a first one) is reloaded in the
    background and swapped in when ready, while the old state keeps answering.
    """

    settings: Settings
    states: dict[str, ServingState]
    context: MarketContext | None = None
    checked_at: float = field(default_factory=time.monotonic)
    reloading: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, settings: Settings) -> CoinStates:
        if settings.packaged_path is not None:  # inside a Bento: the coins that were packaged
            from serving.package import packaged_assets

            settings = settings.model_copy(update={"assets": packaged_assets(settings.packaged_path) or settings.assets})
        # the context coin's data are read and turned into features once, for every other coin
        others = [a for a in settings.assets if not is_context_coin(settings.for_asset(a))]
        try:
            context = load_market_context(settings) if others else None
        except Exception:  # noqa: BLE001 - each coin's own load then says why
            context = None
        states = {asset: ServingState.load(settings.for_asset(asset), context) for asset in settings.assets}
        return cls(settings, states, context)

    @property
    def ready(self) -> bool:
        return any(s.ready for s in self.states.values())

    @property
    def reason(self) -> str:
        return "; ".join(f"{a}: {s.reason}" for a, s in self.states.items() if s.reason)

    def get(self, asset: str) -> ServingState:
        """The state of ``asset``; unknown coin -> 404 naming the served ones; a coin that is not ready -> 503 with why."""
        self.refresh(force=False)
        state = self.states.get(asset.upper())
        if state is None:
            raise RequestError("asset", f"{asset} is not served (served: {', '.join(self.states)})", 404)
        if not state.ready:
            raise RequestError("asset", f"{asset} is not ready: {state.reason}", 503)
        return state

    def refresh(self, force: bool = True, wait: bool = False) -> list[str]:
        """Reload the coins whose `champion` moved; returns them. Due at most every ``serving_registry_check_seconds``
        unless ``force``; with ``wait`` the reload happens before returning (tests, the CLI)."""
        from training.register import champion_identity

        now = time.monotonic()
        if not force and now - self.checked_at < self.settings.serving_registry_check_seconds:
            return []
        self.checked_at = now
        moved = []
        if self.settings.packaged_path is not None:
            return []  # a Bento serves what it was built with
        for asset, state in list(self.states.items()):
            version = champion_identity(state.settings)
            if version is not None and version != state.identity.get("version") and asset not in self.reloading:
                moved.append(asset)
                self.reloading.add(asset)
                worker = threading.Thread(target=self._reload, args=(asset,), daemon=True, name=f"reload-{asset}")
                worker.start()
                if wait:
                    worker.join()
        return moved

    def _reload(self, asset: str) -> None:
        try:
            fresh = ServingState.load(self.settings.for_asset(asset), self.context)
            with self.lock:
                self.states[asset] = fresh
        finally:
            self.reloading.discard(asset)
