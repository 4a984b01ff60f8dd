"""MLflow: the tracking store, the pyfunc wrapper of the cascade model, registration and the champion alias."""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from cascade_radar.config import Settings
from training.model import CascadeModel

CHAMPION = "champion"
MODEL_DIR_KEY = "model_dir"


class CascadeRadarPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc face of :class:`CascadeModel`: features in, p_cascade / p_long / p_short out (and, from a model with heads,
    p_major and p_cascade_<h>d: ``CascadeModel.probability_columns``).

    The boosters are stored as LightGBM text files (no pickles); ``unwrap_python_model().model``
    gives the :class:`CascadeModel` itself, which explanations and serving use.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.model = CascadeModel.load(Path(context.artifacts[MODEL_DIR_KEY]))

    def predict(self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        return self.model.predict(model_input)[self.model.probability_columns()]


# The experiment's kind as MLflow 3 records it (the UI's kind selector shows "Machine learning"). MLflow 3.17's UI does not
# open the experiment by it: its workflow switch (GenAI by default) decides, so `make ui` prints a link with
# ?workflowType=machine_learning, which opens the runs list (docs/mlflow.md)
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_TAGS = {EXPERIMENT_KIND: "custom_model_development",
                   "mlflow.note.content": "cascade-radar: walk-forward evaluation and training of the liquidation-cascade model, every "
                                          "coin pooled. Each run's page shows per coin PR-AUC, ROC-AUC, Brier skill and direction AUC; "
                                          "the full table is the artifact evaluation/metrics_all.csv."}


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # the cloudpickle notice concerns only the wrapper class; the boosters are stored as text files
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)


def setup_tracking(settings: Settings) -> str:
    """Point MLflow at the project's store and return the experiment id (created on first use)."""
    _quiet_mlflow()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(settings.experiment_name)
    if experiment is None:
        Path(settings.artifact_location).mkdir(parents=True, exist_ok=True)
        experiment_id = mlflow.create_experiment(settings.experiment_name, artifact_location=Path(settings.artifact_location).as_uri(),
                                                 tags=EXPERIMENT_TAGS)
        return experiment_id
    if experiment.tags.get(EXPERIMENT_KIND) != EXPERIMENT_TAGS[EXPERIMENT_KIND]:
        for key, value in EXPERIMENT_TAGS.items():
            MlflowClient().set_experiment_tag(experiment.experiment_id, key, value)
    return experiment.experiment_id


def requirements() -> list[str]:
    return [f"{pkg}=={version(pkg)}" for pkg in ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pydantic", "pydantic-settings")]


def log_cascade_model(model: CascadeModel, X_example: pd.DataFrame, workdir: Path, registered_name: str | None = None) -> mlflow.models.model.ModelInfo:  # noqa: N803
    """Log the model (with signature and input example), and register a new version of ``registered_name`` if given."""
    model_dir = workdir / "cascade_model"
    model.save(model_dir)
    example = X_example[model.features].head(5).astype("float64")
    signature = infer_signature(example, model.predict(example)[model.probability_columns()])
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=CascadeRadarPyfunc(),
        artifacts={MODEL_DIR_KEY: str(model_dir)},
        signature=signature,
        input_example=example.fillna(0.0),  # JSON has no NaN; LightGBM treats missing natively at predict time
        registered_model_name=registered_name,
        pip_requirements=requirements(),
    )


def set_champion(name: str, model_version: str) -> None:
    MlflowClient().set_registered_model_alias(name, CHAMPION, model_version)


def champion_version(name: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return None


def tracking_store_path(settings: Settings) -> Path | None:
    """The sqlite file behind the tracking URI (None for a server URI)."""
    uri = settings.tracking_uri
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def why_no_champion(name: str, alias: str = CHAMPION) -> str:
    """Why ``name`` has no ``alias``, in words that lead to the fix."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{name}'")
    except mlflow.exceptions.MlflowException:
        versions = []
    if not versions:
        return f"no model registered as '{name}': run `make train`"
    latest = max(versions, key=lambda v: int(v.version))
    if latest.tags.get("gate") == "failed":
        reasons = latest.tags.get("gate_reasons", "see the run's evaluation report")
        return (f"'{name}' v{latest.version} did not pass the champion gate ({reasons}); retraining unchanged will not fix it: "
                "improve the model (`make tune`, more history) or review `Settings.gate`")
    return f"'{name}' has versions but none carries the '{alias}' alias: run `make train`"


def load_champion(settings: Settings, alias: str = CHAMPION) -> tuple[CascadeModel, dict[str, str]]:
    """Load ``models:/<name>@<alias>`` and return the CascadeModel with its registry identity.

    Never creates anything: a missing tracking store is a LookupError naming its path.
    """
    store = tracking_store_path(settings)
    if store is not None and not store.exists():
        raise LookupError(f"no MLflow tracking store at {store}: run `make train` there, or point CASCADE_RADAR_MLFLOW_TRACKING_URI "
                          "at the store that holds the champion")
    _quiet_mlflow()
    mlflow.set_tracking_uri(settings.tracking_uri)  # reading needs no experiment: nothing is created (a service of N coins
    name = settings.registered_model_name           # asked for it N times, ~35 ms each)
    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        raise LookupError(why_no_champion(name, alias)) from None
    model = _logged_model(mv.source or f"models:/{name}/{mv.version}")
    identity = {"name": name, "version": str(mv.version), "alias": alias, "run_id": mv.run_id or ""}
    # the coin's out-of-fold skill of the side, as its training run measured it: a side without skill is not stated
    metrics = _run_metrics(client, settings.tracking_uri, mv.run_id) if mv.run_id else {}
    skill = metrics.get(f"{settings.asset}.model_direction_brier_skill")
    identity["direction_brier_skill"] = "" if skill is None else repr(float(skill))
    return model, identity


_RUN_METRICS: OrderedDict[tuple[str, str], dict[str, float]] = OrderedDict()  # (store, run) -> its metrics, the few most recent


def _run_metrics(client: MlflowClient, uri: str, run_id: str) -> dict[str, float]:
    """A finished training run's metrics, read once per process: every coin's champion of one `make train` is the same
    run, whose metrics do not change once it ended (a service of N coins read them N times, ~25 ms each)."""
    key = (uri, run_id)
    if key not in _RUN_METRICS:
        _RUN_METRICS[key] = dict(client.get_run(run_id).data.metrics)
        while len(_RUN_METRICS) > _LOGGED_KEEP:
            _RUN_METRICS.popitem(last=False)
    _RUN_METRICS.move_to_end(key)
    return _RUN_METRICS[key]


_LOGGED: OrderedDict[str, CascadeModel] = OrderedDict()  # logged model URI -> the model, the few most recent
_LOGGED_KEEP = 4


def _logged_model(source: str) -> CascadeModel:
    """The CascadeModel logged at ``source``, loaded once per process: `make train` logs one pooled model and registers it
    under every coin's name, so a service of N coins would otherwise read and unpickle the same artifact N times (its
    start grew with the coin count, issue 37). Read-only once loaded, so the coins share it. MLflow's check of the
    model's pip requirements against this environment runs on the first load only: one environment, one answer."""
    if source not in _LOGGED:
        pyfunc = mlflow.pyfunc.load_model(source, suppress_warnings=bool(_LOGGED))
        _LOGGED[source] = pyfunc.unwrap_python_model().model
        while len(_LOGGED) > _LOGGED_KEEP:
            _LOGGED.popitem(last=False)
    _LOGGED.move_to_end(source)
    return _LOGGED[source]


def champion_identity(settings: Settings, alias: str = CHAMPION) -> str | None:
    """The version ``alias`` points at now (a cheap registry lookup), or None; creates nothing."""
    return champion_lookup(settings, alias).version


@dataclass(frozen=True)
class ChampionLookup:
    """What the registry said about a coin's ``champion`` alias. Three answers, not two: a version; *withdrawn* (the
    registry was read and the alias or the model is gone); *unreadable* (the store is missing, locked, corrupt or
    unreachable: nothing is known about the alias, so the champion already loaded is still the best one to serve)."""

    version: str | None
    why: str = ""  # why there is no version
    readable: bool = True

    @property
    def withdrawn(self) -> bool:
        return self.readable and self.version is None


# What MLflow answers when it read the registry and the thing asked for is not there (sqlite store and REST server alike):
# the registered model or version deleted, or the alias removed (an INVALID_PARAMETER_VALUE "... alias <x> not found").
# Matched by their words as well: an error that names neither the model nor the alias (a proxy's 404 page, a driver's
# error) is no evidence that the champion is gone.
MISSING_MODEL = "RESOURCE_DOES_NOT_EXIST"
MISSING_ALIAS = "INVALID_PARAMETER_VALUE"


def champion_lookup(settings: Settings, alias: str = CHAMPION) -> ChampionLookup:
    """Where ``alias`` of ``settings.asset``'s model points now, *withdrawn* with why, or *unreadable* with why."""
    name = settings.registered_model_name
    store = tracking_store_path(settings)
    if store is not None and not store.exists():
        return ChampionLookup(None, f"the MLflow store {store.name} is gone from its folder", readable=False)
    mlflow.set_tracking_uri(settings.tracking_uri)
    try:
        return ChampionLookup(str(MlflowClient().get_model_version_by_alias(name, alias).version))
    except mlflow.exceptions.MlflowException as exc:
        code, text = str(exc.error_code), str(exc.message).lower()
        if code == MISSING_MODEL and ("registered model" in text or "model version" in text):
            return ChampionLookup(None, f"the model {name} (or its champion version) was deleted from the registry")
        if code in (MISSING_MODEL, MISSING_ALIAS) and "alias" in text and "not found" in text:
            return ChampionLookup(None, f"the '{alias}' alias of {name} was removed")
        return ChampionLookup(None, unreadable(exc), readable=False)
    except Exception as exc:  # noqa: BLE001 - a locked or corrupt store raises what its driver raises
        return ChampionLookup(None, unreadable(exc), readable=False)


def unreadable(exc: BaseException) -> str:
    """Why the registry could not be read, by the error's kind only: its text can name hosts and credentials."""
    cause = exc.__cause__ or exc.__context__
    kind = exc.__class__.__name__ + (f" from {cause.__class__.__name__}" if cause is not None else "")
    return f"the registry cannot be read ({kind})"
