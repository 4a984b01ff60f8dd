"""Walk-forward evaluation of the pooled model and its per-coin baselines on the same folds, scored per coin and pooled.

The model is one LightGBM pair fitted on the training days of every coin at once (cascades are rare per
coin; pooled there are several times more events to learn from). The baselines are fitted per coin, on
that coin's training days only, so each coin's model is judged against the best cheap forecast *of that
coin*. Folds are calendar blocks shared by every coin: no coin's future trains another coin's past.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from cascade_radar.config import FoldConfig, ModelConfig, Settings
from features.build import FeatureTable
from training.metrics import EventTally, direction_metrics, event_tally, probability_metrics
from training.model import CascadeModel, PlattCalibrator, Predictor, baselines, is_cascade, model_features
from training.skill import skill_table
from training.splits import Fold, walk_forward_folds
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

    @classmethod
    def of(cls, tables: dict[str, FeatureTable], features: list[str]) -> Pool:
        parts = []
        for asset, ft in tables.items():
            labelled = ft.table[ft.table["target"].notna()]
            part = labelled[[*features, "target", "major_ahead"]].copy()
            part["asset"] = asset
            parts.append(part)
        rows = pd.concat(parts).rename_axis("date")
        return cls(rows[features], rows["target"].astype(str), rows["major_ahead"], rows["asset"],
                   {asset: ft.labels.events for asset, ft in tables.items()})

    def labelled_days(self) -> pd.DatetimeIndex:
        """Every day some coin has a label, in order."""
        return pd.DatetimeIndex(self.X.index.unique()).sort_values()

    def oof(self, pred: pd.DataFrame, rows: np.ndarray, fold: Fold) -> pd.DataFrame:
        """``pred`` for ``rows`` as an out-of-fold block: asset, fold, probabilities, target, major_ahead."""
        pred.insert(0, "fold", fold.number)
        pred.insert(0, "asset", self.asset.to_numpy()[rows])
        pred["target"] = self.target.to_numpy()[rows]
        pred["major_ahead"] = self.major.to_numpy()[rows]
        return pred

    def rows(self, days: pd.DatetimeIndex, asset: str | None = None) -> np.ndarray:
        keep = self.X.index.isin(days)
        return keep & (self.asset == asset).to_numpy() if asset is not None else keep

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

    def for_asset(self, asset: str) -> Evaluation:
        """The same evaluation seen from one coin: its out-of-fold rows and scores only."""
        oof = {name: pred[pred["asset"] == asset] for name, pred in self.oof.items()}
        keep = self.scores.index.get_level_values("asset") == asset
        keep_fold = self.per_fold.index.get_level_values("asset") == asset
        return replace(self, oof=oof, scores=self.scores[keep], per_fold=self.per_fold[keep_fold])

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
    return scores


def score_oof(oof: dict[str, pd.DataFrame], events: dict[str, pd.DataFrame], folds: list[Fold], settings: Settings,
              by_fold: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(scores per (asset, predictor), per (asset, predictor, fold)); asset ``pooled`` sums every coin's events."""
    h, thr = settings.labels.horizon_days, settings.alert_threshold
    reference = oof["base_rate"] if "base_rate" in oof else None
    rows, fold_rows = {}, {}
    for name, pred in oof.items():
        ref = reference if reference is not None else pred.assign(p_cascade=pred["p_cascade"].mean())
        tallies = {}
        for asset in events:
            sel = (pred["asset"] == asset).to_numpy()
            tallies[asset] = event_tally(pred[sel], events[asset], h, thr)
            rows[(asset, name)] = _score(pred[sel], ref[sel], tallies[asset], reference is not None)
            for fold in folds if by_fold else []:
                fsel = sel & (pred["fold"] == fold.number).to_numpy()
                if fsel.any():
                    fold_rows[(asset, name, fold.number)] = _score(pred[fsel], ref[fsel], event_tally(pred[fsel], events[asset], h, thr),
                                                                   reference is not None)
        rows[(POOLED, name)] = _score(pred, ref, sum(tallies.values(), EventTally()), reference is not None)
    scores = pd.DataFrame(rows).T.rename_axis(["asset", "predictor"])
    per_fold = pd.DataFrame(fold_rows).T.rename_axis(["asset", "predictor", "fold"]) if fold_rows else pd.DataFrame()
    return scores, per_fold


def fit_predict_folds(pool: Pool, folds: list[Fold], settings: Settings, config: ModelConfig,
                      with_baselines: bool = True, progress: Callable[[str], None] | None = None) -> tuple[dict[str, pd.DataFrame], dict[int, CascadeModel]]:
    """Out-of-fold predictions of the pooled model (and of each coin's baselines) on every fold's test days."""
    parts: dict[str, list[pd.DataFrame]] = {}
    fold_models: dict[int, CascadeModel] = {}

    def keep(name: str, pred: pd.DataFrame, rows: np.ndarray, fold: Fold) -> None:
        parts.setdefault(name, []).append(pool.oof(pred, rows, fold))

    for fold in folds:
        if progress:
            progress(f"walk-forward fold {fold.number} of {len(folds)}")
        train, test = pool.rows(fold.train_days), pool.rows(fold.test_days)
        model = CascadeModel(config).fit(pool.X[train], pool.target[train])
        if config.calibrate and parts.get("model"):
            earlier = pd.concat(parts["model"])
            model.calibrator = PlattCalibrator().fit(earlier["margin"].to_numpy(), is_cascade(earlier["target"]))
        fold_models[fold.number] = model
        keep("model", model.predict(pool.X[test]), test, fold)
        for asset in pool.assets if with_baselines else []:
            a_train, a_test = pool.rows(fold.train_days, asset), pool.rows(fold.test_days, asset)
            if not a_train.any() or not a_test.any():
                continue
            for baseline in baselines(config):
                baseline.fit(pool.X[a_train], pool.target[a_train])
                keep(baseline.name, baseline.predict(pool.X[a_test]), a_test, fold)
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
    pool = Pool.of(tables, model_features(first.features, config))
    folds = pooled_folds(pool, settings)
    oof, fold_models = fit_predict_folds(pool, folds, settings, config, progress=progress)
    scores, per_fold = score_oof(oof, pool.events, folds, settings)
    if progress:
        progress("skill by missing families")
    return Evaluation(folds, oof, scores, per_fold, fold_models, pool_skill(pool, folds, oof, fold_models, config),
                      yardstick_table(oof["model"], settings.labels.horizon_days))


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
