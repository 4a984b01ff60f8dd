"""The cascade model and the baselines it must beat, behind one small contract.

Design: two LightGBM binary models rather than one 3-class model.
* the *cascade* model gives P(an event starts within H days) from every labelled day;
* the *direction* model gives P(long | event) from the days that precede an event only.
P(long squeeze) = P(cascade) x P(long | event), P(short squeeze) = P(cascade) x (1 - P(long | event)).
Splitting lets each question use all of its data (direction is learnt without the ~60 % of
`none` days drowning it), keeps P(cascade) a plain binary probability that can be Platt-calibrated,
and gives SHAP explanations for "how likely" and "which side" separately.

Beside them, two kinds of *heads* on the cascade model's features, each a LightGBM binary model calibrated like it:
* the *major* head gives P(a major cascade within H days) — an event peaking at >= ``labels.major_multiple`` x the trailing
  median — read no higher than P(cascade) (a major cascade is a cascade);
* a *term* head per shorter horizon h (``model.term_horizons``) gives P(cascade within h days); the term structure is made
  non-decreasing in the horizon by capping each horizon with the next longer one, from P(cascade) — the H-day number, its
  value untouched — down (``term_structure``).
A model saved before the heads existed loads without them and answers their numbers as not measured.

Class imbalance is handled by *not* re-weighting: weights would inflate the probabilities and
break calibration; ranking quality is judged by PR-AUC and alerts by a configurable threshold.
"""

from __future__ import annotations

import json
import shutil
from fnmatch import fnmatch
from pathlib import Path
from typing import Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from cascade_radar.config import ModelConfig
from cascade_radar.rules import LONG, SIDES, sigmoid
from features.families import SideHint, Warning, family_of, load_families

PROBABILITY_COLUMNS = ["p_cascade", "p_long", "p_short"]


def is_cascade(target: pd.Series) -> np.ndarray:
    """Days with an event ahead — long, short or two-sided: the cascade model's positives."""
    return (target != "none").to_numpy(dtype=bool)


def has_side(target: pd.Series) -> np.ndarray:
    """Days with a long or short event ahead: the only days the direction model learns from and is scored on (a two-sided
    event is a cascade with no side to learn)."""
    return target.isin(SIDES).to_numpy(dtype=bool)


MAJOR = "p_major"  # P(a major cascade within H days): the major head's column, the answer's field


def term_column(horizon: int) -> str:
    """The column of P(cascade within ``horizon`` days) of a term head (``p_cascade_3d``); the answer carries them as
    ``p_cascade_by_horizon``."""
    return f"p_cascade_{horizon}d"


def term_horizons_in(columns: object) -> list[int]:
    """The horizons of the term columns (``p_cascade_<h>d``) among ``columns``, shortest first."""
    found = [str(c).removeprefix("p_cascade_").removesuffix("d") for c in columns if str(c).startswith("p_cascade_") and str(c).endswith("d")]
    return sorted(int(h) for h in found if h.isdigit())


def within_column(horizon: int) -> str:
    """The column of a shorter horizon's target (``features.labels.cascade_within``) in the out-of-fold rows."""
    return f"within_{horizon}d"


def term_structure(p_cascade: np.ndarray, by_horizon: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """P(cascade within h days) per shorter horizon, non-decreasing in the horizon: each capped by the next longer one's,
    from ``p_cascade`` (the H-day number, left as it is) down to the shortest. NaN (not measured) passes through."""
    out: dict[int, np.ndarray] = {}
    cap = np.asarray(p_cascade, dtype=float)
    for h in sorted(by_horizon, reverse=True):
        cap = np.fmin(np.asarray(by_horizon[h], dtype=float), cap)  # fmin: a horizon not measured caps nothing
        out[h] = np.where(np.isfinite(by_horizon[h]), cap, np.nan)
    return dict(sorted(out.items()))


def capped_major(p_cascade: np.ndarray, p_major: np.ndarray) -> np.ndarray:
    """P(major cascade) no higher than P(cascade): a major cascade is a cascade."""
    return np.minimum(np.asarray(p_major, dtype=float), np.asarray(p_cascade, dtype=float))


def combine(p_cascade: np.ndarray, p_long_given: np.ndarray, index: pd.Index) -> pd.DataFrame:
    p_cascade = np.clip(p_cascade, 1e-6, 1 - 1e-6)
    return pd.DataFrame({"p_cascade": p_cascade, "p_long": p_cascade * p_long_given, "p_short": p_cascade * (1 - p_long_given)}, index=index)


class Predictor(Protocol):
    name: str

    def fit(self, X: pd.DataFrame, target: pd.Series) -> Predictor: ...  # noqa: N803

    def predict(self, X: pd.DataFrame) -> pd.DataFrame: ...  # noqa: N803


class PlattCalibrator:
    """Logistic map of the raw log-odds: p = sigmoid(a * margin + b); identity when a = 1, b = 0.

    Fitted on *out-of-fold* margins only (earlier folds during evaluation, all folds for the final
    model): margins on the training days themselves are over-confident.
    """

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        self.a, self.b = a, b

    def fit(self, margin: np.ndarray, y: np.ndarray, min_rows: int = 100) -> PlattCalibrator:
        if len(y) < min_rows or len(np.unique(y)) < 2:
            return self
        lr = LogisticRegression(C=1e4, max_iter=1000).fit(np.asarray(margin).reshape(-1, 1), y)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a > 0:  # a non-positive slope would reverse the model's ranking: keep the identity instead
            self.a, self.b = a, b
        return self

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * np.asarray(margin) + self.b)


def with_missing_examples(X: pd.DataFrame, y: np.ndarray, share: float, weight: float, seed: int,  # noqa: N803
                          max_families: int = 1) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Training rows plus, per signal family, a few copies of random rows with that family's features blanked — and, with
    ``max_families`` > 1, as many copies again with random pairs (and triples, ...) of families blanked together.

    Why: LightGBM gives a feature that has no missing value in training no "missing" branch, and then
    scores a missing value as 0 — a day without open interest would read as "OI unchanged". With a
    few blanked copies (low weight, same labels) every feature learns where a missing value goes, so
    missing reaches the model as missing. A user's store often lacks several families at once (a paid source
    stopped, a key not set): blanking sets of families teaches the model those days too (family dropout).
    """
    ones = np.ones(len(X))
    if share <= 0 or len(X) == 0:
        return X, y, ones
    rng = np.random.default_rng(seed)
    owners = pd.Series([family_of(f) for f in X.columns], index=X.columns)
    families = list(owners.unique())
    blanked_sets: list[list[str]] = [[fam] for fam in families]
    for size in range(2, min(max_families, len(families)) + 1):  # as many sets of each larger size as there are families
        blanked_sets += [list(rng.choice(families, size=size, replace=False)) for _ in families]
    parts, labels = [X], [y]
    for blanked_families in blanked_sets:
        rows = rng.choice(len(X), size=max(1, int(share * len(X))), replace=False)
        blank = X.iloc[rows].copy()
        blank.loc[:, owners.index[owners.isin(blanked_families)]] = np.nan
        parts.append(blank)
        labels.append(y[rows])
    extra = sum(len(p) for p in parts[1:])
    return pd.concat(parts), np.concatenate(labels), np.concatenate([ones, np.full(extra, weight)])


class SideScore:
    """The direction model with no fitted weights: each input (a percentile against the coin's own past) pushes towards
    the side its declared sign says, and P(long | cascade) = sigmoid(a * score + b), ``score`` the signed mean of the
    inputs present that day, a and b one logistic fitted on the training window's event-ahead days.

    Why: fitted weights over many correlated inputs learn the calendar (funding levels and the long share of events
    drift between regimes); fixed signs over a few stationary inputs carry the warning checklist's logic — crowded longs precede
    long squeezes — across regimes. It speaks LightGBM's prediction interface (``raw_score``, ``pred_contrib``), so it is
    explained by the same code: contribution_i = a * sign_i * (x_i - 0.5) / n_present, base = b (exactly additive).
    """

    def __init__(self, signs: dict[str, int], a: float = 0.0, b: float = 0.0) -> None:
        self.signs = dict(signs)
        self.a, self.b = a, b

    def _terms(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        values = X[list(self.signs)].to_numpy(dtype=float)
        terms = (values - 0.5) * np.array(list(self.signs.values()), dtype=float)
        present = np.isfinite(terms).sum(axis=1, keepdims=True)
        return np.where(np.isfinite(terms), terms, 0.0) / np.maximum(present, 1)

    def fit(self, X: pd.DataFrame, is_long: np.ndarray) -> SideScore:  # noqa: N803
        score = self._terms(X).sum(axis=1).reshape(-1, 1)
        if len(np.unique(is_long)) == 2:
            lr = LogisticRegression(C=1e4, max_iter=1000).fit(score, is_long)
            a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
            # a negative slope would contradict the declared signs: keep the prior alone instead (a = 0)
            self.a, self.b = (a, b) if a > 0 else (0.0, float(np.log(is_long.mean() / (1 - is_long.mean()))))
        return self

    def predict(self, X: pd.DataFrame, raw_score: bool = False, pred_contrib: bool = False) -> np.ndarray:  # noqa: N803
        contrib = self.a * self._terms(X)
        if pred_contrib:
            return np.column_stack([contrib, np.full(len(X), self.b)])
        margin = self.b + contrib.sum(axis=1)
        return margin if raw_score else sigmoid(margin)

    def feature_importance(self, importance_type: str = "gain") -> np.ndarray:
        """Each input's weight in the score (equal by design: |a| / inputs), in LightGBM's shape."""
        return np.full(len(self.signs), abs(self.a) / max(len(self.signs), 1))

    def to_dict(self) -> dict[str, object]:
        return {"signs": self.signs, "a": self.a, "b": self.b}


SMALL_BATCH_ROWS = 256  # at most this many rows: predicted on one thread


def booster_predict(booster: lgb.Booster | SideScore, X: pd.DataFrame, **kwargs: bool) -> np.ndarray:  # noqa: N803
    """``booster.predict(X, **kwargs)`` (``X``: exactly the columns it reads, in its order); a small batch on one thread.

    Why: each LightGBM call with a DataFrame checks its columns and starts the OpenMP threads; for one row that measured
    7.9 ms on 2 busy cores against 0.03 ms as one array on one thread — a service start of 200 coins predicts ~1,000 such
    rows one day at a time (issue 37). The values are the same: LightGBM reads the frame as this float64 array."""
    if isinstance(booster, SideScore):
        return booster.predict(X, **kwargs)
    threads = {"num_threads": 1} if len(X) <= SMALL_BATCH_ROWS else {}
    return booster.predict(X.to_numpy(dtype=np.float64), **kwargs, **threads)


class CascadeModel:
    """LightGBM cascade model + LightGBM direction model (+ Platt calibration of the cascade margin)."""

    name = "model"

    def __init__(self, config: ModelConfig, features: list[str] | None = None) -> None:
        self.config = config
        self.features = features  # every input column; each booster reads its own subset of them
        self.cascade_features = features
        self.direction_features = features
        self.cascade: lgb.Booster | None = None
        self.direction: lgb.Booster | SideScore | None = None
        self.calibrator = PlattCalibrator()
        self.major: lgb.Booster | None = None  # the major head (None: not fitted, or a model saved before it existed)
        self.major_calibrator = PlattCalibrator()
        self.major_share: float | None = None  # with ``major_from`` share: P(major) = P(cascade) x this (the training window's)
        self.term: dict[int, lgb.Booster] = {}  # horizon (days) -> its term head
        self.term_calibrators: dict[int, PlattCalibrator] = {}
        self.long_share = 0.5
        self.trained_through: str | None = None  # last training day: later days are out-of-sample
        self.skill: dict[str, object] | None = None  # expected out-of-fold skill by missing families (training.skill), set by training
        self.yardstick: dict[str, object] | None = None  # per coin: out-of-fold base rate, P quantiles, calibration (training.yardstick)

    def _params(self) -> dict[str, object]:
        c = self.config
        return {
            "objective": "binary", "learning_rate": c.learning_rate, "num_leaves": c.num_leaves, "max_depth": c.max_depth,
            "min_child_samples": c.min_child_samples, "subsample": c.subsample, "subsample_freq": c.subsample_freq,
            "colsample_bytree": c.colsample_bytree, "reg_lambda": c.reg_lambda, "n_jobs": c.n_jobs,
            "random_state": c.random_state, "verbose": -1, "deterministic": True, "force_row_wise": True,
        }

    def _fit_booster(self, X: pd.DataFrame, y: np.ndarray, n_estimators: int, monotone: list[int] | None = None) -> lgb.Booster:  # noqa: N803
        X, y, weight = with_missing_examples(X, y, self.config.missing_example_share, self.config.missing_example_weight, self.config.random_state,
                                             self.config.missing_example_families)
        data = lgb.Dataset(X, label=y.astype(float), weight=weight, feature_name=list(X.columns), free_raw_data=True)
        params = self._params() | ({"monotone_constraints": monotone} if monotone else {})  # one sign per column, in order
        return lgb.train(params, data, num_boost_round=n_estimators)

    def fit(self, X: pd.DataFrame, target: pd.Series, major: pd.Series | None = None,  # noqa: N803
            within: pd.DataFrame | None = None) -> CascadeModel:
        """``major``: 1 / 0 per row where a major event starts within H days (``major_ahead``; missing: unknown); ``within``: per
        shorter horizon h (columns), its target (``features.labels.cascade_within``). Without them (or with
        ``major_head`` off, or no ``term_horizons``) the model has no heads."""
        self.features = list(X.columns)
        self.cascade_features = model_features(self.features, self.config, self.config.families)
        inputs = self.config.direction_inputs
        self.direction_features = (list(inputs) if inputs else
                                   model_features(self.features, self.config, self.config.direction_families or self.config.families))
        self.trained_through = str(pd.Timestamp(X.index.max()).date()) if isinstance(X.index, pd.DatetimeIndex) and len(X) else None
        y = is_cascade(target)
        self.cascade = self._fit_booster(X[self.cascade_features], y, self.config.n_estimators)
        sided = has_side(target)
        events = target[sided]
        self.long_share = float((events == LONG).mean()) if len(events) else 0.5
        if events.nunique() == 2:
            is_long = (events == LONG).to_numpy()
            Xd = X.loc[sided, self.direction_features]
            if inputs and self.config.direction_kind == "score":
                self.direction = SideScore(inputs).fit(Xd, is_long)
            else:
                signs = [inputs[f] for f in self.direction_features] if inputs else None
                self.direction = self._fit_booster(Xd, is_long, self.config.direction_n_estimators, monotone=signs)
        self.major, self.major_calibrator, self.major_share = None, PlattCalibrator(), None
        if major is not None and self.config.major_head:
            if self.config.major_from == "head":
                self.major = self._fit_head(X, major)
            else:  # of the cascade days whose severity is known, the share with a major event ahead
                known = major.notna().to_numpy() & y
                self.major_share = float((major.to_numpy(dtype=float)[known] > 0).mean()) if known.any() else None
        self.term, self.term_calibrators = {}, {}
        for h in self.config.term_horizons if within is not None else []:
            head = self._fit_head(X, within[h]) if h in within.columns else None
            if head is not None:
                self.term[h], self.term_calibrators[h] = head, PlattCalibrator()
        return self

    def _fit_head(self, X: pd.DataFrame, y: pd.Series) -> lgb.Booster | None:  # noqa: N803
        """A head on the cascade model's features, fitted on the rows whose target is known (None: one class only)."""
        known = y.notna().to_numpy()
        labels = y.to_numpy(dtype=float)[known] > 0
        if len(np.unique(labels)) < 2:
            return None
        return self._fit_booster(X.loc[known, self.cascade_features], labels, self.config.n_estimators)

    def boosters(self) -> list[tuple[str, lgb.Booster | SideScore, list[str]]]:
        """(name, booster, the columns it reads) of the cascade and, if fitted, the direction model."""
        out = [("cascade", self.cascade, self.cascade_features)]
        return out + ([("direction", self.direction, self.direction_features)] if self.direction is not None else [])

    def cascade_margin(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return booster_predict(self.cascade, X[self.cascade_features], raw_score=True)

    def p_long_given_cascade(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        if self.direction is None:
            return np.full(len(X), self.long_share)
        return booster_predict(self.direction, X[self.direction_features])

    def predict(self, X: pd.DataFrame, calibrated: bool = True) -> pd.DataFrame:  # noqa: N803
        """Daily p_cascade, p_long, p_short (and the raw cascade ``margin``, log-odds before calibration)."""
        if self.cascade is None:
            raise RuntimeError("model is not fitted")
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise ValueError(f"input lacks feature column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}")
        margin = self.cascade_margin(X)
        p = self.calibrator(margin) if calibrated else sigmoid(margin)
        out = combine(p, self.p_long_given_cascade(X), X.index)
        out["margin"] = margin
        return out.assign(**self._heads(X, out["p_cascade"].to_numpy(), calibrated))

    def _heads(self, X: pd.DataFrame, p_cascade: np.ndarray, calibrated: bool) -> dict[str, np.ndarray]:  # noqa: N803
        """The heads' columns: ``p_major`` (capped by P(cascade)) and ``margin_major``; per horizon ``p_cascade_<h>d`` (the
        term structure, capped) and ``margin_<h>d`` — only those of the heads the model has."""
        cols: dict[str, np.ndarray] = {}
        Xc = X[self.cascade_features]
        if self.major is not None:
            margin = booster_predict(self.major, Xc, raw_score=True)
            cols[MAJOR] = capped_major(p_cascade, self.major_calibrator(margin) if calibrated else sigmoid(margin))
            cols["margin_major"] = margin
        elif self.major_share is not None:
            cols[MAJOR] = p_cascade * self.major_share
        raw = {}
        for h, head in self.term.items():
            cols[f"margin_{h}d"] = booster_predict(head, Xc, raw_score=True)
            raw[h] = self.term_calibrators[h](cols[f"margin_{h}d"]) if calibrated else sigmoid(cols[f"margin_{h}d"])
        cols.update({term_column(h): p for h, p in term_structure(p_cascade, raw).items()})
        return cols

    def calibrate(self, oof: pd.DataFrame) -> CascadeModel:
        """Platt-calibrate every head on out-of-fold rows ``oof`` (earlier folds' for a fold model, every fold's for the final
        model): the cascade margin on the target, the major head's on ``major_ahead``, each term head's on its own horizon's
        target — each on the rows where that target is known."""
        self.calibrator = PlattCalibrator().fit(oof["margin"].to_numpy(), is_cascade(oof["target"]))
        pairs = ([("margin_major", "major_ahead")] if self.major is not None else []) + [(f"margin_{h}d", within_column(h)) for h in self.term]
        fitted = {}
        for margin, target in pairs:
            if margin in oof.columns and target in oof.columns:
                known = (oof[target].notna() & oof[margin].notna()).to_numpy()  # a fold without the head has no margin
                fitted[margin] = PlattCalibrator().fit(oof[margin].to_numpy()[known], oof[target].to_numpy(dtype=float)[known] > 0)
        self.major_calibrator = fitted.get("margin_major", self.major_calibrator)
        self.term_calibrators = {h: fitted.get(f"margin_{h}d", c) for h, c in self.term_calibrators.items()}
        return self

    @property
    def term_horizons(self) -> list[int]:
        """The shorter horizons the model answers (those of its term heads), shortest first."""
        return sorted(self.term)

    def probability_columns(self) -> list[str]:
        """Every probability the model gives: p_cascade, p_long, p_short, then its heads' (p_major, p_cascade_<h>d)."""
        return [*PROBABILITY_COLUMNS, *([MAJOR] if self.has_major else []), *(term_column(h) for h in self.term_horizons)]

    @property
    def has_major(self) -> bool:
        """Does the model give P(major) (by its head, or as P(cascade) x the major share)?"""
        return self.major is not None or self.major_share is not None

    # -- persistence: plain LightGBM text models + JSON, no pickles
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.cascade.save_model(str(directory / "cascade.txt"))
        if isinstance(self.direction, SideScore):
            (directory / "direction_score.json").write_text(json.dumps(self.direction.to_dict(), indent=1))
        elif self.direction is not None:
            self.direction.save_model(str(directory / "direction.txt"))
        if self.major is not None:
            self.major.save_model(str(directory / "major.txt"))
        for h, head in self.term.items():
            head.save_model(str(directory / f"term_{h}d.txt"))
        meta = {"features": self.features, "cascade_features": self.cascade_features, "direction_features": self.direction_features,
                "calibrator": [self.calibrator.a, self.calibrator.b],
                "major_calibrator": [self.major_calibrator.a, self.major_calibrator.b] if self.major is not None else None,
                "term_calibrators": {str(h): [c.a, c.b] for h, c in self.term_calibrators.items()}, "major_share": self.major_share,
                "long_share": self.long_share, "trained_through": self.trained_through, "config": self.config.model_dump(),
                "skill": self.skill, "yardstick": self.yardstick}
        (directory / "meta.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, directory: Path) -> CascadeModel:
        meta = json.loads((directory / "meta.json").read_text())
        model = cls(ModelConfig(**meta["config"]), meta["features"])
        model.cascade_features = meta.get("cascade_features", meta["features"])
        model.direction_features = meta.get("direction_features", meta["features"])
        model.cascade = lgb.Booster(model_file=str(directory / "cascade.txt"))
        if (directory / "direction_score.json").exists():
            score = json.loads((directory / "direction_score.json").read_text())
            model.direction = SideScore(score["signs"], score["a"], score["b"])
        elif (directory / "direction.txt").exists():
            model.direction = lgb.Booster(model_file=str(directory / "direction.txt"))
        model.calibrator = PlattCalibrator(*meta["calibrator"])
        if (directory / "major.txt").exists():  # a model saved before the heads has neither file nor entries: no heads
            model.major = lgb.Booster(model_file=str(directory / "major.txt"))
            model.major_calibrator = PlattCalibrator(*(meta.get("major_calibrator") or (1.0, 0.0)))
        model.major_share = meta.get("major_share")
        for h, ab in (meta.get("term_calibrators") or {}).items():
            model.term[int(h)] = lgb.Booster(model_file=str(directory / f"term_{int(h)}d.txt"))
            model.term_calibrators[int(h)] = PlattCalibrator(*ab)
        model.long_share = meta["long_share"]
        model.trained_through = meta.get("trained_through")
        model.skill = meta.get("skill")
        model.yardstick = meta.get("yardstick")
        return model


FOLD_MODELS_DIR = "fold_models"


def save_fold_models(models: dict[int, CascadeModel], folds: list[dict[str, object]], directory: Path) -> list[Path]:
    """Each walk-forward fold's model and its test block (``Fold.describe()``), so past days can later be
    explained out-of-fold; returns the files written."""
    root = directory / FOLD_MODELS_DIR
    shutil.rmtree(root, ignore_errors=True)
    for fold in folds:
        models[int(fold["fold"])].save(root / f"fold{fold['fold']}")
    (root / "folds.json").write_text(json.dumps(folds, indent=1))
    return sorted(p for p in root.rglob("*") if p.is_file())


def load_fold_models(directory: Path) -> list[tuple[dict[str, object], CascadeModel]]:
    """The fold models written by the last evaluation under ``directory`` with their fold description (empty if none)."""
    folds_file = directory / FOLD_MODELS_DIR / "folds.json"
    if not folds_file.exists():
        return []
    return [(fold, CascadeModel.load(directory / FOLD_MODELS_DIR / f"fold{fold['fold']}")) for fold in json.loads(folds_file.read_text())]


class BaseRate:
    """Predicts the training prevalence every day, and the training share of long events."""

    name = "base_rate"

    def fit(self, X: pd.DataFrame, target: pd.Series) -> BaseRate:  # noqa: N803
        y = is_cascade(target)
        self.rate = float(y.mean())
        sided = has_side(target)
        self.long_share = float((target[sided] == LONG).mean()) if sided.any() else 0.5
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        return combine(np.full(len(X), self.rate), np.full(len(X), self.long_share), X.index)


def warning_checklist() -> list[Warning]:
    """The warning checklist: every registered family's warning signs (a candidate family's once it is promoted)."""
    return [w for fam in load_families().values() if not fam.candidate for w in fam.warnings]


def warning_count(X: pd.DataFrame) -> pd.Series:  # noqa: N803
    """How many warning signs of the warning checklist are on each day (missing inputs count as off)."""
    count = pd.Series(0, index=X.index)
    for warning in warning_checklist():
        count += warning.on(X).astype(int)
    return count


def side_hint() -> SideHint | None:
    """The first registered family's hint of which side is crowded, if any declares one."""
    return next((fam.side_hint for fam in load_families().values() if fam.side_hint is not None), None)


def _crowded_longs(X: pd.DataFrame, hint: SideHint | None) -> np.ndarray:  # noqa: N803
    if hint is None or hint.feature not in X.columns:
        return np.zeros(len(X), dtype=bool)
    return (X[hint.feature] > hint.threshold).to_numpy()


class RuleBaseline:
    """Count of the warning checklist's signs on, mapped to the training frequency of cascades at that count.

    Direction: the side the families' side hint calls crowded (positive funding = crowded longs).
    """

    name = "rule"

    def fit(self, X: pd.DataFrame, target: pd.Series) -> RuleBaseline:  # noqa: N803
        y = is_cascade(target)
        counts = warning_count(X).to_numpy()
        self.prior = float(y.mean())
        self.rate_by_count = {}
        for k in range(len(warning_checklist()) + 1):
            at = counts == k
            # shrink towards the prior: a count seen on few training days says little
            self.rate_by_count[k] = float((y[at].sum() + 5 * self.prior) / (at.sum() + 5))
        self.hint = side_hint()
        sided = has_side(target)
        crowded = _crowded_longs(X, self.hint)[sided]
        longs = (target[sided] == LONG).to_numpy()
        self.long_if_crowded = float(longs[crowded].mean()) if crowded.any() else 0.5
        self.long_if_not = float(longs[~crowded].mean()) if (~crowded).any() else 0.5
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        counts = warning_count(X).clip(upper=max(self.rate_by_count))
        p = counts.map(self.rate_by_count).to_numpy(dtype=float)
        p_long = np.where(_crowded_longs(X, self.hint), self.long_if_crowded, self.long_if_not)
        return combine(p, p_long, X.index)


class LogisticBaseline:
    """Logistic regressions (cascade, direction) on the same features: median-imputed, standardised."""

    name = "logistic"

    def _pipe(self) -> object:
        return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(), LogisticRegression(C=0.05, max_iter=2000))

    def fit(self, X: pd.DataFrame, target: pd.Series) -> LogisticBaseline:  # noqa: N803
        y = is_cascade(target)
        self.cascade = self._pipe().fit(X, y)
        sided = has_side(target)
        events = target[sided]
        self.direction = self._pipe().fit(X[sided], (events == LONG).to_numpy()) if events.nunique() == 2 else None
        self.long_share = float((events == LONG).mean()) if len(events) else 0.5
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        p = self.cascade.predict_proba(X)[:, 1]
        p_long = self.direction.predict_proba(X)[:, 1] if self.direction is not None else np.full(len(X), self.long_share)
        return combine(p, p_long, X.index)


class VolatilityBaseline(LogisticBaseline):
    """Logistic regression on trailing realized volatility alone (7- and 30-day, and their ratio).

    Quiet markets make the label fire (a cascade day is a multiple of a *trailing* median), so low
    volatility alone predicts it: the model must beat this to show it reads the build-up, not the calm.
    """

    name = "volatility"

    def __init__(self, features: list[str]) -> None:
        self.features = features

    def fit(self, X: pd.DataFrame, target: pd.Series) -> VolatilityBaseline:  # noqa: N803
        return super().fit(X.reindex(columns=self.features), target)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        return super().predict(X.reindex(columns=self.features))


ALL_FAMILIES = object()  # sentinel: "the families of the config", as opposed to an explicit None (= every family)


def model_features(features: list[str], config: ModelConfig, families: list[str] | None | object = ALL_FAMILIES) -> list[str]:
    """The table's features a model reads: those of ``families`` (if None, every registered family but the candidates, which
    are read only when named), minus the exclusion patterns (fnmatch). By default the union of what the cascade and the
    direction model read."""
    chosen = [config.families, config.direction_families or config.families] if families is ALL_FAMILIES else [families]
    keep = None if any(c is None for c in chosen) else {f for c in chosen for f in c}
    skip = {name for name, fam in load_families().items() if fam.candidate} - {f for c in chosen if c is not None for f in c}
    read = [f for f in features if (family_of(f) not in skip if keep is None else family_of(f) in keep)
            and not any(fnmatch(f, p) for p in config.exclude_features)]
    # the direction model's declared inputs are read whatever the exclusions (they are made for it)
    extra = [f for f in (config.direction_inputs or {}) if f in features and f not in read] if families is ALL_FAMILIES else []
    return read + extra


def baselines(config: ModelConfig) -> list[Predictor]:
    return [BaseRate(), RuleBaseline(), LogisticBaseline(), VolatilityBaseline(config.volatility_features)]
