"""Walk-forward evaluation of the model and its baselines on the same folds, and the report."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cascade_radar.config import Settings
from features.build import FeatureTable
from training.metrics import direction_day_accuracy, event_metrics, probability_metrics
from training.model import CascadeModel, PlattCalibrator, Predictor, baselines, is_cascade, model_features
from training.splits import Fold, walk_forward_folds

TABLE_METRICS = ["pr_auc", "roc_auc", "brier", "brier_skill", "log_loss", "event_recall", "median_lead_days",
                 "false_alarms_per_30d", "direction_accuracy", "direction_day_accuracy"]


@dataclass
class Evaluation:
    folds: list[Fold]
    oof: dict[str, pd.DataFrame]  # predictor name -> date-indexed fold, p_cascade, p_long, p_short, target
    pooled: pd.DataFrame  # rows: predictor, columns: metrics
    per_fold: pd.DataFrame  # rows: (predictor, fold)
    fold_models: dict[int, CascadeModel]  # the model fitted for each fold: out-of-fold explanations use these

    def table(self) -> pd.DataFrame:
        return self.pooled[TABLE_METRICS]

    def fold_descriptions(self) -> list[dict[str, object]]:
        return [f.describe() for f in self.folds]


def predictors(settings: Settings) -> list[Predictor]:
    return [CascadeModel(settings.model), *baselines(settings.model)]


def _score(pred: pd.DataFrame, reference: pd.DataFrame, events: pd.DataFrame, settings: Settings) -> dict[str, float]:
    y = is_cascade(pred["target"])
    scores = probability_metrics(y, pred["p_cascade"].to_numpy(), reference["p_cascade"].to_numpy())
    scores.update(event_metrics(pred, events, settings.labels.horizon_days, settings.alert_threshold))
    scores["direction_day_accuracy"] = direction_day_accuracy(pred)
    return scores


def walk_forward(ft: FeatureTable, settings: Settings) -> Evaluation:
    """Fit every predictor on each fold's training days, predict its test days, score pooled and per fold."""
    labelled = ft.table[ft.table["target"].notna()]
    folds = walk_forward_folds(labelled.index, settings.folds, settings.purge_days)
    X = labelled[model_features(ft.features, settings.model)]
    target = labelled["target"].astype(str)
    parts: dict[str, list[pd.DataFrame]] = {}
    fold_models: dict[int, CascadeModel] = {}
    for fold in folds:
        for predictor in predictors(settings):
            predictor.fit(X.loc[fold.train_days], target.loc[fold.train_days])
            if isinstance(predictor, CascadeModel):
                fold_models[fold.number] = predictor
                if settings.model.calibrate and parts.get("model"):
                    earlier = pd.concat(parts["model"])
                    predictor.calibrator = PlattCalibrator().fit(earlier["margin"].to_numpy(), is_cascade(earlier["target"]))
            pred = predictor.predict(X.loc[fold.test_days])
            pred.insert(0, "fold", fold.number)
            pred["target"] = target.loc[fold.test_days]
            parts.setdefault(predictor.name, []).append(pred)
    oof = {name: pd.concat(frames).rename_axis("date") for name, frames in parts.items()}
    events = ft.labels.events
    reference = oof["base_rate"]
    pooled = pd.DataFrame({name: _score(pred, reference, events, settings) for name, pred in oof.items()}).T
    rows = {}
    for name, pred in oof.items():
        for fold in folds:
            sel = pred["fold"] == fold.number
            rows[(name, fold.number)] = _score(pred[sel], reference[sel], events, settings)
    per_fold = pd.DataFrame(rows).T.rename_axis(["predictor", "fold"])
    return Evaluation(folds, oof, pooled, per_fold, fold_models)


@dataclass(frozen=True)
class Verdict:
    """The champion gate's decision: passed, else the reasons (metric, baseline, both values)."""

    passed: bool
    reasons: list[str]

    def note(self) -> str:
        if self.passed:
            return "The new model passed the gate and becomes `champion`."
        return "The new model did **not** pass the gate; the previous champion (if any) stays:\n\n" + "\n".join(f"- {r}" for r in self.reasons)


def gate(evaluation: Evaluation, settings: Settings) -> Verdict:
    """Does the model beat every configured baseline on every configured metric?"""
    reasons = []
    model = evaluation.pooled.loc["model"]
    for baseline in settings.gate.baselines:
        for metric in settings.gate.metrics:
            mine, theirs = float(model[metric]), float(evaluation.pooled.loc[baseline, metric])
            if not (mine > theirs + settings.gate.min_margin):
                reasons.append(f"{metric} {mine:.4f} does not beat {baseline} ({theirs:.4f})")
    return Verdict(not reasons, reasons)
