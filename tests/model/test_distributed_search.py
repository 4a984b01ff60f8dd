"""The model search beyond one process: the same small search run in-process, on two local worker processes (joblib's
loky) and on a two-worker Dask cluster started here on 127.0.0.1 chooses the same candidate with the same inner scores —
where the fits ran must not change what is chosen."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator

import pytest

from cascade_radar.config import Settings, TuneConfig
from features.build import FeatureTable, load_feature_tables
from features.families import load_families
from features.sources.synthetic import SyntheticHistory, generate_history, load_into
from features.store import HistoryStore
from tests.conftest import TEST_MODEL
from training.evaluate import Pool
from training.model import model_features
from training.tune import Selection, select

pytestmark = pytest.mark.timeout(180)  # a cluster that hangs fails the test instead of the suite


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticHistory) -> tuple[Settings, Pool]:
    """Two synthetic coins and a small search: 2 family sets x 2 parameter sets x 2 inner folds, then 2 direction scores."""
    root = tmp_path_factory.mktemp("distributed")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=root / "none",
                        assets=["BTC", "ETH"], model=TEST_MODEL)
    load_into(HistoryStore(settings.for_asset("BTC").data_path), synthetic)
    load_into(HistoryStore(settings.for_asset("ETH").data_path), generate_history(seed=12, asset_scale=0.3))
    tables: dict[str, FeatureTable] = load_feature_tables(settings)
    space = TuneConfig(family_sets={"price": ["price"], "six": ["price", "oi", "funding", "flows", "sopr", "nupl"]},
                       param_sets={"shallow": {"num_leaves": 4, "max_depth": 2, "n_estimators": 60},
                                   "stumps": {"num_leaves": 2, "max_depth": 1, "n_estimators": 80}},
                       direction_scores={"funding_score": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1}},
                                         "funding_monotone": {"kind": "monotone", "inputs": {"funding_rate_mean_30d_xrank": 1}}},
                       inner_folds=2, inner_min_train_days=120, preferred_family_set=None)
    settings = settings.model_copy(update={"tune": space})
    inputs = {f: 1 for score in space.direction_scores.values() for f in score["inputs"]}
    everything = settings.model.model_copy(update={"families": list(load_families()), "direction_families": None, "direction_inputs": inputs})
    return settings, Pool.of(tables, model_features(next(iter(tables.values())).features, everything))


@pytest.fixture(scope="module")
def in_process(searched: tuple[Settings, Pool]) -> Selection:
    """The reference: every fit in this process, one after another, with the model's own thread count (``tune.n_jobs`` = 1)."""
    settings, pool = searched
    assert settings.tune.n_jobs == 1 and settings.tune.dask_scheduler is None and settings.model.n_jobs == 2
    return select(pool, pool.labelled_days(), settings)


@pytest.fixture()
def cluster() -> Iterator[object]:
    """Two single-threaded worker processes and their scheduler on 127.0.0.1, closed whatever the test did."""
    from dask.distributed import LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        yield cluster
    finally:
        cluster.close(timeout=30)


def assert_same_choice(selection: Selection, reference: Selection) -> None:
    assert selection.chosen == reference.chosen
    assert selection.cascade_scores == reference.cascade_scores  # exact: the same trees, the same rows, in the same order
    assert selection.direction_scores == reference.direction_scores
    assert [f.test_end for f in selection.folds] == [f.test_end for f in reference.folds]


def test_the_small_search_is_really_a_choice(in_process: Selection) -> None:
    # 4 cascade candidates and 2 direction candidates scored, and they differ: equal choices below are not equal by accident
    assert len(in_process.cascade_scores) == 4 and set(in_process.direction_scores) == {"funding_score", "funding_monotone"}
    assert len(set(in_process.cascade_scores.values())) == 4 and all(0.5 < v <= 1 for v in in_process.cascade_scores.values())


def test_a_dask_cluster_chooses_what_the_process_chooses(searched: tuple[Settings, Pool], in_process: Selection, cluster) -> None:  # noqa: ANN001
    settings, pool = searched
    on_cluster = settings.model_copy(update={"tune": settings.tune.model_copy(update={"dask_scheduler": cluster.scheduler_address})})
    assert_same_choice(select(pool, pool.labelled_days(), on_cluster), in_process)
    # and the fits did run on the workers: one call per (candidate, inner fold), 4 x 2 cascade and 2 x 2 direction (joblib may
    # batch calls: a task "batch_of_candidate_fits_<n>_calls" holds n), beside one copy of the pool, sent once for them all
    prefixes = {name: prefix.state_counts["memory"] for name, prefix in cluster.scheduler.task_prefixes.items()}
    calls = {name: int(re.fullmatch(r"batch_of_candidate_fits_(\d+)_calls", name)[1]) for name in prefixes if "candidate_fits" in name}
    assert sum(n * prefixes[name] for name, n in calls.items()) == 4 * 2 + 2 * 2, prefixes
    assert prefixes["Pool"] == 1, prefixes


def test_local_worker_processes_choose_what_the_process_chooses(searched: tuple[Settings, Pool], in_process: Selection) -> None:
    settings, pool = searched
    two = settings.model_copy(update={"tune": settings.tune.model_copy(update={"n_jobs": 2})})
    assert_same_choice(select(pool, pool.labelled_days(), two), in_process)


def test_a_scheduler_that_does_not_answer_is_named_with_how_to_start_one(searched: tuple[Settings, Pool],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings, pool = searched
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr("training.search.CONNECT_SECONDS", 1)
    nowhere = settings.model_copy(update={"tune": settings.tune.model_copy(update={"dask_scheduler": address})})
    with pytest.raises(RuntimeError, match=rf"tune.dask_scheduler is '{address}' but no Dask scheduler answered there .*`dask scheduler`"):
        select(pool, pool.labelled_days(), nowhere)


def test_a_candidate_is_a_task_per_fold_unless_it_calibrates_on_earlier_folds(searched: tuple[Settings, Pool]) -> None:
    from training.search import fold_groups
    from training.tune import inner_folds

    settings, pool = searched
    folds = inner_folds(pool, pool.labelled_days(), settings)
    assert [[f.number for f in group] for group in fold_groups(folds, settings.model)] == [[1], [2]]
    # Platt scaling on the out-of-fold rows of earlier folds ties a candidate's folds together: one task, in fold order
    calibrated = settings.model.model_copy(update={"calibrate": True})
    assert [[f.number for f in group] for group in fold_groups(folds, calibrated)] == [[1, 2]]
