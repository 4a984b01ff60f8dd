"""`make train`: features -> walk-forward evaluation -> final fit -> MLflow record -> champion gate."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402

from cascade_radar.config import Settings  # noqa: E402
from features.build import FeatureTable  # noqa: E402
from features.store import HistoryStore  # noqa: E402
from training.evaluate import Evaluation, gate, walk_forward, write_report  # noqa: E402
from training.explain import Explainer, fold_sources  # noqa: E402
from training.model import CascadeModel, PlattCalibrator, is_cascade, model_features  # noqa: E402
from training.register import champion_version, log_cascade_model, set_champion, setup_tracking  # noqa: E402


@dataclass
class TrainResult:
    evaluation: Evaluation
    model: CascadeModel
    run_id: str
    model_version: str
    passed_gate: bool
    reasons: list[str]
    champion: str | None
    report: Path
    seconds: float


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


def fit_final(ft: FeatureTable, evaluation: Evaluation, settings: Settings) -> CascadeModel:
    """The model trained on every labelled day (calibrated, if configured, on all out-of-fold margins)."""
    labelled = ft.table[ft.table["target"].notna()]
    X = labelled[model_features(ft.features, settings.model.exclude_features)]
    model = CascadeModel(settings.model).fit(X, labelled["target"].astype(str))
    if settings.model.calibrate:
        oof = evaluation.oof["model"]
        model.calibrator = PlattCalibrator().fit(oof["margin"].to_numpy(), is_cascade(oof["target"]))
    return model


def plot_importance(model: CascadeModel, path: Path, top: int = 25) -> pd.DataFrame:
    imp = pd.DataFrame({"feature": model.features,
                        "cascade_gain": model.cascade.feature_importance("gain"),
                        "direction_gain": model.direction.feature_importance("gain") if model.direction else 0.0})
    imp = imp.sort_values("cascade_gain", ascending=False)
    head = imp.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(head["feature"], head["cascade_gain"])
    ax.set(title=f"Cascade model: top {top} features by gain", xlabel="total gain")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return imp


def log_evaluation(evaluation: Evaluation) -> None:
    metrics = {}
    for name, row in evaluation.pooled.iterrows():
        metrics.update({f"{name}_{k}": float(v) for k, v in row.items() if pd.notna(v)})
    for (name, fold), row in evaluation.per_fold.iterrows():
        metrics.update({f"{name}_{k}_fold{fold}": float(v) for k, v in row.items() if pd.notna(v)})
    mlflow.log_metrics(metrics)


def run_training(ft: FeatureTable, store: HistoryStore, settings: Settings, register: bool = True) -> TrainResult:  # noqa: PLR0915
    """Evaluate walk-forward, fit the final model, log everything to MLflow, register, apply the gate."""
    started = time.perf_counter()
    experiment_id = setup_tracking(settings)
    evaluation = walk_forward(ft, settings)
    passed, reasons = gate(evaluation, settings)
    model = fit_final(ft, evaluation, settings)
    name = settings.registered_model_name
    reports = settings.reports_path
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{'train' if register else 'evaluate'}-{settings.asset}") as run, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mlflow.set_tags({"asset": settings.asset, "stage": "train" if register else "evaluate", "feature_table_hash": table_hash(ft.table),
                         "gate": "passed" if passed else "failed"})
        mlflow.log_params(flatten("", settings.loggable(), {}))
        data = coverage(store)
        labelled = ft.table["target"].notna()
        mlflow.log_params({"data.first_day": str(ft.table.index[0].date()), "data.last_day": str(ft.table.index[-1].date()),
                           "data.labelled_days": int(labelled.sum()), "data.events": len(ft.labels.events),
                           "model.n_features": len(model.features)})
        mlflow.log_dict(settings.loggable(), "config.json")
        mlflow.log_dict(data, "data_coverage.json")
        mlflow.log_dict({"folds": [f.describe() for f in evaluation.folds]}, "folds.json")
        log_evaluation(evaluation)
        report = write_report(evaluation, ft, settings, reports, extra=_gate_note(passed, reasons))
        imp = plot_importance(model, reports / "feature_importance.png")
        imp.to_csv(reports / "feature_importance.csv", index=False)
        ft.labels.events.to_csv(reports / "events.csv", index=False)
        for path in ("evaluation.md", "pr_curve.png", "reliability.png", "timeline.png", "feature_importance.png",
                     "feature_importance.csv", "oof_predictions.csv", "oof_baselines.csv", "events.csv"):
            mlflow.log_artifact(str(reports / path), artifact_path="evaluation")
        mlflow.log_artifacts(str(reports / "fold_models"), artifact_path="evaluation/fold_models")
        model_version = ""
        if register:
            info = log_cascade_model(model, ft.table.loc[labelled, model.features], work, name)
            model_version = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            client.set_model_version_tag(name, model_version, "gate", "passed" if passed else "failed")
            if reasons:
                client.set_model_version_tag(name, model_version, "gate_reasons", "; ".join(reasons)[:5000])
            if passed:
                set_champion(name, model_version)
                explainer = Explainer(model, f"{name} v{model_version} (@champion)", pd.Timestamp(model.trained_through),
                                      fold_sources(evaluation), settings.labels.horizon_days, settings.alert_threshold)
                explained = explainer.explain(ft.table)
                explained.to_parquet(work / "champion_explanations.parquet")
                mlflow.log_artifact(str(work / "champion_explanations.parquet"), artifact_path="explanations")
        run_id = run.info.run_id
    return TrainResult(evaluation, model, run_id, model_version, passed, reasons, champion_version(name) if register else None,
                       report, time.perf_counter() - started)


def _gate_note(passed: bool, reasons: list[str]) -> str:
    if passed:
        return "The new model passed the gate and becomes `champion`."
    return "The new model did **not** pass the gate; the previous champion (if any) stays:\n\n" + "\n".join(f"- {r}" for r in reasons)
