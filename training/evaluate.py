"""Walk-forward evaluation of the pooled model and its per-coin baselines on the same folds, scored per coin and pooled.

The model is one LightGBM pair fitted on the training days of every coin at once (cascades are rare per
coin; pooled there are several times more events to learn from). The baselines are fitted per coin, on
that coin's training days only, so each coin's model is judged against the best cheap forecast *of that
coin*. Folds are calendar blocks shared by every coin: no coin's future trains another coin's past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from cascade_radar.config import FoldConfig, ModelConfig, Settings
from features.build import FeatureTable
from features.labels import cascade_within
from training.metrics import EventTally, direction_metrics, event_tally, positions_of, probability_metrics
from training.model import MAJOR, CascadeModel, Predictor, baselines, is_cascade, model_features, term_column, within_column
from training.skill import skill_table
from training.splits import Fold, walk_forward_folds
from training.thresholds import champion_thresholds, walk_forward_thresholds
from training.yardstick import yardstick_table

POOLED = "pooled"  # the row of every coin together
TABLE_METRICS = ["pr_auc", "roc_auc", "brier_skill", "base_rate", "event_recall", "median_lead_days", "false_alarms_per_30d",
                 "direction_day_accuracy", "direction_auc", "direction_block_auc", "direction_brier_skill", "direction_log_loss",
                 "major_pr_auc", "major_roc_auc", "major_base_rate"]


@dataclass(frozen=True)
class Pool:
    """Every coin's labelled days stacked: date index (repeated across coins), an ``asset`` per row."""

    X: pd.DataFrame  # model features
    target: pd.Series  # none / long / short
    major: pd.Series  # 1 if a major event starts within H days
    asset: pd.Series
    events: dict[str, pd.DataFrame]
    within: pd.DataFrame | None = None  # per shorter horizon h (columns): 1 if the first event starts within h days (missing: unknown)

    @classmethod
    def of(cls, tables: dict[str, FeatureTable], features: list[str], horizons: list[int] | tuple[int, ...] = ()) -> Pool:
        """Every coin's days whose H-day target is known; ``horizons``: the term structure's shorter horizons, whose targets
        (``features.labels.cascade_within``) are taken on the same days. A day near the end of the history whose h-day
        target is known but whose H-day one is not yet is left out with the rest of that day: no head learns from it."""
        parts = []
        for asset, ft in tables.items():
            table = ft.table
            within = {within_column(h): cascade_within(table["days_to_event"], table["cascade_day"], h) for h in horizons}
            labelled = table.assign(**within)[table["target"].notna()]
            part = labelled[[*features, "target", "major_ahead", *within]].copy()
            part["asset"] = asset
            parts.append(part)
        rows = pd.concat(parts).rename_axis("date")
        within = rows[[within_column(h) for h in horizons]].set_axis(list(horizons), axis=1)
        return cls(rows[features], rows["target"].astype(str), rows["major_ahead"], rows["asset"],
                   {asset: ft.labels.events for asset, ft in tables.items()}, within)

    def head_labels(self, rows: np.ndarray) -> dict[str, object]:
        """The heads' targets of ``rows`` (a boolean mask or positions: ``CascadeModel.fit``'s ``major`` and ``within``)."""
        return {"major": self.major.iloc[rows], "within": self.within.iloc[rows] if self.within is not None else None}

    def labelled_days(self) -> pd.DatetimeIndex:
        """Every day some coin has a label, in order."""
        return pd.DatetimeIndex(self.X.index.unique()).sort_values()

    def oof(self, pred: pd.DataFrame, rows: np.ndarray, fold: Fold) -> pd.DataFrame:
        """``pred`` for ``rows`` (a boolean mask or positions, in order) as an out-of-fold block: asset, fold, probabilities,
        target, major_ahead."""
        columns = self._columns
        pred.insert(0, "fold", fold.number)
        pred.insert(0, "asset", columns["asset"][rows])
        pred["target"] = columns["target"][rows]
        pred["major_ahead"] = columns["major_ahead"][rows]
        for h in self.within.columns if self.within is not None else []:
            pred[within_column(h)] = columns[within_column(h)][rows]
        return pred

    @cached_property
    def _columns(self) -> dict[str, np.ndarray]:
        """The labels ``oof`` copies, as arrays once: a text column's ``to_numpy`` converts every row of every coin, and
        ``oof`` is called per coin, fold and baseline."""
        columns = {"asset": self.asset.to_numpy(), "target": self.target.to_numpy(), "major_ahead": self.major.to_numpy()}
        return columns | {within_column(h): self.within[h].to_numpy() for h in (self.within.columns if self.within is not None else [])}

    def rows(self, days: pd.DatetimeIndex, asset: str | None = None) -> np.ndarray:
        """A boolean mask over the pool of the rows on ``days`` (of ``asset`` only, if given). A loop over coins takes
        ``coin_rows`` instead: each mask is a pass over every coin's rows."""
        keep = self.X.index.isin(days)
        return keep & (self.asset == asset).to_numpy() if asset is not None else keep

    @cached_property
    def positions(self) -> dict[str, np.ndarray]:
        """Each coin's row positions (ascending), found once."""
        return positions_of(self.asset)

    @cached_property
    def _coin_days(self) -> dict[str, pd.Index]:
        return {asset: self.X.index[at] for asset, at in self.positions.items()}

    def coin_rows(self, days: pd.DatetimeIndex, asset: str) -> np.ndarray:
        """The positions (ascending) of ``asset``'s rows on ``days``: the rows ``rows(days, asset)`` marks, at the cost of
        that coin's rows only."""
        at = self.positions.get(asset)
        if at is None:
            return np.empty(0, dtype=np.intp)
        return at[self._coin_days[asset].isin(days)]

    @property
    def assets(self) -> list[str]:
        return list(self.events)


@dataclass
class Evaluation:
    folds: list[Fold]
    oof: dict[str, pd.DataFrame]  # predictor -> date-indexed rows: asset, fold, p_cascade, p_long, p_short, target, major_ahead
    scores: pd.DataFrame  # index (asset, predictor), asset "pooled" = every coin together; columns: metrics
    per_fold: pd.DataFrame  # index (asset, predictor, fold)
    fold_models: dict[int, CascadeModel]  # the pooled model fitted for each fold: out-of-fold explanations use these
    skill: dict[str, object] | None = None  # expected out-of-fold ROC-AUC by missing families (training.skill)
    yardstick: dict[str, object] | None = None  # per coin: out-of-fold base rate, P quantiles, calibration (training.yardstick)

    @property
    def assets(self) -> list[str]:
        return [a for a in self.scores.index.get_level_values("asset").unique() if a != POOLED]

    def table(self, asset: str) -> pd.DataFrame:
        """Model and baselines of one coin (or ``pooled``): rows predictor, columns TABLE_METRICS."""
        return self.scores.loc[asset][TABLE_METRICS]

    def heads_table(self, asset: str) -> pd.DataFrame:
        """Severity and term structure of one coin (or ``pooled``): rows predictor, columns ``head_metrics`` (empty: none
        scored)."""
        return self.scores.loc[asset].reindex(columns=head_metrics(self.scores.columns))

    def for_asset(self, asset: str) -> Evaluation:
        """The same evaluation seen from one coin: its out-of-fold rows and scores only."""
        none = np.empty(0, dtype=np.intp)
        oof = {name: pred.iloc[self._coin_rows(("oof", name), pred, lambda f: f["asset"]).get(asset, none)] for name, pred in self.oof.items()}
        scores = self._coin_rows(("scores",), self.scores, lambda f: f.index.get_level_values("asset"))
        per_fold = self._coin_rows(("per_fold",), self.per_fold, lambda f: f.index.get_level_values("asset")) if len(self.per_fold) else {}
        return replace(self, oof=oof, scores=self.scores.iloc[scores.get(asset, none)], per_fold=self.per_fold.iloc[per_fold.get(asset, none)])

    def _coin_rows(self, key: tuple[str, ...], frame: pd.DataFrame, assets: Callable[[pd.DataFrame], object]) -> dict[object, np.ndarray]:
        """Each coin's row positions in ``frame`` (``assets(frame)``: its coin per row), found once per frame and kept: a report
        per coin then takes its rows, where comparing every coin's rows with each coin grew with coins x rows."""
        kept = self.__dict__.setdefault("_coin_rows_kept", {})
        if key not in kept or kept[key][0] is not frame:  # a frame replaced since: found again
            kept[key] = (frame, positions_of(assets(frame)))
        return kept[key][1]

    def fold_descriptions(self) -> list[dict[str, object]]:
        return [f.describe() for f in self.folds]


def _score(pred: pd.DataFrame, reference: pd.DataFrame, tally: EventTally, side_prior: bool = True) -> dict[str, float]:
    """``side_prior``: ``reference`` holds the training window's long share (the base-rate predictor), the yardstick of
    the direction's Brier skill; without it the direction is scored against the long share of the scored days."""
    y = is_cascade(pred["target"])
    scores = probability_metrics(y, pred["p_cascade"].to_numpy(), reference["p_cascade"].to_numpy())
    scores.update(tally.metrics())
    scores.update(direction_metrics(pred, reference if side_prior else None))
    known = pred["major_ahead"].notna().to_numpy()
    major = probability_metrics(pred["major_ahead"].to_numpy()[known] > 0, pred["p_cascade"].to_numpy()[known],
                                reference["p_cascade"].to_numpy()[known])
    scores.update({f"major_{k}": major[k] for k in ("pr_auc", "roc_auc", "base_rate")})
    if MAJOR in pred.columns:  # the major head against the same days: beside p_cascade read as a major score
        head = probability_metrics(pred["major_ahead"].to_numpy()[known] > 0, pred[MAJOR].to_numpy()[known], pred[MAJOR].to_numpy()[known])
        scores.update({f"major_head_{k}": head[k] for k in ("pr_auc", "roc_auc")})
    for h in horizons_of(pred.columns):
        scores.update(horizon_scores(pred, h))
    return scores


def horizons_of(columns: pd.Index) -> list[int]:
    """The shorter horizons whose targets out-of-fold rows carry (``within_<h>d``), shortest first."""
    return sorted(int(c.removeprefix("within_").removesuffix("d")) for c in columns if c.startswith("within_") and c.endswith("d"))


def horizon_scores(pred: pd.DataFrame, h: int) -> dict[str, float]:
    """Against the h-day target (on its known rows): ``within_<h>d_roc_auc`` / ``_pr_auc`` of the predictor's P(cascade within h
    days) — its term head, or for a predictor without one its P(cascade within H days), a ranking of the same days — and
    ``within_<h>d_p_cascade_roc_auc`` of its H-day P read as the h-day score (what a term head must add to), the base rate."""
    target = pred[within_column(h)]
    known = target.notna().to_numpy()
    y = target.to_numpy(dtype=float)[known] > 0
    own = pred[term_column(h)] if term_column(h) in pred.columns else pred["p_cascade"]
    head = probability_metrics(y, own.to_numpy()[known], own.to_numpy()[known])
    as_h = probability_metrics(y, pred["p_cascade"].to_numpy()[known], pred["p_cascade"].to_numpy()[known])
    return {f"within_{h}d_roc_auc": head["roc_auc"], f"within_{h}d_pr_auc": head["pr_auc"],
            f"within_{h}d_p_cascade_roc_auc": as_h["roc_auc"], f"within_{h}d_base_rate": head["base_rate"]}


def head_metrics(columns: pd.Index) -> list[str]:
    """The severity and term-structure metrics among ``columns``, in the report's order."""
    order = ["major_head_roc_auc", "major_roc_auc", "major_head_pr_auc", "major_pr_auc", "major_base_rate"]
    for h in horizons_of(pd.Index([c.removesuffix("_roc_auc") for c in columns if c.startswith("within_") and c.endswith("d_roc_auc")])):
        order += [f"within_{h}d_roc_auc", f"within_{h}d_p_cascade_roc_auc", f"within_{h}d_pr_auc", f"within_{h}d_base_rate"]
    return [c for c in order if c in columns]


def score_oof(oof: dict[str, pd.DataFrame], events: dict[str, pd.DataFrame], folds: list[Fold], settings: Settings,
              by_fold: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores per (asset, predictor), per (asset, predictor, fold)); asset ``pooled`` sums every coin's events."""
    h, thr = settings.labels.horizon_days, settings.alert_threshold
    reference = oof["base_rate"] if "base_rate" in oof else None
    rows, fold_rows = {}, {}
    none = np.empty(0, dtype=np.intp)
    for name, pred in oof.items():
        ref = reference if reference is not None else pred.assign(p_cascade=pred["p_cascade"].mean())
        tallies = {}
        # each coin's rows (and within them each fold's) found once: selecting them by comparing every row per coin and
        # per fold grew with coins x folds x rows. ``ref`` is row-aligned with ``pred``: the same positions select both.
        by_coin = positions_of(pred["asset"])
        fold_of = pred["fold"].to_numpy()
        for asset in events:
            at = by_coin.get(asset, none)
            mine, theirs = pred.iloc[at], ref.iloc[at]
            # every predictor at its own line, each fold at the line the coin's earlier folds chose (training.thresholds)
            line = walk_forward_thresholds(mine, settings.false_alarm_budget_per_30d, thr)
            tallies[asset] = event_tally(mine, events[asset], h, line)
            rows[(asset, name)] = _score(mine, theirs, tallies[asset], reference is not None)
            by_fold_rows = positions_of(fold_of[at]) if by_fold else {}
            for fold in folds if by_fold else []:
                fat = by_fold_rows.get(fold.number)
                if fat is not None:
                    fold_pred = mine.iloc[fat]
                    fold_rows[(asset, name, fold.number)] = _score(fold_pred, theirs.iloc[fat], event_tally(fold_pred, events[asset], h, line),
                                                                   reference is not None)
        rows[(POOLED, name)] = _score(pred, ref, sum(tallies.values(), EventTally()), reference is not None)
    scores = pd.DataFrame(rows).T.rename_axis(["asset", "predictor"])
    per_fold = pd.DataFrame(fold_rows).T.rename_axis(["asset", "predictor", "fold"]) if fold_rows else pd.DataFrame()
    return scores, per_fold


def fit_predict_folds(pool: Pool, folds: list[Fold], settings: Settings | None, config: ModelConfig,
                      with_baselines: bool = True, progress: Callable[[str], None] | None = None,
                      with_heads: bool = True) -> tuple[dict[str, pd.DataFrame], dict[int, CascadeModel]]:
    """Out-of-fold predictions of the pooled model (and of each coin's baselines) on every fold's test days; ``with_heads``:
    the model's major and term heads too (a selection that scores P(cascade) and the side only goes without). ``config``
    is all a fit reads: the search's tasks pass ``settings=None``, so that no secret of the settings travels to a worker."""
    parts: dict[str, list[pd.DataFrame]] = {}
    fold_models: dict[int, CascadeModel] = {}

    def keep(name: str, pred: pd.DataFrame, rows: np.ndarray, fold: Fold) -> None:
        parts.setdefault(name, []).append(pool.oof(pred, rows, fold))

    for fold in folds:
        if progress:
            progress(f"walk-forward fold {fold.number} of {len(folds)}")
        train, test = pool.rows(fold.train_days), pool.rows(fold.test_days)
        model = CascadeModel(config).fit(pool.X[train], pool.target[train], **(pool.head_labels(train) if with_heads else {}))
        if config.calibrate and parts.get("model"):
            model.calibrate(pd.concat(parts["model"]))
        fold_models[fold.number] = model
        keep("model", model.predict(pool.X[test]), test, fold)
        # one BLAS thread for the baselines: each is a few hundred rows of one coin, too small to share, and a second
        # OpenBLAS thread left spinning after each product starved the solver (10x slower logistic fits on 2 shared
        # cores). Their numbers were bit-identical here, and one thread keeps them from depending on the core count
        with threadpool_limits(limits=1, user_api="blas"):
            for asset in pool.assets if with_baselines else []:
                # positions from the coin's own rows: a mask over the whole pool per coin grew with coins x rows
                a_train, a_test = pool.coin_rows(fold.train_days, asset), pool.coin_rows(fold.test_days, asset)
                if not len(a_train) or not len(a_test):
                    continue
                for baseline in baselines(config):
                    baseline.fit(pool.X.iloc[a_train], pool.target.iloc[a_train])
                    keep(baseline.name, baseline.predict(pool.X.iloc[a_test]), a_test, fold)
    oof = {name: pd.concat(frames).rename_axis("date") for name, frames in parts.items()}
    return oof, fold_models


def pooled_folds(pool: Pool, settings: Settings, days: pd.DatetimeIndex | None = None, folds: FoldConfig | None = None) -> list[Fold]:
    """Calendar folds over the labelled days of every coin (optionally only ``days``: an outer fold's training days,
    split as ``folds`` says)."""
    labelled = pool.labelled_days()
    if days is not None:
        labelled = labelled[labelled.isin(days)]
    return walk_forward_folds(labelled, folds or settings.folds, settings.purge_days)


def walk_forward(tables: dict[str, FeatureTable] | FeatureTable, settings: Settings, config: ModelConfig | None = None,
                 progress: Callable[[str], None] | None = None) -> Evaluation:
    """Fit the pooled model and each coin's baselines on every fold's training days, predict its test days, score."""
    if isinstance(tables, FeatureTable):
        tables = {settings.asset: tables}
    config = config or settings.model
    first = next(iter(tables.values()))
    pool = Pool.of(tables, model_features(first.features, config), config.term_horizons)
    folds = pooled_folds(pool, settings)
    oof, fold_models = fit_predict_folds(pool, folds, settings, config, progress=progress)
    scores, per_fold = score_oof(oof, pool.events, folds, settings)
    if progress:
        progress("skill by missing families")
    return Evaluation(folds, oof, scores, per_fold, fold_models, pool_skill(pool, folds, oof, fold_models, config),
                      with_alert_lines(yardstick_table(oof["model"], settings.labels.horizon_days), oof["model"], settings))


def with_alert_lines(yardstick: dict[str, object] | None, oof: pd.DataFrame, settings: Settings) -> dict[str, object] | None:
    """The yardstick with each coin's alert line chosen from all its out-of-fold days (``alert_line``: the threshold, the
    false alarms per 30 days and the share of days in alert it gives there, how it was chosen): what the champion answers by."""
    if yardstick is None:
        return None
    lines = champion_thresholds(oof, settings.false_alarm_budget_per_30d, settings.alert_threshold)
    return {**yardstick, "coins": {coin: {**values, "alert_line": lines.get(coin)} for coin, values in yardstick["coins"].items()}}


def pool_skill(pool: Pool, folds: list[Fold], oof: dict[str, pd.DataFrame], fold_models: dict[int, CascadeModel],
               config: ModelConfig) -> dict[str, object] | None:
    """The expected-skill table (``training.skill``) of the walk-forward's out-of-fold rows, with the volatility
    baseline's out-of-fold ROC-AUC beside it (the default floor)."""
    if not fold_models:
        return None
    fold_of_row = np.full(len(pool.X), -1)
    for fold in folds:
        fold_of_row[pool.rows(fold.test_days)] = fold.number
    baseline = None
    if "volatility" in oof:  # the baseline's out-of-fold probability of each pool row (date, coin)
        by_row = oof["volatility"].set_index("asset", append=True)["p_cascade"]
        keys = pd.MultiIndex.from_arrays([pool.X.index, pool.asset.to_numpy()])
        baseline = by_row[~by_row.index.duplicated()].reindex(keys).to_numpy(dtype=float)
        baseline = np.where(np.isfinite(baseline), baseline, np.nanmean(baseline))
    return skill_table(pool.X, pool.target, pool.asset, fold_of_row, fold_models, baseline, config.missing_example_families)


def predictor_names(config: ModelConfig) -> list[str]:
    return [CascadeModel.name, *(b.name for b in baselines(config))]


@dataclass(frozen=True)
class Verdict:
    """The champion gate's decision for one coin: passed, else the reasons (metric, baseline, both values)."""

    passed: bool
    reasons: list[str]

    def note(self) -> str:
        if self.passed:
            return "The new model passed the gate and becomes `champion`."
        return "The new model did **not** pass the gate; the previous champion (if any) stays:\n\n" + "\n".join(f"- {r}" for r in self.reasons)


def gate(evaluation: Evaluation, settings: Settings, asset: str | None = None) -> Verdict:
    """Does the model beat every configured baseline on every configured metric, for ``asset`` (default: settings.asset)?"""
    asset = asset or settings.asset
    table = evaluation.scores.loc[asset]
    reasons = []
    model = table.loc["model"]
    for baseline in settings.gate.baselines:
        for metric in settings.gate.metrics:
            mine, theirs = float(model[metric]), float(table.loc[baseline, metric])
            if not (mine > theirs + settings.gate.min_margin):
                reasons.append(f"{metric} {mine:.4f} does not beat {baseline} ({theirs:.4f})")
    return Verdict(not reasons, reasons)


__all__ = ["POOLED", "TABLE_METRICS", "Evaluation", "Pool", "Predictor", "Verdict", "gate", "walk_forward"]
