"""End to end on the synthetic history, into a temporary real MLflow store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from cascade_radar.config import GateConfig, Settings
from features.labels import TARGETS
from features.store import HistoryStore
from training.register import CHAMPION, load_champion
from training.train import train


@pytest.fixture()
def trained(settings: Settings, synthetic_store: HistoryStore):  # noqa: ANN201
    result = train(settings, store=synthetic_store)
    return result.feature_table, result


def test_train_registers_a_champion_that_loads_back_with_the_same_probabilities(trained, settings: Settings) -> None:  # noqa: ANN001
    ft, result = trained
    assert result.passed_gate, result.reasons  # planted build-ups are learnable: the model beats the baselines
    assert result.model_version == "1" and result.champion == "1"
    name = settings.registered_model_name
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    X = ft.table.loc[ft.table["target"].notna(), result.model.features].tail(50)
    loaded = pyfunc.predict(X)
    expected = result.model.predict(X)
    np.testing.assert_allclose(loaded[["p_cascade", "p_long", "p_short"]].to_numpy(), expected[["p_cascade", "p_long", "p_short"]].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(loaded["p_long"] + loaded["p_short"], loaded["p_cascade"], rtol=1e-12)
    model, identity = load_champion(settings)
    assert identity["version"] == "1" and identity["alias"] == CHAMPION
    np.testing.assert_allclose(model.predict(X)["p_cascade"], expected["p_cascade"])


def test_the_run_records_config_data_metrics_plots_and_oof(trained, settings: Settings) -> None:  # noqa: ANN001
    ft, result = trained
    run = MlflowClient().get_run(result.run_id)
    assert run.data.params["labels.horizon_days"] == "14"
    from training.train import table_hash

    # the real hash of the pooled table trained on (one coin here): a changed table changes it
    assert run.data.tags["feature_table_hash"] == table_hash(ft.table.assign(asset=settings.asset))
    assert table_hash(ft.table.assign(asset=settings.asset).iloc[:-1]) != run.data.tags["feature_table_hash"]
    for name in ("model", "base_rate", "rule", "logistic", "volatility"):
        assert f"{name}_pr_auc" in run.data.metrics and f"{name}_brier_skill" in run.data.metrics
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "evaluation")}
    assert {"evaluation/pr_curve.png", "evaluation/reliability.png", "evaluation/timeline.png", "evaluation/oof_predictions.csv"} <= artifacts
    oof = pd.read_csv(settings.reports_path / "oof_predictions.csv")
    # the answers and target, then the heads' answers (severity, term structure) and the shorter horizons' targets
    assert list(oof.columns) == ["date", "asset", "fold", "p_cascade", "p_long", "p_short", "target", "p_major", "p_cascade_3d",
                                 "p_cascade_7d", "within_3d", "within_7d"]
    assert set(oof["asset"]) == {"BTC"}
    assert set(oof["target"]) <= set(TARGETS)  # none, long, short, two-sided
    # out-of-fold means out of fold: every predicted day lies in its fold's test block
    for fold in result.evaluation.folds:
        days = pd.to_datetime(oof.loc[oof["fold"] == fold.number, "date"])
        assert days.min() >= fold.test_start and days.max() <= fold.test_end
        assert days.min() > fold.train_end + pd.Timedelta(days=settings.labels.horizon_days)


def test_the_gate_refuses_a_model_that_loses_and_keeps_the_champion(trained, settings: Settings, synthetic_store: HistoryStore) -> None:  # noqa: ANN001
    ft, _ = trained
    strict = settings.model_copy(update={"gate": GateConfig(min_margin=10.0)})
    second = train(strict, store=synthetic_store)
    assert not second.passed_gate
    assert any("does not beat base_rate" in r for r in second.reasons)
    assert second.model_version == "2"
    assert second.champion == "1"
    tags = MlflowClient().get_model_version(settings.registered_model_name, "2").tags
    assert tags["gate"] == "failed"


def test_a_second_training_run_says_it_waits_and_then_runs_with_its_own_files(settings: Settings, synthetic_store: HistoryStore,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Two `make train` at once shared reports/fold_models/ (one failed on a vanished fold file): the second now waits."""
    import threading
    import time

    from cascade_radar.files import exclusive
    from training.train import train, training_lock

    results: list[object] = []
    with exclusive(training_lock(settings), "a training run"):  # the first run, holding the reports folder
        stages: list[str] = []
        worker = threading.Thread(target=lambda: results.append(train(settings, store=synthetic_store, progress=stages.append)))
        worker.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "waiting for a training run" not in capsys.readouterr().out:
            time.sleep(0.05)
        assert worker.is_alive() and not results  # it waits, and said so
    worker.join(timeout=600)
    (result,) = results
    assert result.passed_gate and all(p.exists() for p in result.files)
    # the stages `make train` shows on a terminal, in order
    folds = [f"walk-forward fold {n} of {settings.folds.n_folds}" for n in range(1, settings.folds.n_folds + 1)]
    assert stages == ["feature tables", *folds, "skill by missing families", "final fit", "reports", "MLflow run and registry"]


def test_mlflow_shows_what_a_run_did_and_its_headline_metrics_over_its_rest_api(trained, settings: Settings) -> None:  # noqa: ANN001
    """A real `mlflow server` on loopback: the run is named for what it did, its page's description is the per-coin table,
    its metrics are the headline ones (the rest an artifact table), the experiment is a training one, the model described."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    import httpx

    from tests.support.process import free_port

    _, result = trained
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", settings.tracking_uri,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        run = httpx.get(f"{base}/runs/get", params={"run_id": result.run_id}, timeout=10).json()["run"]
        model = httpx.get(f"{base}/registered-models/get", params={"name": settings.registered_model_name}, timeout=10).json()["registered_model"]
        experiment = httpx.get(f"{base}/experiments/get", params={"experiment_id": run["info"]["experiment_id"]}, timeout=10).json()["experiment"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run["info"]["run_name"].startswith("train BTC · 6 families · ")
    metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
    headline = {f"BTC.model_{k}" for k in ("pr_auc", "roc_auc", "brier_skill", "direction_auc")}
    assert headline <= set(metrics) and len(metrics) < 120 and not [k for k in metrics if "_fold" in k]  # was 2,952 flat metrics
    tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
    assert tags["mlflow.note.content"].splitlines()[2].startswith("| coin | PR-AUC | ROC-AUC | Brier skill | direction AUC | gate |")
    assert f"| BTC | {metrics['BTC.model_pr_auc']:.3f} |" in tags["mlflow.note.content"]
    assert "for BTC: P(a liquidation cascade within 14 days)" in model["description"]
    assert {t["key"]: t["value"] for t in experiment["tags"]}["mlflow.experimentKind"] == "custom_model_development"
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "evaluation")}
    assert "evaluation/metrics_all.csv" in artifacts


# A `make train` killed while writing its reports: out-of-fold tables, fold models and two plots written, then the
# process dies (os._exit: no cleanup runs, as under SIGKILL). Its model differs from the published run's, so every file
# it wrote differs too.
KILLED_RUN = """
import os
import training.report
from cascade_radar.config import Settings
from tests.conftest import TEST_MODEL
from training.train import train

def killed(*args, **kwargs):
    os._exit(9)

training.report.plot_timeline = killed
train(Settings(assets=["BTC"], model=TEST_MODEL.model_copy(update={"n_estimators": 150})))
"""


def published_reports(root: Path) -> dict[str, bytes]:
    """The published report files by their path below the reports root (the lock and the runs' own folders left out)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def test_a_killed_run_leaves_the_last_complete_reports_and_the_next_run_publishes_all_of_its_own(
        trained, settings: Settings, synthetic_store: HistoryStore, tmp_path: Path) -> None:  # noqa: ANN001
    """Issue 31: a `make train` killed at 22 s left evaluation.md and oof_predictions.csv of a run that registered nothing."""
    import os
    import subprocess
    import sys

    from cascade_radar.config import PROJECT_ROOT
    from tests.support.process import settings_env

    root = settings.reports_root
    before = published_reports(root)
    assert {"evaluation.md", "oof_predictions.csv", "timeline.png", "fold_models/folds.json"} <= set(before)
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN], cwd=PROJECT_ROOT, env={**os.environ, **settings_env(settings)},
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == 9, killed.stderr[-3000:]
    assert published_reports(root) == before  # byte-identical: no file of the killed run among the published reports ...
    (leftover,) = (root / ".runs").iterdir()  # ... what it had written is in its own folder
    assert (leftover / "fold_models" / "folds.json").exists()
    assert (leftover / "oof_predictions.csv").read_bytes() != before["oof_predictions.csv"]
    assert load_champion(settings)[1]["version"] == "1"  # nor in the registry

    other = settings.model_copy(update={"model": settings.model.model_copy(update={"n_estimators": 150})})
    result = train(other, store=synthetic_store)
    assert list((root / ".runs").iterdir()) == []  # the killed run's folder settled, this run's own swapped in and gone
    after = published_reports(root)
    assert set(after) == {p.relative_to(root).as_posix() for p in result.files} == set(before)
    assert after["oof_predictions.csv"] != before["oof_predictions.csv"]
    logged = Path(mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="evaluation", dst_path=str(tmp_path)))
    assert {p.relative_to(logged).as_posix(): p.read_bytes() for p in logged.rglob("*")
            if p.is_file() and p.name != "metrics_all.csv"} == after  # every published file is the one this run logged
