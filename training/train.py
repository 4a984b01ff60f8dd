"""The training pipeline, one entry point: ``train(settings)``.

history -> feature table -> walk-forward evaluation -> gate -> final fit -> report files -> MLflow run
-> (registration, champion alias, champion explanations). The CLI (`make train`, `make evaluate`), the
tests and the benchmarks all call ``train``; each stage below is a function of its own.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from cascade_radar.config import Settings
from features.build import FeatureTable, load_feature_table, load_history
from features.store import HistoryStore
from training.evaluate import Evaluation, Verdict, gate, walk_forward
from training.explain import champion_explainer, fold_sources
from training.model import CascadeModel, PlattCalibrator, is_cascade, model_features
from training.register import CHAMPION, champion_version, log_cascade_model, set_champion, setup_tracking
from training.report import write_report


@dataclass
class TrainResult:
    feature_table: FeatureTable
    evaluation: Evaluation
    verdict: Verdict
    model: CascadeModel
    run_id: str
    model_version: str
    champion: str | None
    files: list[Path]  # report files written (the report itself first), all logged to the run
    seconds: float

    @property
    def passed_gate(self) -> bool:
        return self.verdict.passed

    @property
    def reasons(self) -> list[str]:
        return self.verdict.reasons

    @property
    def report(self) -> Path:
        return self.files[0]


def train(settings: Settings, register: bool = True, store: HistoryStore | None = None) -> TrainResult:
    """Run the whole pipeline for ``settings.asset``; with ``register=False`` it evaluates and records only."""
    started = time.perf_counter()
    store = store or load_history(settings)
    ft = load_feature_table(store, settings)
    evaluation = walk_forward(ft, settings)
    verdict = gate(evaluation, settings)
    model = fit_final(ft, evaluation, settings)
    files = write_report(evaluation, verdict, ft, model, settings, settings.reports_path)
    experiment_id = setup_tracking(settings)
    stage = "train" if register else "evaluate"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{stage}-{settings.asset}") as run:
        log_run(ft, evaluation, verdict, model, store, settings, files, stage)
        version = register_model(ft, evaluation, verdict, model, settings) if register else ""
    champion = champion_version(settings.registered_model_name) if register else None
    return TrainResult(ft, evaluation, verdict, model, run.info.run_id, version, champion, files, time.perf_counter() - started)


def fit_final(ft: FeatureTable, evaluation: Evaluation, settings: Settings) -> CascadeModel:
    """The model trained on every labelled day (calibrated, if configured, on all out-of-fold margins)."""
    labelled = ft.table[ft.table["target"].notna()]
    X = labelled[model_features(ft.features, settings.model)]
    model = CascadeModel(settings.model).fit(X, labelled["target"].astype(str))
    if settings.model.calibrate:
        oof = evaluation.oof["model"]
        model.calibrator = PlattCalibrator().fit(oof["margin"].to_numpy(), is_cascade(oof["target"]))
    return model


def table_hash(table: pd.DataFrame) -> str:
    """Content hash of the feature table (values, index and column names)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(table, index=True).to_numpy().tobytes())
    digest.update("|".join(table.columns).encode())
    return digest.hexdigest()[:16]


def flatten(prefix: str, value: object, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else k, v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)
    return out


def coverage(store: HistoryStore) -> dict[str, dict[str, object]]:
    return {s.series: {"first": str(s.first_day.date()), "last": str(s.last_day.date()), "rows": s.rows, "missing_days": s.missing_days}
            for s in store.status()}


def evaluation_metrics(evaluation: Evaluation) -> dict[str, float]:
    """Pooled metrics as ``<predictor>_<metric>``, per fold as ``<predictor>_<metric>_fold<k>``."""
    metrics = {}
    for name, row in evaluation.pooled.iterrows():
        metrics.update({f"{name}_{k}": float(v) for k, v in row.items() if pd.notna(v)})
    for (name, fold), row in evaluation.per_fold.iterrows():
        metrics.update({f"{name}_{k}_fold{fold}": float(v) for k, v in row.items() if pd.notna(v)})
    return metrics


def log_run(ft: FeatureTable, evaluation: Evaluation, verdict: Verdict, model: CascadeModel, store: HistoryStore, settings: Settings,
            files: list[Path], stage: str) -> None:
    """Record the active MLflow run: tags, the whole config, data coverage, folds, metrics and every report file."""
    labelled = ft.table["target"].notna()
    mlflow.set_tags({"asset": settings.asset, "stage": stage, "feature_table_hash": table_hash(ft.table),
                     "gate": "passed" if verdict.passed else "failed"})
    mlflow.log_params(flatten("", settings.loggable(), {}))
    mlflow.log_params({"data.first_day": str(ft.table.index[0].date()), "data.last_day": str(ft.table.index[-1].date()),
                       "data.labelled_days": int(labelled.sum()), "data.events": len(ft.labels.events),
                       "model.n_features": len(model.features)})
    mlflow.log_dict(settings.loggable(), "config.json")
    mlflow.log_dict(coverage(store), "data_coverage.json")
    mlflow.log_dict({"folds": evaluation.fold_descriptions()}, "folds.json")
    mlflow.log_metrics(evaluation_metrics(evaluation))
    root = settings.reports_path
    for path in files:
        parent = path.parent.relative_to(root).as_posix()
        mlflow.log_artifact(str(path), artifact_path="evaluation" if parent == "." else f"evaluation/{parent}")


def register_model(ft: FeatureTable, evaluation: Evaluation, verdict: Verdict, model: CascadeModel, settings: Settings) -> str:
    """Log and register the model in the active run, tag it with the gate, and move `champion` to it only on a pass.

    A new champion's per-day explanations are logged beside it. Returns the new version number.
    """
    name = settings.registered_model_name
    labelled = ft.table["target"].notna()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        info = log_cascade_model(model, ft.table.loc[labelled, model.features], work, name)
        version = str(info.registered_model_version)
        client = mlflow.MlflowClient()
        client.set_model_version_tag(name, version, "gate", "passed" if verdict.passed else "failed")
        if verdict.reasons:
            client.set_model_version_tag(name, version, "gate_reasons", "; ".join(verdict.reasons)[:5000])
        if verdict.passed:
            set_champion(name, version)
            explainer = champion_explainer(model, {"name": name, "version": version, "alias": CHAMPION}, settings, fold_sources(evaluation))
            explainer.explain(ft.table).to_parquet(work / "champion_explanations.parquet")
            mlflow.log_artifact(str(work / "champion_explanations.parquet"), artifact_path="explanations")
    return version
