"""Shared fixtures: seeded synthetic history, a temporary store and settings pointing at tmp dirs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite follows the committed model choice, never a local `make tune` of this machine (data/selection.local.json,
# which training prefers while it exists; read when cascade_radar.config is imported, hence here, before it). A path that
# can neither exist nor be written: a tune a test forgot to point elsewhere fails instead of leaving a choice behind.
os.environ["CASCADE_RADAR_LOCAL_SELECTION_FILE"] = "/dev/null/selection.local.json"

from cascade_radar.config import PROJECT_ROOT, ModelConfig, Settings  # noqa: E402
from features.sources.synthetic import SyntheticHistory, generate_history, load_into  # noqa: E402
from features.store import HistoryStore  # noqa: E402

# CASCADE_RADAR_TEST_REFERENCE_DIR=/nonexistent simulates a clone without ../shared
REFERENCE_DIR = Path(os.environ.get("CASCADE_RADAR_TEST_REFERENCE_DIR", PROJECT_ROOT / "../shared/data")).resolve()


def pytest_configure(config: pytest.Config) -> None:
    """The suite's settings are the tests' own: a CASCADE_RADAR_* of the shell (or `make test`'s ASSET=X) must not change
    what a test expects, e.g. which coin answers by default. A hook, not import-time code: a child process a test starts
    imports this module for its constants and must keep the settings the test handed it (CASCADE_RADAR_DATA_DIR, ...)."""
    kept = ("CASCADE_RADAR_TEST_", "CASCADE_RADAR_LOCAL_SELECTION_FILE")  # the suite's own knobs, set above
    for name in [n for n in os.environ if n.startswith("CASCADE_RADAR_") and not n.startswith(kept)]:
        del os.environ[name]


# Pipeline tests pin the model they train instead of following the committed choice of `make tune`
# (training/selection.json), which is tuned on the real seven coins, not on the synthetic history.
TEST_MODEL = ModelConfig(families=["price", "oi", "funding", "flows", "sopr", "nupl"], direction_families=None, direction_inputs=None,
                         num_leaves=4, max_depth=2, min_child_samples=100, n_estimators=200, learning_rate=0.02)


@pytest.fixture(autouse=True)
def _a_new_process_forgets_spent_quotas():  # noqa: ANN202 - each test is a run of its own, as each cron run is a process
    from features.sources.update import QUOTA_STOPS

    QUOTA_STOPS.clear()
    yield
    QUOTA_STOPS.clear()


@pytest.fixture(scope="session")
def synthetic() -> SyntheticHistory:
    return generate_history(seed=11)


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        reports_dir=tmp_path / "reports",
        mlruns_dir=tmp_path / "mlruns",
        reference_dir=tmp_path / "no-reference",
        assets=["BTC"],
        model=TEST_MODEL,
    )


@pytest.fixture()
def store(settings: Settings) -> HistoryStore:
    return HistoryStore(settings.data_path)


@pytest.fixture()
def synthetic_store(store: HistoryStore, synthetic: SyntheticHistory) -> HistoryStore:
    load_into(store, synthetic)
    return store


@pytest.fixture()
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "README.md").exists():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (clone without ../shared)")
    return REFERENCE_DIR


@pytest.fixture(scope="session")
def trained_synthetic(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticHistory):  # noqa: ANN201
    """A champion trained on the synthetic history, in a session-wide temporary MLflow store."""
    from training.train import train

    root = tmp_path_factory.mktemp("trained")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=root / "none",
                        assets=["BTC"], model=TEST_MODEL)
    load_into(HistoryStore(settings.data_path), synthetic)
    result = train(settings)
    assert result.passed_gate, result.reasons
    return settings, result.feature_table, result


GAP_DAYS = 5  # open interest stops this many days before the end of the synthetic history


@pytest.fixture(scope="session")
def trained_with_a_gap(trained_synthetic, synthetic: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> Settings:  # noqa: ANN001
    """The synthetic champion over a store whose open interest stops ``GAP_DAYS`` days before the end: its last days are
    answered with a family missing (open interest, stale); its other days have features with no value in present families
    (an RSI divergence's age when none is active, a 200-day average in the first months). The settings point at it."""
    settings, _, _ = trained_synthetic
    gappy = settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("gap") / "data"})
    series = {name: frame.iloc[:-GAP_DAYS] if name == "open_interest" else frame for name, frame in synthetic.series.items()}
    load_into(HistoryStore(gappy.data_path), SyntheticHistory(series, synthetic.events))
    return gappy
