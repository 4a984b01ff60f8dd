"""Expected skill by the families a day has: the walk-forward's out-of-fold ROC-AUC with those families missing.

A user's store rarely has every family every day (a paid provider stopped, a free one keeps 30 days, a key is not set).
The answer for such a day is still worth giving when the model, *without* those families, still ranks the coming
cascades better than the floor. How much better is measured, not assumed: each fold's model re-scores its own test days
with a set of families blanked (scored as missing, as a day without them is), for no family, every single family, every
pair and every triple of the families the model reads, and the ROC-AUC of those out-of-fold scores is the expected skill
of a day missing exactly that set — per coin and pooled. The volatility baseline's out-of-fold ROC-AUC on the same days is
kept beside it: the default floor under which a day is not answered (``alerts.skill_floor``).

The table travels with the champion (``CascadeModel.skill``, saved in its meta.json), so every interface reads the same
numbers; ``cascade_radar.rules.missing_key`` names a set the same way everywhere.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from cascade_radar.rules import missing_key
from features.families import family_of
from training.metrics import positions_of, roc_auc
from training.model import CascadeModel, is_cascade

POOLED = "pooled"
# The families a user's store lacks with free sources only (README, "Live data": which provider feeds which family): with
# no key at all liquidations come from nowhere free (Coinalyze needs a free key, CoinGlass is paid), so liquidation memory
# is missing; with the free keys (Coinalyze) every family has a source. The paid set is every family.
TIERS: dict[str, tuple[str, ...]] = {"paid": (), "free_keys": (), "no_key": ("liqmem",)}
TIER_LABELS = {"paid": "every source (CoinGlass paid)", "free_keys": "free sources with free keys (Coinalyze)", "no_key": "free sources, no key"}
MIN_EVENT_DAYS = 10  # fewer cascade-ahead days than this in a coin's out-of-fold rows: its own number is noise, the pooled one is used


def missing_sets(families: list[str], max_size: int) -> list[tuple[str, ...]]:
    """Every set of at most ``max_size`` of ``families``, the empty set first, each sorted."""
    ordered = sorted(families)
    return [s for k in range(0, min(max_size, len(ordered)) + 1) for s in combinations(ordered, k)]


def _auc(y: np.ndarray, score: np.ndarray) -> float | None:
    return roc_auc(y, score) if y.any() and not y.all() else None


def skill_table(X: pd.DataFrame, target: pd.Series, asset: pd.Series, fold_of_row: np.ndarray, fold_models: dict[int, CascadeModel],  # noqa: N803
                baseline_score: np.ndarray | None, max_size: int) -> dict[str, object]:
    """The expected-skill table of the out-of-fold rows ``X`` (each scored by its fold's model).

    ``fold_of_row``: the fold number of each row (-1: not out-of-fold); ``baseline_score``: the volatility baseline's
    out-of-fold probability of each row (None: not measured). Returns ``{"roc_auc": {key: {coin | pooled: auc}},
    "baseline_roc_auc": {coin | pooled: auc}, "event_days": {coin | pooled: n}, "families": [...], "max_missing": n}``."""
    oof = fold_of_row >= 0
    X, target, asset, folds = X[oof], target[oof], asset[oof].to_numpy(), fold_of_row[oof]
    y = is_cascade(target)
    model = next(iter(fold_models.values()))
    families = sorted({family_of(f) for f in model.cascade_features})
    # each coin's and each fold's rows found once: every set of families is scored per coin, and a per-coin comparison
    # over every row inside that loop made the table grow with coins x rows
    by_coin = positions_of(asset)
    coins = sorted(by_coin)
    fold_rows = {number: folds == number for number in fold_models}
    table: dict[str, dict[str, float | None]] = {}
    for missing in missing_sets(families, max_size):
        score = np.empty(len(X))
        for number, fold_model in fold_models.items():
            rows = fold_rows[number]
            if not rows.any():
                continue
            blanked = X.loc[rows, fold_model.cascade_features].copy()
            blanked.loc[:, [f for f in blanked.columns if family_of(f) in missing]] = np.nan
            score[rows] = fold_model.calibrator(fold_model.cascade.predict(blanked, raw_score=True))  # as the walk-forward scored them
        table[missing_key(missing)] = {POOLED: _auc(y, score), **{c: _auc(y[by_coin[c]], score[by_coin[c]]) for c in coins}}
    if baseline_score is not None:
        baseline_oof = baseline_score[oof]
        baseline = {POOLED: _auc(y, baseline_oof), **{c: _auc(y[by_coin[c]], baseline_oof[by_coin[c]]) for c in coins}}
    else:
        baseline = {}
    return {"families": families, "max_missing": max_size, "roc_auc": table, "baseline_roc_auc": baseline,
            "event_days": {POOLED: int(y.sum()), **{c: int(y[by_coin[c]].sum()) for c in coins}}}


def expected_skill(skill: dict[str, object] | None, asset: str, missing: list[str] | tuple[str, ...]) -> tuple[float | None, str]:
    """(the expected out-of-fold ROC-AUC of ``asset`` on a day missing ``missing``, whose number it is: the coin's, or
    ``pooled`` where the coin has too few events) — (None, why) when that set was not measured."""
    if not skill:
        return None, "not measured (a champion trained before the skill table)"
    key = missing_key(missing)
    row = skill["roc_auc"].get(key)  # type: ignore[union-attr]
    if row is None:
        return None, f"not measured: more than {skill['max_missing']} families missing"
    own = row.get(asset)
    if own is not None and skill["event_days"].get(asset, 0) >= MIN_EVENT_DAYS:  # type: ignore[union-attr]
        return own, asset
    return row.get(POOLED), POOLED


def floor_of(skill: dict[str, object] | None, asset: str, setting: float | None) -> float:
    """The skill under which a day is not answered: ``setting`` if given, else the coin's volatility-baseline out-of-fold
    ROC-AUC (pooled where the coin has too few events), never below chance (0.5) — and never above the champion's own
    skill with every family (a champion that passed the gate answers the days that have all it reads)."""
    full = expected_skill(skill, asset, ())[0]
    if setting is not None:
        floor = setting
    else:
        baseline = (skill or {}).get("baseline_roc_auc") or {}
        own = baseline.get(asset)
        enough = (skill or {}).get("event_days", {}).get(asset, 0) >= MIN_EVENT_DAYS
        floor = max(0.5, float(own) if own is not None and enough else float(baseline.get(POOLED) or 0.5))  # never below chance
    return min(floor, full) if full is not None else floor


def skill_frame(skill: dict[str, object], assets: list[str]) -> pd.DataFrame:
    """The table as rows (missing families, then each coin's and the pooled ROC-AUC), the floor row first: for reports."""
    columns = [*assets, POOLED]
    rows = [{"missing": "(floor: the volatility baseline)", **{c: skill["baseline_roc_auc"].get(c) for c in columns}}]  # type: ignore[union-attr]
    for key, by_coin in skill["roc_auc"].items():  # type: ignore[union-attr]
        rows.append({"missing": key or "(none)", **{c: by_coin.get(c) for c in columns}})
    return pd.DataFrame(rows, columns=["missing", *columns])


def tier_skill(skill: dict[str, object], asset: str) -> dict[str, float | None]:
    """Each user tier's expected ROC-AUC for ``asset`` (``TIERS``)."""
    return {tier: expected_skill(skill, asset, missing)[0] for tier, missing in TIERS.items()}
