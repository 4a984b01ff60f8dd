"""Nested walk-forward model selection (`make tune`): families, hyper-parameters and the direction model's inputs.

Honest selection means the outer test blocks never take part in a choice. For each outer fold, every
candidate is scored by an *inner* walk-forward on that fold's training days only; the winner is refitted
on the whole outer training window and predicts the outer test block. The out-of-fold numbers of those
outer predictions are the nested numbers the README reports. The choice (the same inner procedure run once over all
labelled days) goes to data/selection.local.json, git-ignored, which `make train` then prefers; `cascade-radar tune --commit`
writes the committed training/selection.json instead.

Criteria: the cascade candidate with the highest mean per-coin ROC-AUC (threshold- and prevalence-free,
so each coin counts the same), except that the design's full set of families (``tune.preferred_family_set``) wins
unless a smaller set beats it by more than one standard error of the inner-fold scores; then, with that cascade model fixed, the direction candidate with the
highest mean per-coin direction ROC-AUC on days with an event ahead.

Each (candidate, inner fold) fit is an independent task, run in this process, on local processes (``tune.n_jobs``) or on a
Dask cluster (``tune.dask_scheduler``): training.search, which returns the same rows wherever they were computed.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from cascade_radar.config import LOCAL_SELECTION_FILE, PROJECT_ROOT, SELECTION_FILE, ModelConfig, Settings
from cascade_radar.files import atomic_write
from features.build import FeatureTable, load_feature_tables
from features.families import load_families
from features.store import HistoryStore
from training.evaluate import Evaluation, Pool, fit_predict_folds, gate, pooled_folds, score_oof
from training.model import CascadeModel, has_side, is_cascade, model_features
from training.register import setup_tracking
from training.report import coin_table, format_table
from training.search import fold_groups, run_fits, search_engine
from training.splits import Fold


@dataclass(frozen=True)
class Candidate:
    """One point of the search space: keys into ``TuneConfig``'s family, parameter and direction sets."""

    families: str
    params: str
    direction: str = "same"

    @property
    def name(self) -> str:
        return f"{self.families} / {self.params} / direction {self.direction}"

    def config(self, settings: Settings) -> ModelConfig:
        tune = settings.tune
        if self.direction in tune.direction_scores:  # declared inputs and signs
            score = tune.direction_scores[self.direction]
            direction = {"direction_families": None, "direction_inputs": dict(score["inputs"]), "direction_kind": score["kind"]}
        else:  # LightGBM on a set of families, signs free
            direction = {"direction_families": tune.direction_sets[self.direction], "direction_inputs": None}
        return settings.model.model_copy(update={"families": tune.family_sets[self.families], **tune.param_sets[self.params], **direction})


@dataclass
class Selection:
    """The winner of one inner walk-forward, and every candidate's inner score."""

    chosen: Candidate
    cascade_scores: dict[str, float]  # "families / params" -> mean per-coin ROC-AUC
    direction_scores: dict[str, float]  # direction key -> mean per-coin direction ROC-AUC
    folds: list[Fold] = field(default_factory=list)  # the inner folds every candidate was scored on (what the choice saw)


def mean_per_coin(oof: pd.DataFrame, direction: bool = False) -> float:
    """Mean over coins of the ROC-AUC of P(cascade) (or, with ``direction``, of P(long | event) on days with a long or short
    event ahead: a two-sided one has no side to score)."""
    scores = []
    for _, rows in oof.groupby("asset"):
        if direction:
            rows = rows[has_side(rows["target"])]
            y, p = (rows["target"] == "long").to_numpy(), (rows["p_long"] / rows["p_cascade"]).to_numpy()
        else:
            y, p = is_cascade(rows["target"]), rows["p_cascade"].to_numpy()
        if 0 < y.mean() < 1:
            scores.append(roc_auc_score(y, p))
    return float(np.mean(scores)) if scores else float("nan")


def inner_folds(pool: Pool, days: pd.DatetimeIndex, settings: Settings) -> list[Fold]:
    """The inner walk-forward over ``days`` (an outer fold's training days, or all of them)."""
    cfg = settings.folds.model_copy(update={"n_folds": settings.tune.inner_folds, "min_train_days": settings.tune.inner_min_train_days})
    return pooled_folds(pool, settings, days, cfg)


Progress = Callable[[str], None] | None  # called once per candidate scored, with its name


def direction_candidates(settings: Settings) -> list[str]:
    """The direction models one selection tries: the signed scores, and the free-sign LightGBM sets when asked (or when
    no score is configured)."""
    t = settings.tune
    free = list(t.direction_sets) if t.free_sign_directions or not t.direction_scores else []
    return [*free, *t.direction_scores]


def candidate_count(settings: Settings) -> int:
    """Candidates scored by one selection (cascade sets x parameter sets, then direction candidates)."""
    t = settings.tune
    return len(t.family_sets) * len(t.param_sets) + len(direction_candidates(settings))


def one_standard_error(scores: dict[str, float], errors: dict[str, float], preferred: str | None) -> str:
    """The best "families / params" candidate — unless the ``preferred`` family set (the design's full set) comes within one
    standard error of the inner-fold scores of it: then the best candidate of the preferred set (the one-standard-error
    rule: a smaller set must beat the full design by more than the noise of the inner folds)."""
    rank = {k: np.nan_to_num(v, nan=-1.0) for k, v in scores.items()}
    best = max(rank, key=rank.get)
    mine = [k for k in rank if k.split(" / ")[0] == preferred]
    if not mine:
        return best
    full = max(mine, key=rank.get)
    return full if rank[best] - rank[full] <= errors.get(best, 0.0) else best


def candidates_oof(pool: Pool, folds: list[Fold], settings: Settings, candidates: list[Candidate],
                   progress: Progress = None) -> dict[Candidate, pd.DataFrame]:
    """Every candidate's out-of-fold model rows on the inner ``folds``. Each (candidate, fold) fit is a task of its own, run
    where the search engine says (training.search); a candidate's rows are its folds' in fold order, as one in-process
    ``fit_predict_folds`` gives them, so its scores do not depend on where the fits ran."""
    configs = {candidate: candidate.config(settings) for candidate in candidates}
    tasks = [(candidate, group) for candidate in candidates for group in fold_groups(folds, configs[candidate])]
    left = Counter(candidate for candidate, _ in tasks)
    parts: dict[Candidate, list[pd.DataFrame]] = {candidate: [] for candidate in candidates}
    for (candidate, _), rows in zip(tasks, run_fits(pool, [(group, configs[candidate]) for candidate, group in tasks], settings)):
        parts[candidate].append(rows)
        left[candidate] -= 1
        if not left[candidate] and progress is not None:  # its last fold is in: the candidate is scored
            progress(candidate.name)
    return {candidate: pd.concat(frames) for candidate, frames in parts.items()}


def select(pool: Pool, days: pd.DatetimeIndex, settings: Settings, progress: Progress = None) -> Selection:
    """Score every candidate by an inner walk-forward over ``days`` only and return the winner."""
    folds = inner_folds(pool, days, settings)
    tune = settings.tune
    cascade_scores, standard_errors = {}, {}
    with search_engine(pool, settings):
        cascade = [Candidate(families, params) for families in tune.family_sets for params in tune.param_sets]
        for candidate, oof in candidates_oof(pool, folds, settings, cascade, progress).items():
            key = f"{candidate.families} / {candidate.params}"
            cascade_scores[key] = mean_per_coin(oof)
            per_fold = [mean_per_coin(block) for _, block in oof.groupby("fold")]
            standard_errors[key] = float(np.nanstd(per_fold, ddof=1) / np.sqrt(len(per_fold))) if len(per_fold) > 1 else 0.0
        families, params = one_standard_error(cascade_scores, standard_errors, tune.preferred_family_set).split(" / ")
        directions = [Candidate(families, params, direction) for direction in direction_candidates(settings)]
        direction_scores = {candidate.direction: mean_per_coin(oof, direction=True)
                            for candidate, oof in candidates_oof(pool, folds, settings, directions, progress).items()}
    chosen = max(direction_scores, key=lambda k: np.nan_to_num(direction_scores[k], nan=-1.0))
    return Selection(Candidate(families, params, chosen), cascade_scores, direction_scores, folds)


@dataclass
class TuneResult:
    evaluation: Evaluation  # the nested out-of-fold evaluation (model = the per-fold winners) with every coin's baselines
    per_fold: dict[int, Selection]
    final: Selection
    files: list[Path] = field(default_factory=list)
    run_id: str = ""
    seconds: float = 0.0
    written: Path | None = None  # where the choice went (None: a dry run)


def choice_target(commit: bool) -> Path:
    """Where a tune writes its choice: the local, git-ignored file (the tree stays clean; training prefers it while it
    exists), or with ``commit`` the committed training/selection.json."""
    return SELECTION_FILE if commit else LOCAL_SELECTION_FILE


def write_choice(record: dict[str, object], commit: bool = False) -> Path:
    """Write a tune's record to ``choice_target(commit)`` and return the path. Committing removes the local choice: it
    would shadow the committed one it has just become."""
    target = choice_target(commit)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1) + "\n"))
    if commit:
        LOCAL_SELECTION_FILE.unlink(missing_ok=True)
    return target


def shown(path: Path) -> str:
    """A path as a person in the project reads it: relative to the project when inside it."""
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def nested_walk_forward(tables: dict[str, FeatureTable], settings: Settings,
                        progress: Progress = None) -> tuple[Evaluation, dict[int, Selection], Selection]:
    """Outer walk-forward whose model is chosen, fold by fold, by an inner walk-forward on that fold's training days."""
    features = next(iter(tables.values())).features
    every_input = {f: 1 for score in settings.tune.direction_scores.values() for f in score["inputs"]}  # every candidate's inputs in the pool
    # every registered family by name, so that the candidate families (left out of "every family") are in the pool too
    everything = settings.model.model_copy(update={"families": list(load_families()), "direction_families": None,
                                                   "direction_inputs": every_input or None})
    pool = Pool.of(tables, model_features(features, everything))
    outer = pooled_folds(pool, settings)
    # baselines do not take part in the selection: fitted per coin on each outer training window, as in `make train`
    baseline_pool = Pool.of(tables, model_features(features, settings.model))
    oof, _ = fit_predict_folds(baseline_pool, outer, settings, settings.model)
    parts, fold_models, selections = [], {}, {}
    with search_engine(pool, settings):  # one engine for every selection: one cluster client, the pool sent to it once
        for fold in outer:
            selection = select(pool, fold.train_days, settings, progress)
            selections[fold.number] = selection
            train, test = pool.rows(fold.train_days), pool.rows(fold.test_days)
            model = CascadeModel(selection.chosen.config(settings)).fit(pool.X[train], pool.target[train])
            fold_models[fold.number] = model
            parts.append(pool.oof(model.predict(pool.X[test]), test, fold))
        final = select(pool, pool.labelled_days(), settings, progress)
    oof["model"] = pd.concat(parts).rename_axis("date")
    scores, per_fold = score_oof(oof, pool.events, outer, settings)
    return Evaluation(outer, oof, scores, per_fold, fold_models), selections, final


def selection_record(result: TuneResult, settings: Settings, seconds: float) -> dict[str, object]:
    chosen = result.final.chosen
    config = chosen.config(settings)
    choice = {"families": config.families, "direction_families": config.direction_families, "direction_inputs": config.direction_inputs,
              "direction_kind": config.direction_kind, **settings.tune.param_sets[chosen.params]}
    nested = coin_table(result.evaluation)
    return {
        "choice": choice,
        "candidate": {"families": chosen.families, "params": chosen.params, "direction": chosen.direction},
        "made": dt.date.today().isoformat(),
        "assets": list(result.evaluation.assets),
        "tune_seconds": round(seconds, 1),
        "per_outer_fold": {str(k): {"chosen": s.chosen.name, "cascade_scores": s.cascade_scores, "direction_scores": s.direction_scores}
                           for k, s in result.per_fold.items()},
        "final": {"cascade_scores": result.final.cascade_scores, "direction_scores": result.final.direction_scores},
        "nested_out_of_fold": json.loads(nested.to_json(orient="index")),
    }


def candidate_table(result: TuneResult) -> pd.DataFrame:
    """Inner score of every candidate in every outer fold and on all days (rows: candidate)."""
    columns = {f"outer fold {k}": {**s.cascade_scores, **{f"direction {d}": v for d, v in s.direction_scores.items()}}
               for k, s in result.per_fold.items()}
    columns["all days (committed)"] = {**result.final.cascade_scores, **{f"direction {d}": v for d, v in result.final.direction_scores.items()}}
    return pd.DataFrame(columns)


def write_tune_report(result: TuneResult, settings: Settings) -> list[Path]:
    directory = settings.reports_root / "tune"
    directory.mkdir(parents=True, exist_ok=True)
    nested = coin_table(result.evaluation)
    nested.to_csv(directory / "nested_coins.csv", float_format="%.4f")
    candidates = candidate_table(result)
    candidates.to_csv(directory / "candidates.csv", float_format="%.4f")
    result.evaluation.oof["model"].reset_index().to_csv(directory / "nested_oof.csv", index=False, float_format="%.6f")
    chosen = "\n".join(f"- outer fold {k} (trained to {result.evaluation.folds[k - 1].train_end.date()}): {s.chosen.name}"
                       for k, s in result.per_fold.items())
    lines = [
        "# cascade-radar — nested model selection", "",
        f"Outer walk-forward: {len(result.evaluation.folds)} folds; inside each outer training window an inner walk-forward "
        f"({settings.tune.inner_folds} folds) scores every candidate; the outer test blocks only report. Criterion: mean per-coin "
        "ROC-AUC (cascade), then mean per-coin direction ROC-AUC on days with an event ahead.", "",
        "## Nested out-of-fold, per coin (volatility baseline beside)", "", format_table(nested), "",
        "## The gate on the nested numbers", "",
        *[f"- {asset}: " + ("passed" if (v := gate(result.evaluation, settings, asset)).passed else "failed — " + "; ".join(v.reasons))
          for asset in result.evaluation.assets], "",
        "## Chosen per outer fold", "", chosen, "",
        f"Choice (inner walk-forward over all days): **{result.final.chosen.name}** -> "
        + (f"`{shown(result.written)}`" if result.written else "not written (a dry run)"), "",
        "## Every candidate's inner score", "", format_table(candidates), "",
    ]
    (directory / "nested.md").write_text("\n".join(lines))
    return [directory / "nested.md", directory / "nested_coins.csv", directory / "candidates.csv", directory / "nested_oof.csv"]


def tune_description(result: TuneResult, settings: Settings) -> str:
    """The tune run's description in the MLflow UI (Markdown): what the run is, the choice it made and where it went, and
    the nested out-of-fold headline per coin beside the volatility baseline."""
    assets = list(result.evaluation.assets)
    cascade, direction = len(result.final.cascade_scores), len(result.final.direction_scores)
    written = f"`{shown(result.written)}`" if result.written else "not written (`--dry-run`)"
    nested = coin_table(result.evaluation)
    columns = [c for c in ("ROC-AUC", "PR-AUC", "vol PR-AUC", "Brier skill", "vol Brier skill", "direction AUC") if c in nested.columns]
    rows = [f"| {asset} | " + " | ".join(f"{nested.loc[asset, c]:.3f}" if pd.notna(nested.loc[asset, c]) else "–" for c in columns) + " |"
            for asset in nested.index]
    return "\n".join([
        f"Nested walk-forward model selection (`make tune`) over {', '.join(assets)}: {cascade} cascade candidates (family set x "
        f"hyper-parameters) and {direction} direction models, each a child run, scored by an inner walk-forward "
        f"({settings.tune.inner_folds} folds) inside every outer fold's training window; the outer test blocks only report.", "",
        f"**Chosen over all days: {result.final.chosen.name}** -> {written}; per outer fold: "
        + "; ".join(f"{k}: {s.chosen.name}" for k, s in result.per_fold.items()) + ".", "",
        "Nested out-of-fold (every choice made inside the outer training windows; `vol` = the coin's volatility baseline):", "",
        "| coin | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns), *rows, "",
        "Every metric (per coin, predictor and fold): the artifact `evaluation/metrics_all.csv`; the report: `tune/nested.md`.",
    ])


def log_tune(result: TuneResult, settings: Settings, record: dict[str, object]) -> str:
    """A parent MLflow run with a description, the headline nested metrics and reports, and one child run per candidate
    with its inner scores."""
    from training.train import evaluation_metrics, flatten, git_revision

    experiment_id = setup_tracking(settings)
    assets = list(result.evaluation.assets)
    coins = "+".join(assets) if len(assets) <= 3 else f"{len(assets)} coins"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"tune {coins} · chose {result.final.chosen.name} · {git_revision()}") as parent:
        mlflow.set_tags({"stage": "tune", "assets": ",".join(assets), "chosen": result.final.chosen.name,
                         "choice_file": shown(result.written) if result.written else "dry run",
                         "mlflow.note.content": tune_description(result, settings)})
        mlflow.log_params(flatten("", settings.loggable(), {}))
        # the headline, as a train run logs it (the run page and the comparison view show these); every number as one table
        mlflow.log_metrics(evaluation_metrics(result.evaluation, every=False))
        every = pd.Series(evaluation_metrics(result.evaluation), name="value").rename_axis("metric").reset_index()
        mlflow.log_text(every.to_csv(index=False), "evaluation/metrics_all.csv")
        mlflow.log_dict(record, "selection.json")
        for path in result.files:
            mlflow.log_artifact(str(path), artifact_path="tune")
        candidates = candidate_table(result)
        for name, row in candidates.iterrows():
            with mlflow.start_run(experiment_id=experiment_id, run_name=str(name), nested=True):
                kind = "direction" if str(name).startswith("direction ") else "cascade"
                mlflow.set_tags({"stage": "tune-candidate", "kind": kind})
                if kind == "cascade":
                    families, params = str(name).split(" / ")
                    mlflow.log_params({"families": json.dumps(settings.tune.family_sets[families]), "family_set": families, "param_set": params,
                                       **{f"model.{k}": v for k, v in settings.tune.param_sets[params].items()}})
                else:
                    key = str(name).removeprefix("direction ")
                    described = settings.tune.direction_sets.get(key, settings.tune.direction_scores.get(key))
                    mlflow.log_params({"direction_set": key, "direction_model": json.dumps(described)})
                metric = "inner_direction_auc" if kind == "direction" else "inner_roc_auc"
                mlflow.log_metrics({f"{metric}_{col.replace(' ', '_').replace('(', '').replace(')', '')}": float(v)
                                    for col, v in row.items() if pd.notna(v)})
    return parent.info.run_id


def tune(settings: Settings, stores: dict[str, HistoryStore] | None = None, write_selection: bool = True,
         progress: Progress = None, commit: bool = False) -> TuneResult:
    """Run the nested selection over ``settings.assets``, write its report, log it, and write the choice: to the local,
    git-ignored file, or with ``commit`` to the committed one (``write_selection=False``: neither, a dry run)."""
    started = time.perf_counter()
    tables = load_feature_tables(settings, stores)
    evaluation, per_fold, final = nested_walk_forward(tables, settings, progress)
    result = TuneResult(evaluation, per_fold, final, written=choice_target(commit) if write_selection else None)
    result.files = write_tune_report(result, settings)
    seconds = time.perf_counter() - started
    record = selection_record(result, settings, seconds)
    if write_selection:
        write_choice(record, commit)
    result.run_id = log_tune(result, settings, record)
    result.seconds = time.perf_counter() - started
    return result
