"""The training pipeline, one entry point: ``train(settings)``.

every coin's history -> feature tables -> pooled walk-forward evaluation (scored per coin) -> gate per coin
-> final pooled fit -> report files per coin -> one MLflow run -> (the model registered under every coin's
name, `champion` for the coins that passed, their explanations). The CLI (`make train`, `make evaluate`),
the tests and the benchmarks all call ``train``; each stage below is a function of its own.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.files import exclusive
from features.build import FeatureTable, load_feature_tables
from features.store import HistoryStore
from training.evaluate import POOLED, TABLE_METRICS, Evaluation, Pool, Verdict, gate, head_metrics, walk_forward
from training.explain import champion_explainer, fold_sources
from training.model import CascadeModel, model_features
from training.register import CHAMPION, champion_version, log_cascade_model, set_champion, setup_tracking
from training.report import staged_reports, write_report, write_summary


@dataclass
class TrainResult:
    """What one training of the pooled model produced, for every coin it covers."""

    asset: str  # the coin the single-coin properties below answer for (settings.asset, else the first coin)
    tables: dict[str, FeatureTable]
    evaluation: Evaluation
    verdicts: dict[str, Verdict]
    model: CascadeModel
    run_id: str
    versions: dict[str, str]  # registered version per coin ('' when not registered)
    champions: dict[str, str | None]
    files: list[Path]  # report files published (the focus coin's report first, then the rest), all logged to the run
    seconds: float

    @property
    def feature_table(self) -> FeatureTable:
        return self.tables[self.asset]

    @property
    def verdict(self) -> Verdict:
        return self.verdicts[self.asset]

    @property
    def passed_gate(self) -> bool:
        return self.verdict.passed

    @property
    def reasons(self) -> list[str]:
        return self.verdict.reasons

    @property
    def model_version(self) -> str:
        return self.versions.get(self.asset, "")

    @property
    def champion(self) -> str | None:
        return self.champions.get(self.asset)

    @property
    def report(self) -> Path:
        return self.files[0]


def train(settings: Settings, register: bool = True, store: HistoryStore | None = None,
          stores: dict[str, HistoryStore] | None = None, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Run the whole pipeline for the coins of ``settings.assets`` (one pooled model); with ``register=False`` it
    evaluates and records only. ``store``: the store of ``settings.asset`` (tests, benches); ``stores``: per coin.

    One run at a time per reports folder: ``reports/fold_models/`` and the reports are one set, so a second `make train`
    started meanwhile says that it waits, then runs — each run logs the files it wrote itself. The set is written in the
    run's own folder and replaces the published one only once the run is recorded (and registered): a run that fails or
    is killed leaves the last complete reports as they were."""
    with exclusive(training_lock(settings), "a training run", wait_seconds=TRAIN_LOCK_WAIT_SECONDS, say=print):
        return _train(settings, register, store, stores, progress or (lambda stage: None))


TRAIN_LOCK_WAIT_SECONDS = 6 * 3600.0


def training_lock(settings: Settings) -> Path:
    """The lock file of the reports folder that training writes (reports/.training.lock)."""
    return settings.reports_root / ".training.lock"


def _train(settings: Settings, register: bool, store: HistoryStore | None, stores: dict[str, HistoryStore] | None,
           progress: Callable[[str], None]) -> TrainResult:
    started = time.perf_counter()
    progress("feature tables")
    stores = dict(stores or {})
    if store is not None:
        stores[settings.asset] = store
    tables = load_feature_tables(settings, stores)
    evaluation = walk_forward(tables, settings, progress=progress)
    verdicts = {asset: gate(evaluation, settings, asset) for asset in tables}
    progress("final fit")
    model = fit_final(tables, evaluation, settings)
    progress("reports")
    focus = settings.asset if settings.asset in tables else next(iter(tables))
    with staged_reports(settings) as staged:  # published when this block ends without error
        files: list[Path] = []
        for asset, ft in tables.items():
            each = settings.for_asset(asset)
            files += write_report(evaluation.for_asset(asset), verdicts[asset], ft, model, each, reports_folder(each, staged))
        if len(tables) > 1:
            files += write_summary(evaluation, verdicts, staged, {a: reports_folder(settings.for_asset(a), staged) for a in tables})
        focus_folder = reports_folder(settings.for_asset(focus), staged)
        files.sort(key=lambda p: (p.parent != focus_folder or p.name != "evaluation.md"))
        progress("MLflow run and registry")
        experiment_id = setup_tracking(settings)
        stage = "train" if register else "evaluate"
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name(stage, list(tables), model)) as run:
            log_run(tables, evaluation, verdicts, model, stores, settings, files, stage, staged)
            versions = register_model(tables, evaluation, verdicts, model, settings) if register else {}
    files = [settings.reports_root / path.relative_to(staged) for path in files]
    champions = {a: champion_version(settings.for_asset(a).registered_model_name) for a in tables} if register else {}
    return TrainResult(focus, tables, evaluation, verdicts, model, run.info.run_id, versions, champions, files,
                       time.perf_counter() - started)


def reports_folder(settings: Settings, root: Path) -> Path:
    """Where ``settings.asset``'s reports go under ``root``, laid out as under the reports root (BTC at the top, each
    other coin in its folder): a run writes its set under its own root, which is then published over the reports root."""
    return root / settings.reports_path.relative_to(settings.reports_root)


def fit_final(tables: dict[str, FeatureTable], evaluation: Evaluation, settings: Settings) -> CascadeModel:
    """The pooled model, with its major and term heads, trained on every labelled day of every coin (calibrated, if configured,
    on all out-of-fold margins: each head on its own)."""
    first = next(iter(tables.values()))
    pool = Pool.of(tables, model_features(first.features, settings.model), settings.model.term_horizons)
    model = CascadeModel(settings.model).fit(pool.X, pool.target, **pool.head_labels(np.ones(len(pool.X), dtype=bool)))
    model.skill = evaluation.skill  # what its walk-forward measured, by the families a day lacks: every answer reads it
    model.yardstick = evaluation.yardstick  # each coin's out-of-fold base rate, P quantiles and calibration: every answer's yardstick
    if settings.model.calibrate:
        model.calibrate(evaluation.oof["model"])
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


def coverage(stores: dict[str, HistoryStore]) -> dict[str, dict[str, dict[str, object]]]:
    return {asset: {s.series: {"first": str(s.first_day.date()), "last": str(s.last_day.date()), "rows": s.rows, "missing_days": s.missing_days}
                    for s in store.status()} for asset, store in stores.items()}


HEADLINE = ("pr_auc", "roc_auc", "brier_skill", "direction_auc", "direction_brier_skill")


def _headline(asset: str, predictor: str, metric: str) -> bool:
    """A run's headline metric: per coin the model's ``HEADLINE``; pooled, every predictor's report-table metrics, its share of
    days in alert and two-sided events, and the model's severity and term-structure scores."""
    if asset != POOLED:
        return metric in HEADLINE
    return metric in (*TABLE_METRICS, "alert_share", "two_sided_events") or (predictor == "model" and metric in head_metrics(pd.Index([metric])))


def evaluation_metrics(evaluation: Evaluation, every: bool = True) -> dict[str, float]:
    """Every coin together as ``<predictor>_<metric>``; per coin ``<asset>.<predictor>_<metric>``; per coin and fold
    ``<asset>.<predictor>_<metric>_fold<k>``. With ``every=False`` the headline only: every predictor pooled, and per
    coin the model's ``HEADLINE`` metrics — what a run's page and the comparison view should show first."""
    metrics = {}
    for (asset, name), row in evaluation.scores.iterrows():
        prefix = "" if asset == POOLED else f"{asset}."
        if not every and asset != POOLED and name != "model":
            continue
        metrics.update({f"{prefix}{name}_{k}": float(v) for k, v in row.items() if pd.notna(v) and (every or _headline(asset, name, k))})
    if evaluation.skill:  # the expected skill of each user tier, per coin and pooled (training.skill.TIERS)
        from training.skill import tier_skill

        for asset in [*evaluation.assets, POOLED] if every else [POOLED]:
            prefix = "" if asset == POOLED else f"{asset}."
            metrics.update({f"{prefix}skill_roc_auc.{tier}": v for tier, v in tier_skill(evaluation.skill, asset).items() if v is not None})
    if every:
        for (asset, name, fold), row in evaluation.per_fold.iterrows():
            metrics.update({f"{asset}.{name}_{k}_fold{fold}": float(v) for k, v in row.items() if pd.notna(v)})
    return metrics


def run_name(stage: str, assets: list[str], model: CascadeModel) -> str:
    """What the run did, readable in the runs list: stage, coins, families read, git revision."""
    from features.families import family_of

    families = sorted({family_of(f) for f in [*model.cascade_features, *model.direction_features]})
    coins = "+".join(assets) if len(assets) <= 3 else f"{len(assets)} coins"
    return f"{stage} {coins} · {len(families)} families · {git_revision()}"


def git_revision() -> str:
    import subprocess

    from cascade_radar.config import PROJECT_ROOT

    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "no git"
    return (done.stdout.strip() or "no git") + ("+dirty" if dirty.stdout.strip() else "")


def run_description(evaluation: Evaluation, verdicts: dict[str, Verdict]) -> str:
    """The run page's description: per coin the headline out-of-fold metrics and the gate's verdict (Markdown)."""
    lines = ["| coin | PR-AUC | ROC-AUC | Brier skill | direction AUC | gate |", "|---|---|---|---|---|---|"]
    for (asset, name), row in evaluation.scores.iterrows():
        if name != "model":
            continue
        cells = [f"{row.get(k):.3f}" if pd.notna(row.get(k)) else "–" for k in ("pr_auc", "roc_auc", "brier_skill", "direction_auc")]
        verdict = verdicts.get(asset)
        gate_word = "" if verdict is None else ("passed" if verdict.passed else "failed: " + "; ".join(verdict.reasons)[:200])
        lines.append(f"| {asset} | " + " | ".join(cells) + f" | {gate_word} |")
    return "Out-of-fold, walk-forward (every fold's model answers its own test block).\n\n" + "\n".join(lines)


def log_run(tables: dict[str, FeatureTable], evaluation: Evaluation, verdicts: dict[str, Verdict], model: CascadeModel,
            stores: dict[str, HistoryStore], settings: Settings, files: list[Path], stage: str, root: Path) -> None:
    """Record the active MLflow run: tags, the whole config, data coverage, folds, metrics and every report file
    (``files``, laid out under ``root`` as under the reports root: their path below it is their path in the run)."""
    pooled = pd.concat([ft.table.assign(asset=a) for a, ft in tables.items()])
    mlflow.set_tags({"assets": ",".join(tables), "stage": stage, "feature_table_hash": table_hash(pooled),
                     "gate": ",".join(f"{a}:{'passed' if v.passed else 'failed'}" for a, v in verdicts.items())})
    mlflow.log_params(flatten("", settings.loggable(), {}))
    for asset, ft in tables.items():
        labelled = ft.table["target"].notna()
        mlflow.log_params({f"data.{asset}.first_day": str(ft.table.index[0].date()), f"data.{asset}.last_day": str(ft.table.index[-1].date()),
                           f"data.{asset}.labelled_days": int(labelled.sum()), f"data.{asset}.events": len(ft.labels.events)})
    mlflow.log_params({"model.n_features": len(model.features), "model.cascade_features": len(model.cascade_features),
                       "model.direction_features": len(model.direction_features)})
    mlflow.log_dict(settings.loggable(), "config.json")
    mlflow.log_dict(coverage({a: stores.get(a) or HistoryStore(settings.for_asset(a).data_path) for a in tables}), "data_coverage.json")
    mlflow.log_dict({"folds": evaluation.fold_descriptions()}, "folds.json")
    mlflow.log_metrics(evaluation_metrics(evaluation, every=False))  # the headline; everything else as one table
    every = pd.Series(evaluation_metrics(evaluation), name="value").rename_axis("metric").reset_index()
    mlflow.log_text(every.to_csv(index=False), "evaluation/metrics_all.csv")
    mlflow.set_tag("mlflow.note.content", run_description(evaluation, verdicts))
    for path in files:
        parent = path.parent.relative_to(root).as_posix()
        mlflow.log_artifact(str(path), artifact_path="evaluation" if parent == "." else f"evaluation/{parent}")


def register_model(tables: dict[str, FeatureTable], evaluation: Evaluation, verdicts: dict[str, Verdict], model: CascadeModel,
                   settings: Settings) -> dict[str, str]:
    """Log the pooled model once in the active run and register it under every coin's name, tagged with that coin's gate;
    `champion` moves to it only for the coins that passed. A new champion's per-day explanations are logged beside it.
    Returns the new version number per coin."""
    versions = {}
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        first = next(iter(tables.values())).table
        info = log_cascade_model(model, first.loc[first["target"].notna(), model.features], work)
        for asset, ft in tables.items():
            each = settings.for_asset(asset)
            name, verdict = each.registered_model_name, verdicts[asset]
            version = str(mlflow.register_model(info.model_uri, name).version)
            versions[asset] = version
            client.set_model_version_tag(name, version, "gate", "passed" if verdict.passed else "failed")
            scores = evaluation.scores.loc[(asset, "model")] if (asset, "model") in evaluation.scores.index else None
            headline = "" if scores is None else ", ".join(f"{k} {scores[k]:.3f}" for k in ("pr_auc", "roc_auc", "brier_skill", "direction_auc")
                                                           if k in scores and pd.notna(scores[k]))
            client.update_model_version(name, version, description=f"Pooled over {', '.join(tables)}; {asset} out-of-fold: {headline}. Gate: "
                                        + ("passed" if verdict.passed else "failed — " + "; ".join(verdict.reasons))[:4000])
            client.update_registered_model(name, description=f"cascade-radar's model for {asset}: P(a liquidation cascade within "
                                           f"{settings.labels.horizon_days} days) and its side. The 'champion' alias is the version that "
                                           "passed the evaluation gate; each version's description holds its out-of-fold metrics and verdict.")
            client.set_model_version_tag(name, version, "pooled_assets", ",".join(tables))
            if verdict.reasons:
                client.set_model_version_tag(name, version, "gate_reasons", "; ".join(verdict.reasons)[:5000])
            if verdict.passed:
                set_champion(name, version)
                explainer = champion_explainer(model, {"name": name, "version": version, "alias": CHAMPION}, each, fold_sources(evaluation))
                path = work / f"champion_explanations_{asset.lower()}.parquet"
                explainer.explain(ft.table).to_parquet(path)
                mlflow.log_artifact(str(path), artifact_path="explanations")
    return versions
