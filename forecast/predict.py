"""The one forecast path: given a coin, a day and a basis, *the* answer — every interface formats this and nothing else.

``CoinForecaster`` holds one coin's champion (with its fold models), its history turned into features once, and every
day scored once per basis (as arrays); a day's explanation (LightGBM's exact TreeSHAP) is computed with its block of
days when first asked and kept in the process's cache within a memory budget (``EXPLANATIONS``). From that it answers:

* ``forecast(day, basis)`` — P(cascade) with its yardstick (the coin's base rate, the relative risk, the percentile),
  P(a major cascade) and P(cascade) within each shorter horizon (``p_major``, ``p_cascade_by_horizon``: null from a
  champion trained before those heads),
  the side and its probabilities, the alert, the basis and the model that
  answered, the explanation (drivers, per-family log-odds, a sentence), the freshness of every family, the missing
  families and the age of the answer against today (UTC);
* ``forecast_range(start, end, basis)`` — many days in one pass, for timelines and replays of the daily job.

The API routes, the dashboard, `cascade-radar today` / `explain` / `daily`, the ledger row and the alert payload all
call these, so they agree to the last digit.

**Basis** (written once, ``cascade_radar.rules.BASIS_RULE``): 'auto' answers a day inside a walk-forward test block of
the champion's run with that fold's model (out-of-fold), a day after the champion's training data with the champion
(out-of-sample), any other day with the champion in-sample, flagged as hindsight.

**An answerable day** (one rule, every interface): at most ``alerts.max_missing_families`` (default 1) of the families
the model reads lack data within ``alerts.stale_after_days`` before the day — the model is trained to score one missing
family, not several. Those families are flagged ``missing_families``, scored as missing (never as 0) and never named a
driver. Any other day is refused with the reason — which families, through when, and what to run.

**Missing is never a driver** (one rule, every interface): a feature with no value that day, and every feature of a
missing family, is *scored as missing* — the model reads the gap, but what a person reads never counts it: no row among
``top_drivers``, no share of its family's push (``shap_by_family`` sums the features with a value; a missing family's
push is None, said "missing (scored as missing)"), no bar in a chart, no word in the sentence. The raw per-feature SHAP
values stay in ``shap_by_feature`` (base + their sum = margin, exactly); those of the missing features add up to
``shap_of_missing`` and are named in ``missing_features``, so base + ``shap_of_missing`` + every family's push = margin.

No look-ahead: features of day t use data up to t only (the family contract), so answering day t from the whole stored
history gives the same answer as answering it from the store as it stood at the end of day t (tested).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.rules import AUTO, BASES, IN_SAMPLE, age_days, alert_episodes, side, side_uncertain, sigmoid, times, today_utc
from features.build import MarketContext, coin_frames, feature_frame, is_context_coin, load_market_context, shown_as
from features.families import describe, family_of, load_families, title_of
from features.freshness import FreshnessTable, last_present_days
from features.store import HistoryStore
from training.explain import SCALE, Explainer, ModelSource, champion_explainer, champion_fold_sources, fold_model_sources
from training.model import MAJOR, CascadeModel, term_column, term_horizons_in
from training.skill import expected_skill, floor_of
from training.yardstick import base_rate_basis, yardstick_of

DIRECTION_MEANING = "positive pushes towards a long squeeze, negative towards a short squeeze"


class Unanswerable(LookupError):
    """A day the forecast refuses: ``message`` says why and what to run; ``status`` is the HTTP code an API gives it."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class NotReady(RuntimeError):
    """A coin that cannot forecast at all (no champion, no history): the reason."""


@dataclass(frozen=True)
class Champion:
    """A coin's champion, its registry identity and its run's fold models (the out-of-fold answerers)."""

    model: CascadeModel
    identity: dict[str, str]
    folds: list[ModelSource]

    @property
    def info(self) -> dict[str, str]:
        return {k: self.identity[k] for k in ("name", "version", "alias")}

    @property
    def side_skill(self) -> float | None:
        """The coin's out-of-fold Brier skill of the side against the training long share, from the champion's run (None:
        not measured)."""
        value = self.identity.get("direction_brier_skill")
        return float(value) if value not in (None, "") and np.isfinite(float(value)) else None

    def explainer(self, settings: Settings, basis: str) -> Explainer:
        """The explainer of ``basis``: 'auto' with the fold models, 'champion' without."""
        return champion_explainer(self.model, self.identity, settings, self.folds if basis == AUTO else [])


def load_champion(settings: Settings) -> Champion:
    """``settings.asset``'s champion: as `make bento` packaged it (inside a Bento) or from the MLflow registry."""
    from training.register import load_champion as registry_champion

    if settings.packaged_path is not None:
        root = settings.packaged_path / settings.asset.lower()
        if not (root / "model" / "meta.json").exists():
            raise LookupError(f"no packaged champion for {settings.asset} in {settings.packaged_path} (it had none when the Bento was built)")
        return Champion(CascadeModel.load(root / "model"), json.loads((root / "identity.json").read_text()), fold_model_sources(root))
    model, identity = registry_champion(settings)
    return Champion(model, identity, _fold_sources(settings, identity))


_FOLDS: OrderedDict[str, list[ModelSource]] = OrderedDict()  # training run -> its fold models, the few most recent


def _fold_sources(settings: Settings, identity: dict[str, str]) -> list[ModelSource]:
    """The champion's fold models, read once per training run: every coin's champion of one `make train` comes from the
    same run and the same fold models, which a service of N coins would otherwise download N times (issue 37)."""
    run = identity.get("run_id") or ""
    if not run:
        return champion_fold_sources(settings, identity)
    if run not in _FOLDS:
        _FOLDS[run] = champion_fold_sources(settings, identity)
        while len(_FOLDS) > 4:
            _FOLDS.popitem(last=False)
    _FOLDS.move_to_end(run)
    return _FOLDS[run]


def _champion(settings: Settings) -> Champion:
    """``settings.asset``'s champion, or NotReady saying why there is none."""
    try:
        return load_champion(settings)
    except Exception as exc:  # noqa: BLE001 - any failure here means "not ready", with the reason
        raise NotReady(f"no champion model: {exc}") from exc


@dataclass(frozen=True)
class Explained:
    """Every day of one basis, scored, as arrays: a day's probabilities are an index lookup. Its SHAP contributions are
    not here — they are computed per block of days when first asked (``CoinForecaster.contributions``)."""

    days: pd.DatetimeIndex
    probs: np.ndarray  # (days, 3): p_cascade, p_long, p_short
    basis: np.ndarray  # (days,) out-of-fold / out-of-sample / in-sample
    model_used: np.ndarray  # (days,) which model answered
    long_prior: np.ndarray  # (days,) the answering model's training long share: the side's yardstick
    p_major: np.ndarray | None = None  # (days,) P(major cascade within H), NaN where the answering model has no major head
    p_term: dict[int, np.ndarray] = field(default_factory=dict)  # shorter horizon -> (days,) P(cascade within it), NaN likewise

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Explained:
        heads = {"p_major": frame[MAJOR].to_numpy(dtype=float) if MAJOR in frame.columns else None,
                 "p_term": {h: frame[term_column(h)].to_numpy(dtype=float) for h in term_horizons_in(frame.columns)}}
        return cls(frame.index, frame[["p_cascade", "p_long", "p_short"]].to_numpy(), frame["basis"].to_numpy(),
                   frame["model_used"].to_numpy(), frame["long_prior"].to_numpy(dtype=float), **heads)


@dataclass(frozen=True)
class Contributions:
    """The SHAP contributions of some days (rows in the order asked): base values and per-feature log-odds of the cascade
    model, and of the direction model where there is one (None: no direction model answered any of these days)."""

    cascade_base: np.ndarray  # (n,)
    cascade_shap: np.ndarray  # (n, features)
    direction_base: np.ndarray | None  # (n,), NaN on a day whose answering model has no direction model
    direction_shap: np.ndarray | None  # (n, features)

    @classmethod
    def of(cls, frame: pd.DataFrame, features: list[str]) -> Contributions:
        has_direction = "direction_base" in frame.columns and frame["direction_base"].notna().any()
        return cls(frame["cascade_base"].to_numpy(dtype=float), frame[[f"cascade_shap__{f}" for f in features]].to_numpy(dtype=float),
                   frame["direction_base"].to_numpy(dtype=float) if has_direction else None,
                   frame[[f"direction_shap__{f}" for f in features]].to_numpy(dtype=float) if has_direction else None)

    @classmethod
    def stack(cls, parts: list[Contributions]) -> Contributions:
        with_direction = any(c.direction_base is not None for c in parts)

        def direction(c: Contributions) -> tuple[np.ndarray, np.ndarray]:
            if c.direction_base is not None:
                return c.direction_base, c.direction_shap  # type: ignore[return-value]
            return np.full(len(c.cascade_base), np.nan), np.zeros_like(c.cascade_shap)

        pairs = [direction(c) for c in parts] if with_direction else []
        return cls(np.concatenate([c.cascade_base for c in parts]), np.concatenate([c.cascade_shap for c in parts]),
                   np.concatenate([b for b, _ in pairs]) if with_direction else None,
                   np.concatenate([v for _, v in pairs]) if with_direction else None)

    def take(self, rows: np.ndarray) -> Contributions:
        return Contributions(self.cascade_base[rows], self.cascade_shap[rows],
                             None if self.direction_base is None else self.direction_base[rows],
                             None if self.direction_shap is None else self.direction_shap[rows])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.cascade_base, self.cascade_shap, self.direction_base, self.direction_shap) if a is not None)


class ExplanationCache:
    """Blocks of SHAP contributions of every forecaster in the process, least recently used evicted beyond a budget.

    Why a budget rather than everything at start: explaining every day of every basis of every coin made the service's
    start time and memory grow with coins x days (issue 37); a coin is ready once its latest day is scored and explained,
    and a past day's block is explained on its first request (then kept while the budget allows)."""

    def __init__(self, budget_bytes: int = 256 * 2**20) -> None:
        self.budget_bytes = budget_bytes
        self._blocks: OrderedDict[tuple[int, str, int], Contributions] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = 0

    def get(self, key: tuple[int, str, int], compute: Callable[[], Contributions]) -> Contributions:
        with self._lock:
            block = self._blocks.get(key)
            if block is not None:
                self._blocks.move_to_end(key)
                self.hits += 1
                return block
            self.misses += 1
        block = compute()  # outside the lock: TreeSHAP of a block takes milliseconds, other coins need not wait for it
        with self._lock:
            if key not in self._blocks:
                self._blocks[key] = block
                self._bytes += block.nbytes
            while self._bytes > self.budget_bytes and len(self._blocks) > 1:
                _, gone = self._blocks.popitem(last=False)
                self._bytes -= gone.nbytes
                self.evictions += 1
        return block

    def stats(self) -> dict[str, int]:
        """Blocks and bytes held, against the budget, and the hits, misses and evictions since start (the /metrics gauges)."""
        with self._lock:
            return {"blocks": len(self._blocks), "bytes": self._bytes, "budget_bytes": self.budget_bytes,
                    "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


EXPLANATIONS = ExplanationCache()  # one per process: every coin's forecaster shares the budget
SHAP_BLOCK_DAYS = 64  # days explained together: one TreeSHAP call per block (per-day calls cost ~10x the time per day)
_forecaster_ids = itertools.count()


def _num(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _day(value: pd.Timestamp | None) -> str | None:
    return None if value is None else str(pd.Timestamp(value).date())


@dataclass
class CoinForecaster:
    """One coin's forecasts for every day of its stored (or posted) history."""

    settings: Settings
    champion: Champion
    panel: pd.DataFrame  # the assembled raw panel
    features: pd.DataFrame  # every feature of every day
    fresh: FreshnessTable
    catalogue: pd.DataFrame  # the features' catalogue (feature_frame's): each feature's label and unit
    context: MarketContext | None = None
    _explained: dict[str, Explained] = field(default_factory=dict)
    _explainers: dict[str, Explainer] = field(default_factory=dict)
    _score_blocks: dict[tuple[str, int], Explained] = field(default_factory=dict)  # (basis, block) -> its days scored (``scored``)
    _days: dict[tuple[str, int], tuple[Explained, Contributions]] = field(default_factory=dict)  # (basis, day) -> explained alone (``warm``)

    def __post_init__(self) -> None:
        self._id = next(_forecaster_ids)  # the key of this forecaster's blocks in the shared cache (ids of dead objects recur)
        model = self.champion.model
        self.model_features: list[str] = list(model.features)
        read = dict.fromkeys(family_of(f) for f in [*model.cascade_features, *model.direction_features])
        self.read_families: tuple[str, ...] = tuple(read)
        self._family_of = np.array([family_of(f) for f in self.model_features])
        self._catalogue = {r["name"]: r for r in self.catalogue.to_dict("records")}  # label and unit by feature
        self._read_columns = {fam: np.flatnonzero(self._family_of == fam) for fam in self.read_families}
        limit = self.settings.alerts.stale_after_days
        self._stale = {fam: ~self.fresh.fresh_days([fam], limit) for fam in self.read_families}
        values = self.features[self.model_features].to_numpy(dtype=float)
        # per day, the read families that are stale or have no value in any of their model features: scored as missing,
        # flagged, never named a driver; a day with more of them than allowed is not answered
        self._missing = {fam: self._stale[fam] | np.isnan(values[:, cols]).all(axis=1) for fam, cols in self._read_columns.items()}
        self._skill_of_day, self._skill_basis = self._expected_skill()
        self.skill_floor = floor_of(model.skill, self.settings.asset, self.settings.alerts.skill_floor) if model.skill else None
        self._yardstick = ((model.yardstick or {}).get("coins") or {}).get(self.settings.asset)  # the coin's, from the champion's run
        self._alert_line = self._chosen_line()
        if model.skill:  # the skill floor: answered where the measured skill without that day's missing families clears it
            self._answerable = np.isfinite(self._skill_of_day) & (self._skill_of_day >= self.skill_floor)
        else:  # a champion trained before the skill table: the count rule it was trained for
            count = np.sum([self._missing[fam] for fam in self.read_families], axis=0) if self.read_families else np.zeros(len(self.features))
            self._answerable = np.asarray(count <= self.settings.alerts.max_missing_families, dtype=bool)
        self._values = values
        # per day and model feature, scored as missing: no value that day, or its family missing that day. What a person
        # reads (drivers, each family's push, the sentence, the charts) never counts these; their SHAP values stay in
        # ``shap_by_feature`` (raw, so that base + every value = margin) and add up to ``shap_of_missing``
        self._absent = np.isnan(values)
        for fam, cols in self._read_columns.items():
            self._absent[:, cols] |= self._missing[fam][:, None]
        self._table = self.features.to_numpy(dtype=float)  # every feature, for the sentence's words (a row as one array)
        # the warning checklist, every family's warning signs on every day, whether or not the model reads the family
        # (family, warning, on per day, {feature: values per day}): a day's checklist is an index lookup
        self._warnings = [(fam.name, w, w.on(self.features).to_numpy(dtype=bool),
                           {f: self.features[f].to_numpy(dtype=float) if f in self.features else np.full(len(self.features), np.nan)
                            for f in w.features})
                          for fam in load_families().values() for w in fam.warnings]

    def _expected_skill(self) -> tuple[np.ndarray, list[str]]:
        """Per day, the out-of-fold ROC-AUC the champion's walk-forward measured on days missing that day's families (NaN:
        not measured), and whose number it is (the coin's or ``pooled``; or why none)."""
        skill = self.champion.model.skill
        measured = set(skill["families"]) if skill else set()
        n = len(self.features)
        by_day = np.full(n, np.nan)
        basis = ["not measured"] * n
        if not skill:
            return by_day, basis
        matrix = np.column_stack([self._missing[fam] for fam in self.read_families]) if self.read_families else np.zeros((n, 0), dtype=bool)
        names = np.array(self.read_families)
        cache: dict[tuple[str, ...], tuple[float | None, str]] = {}
        for i in range(n):
            key = tuple(f for f in names[matrix[i]] if f in measured)
            if key not in cache:
                cache[key] = expected_skill(skill, self.settings.asset, key)
            value, whose = cache[key]
            by_day[i] = np.nan if value is None else value
            basis[i] = whose
        return by_day, basis

    def missing_on(self, day: pd.Timestamp) -> list[str]:
        """The families the model reads that ``day`` lacks (stale, or no value that day): scored as missing."""
        i = self.features.index.get_loc(day)
        return [fam for fam in self.read_families if self._missing[fam][i]]

    def yardstick(self, p_cascade: float) -> dict[str, object]:
        """A probability's yardstick (``training.yardstick``): the coin's base rate over the champion's out-of-fold days,
        ``p_cascade`` relative to it, and its percentile among the coin's out-of-fold answers (None each: not measured)."""
        return {**yardstick_of(self._yardstick, p_cascade),
                "base_rate_basis": base_rate_basis(self.settings.asset, self._yardstick, self.settings.labels.horizon_days)}

    @property
    def alert_threshold(self) -> float:
        """The coin's alert line: chosen by the champion's walk-forward within the false-alarm budget (``training.thresholds``),
        else — no budget, or a champion trained before the lines — the configured ``alert_threshold``."""
        return float(self._alert_line["alert_threshold"])  # type: ignore[arg-type]

    def alert_line(self) -> dict[str, object]:
        """The line every answer's ``alert`` is judged at, with how it was chosen, in words."""
        return dict(self._alert_line)

    def _chosen_line(self) -> dict[str, object]:
        """``alert_line``'s answer, worked out once when the forecaster is built."""
        line = (self._yardstick or {}).get("alert_line") if self.settings.false_alarm_budget_per_30d is not None else None
        if not line:
            why = ("no false-alarm budget configured" if self.settings.false_alarm_budget_per_30d is None
                   else "a champion trained before alert lines were chosen")
            return {"alert_threshold": self.settings.alert_threshold, "alert_threshold_basis": f"fixed at {self.settings.alert_threshold:g} ({why})"}
        said = (f"{self.settings.asset}'s line: {line['basis']}; there, {line['false_alarms_per_30d']:.2f} false alarms per 30 days, "
                f"{line['alert_share']:.0%} of days in alert")
        return {"alert_threshold": float(line["alert_threshold"]), "alert_threshold_basis": said}

    def calibration(self) -> dict[str, object]:
        """The coin's calibration out of fold (/v1/calibration, the coin page's reliability diagram): its out-of-fold answers
        of the champion's walk-forward in ~10 equal-count bins, each with its mean predicted P(cascade) and the share of its
        days a cascade followed, and the base rate — the numbers saved with the champion (``training.yardstick``)."""
        coin = self._yardstick or {}
        return {"asset": self.settings.asset, "horizon_days": self.settings.labels.horizon_days, "model": self.champion.info,
                "base_rate": coin.get("base_rate"), "base_rate_basis": base_rate_basis(self.settings.asset, self._yardstick,
                                                                                      self.settings.labels.horizon_days),
                "days": coin.get("days", 0), "event_days": coin.get("event_days", 0), "first_day": coin.get("first_day"),
                "last_day": coin.get("last_day"), "bins": coin.get("calibration", [])}

    def heads_of(self, ex: Explained, i: int, p_cascade: float) -> dict[str, object]:
        """Day ``i``'s severity and term structure: ``p_major`` and ``p_cascade_by_horizon`` — P(cascade within h days) for every
        shorter horizon of the settings and of the answering model, then the horizon itself (= ``p_cascade``), keyed by days
        as text. Null where the answering model has no such head (a champion trained before them): not measured."""
        horizons = sorted(set(self.settings.model.term_horizons) | set(ex.p_term))
        by_horizon: dict[str, float | None] = {str(h): _num(ex.p_term[h][i]) if h in ex.p_term else None for h in horizons}
        by_horizon[str(self.settings.labels.horizon_days)] = p_cascade
        return {"p_major": None if ex.p_major is None else _num(ex.p_major[i]), "p_cascade_by_horizon": by_horizon}

    def skill_of(self, i: int) -> dict[str, object]:
        """Day ``i``'s yardstick of skill: the expected ROC-AUC with its basis, and the floor it is judged against."""
        value = self._skill_of_day[i]
        whose = self._skill_basis[i]
        missing = [fam for fam in self.read_families if self._missing[fam][i]]
        if not np.isfinite(value):
            text = whose
        else:
            without = f"without {', '.join(title_of(f) for f in missing)}" if missing else "with every family it reads"
            text = (f"out-of-fold ROC-AUC of the champion's walk-forward on {'every coin' if whose == 'pooled' else whose}'s days, {without}"
                    f"{' (pooled: too few events of this coin alone)' if whose == 'pooled' else ''}")
        return {"expected_roc_auc": _num(value), "expected_roc_auc_basis": text, "skill_floor": self.skill_floor}

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, settings: Settings, champion: Champion, raw_panel: pd.DataFrame, context: MarketContext | None = None) -> CoinForecaster:
        """The forecaster of ``raw_panel`` (a coin's store, or posted signals); ``context``: the market context it reads."""
        panel, features, catalogue = feature_frame(raw_panel, settings, context)
        return cls.of_frames(settings, champion, panel, features, catalogue, context)

    @classmethod
    def of_frames(cls, settings: Settings, champion: Champion, panel: pd.DataFrame, features: pd.DataFrame, catalogue: pd.DataFrame,
                  context: MarketContext | None) -> CoinForecaster:
        """The forecaster of a coin's frames as ``features.build.feature_frame`` made them (``coin_frames``: cached)."""
        # the context coin's context families are its own (posted signals included): judged on its own panel
        judged_on = None if is_context_coin(settings) else context
        return cls(settings, champion, panel, features, last_present_days(panel, judged_on), catalogue, context)

    @classmethod
    def load(cls, settings: Settings, context: MarketContext | None = None, champion: Champion | None = None) -> CoinForecaster:
        """``settings.asset`` from its champion and its store; raises NotReady with the reason."""
        champion = champion or _champion(settings)
        store = HistoryStore(settings.data_path)
        if store.is_empty():
            raise NotReady(f"no history in {settings.data_path}: run `make data-reference` or `make data`")
        try:
            if context is None:
                context = load_market_context(settings)
            return cls.build(settings, champion, store.panel(), context)
        except Exception as exc:  # noqa: BLE001
            raise NotReady(f"history could not be turned into features: {exc}") from exc

    # ------------------------------------------------------------------ days
    @property
    def first_day(self) -> pd.Timestamp:
        return self.features.index[0]

    @property
    def last_day(self) -> pd.Timestamp:
        return self.features.index[-1]

    @property
    def answerable_days(self) -> pd.DatetimeIndex:
        return self.features.index[self._answerable]

    @property
    def data_through(self) -> pd.Timestamp | None:
        """The last answerable day: what "today" is answered for."""
        days = self.answerable_days
        return days[-1] if len(days) else None

    def refusal(self, day: pd.Timestamp) -> str | None:
        """Why ``day`` (inside the history) cannot be answered, or None."""
        i = self.features.index.get_loc(day)
        if self._answerable[i]:
            return None
        cfg = self.settings.alerts
        behind = [f for f in self.fresh.on(day, cfg.stale_after_days, set(self.read_families)) if f.read_by_model and f.stale]
        absent = [fam for fam in self.read_families if self._missing[fam][i] and fam not in {f.family for f in behind}]
        said = ", ".join([*(f"{title_of(f.family)} ({'no data yet' if f.data_through is None else 'data through ' + f.data_through})" for f in behind),
                          *(f"{title_of(fam)} (no value that day)" for fam in absent)])
        last = self.data_through
        hint = ("update the store: `cascade-radar daily` (or `cascade-radar data update`)" if last is not None and day > last
                else f"answerable days: {self.answerable_span()}")
        if self.champion.model.skill:
            expected = self._skill_of_day[i]
            why = (f"the model's measured skill without them is {expected:.3f} ROC-AUC, below the floor {self.skill_floor:.3f}"
                   if np.isfinite(expected) else f"the model's skill without them was {self._skill_basis[i]}")
            return f"{day.date()} cannot be answered: {len(behind) + len(absent)} of the families the model reads are missing — {said}; {why}; {hint}"
        return (f"{day.date()} cannot be answered: {len(behind)} of the families the model reads have no data within "
                f"{cfg.stale_after_days} day(s) before it — {said} (at most {cfg.max_missing_families} may be missing); {hint}")

    def answerable_span(self) -> str:
        days = self.answerable_days
        return f"{days[0].date()}..{days[-1].date()}" if len(days) else "none"

    def resolve(self, day: dt.date | pd.Timestamp | None = None) -> pd.Timestamp:
        """The day asked (default: the last answerable day), checked: outside the history or unanswerable -> Unanswerable."""
        if day is None:
            last = self.data_through
            if last is None:
                raise Unanswerable(f"{self.settings.asset}: no day of the history ({self.first_day.date()}..{self.last_day.date()}) has data of "
                                   f"all but at most {self.settings.alerts.max_missing_families} of the families the model reads "
                                   f"({', '.join(title_of(f) for f in self.read_families)})", 503)
            return last
        day = self._inside(pd.Timestamp(day), f"{pd.Timestamp(day).date()}", f"; answerable days: {self.answerable_span()}")
        reason = self.refusal(day)
        if reason is not None:
            raise Unanswerable(reason)
        return day

    # ------------------------------------------------------------------ answers
    def _explainer(self, basis: str) -> Explainer:
        if basis not in BASES:
            raise ValueError(f"basis {basis!r} is not one of {', '.join(BASES)}")
        if basis not in self._explainers:
            self._explainers[basis] = self.champion.explainer(self.settings, basis)
        return self._explainers[basis]

    def explained(self, basis: str = AUTO) -> Explained:
        """Every day scored on ``basis`` (computed on first use, then kept): probabilities only, no SHAP."""
        if basis not in self._explained:
            self._explained[basis] = Explained.of(self._explainer(basis).explain(self.features, shap=False))
        return self._explained[basis]

    def contributions(self, basis: str, rows: np.ndarray | list[int]) -> Contributions:
        """The SHAP contributions of the days at positions ``rows`` on ``basis``, in that order: explained per block of
        ``SHAP_BLOCK_DAYS`` on first request and kept in the process's cache (``EXPLANATIONS``) within its budget."""
        rows = np.asarray(rows, dtype=int)
        if len(rows) == 1 and (basis, int(rows[0])) in self._days:  # the day explained alone at start (``warm``)
            return self._days[(basis, int(rows[0]))][1]
        blocks = np.unique(rows // SHAP_BLOCK_DAYS)
        parts = [EXPLANATIONS.get((self._id, basis, int(b)), lambda b=b: self._explain_block(basis, int(b))) for b in blocks]
        whole = Contributions.stack(parts)
        first = {int(b): k * SHAP_BLOCK_DAYS for k, b in enumerate(blocks)}  # where each block starts in ``whole``
        return whole.take(np.array([first[int(r // SHAP_BLOCK_DAYS)] + int(r % SHAP_BLOCK_DAYS) for r in rows], dtype=int))

    def scored_whole_history(self, basis: str = AUTO) -> bool:
        """Has something asked for every day of ``basis`` (a timeline, the events)? Not at start: one day is scored."""
        return basis in self._explained

    def scored(self, basis: str, i: int) -> tuple[Explained, int]:
        """Day ``i``'s probabilities as (a scored table, the day's row in it): every day's table once something asked for
        all of them (``explained``), else the day's block — scored with its contributions, or alone (a prediction only):
        a coin's start scores one block, not its whole history (issue 37)."""
        full = self._explained.get(basis)
        if full is not None:
            return full, i
        if (basis, i) in self._days:
            return self._days[(basis, i)][0], 0
        block = i // SHAP_BLOCK_DAYS
        if (basis, block) not in self._score_blocks:
            lo = block * SHAP_BLOCK_DAYS
            self._score_blocks[(basis, block)] = Explained.of(self._explainer(basis).explain(self.features.iloc[lo : lo + SHAP_BLOCK_DAYS],
                                                                                               shap=False))
        return self._score_blocks[(basis, block)], i - block * SHAP_BLOCK_DAYS

    def _explain_block(self, basis: str, block: int) -> Contributions:
        lo = block * SHAP_BLOCK_DAYS
        table = self.features.iloc[lo : lo + SHAP_BLOCK_DAYS]
        frame = self._explainer(basis).explain(table)
        self._score_blocks.setdefault((basis, block), Explained.of(frame))  # its probabilities came with it
        part = Contributions.of(frame, self.model_features)
        if len(table) < SHAP_BLOCK_DAYS:  # the last block: padded, so every block has the same length in ``contributions``
            pad = SHAP_BLOCK_DAYS - len(table)
            part = Contributions(np.pad(part.cascade_base, (0, pad)), np.pad(part.cascade_shap, ((0, pad), (0, 0))),
                                 None if part.direction_base is None else np.pad(part.direction_base, (0, pad)),
                                 None if part.direction_shap is None else np.pad(part.direction_shap, ((0, pad), (0, 0))))
        return part

    def warm(self, basis: str = AUTO) -> None:
        """Score and explain the last answerable day's block: what makes the coin ready (its latest answer is a lookup).
        Every other day is scored when first asked (``scored``, ``explained``)."""
        last = self.data_through
        if last is not None:  # that day alone: TreeSHAP's cost is per row, a block's 64 rows cost a start of 200 coins ~25 s
            i = self.features.index.get_loc(last)
            frame = self._explainer(basis).explain(self.features.iloc[i : i + 1])
            # kept beside the shared cache, never evicted: the answer most asked for (/predict's default day) stays a lookup
            self._days[(basis, i)] = (Explained.of(frame), Contributions.of(frame, self.model_features))

    def forecast(self, day: dt.date | pd.Timestamp | None = None, basis: str = AUTO, top: int = 5, detail: bool = False,
                 today: dt.date | None = None) -> dict[str, object]:
        """The answer for ``day`` (default: the last answerable day); ``detail`` adds every SHAP value (an explanation)."""
        return self._answer(self.resolve(day), basis, top, detail, today or today_utc())

    def forecast_many(self, days: list[pd.Timestamp] | pd.DatetimeIndex, basis: str = AUTO, top: int = 5, detail: bool = False,
                      today: dt.date | None = None) -> list[dict[str, object]]:
        """Answers for several days in one pass (each checked like ``forecast``)."""
        today = today or today_utc()
        return [self._answer(self.resolve(day), basis, top, detail, today) for day in days]

    def check_span(self, start: dt.date | pd.Timestamp, end: dt.date | pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(start, end) as days, both inside the history, else Unanswerable naming the one outside."""
        return (self._inside(pd.Timestamp(start), f"start {pd.Timestamp(start).date()}"),
                self._inside(pd.Timestamp(end), f"end {pd.Timestamp(end).date()}"))

    def _inside(self, day: pd.Timestamp, said: str, hint: str = "") -> pd.Timestamp:
        """``day`` if the history holds it, else Unanswerable: '<said> is outside the history (first..last)<hint>'."""
        if day < self.first_day or day > self.last_day:
            raise Unanswerable(f"{said} is outside the history ({self.first_day.date()}..{self.last_day.date()}){hint}")
        return day

    def forecast_range(self, start: dt.date | pd.Timestamp, end: dt.date | pd.Timestamp, basis: str = AUTO,
                       families: bool = False) -> dict[str, object]:
        """The headline numbers of every answerable day in [start, end], and the refused runs with why; with ``families``,
        each row also has ``shap_by_family`` (each read family's push on the cascade log-odds, as /explain says it: None for a
        family missing that day)."""
        first, last = self.check_span(start, end)
        ex = self.explained(basis)
        lo, hi = ex.days.get_loc(first), ex.days.get_loc(last) + 1
        ok = self._answerable[lo:hi]
        idx = np.arange(lo, hi)[ok]
        probs = ex.probs[idx]
        sides = side(probs[:, 1], probs[:, 2])
        threshold = self.alert_threshold
        rows = [{"day": str(ex.days[i].date()), "p_cascade": float(p[0]), "p_long": float(p[1]), "p_short": float(p[2]),
                 **self.heads_of(ex, i, float(p[0])), "side": str(s),
                 "alert": bool(p[0] >= threshold), "basis": str(ex.basis[i]), "hindsight": str(ex.basis[i]) == IN_SAMPLE}
                for i, p, s in zip(idx, probs, sides, strict=True)]
        if families:
            shap = self.contributions(basis, idx).cascade_shap
            for k, (row, i) in enumerate(zip(rows, idx, strict=True)):
                row["shap_by_family"] = self._by_family(shap[k], i)
        refused = [{"first": str(a.date()), "last": str(b.date()), "reason": self.refusal(a)} for a, b in alert_episodes(pd.Series(~ok, index=ex.days[lo:hi]))]
        return {"rows": rows, "refused": refused}

    def _answer(self, day: pd.Timestamp, basis: str, top: int, detail: bool, today: dt.date) -> dict[str, object]:
        i = self.features.index.get_loc(day)
        contrib = self.contributions(basis, [i])
        ex, j = self.scored(basis, i)  # the day's row ``j`` of a scored table (its block's, or every day's)
        p, p_long, p_short = (float(v) for v in ex.probs[j])
        settings = self.settings
        missing = sorted(fam for fam in self.read_families if self._missing[fam][i])
        shap = contrib.cascade_shap[0]
        direction_base = None if contrib.direction_base is None else float(contrib.direction_base[0])
        direction_shap = None if contrib.direction_shap is None else contrib.direction_shap[0]
        by_family = self._by_family(shap, i)
        absent = self._absent[i]  # a feature with no value that day, or of a missing family, is never named a driver
        order = [j for j in np.argsort(-np.abs(shap), kind="stable") if not absent[j] and shap[j] != 0.0][:top]
        drivers = [self._driver(self.model_features[j], str(self._family_of[j]), _num(self._values[i, j]), float(shap[j])) for j in order]
        freshness = self.fresh.on(day, settings.alerts.stale_after_days, set(self.read_families), today)
        age = age_days(day, today)
        the_side = str(side(p_long, p_short))
        p_long_given, prior = p_long / (p_long + p_short), float(ex.long_prior[j])
        skill = self.champion.side_skill
        answer: dict[str, object] = {
            "asset": settings.asset, "day": str(day.date()), "horizon_days": settings.labels.horizon_days,
            "p_cascade": p, "p_long": p_long, "p_short": p_short, **self.heads_of(ex, j, p), "side": the_side,
            "side_uncertain": side_uncertain(p_long_given, prior, settings.alerts.side_band, skill),
            "p_long_given_cascade": p_long_given, "long_prior": prior, "side_skill": skill, "alert": bool(p >= self.alert_threshold), **self._alert_line,
            "basis": str(ex.basis[j]), "hindsight": str(ex.basis[j]) == IN_SAMPLE, "model": self.champion.info, "model_used": str(ex.model_used[j]),
            "data_through": _day(self.data_through), "age_days": age, "outdated": age > settings.alerts.max_age_days,
            "freshness": [f.as_dict() for f in freshness], "stale": [f.family for f in freshness if f.stale],
            "missing_families": missing, **self.yardstick(p), **self.skill_of(i), "top_drivers": drivers,
        }
        row = pd.Series(self._table[i], index=self.features.columns)  # explained days are the feature table's days
        answer["checklist"] = [{"family": fam, "warning": w.label, "on": bool(on[i]), "rule": f"{' or '.join(w.features)} {w.op} {w.threshold:g}",
                                "values": {f: _num(v[i]) for f, v in values.items()}, "values_text": self._values_text({f: v[i] for f, v in values.items()}),
                                "read_by_model": fam in self.read_families}
                               for fam, w, on, values in self._warnings]
        against = None
        if direction_shap is not None and np.isfinite(direction_base) and not answer["side_uncertain"]:
            dfam = {k: v for k, v in self._by_family(direction_shap, i).items() if v is not None}
            sign = 1.0 if the_side == "long" else -1.0
            opposed = sorted(((k, v) for k, v in dfam.items() if v * sign < 0), key=lambda kv: kv[1] * sign)
            against = opposed[0] if opposed else None
        answer["sentence"] = self.sentence(answer, by_family, row, against=against)
        if detail:
            margin = float(contrib.cascade_base[0] + shap.sum())
            answer["scale"] = SCALE
            answer["cascade"] = {"base_value": float(contrib.cascade_base[0]), "margin": margin, "shap_by_family": by_family,
                                 "probability_effect_by_family": {k: None if v is None else float(sigmoid(margin) - sigmoid(margin - v))
                                                                  for k, v in by_family.items()},
                                 "shap_of_missing": float(shap[absent].sum()),
                                 "shap_by_feature": dict(zip(self.model_features, map(float, shap), strict=True))}
            answer["direction_model"] = None
            if direction_shap is not None and np.isfinite(direction_base):
                dshap = direction_shap
                answer["direction_model"] = {"meaning": DIRECTION_MEANING, "base_value": direction_base,
                                             "base_probability": float(sigmoid(direction_base)),
                                             "margin": float(direction_base + dshap.sum()), "shap_by_family": self._by_family(dshap, i),
                                             "shap_of_missing": float(dshap[absent].sum()),
                                             "shap_by_feature": dict(zip(self.model_features, map(float, dshap), strict=True))}
            answer["feature_values"] = {f: _num(v) for f, v in zip(self.model_features, self._values[i], strict=True)}
            answer["missing_features"] = [f for f, gone in zip(self.model_features, absent, strict=True) if gone]
        return answer

    def _driver(self, feature: str, family: str, value: float | None, shap: float) -> dict[str, object]:
        shown = shown_as(self._catalogue, feature, value)
        return {"feature": feature, "label": shown["label"], "family": family, "feature_value": value, "unit": shown["unit"],
                "value_text": shown["value_text"], "shap": shap}

    def _values_text(self, values: dict[str, float]) -> str:
        """``volatility compression 0.931×, ...``: features by their label, values in their unit (the catalogue's)."""
        shown = [shown_as(self._catalogue, f, _num(v)) for f, v in values.items()]
        return ", ".join(f"{s['label']} {s['value_text']}" for s in shown)

    def _by_family(self, shap: np.ndarray, i: int) -> dict[str, float | None]:
        """Per family the model reads, its push on day ``i``: the sum of the contributions of its features that have a value
        that day, largest first; None (last) for a family missing that day — scored as missing, never a push."""
        shown = ~self._absent[i]
        sums = {fam: None if self._missing[fam][i] else float(shap[cols[shown[cols]]].sum()) for fam, cols in self._read_columns.items()}
        return dict(sorted(sums.items(), key=lambda kv: (kv[1] is None, -abs(kv[1] or 0.0))))

    @staticmethod
    def sentence(answer: dict[str, object], families: dict[str, float | None], features: pd.Series, drivers: int = 2,
                 against: tuple[str, float] | None = None) -> str:
        """One readable sentence from the numbers: risk, the side (or "side uncertain"), the two largest pushes up and the
        largest against (``families``: each family's push from its features with a value that day; a family missing that
        day, None, is never a driver — it is named once, as missing), and the direction model's strongest push against
        the stated side (``against``: family, log-odds)."""
        families = {k: v for k, v in families.items() if v is not None}
        side_p = answer["p_long"] if answer["side"] == "long" else answer["p_short"]
        side_text = (f"side uncertain: P(long | cascade) {answer['p_long_given_cascade']:.2f} against the prior {answer['long_prior']:.2f}"
                     if answer.get("side_uncertain") else f"{answer['side']} squeeze {side_p:.2f}")
        yardstick = (f", {times(answer['relative_risk'])} its base rate {answer['base_rate']:.2f}"
                     if answer.get("relative_risk") is not None else "")
        text = (f"Cascade risk within {answer['horizon_days']} days {answer['p_cascade']:.2f}{yardstick} ({side_text})"
                f"{' — ALERT' if answer['alert'] else ''}.")
        up = sorted(((k, v) for k, v in families.items() if v > 0), key=lambda kv: -kv[1])[:drivers]
        down = sorted(((k, v) for k, v in families.items() if v < 0), key=lambda kv: kv[1])[:1]

        def part(name: str, value: float, first: bool) -> str:
            words = describe(name, features)
            return f"{title_of(name)} ({value:+.2f}{' log-odds' if first else ''}{'; ' + words if words else ''})"

        if up:
            text += " Main drivers: " + ", ".join(part(k, v, i == 0) for i, (k, v) in enumerate(up))
        if down:
            text += ("; against: " if up else " Against: ") + ", ".join(part(k, v, not up) for k, v in down)
        if up or down:
            text += "."
        if against is not None:
            text += f" Against the {answer['side']} side: {title_of(against[0])} ({against[1]:+.2f} log-odds in the direction model)."
        if answer["missing_families"]:
            text += f" No data that day: {', '.join(title_of(f) for f in answer['missing_families'])} (scored as missing)."
        return text


# ------------------------------------------------------------------ every coin
@dataclass
class Coins:
    """Every coin's forecaster, or the reason it has none; the market context read once for all of them."""

    forecasters: dict[str, CoinForecaster]
    reasons: dict[str, str]
    context: MarketContext | None = None


def load_coins(settings: Settings, assets: list[str] | None = None) -> Coins:
    """Forecasters of ``assets`` (default: ``settings.assets``); a coin that cannot forecast comes back with the reason."""
    assets = list(assets or settings.assets)
    try:  # every coin's features read from the cache the last training or start wrote (or built and cached)
        frames = coin_frames(settings)
    except Exception:  # noqa: BLE001 - without the context coin the others still load one by one, or say why
        frames = None
    forecasters, reasons = {}, {}
    for asset in assets:
        each = settings.for_asset(asset)
        try:
            if frames is None or asset not in frames.coins:  # its own build says why it cannot (an empty store, say)
                forecasters[asset] = CoinForecaster.load(each, frames.context if frames else None)
            else:
                forecasters[asset] = CoinForecaster.of_frames(each, _champion(each), *frames.coins[asset], frames.catalogue, frames.context)
        except NotReady as exc:
            reasons[asset] = str(exc)
    return Coins(forecasters, reasons, frames.context if frames else None)


def write_explanation(answer: dict[str, object], directory: Path, png: bool = True) -> tuple[Path, Path | None]:
    """An explanation (``forecast(..., detail=True)``) as ``<day>.json`` and, with ``png``, its picture."""
    from training.explain import plot_day

    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / f"{answer['day']}.json"
    json_path.write_text(json.dumps(answer, indent=1))
    png_path = None
    if png:
        png_path = directory / f"{answer['day']}.png"
        plot_day(answer, png_path)
    return json_path, png_path


def write_all_explanations(forecaster: CoinForecaster, directory: Path, basis: str = AUTO,
                           progress: Callable[[], None] | None = None) -> tuple[Path, pd.DataFrame]:
    """Every answerable day explained: one JSON per day under ``directory/days`` and ``all_days.parquet`` with each day's
    headline numbers and sentence; returns the Parquet path and that table."""
    rows = []
    for answer in forecaster.forecast_many(forecaster.answerable_days, basis, top=10, detail=True):
        write_explanation(answer, directory / "days", png=False)
        rows.append({k: answer[k] for k in ("day", "p_cascade", "p_long", "p_short", "side", "alert", "basis", "model_used", "sentence")})
        if progress is not None:
            progress()
    table = pd.DataFrame(rows, columns=["day", "p_cascade", "p_long", "p_short", "side", "alert", "basis", "model_used", "sentence"])
    path = directory / "all_days.parquet"
    directory.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path)
    return path, table
