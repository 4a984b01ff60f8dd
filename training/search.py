"""Where the model search's fits run: here, on local worker processes, or on a Dask cluster.

The nested selection (training.tune) fits every candidate on every inner fold. Each such fit is an independent task — a
pure function of the pool of feature tables, the fold and the candidate's model (``candidate_fits``) — so the same tasks
run one after another in this process (``tune.n_jobs`` = 1, the default), on that many local processes (joblib's loky),
or on the workers of a Dask cluster (``tune.dask_scheduler``, through joblib's dask backend). The rows come back in the
tasks' order whichever ran them, and LightGBM's ``deterministic`` fits give the same trees with any thread count, so the
scores, and the choice, do not depend on where the fits ran (tests/model/test_distributed_search.py holds it to that).

Nothing here imports MLflow or the report writers: a worker that unpickles a task imports this module and what a fit needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import pandas as pd
from joblib import Parallel, delayed, parallel_config

from cascade_radar.config import ModelConfig, Settings
from training.evaluate import Pool, fit_predict_folds
from training.splits import Fold

CONNECT_SECONDS = 10  # how long to wait for a Dask scheduler (and for its first worker) before saying none answered

# Whether an engine is open in this context: the nested selection opens one for all its selections (one client, the pool
# sent once), and each selection's fits run there instead of opening an engine of their own.
_ENGINE_OPEN: ContextVar[bool] = ContextVar("search_engine_open", default=False)


def candidate_fits(pool: Pool, folds: list[Fold], config: ModelConfig) -> pd.DataFrame:
    """One task of the search: the candidate's out-of-fold rows (asset, fold, P(cascade), P(long), P(short), target) on
    ``folds``. Its inputs are all it reads, never the settings: they hold secrets (webhooks, the API token) that have no
    business on a cluster's wire, and a fit reads none of them."""
    oof, _ = fit_predict_folds(pool, folds, None, config, with_baselines=False, with_heads=False)
    return oof["model"]


def fold_groups(folds: list[Fold], config: ModelConfig) -> list[list[Fold]]:
    """One candidate's inner folds as independent tasks: a fold each — unless the model Platt-scales P(cascade) on the
    out-of-fold rows of earlier folds (``calibrate``), which ties its folds into one task."""
    return [folds] if config.calibrate else [[fold] for fold in folds]


def runs_elsewhere(settings: Settings) -> bool:
    """Whether the search's fits leave this process: a Dask cluster is configured (an empty address, as an environment
    variable set to nothing gives, is none), or more than one local process."""
    return bool(settings.tune.dask_scheduler) or settings.tune.n_jobs > 1


@contextmanager
def dask_client(address: str) -> Iterator[object]:
    """A client of the Dask scheduler at ``address`` (closed on exit; the cluster itself lives on). Dask is imported here,
    not at module import: a search on this machine never needs it."""
    from dask.distributed import Client

    try:
        client = Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise RuntimeError(f"tune.dask_scheduler is {address!r} but no Dask scheduler answered there within {CONNECT_SECONDS} s ({exc}). "
                           f"Start one with `dask scheduler` and workers with `dask worker {address}` (docs/model.md), or unset "
                           "CASCADE_RADAR_TUNE__DASK_SCHEDULER to search on this machine") from exc
    with client:
        yield client


@contextmanager
def search_engine(pool: Pool, settings: Settings) -> Iterator[None]:
    """Open where the search's fits run, once for a whole search. ``tune.dask_scheduler`` set: a client of that cluster, the
    pool broadcast to every worker once (not sent with every task); else ``tune.n_jobs`` > 1: that many local processes
    (joblib's loky, which memory-maps the pool's arrays instead of copying them into each task); else nothing — the fits
    run in this process, one after another, as they always have. Inside an open engine this does nothing: the search's
    every selection shares the engine the first one opened."""
    tune = settings.tune
    if _ENGINE_OPEN.get() or not runs_elsewhere(settings):
        yield
        return
    token = _ENGINE_OPEN.set(True)
    try:
        if tune.dask_scheduler:
            with dask_client(tune.dask_scheduler) as client, \
                    parallel_config(backend="dask", client=client, scatter=[pool], wait_for_workers_timeout=CONNECT_SECONDS):
                yield
        else:  # inner_max_num_threads: no BLAS/OpenMP pool inside a worker grows past one thread
            with parallel_config(backend="loky", n_jobs=tune.n_jobs, inner_max_num_threads=1):
                yield
    finally:
        _ENGINE_OPEN.reset(token)


def run_fits(pool: Pool, tasks: list[tuple[list[Fold], ModelConfig]], settings: Settings) -> Iterator[pd.DataFrame]:
    """Every task's (folds, model) out-of-fold rows, in the tasks' order, computed where ``search_engine`` says; to be
    consumed inside it. Elsewhere each fit gets one LightGBM thread: the parallelism is the tasks, and two multi-threaded
    fits on one core slow each other down many times over (measured: docs/model.md); ``deterministic`` fits grow the same
    trees with one thread as with two, so the rows are the same."""
    if not runs_elsewhere(settings):
        return (candidate_fits(pool, folds, config) for folds, config in tasks)
    one_thread = [(folds, config.model_copy(update={"n_jobs": 1})) for folds, config in tasks]
    return Parallel(return_as="generator")(delayed(candidate_fits)(pool, folds, config) for folds, config in one_thread)
