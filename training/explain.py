"""Per-day SHAP contributions of the cascade and direction models, by the model that may honestly explain each day, and its picture.

Contributions are exact TreeSHAP values on the *log-odds* scale (the raw margin of each binary
LightGBM model), computed by LightGBM's built-in TreeSHAP (``pred_contrib``), which equals
``shap.TreeExplainer`` to floating-point precision (tested) and is ~10x faster. For each day:
base value + sum of contributions = the model's raw margin, for both models. Family sums add the
contributions of a family's features; "probability effect" is how much P(cascade) would fall if
that family's contribution were removed (a reading aid; log-odds contributions are the exact ones).

Which model explains a past day matters: a day inside a walk-forward test block is explained by
that fold's model (out-of-fold — what the model would have said then); a day after the training
data by the champion (out-of-sample); any other day by the champion *in-sample*, and says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.rules import IN_SAMPLE, OUT_OF_FOLD, OUT_OF_SAMPLE, yardstick_said
from features.families import REGISTRY, colour_of, family_of, title_of
from training.model import CascadeModel, booster_predict, load_fold_models
from training.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from training.evaluate import Evaluation

SCALE = "log-odds, the model's score before it becomes a probability (+0.69 doubles the odds of a cascade, −0.69 halves them)"


def fold_label(number: int, trained_to: object) -> str:
    """How a fold model is named where a person reads it (``model_used``): what it is, then which fold."""
    return f"a model that never saw this day (walk-forward fold {number}, trained to {trained_to})"


@dataclass(frozen=True)
class Contributions:
    """SHAP values of one binary model on some days: ``values`` (days x features), ``base`` per day."""

    values: pd.DataFrame
    base: pd.Series

    @property
    def margin(self) -> pd.Series:
        return self.base + self.values.sum(axis=1)

    def by_family(self) -> pd.DataFrame:
        return self.values.T.groupby(family_of).sum().T


@functools.cache
def _family_matrix(features: tuple[str, ...]) -> tuple[list[str], np.ndarray]:
    """(the families of ``features``, sorted as ``Contributions.by_family`` sorts them; a features x families 0/1 matrix):
    a row of contributions times it is each family's sum."""
    owner = [family_of(f) for f in features]
    families = sorted(set(owner))
    member = np.zeros((len(features), len(families)))
    member[np.arange(len(features)), [families.index(o) for o in owner]] = 1.0
    return families, member


def present_by_family(shap: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Each family's push per day counting only the features that had a value that day (missing data is never a
    cause); NaN where none of the family's features had one (the family was missing, "scored as missing")."""
    present = values.reindex(index=shap.index, columns=shap.columns).notna()
    pushes = shap.where(present).T.groupby(family_of).sum(min_count=1).T
    return pushes


def contributions(booster: object, X: pd.DataFrame) -> Contributions:  # noqa: N803
    """Exact TreeSHAP contributions of a binary LightGBM booster (last column of pred_contrib = base value)."""
    raw = booster.predict(X, pred_contrib=True)
    return Contributions(pd.DataFrame(raw[:, :-1], index=X.index, columns=X.columns), pd.Series(raw[:, -1], index=X.index))


@dataclass
class ModelSource:
    """A model and the days it may explain without hindsight (test block), or None for the champion."""

    model: CascadeModel
    label: str
    test_start: pd.Timestamp | None = None
    test_end: pd.Timestamp | None = None


def fold_model_sources(reports: Path) -> list[ModelSource]:
    """The walk-forward fold models written by the last evaluation, as explanation sources (empty if none)."""
    return [ModelSource(model, fold_label(fold["fold"], fold["train_last"]), pd.Timestamp(fold["test_first"]),
                        pd.Timestamp(fold["test_last"])) for fold, model in load_fold_models(reports)]


def fold_sources(evaluation: Evaluation) -> list[ModelSource]:
    """The in-memory fold models of an evaluation as explanation sources."""
    return [ModelSource(evaluation.fold_models[f.number], fold_label(f.number, f.train_end.date()),
                        f.test_start, f.test_end) for f in evaluation.folds]


def champion_explainer(model: CascadeModel, identity: dict[str, str], settings: Settings, folds: list[ModelSource]) -> Explainer:
    """The explainer of a registered model: ``identity`` is its registry name, version and alias."""
    through = pd.Timestamp(model.trained_through) if model.trained_through else pd.Timestamp.max
    label = f"{identity['name']} v{identity['version']} (@{identity['alias']})"
    return Explainer(model, label, through, folds, settings.labels.horizon_days, settings.alert_threshold)


class Explainer:
    """Explains any day of the feature table with the model that may honestly explain it."""

    def __init__(self, champion: CascadeModel, champion_label: str, last_training_day: pd.Timestamp, folds: list[ModelSource] | None = None,
                 horizon_days: int = 14, alert_threshold: float = 0.5) -> None:
        self.champion = ModelSource(champion, champion_label)
        self.last_training_day = last_training_day
        self.folds = folds or []
        self.horizon_days = horizon_days
        self.alert_threshold = alert_threshold

    def source_for(self, day: pd.Timestamp) -> tuple[ModelSource, str]:
        for fold in self.folds:
            if fold.test_start <= day <= fold.test_end:
                return fold, OUT_OF_FOLD
        return self.champion, OUT_OF_SAMPLE if day > self.last_training_day else IN_SAMPLE

    def explain(self, table: pd.DataFrame, shap: bool = True) -> pd.DataFrame:
        """One row per day: probabilities, both models' base values, margins, per-feature and per-family SHAP (``shap``
        False: the probabilities, basis, model and long prior only — a prediction, no TreeSHAP: what a service needs of
        every day at start, the contributions of a day being computed when it is asked)."""
        groups: dict[int, list[pd.Timestamp]] = {}
        sources: dict[int, tuple[ModelSource, str]] = {}
        for day in table.index:
            source, kind = self.source_for(day)
            key = id(source) * 10 + (kind == OUT_OF_SAMPLE)
            groups.setdefault(key, []).append(day)
            sources[key] = (source, kind)
        parts = [self._explain_block(table.loc[days], *sources[key], shap=shap) for key, days in groups.items()]
        return pd.concat(parts).sort_index()

    def _explain_block(self, table: pd.DataFrame, source: ModelSource, kind: str, shap: bool = True) -> pd.DataFrame:
        model = source.model
        X = table[model.features]
        pred = model.predict(X)
        # the heads' probabilities (p_major, p_cascade_<h>d) where the answering model has them; a model without them leaves NaN
        head = pd.DataFrame({c: pred[c].to_numpy() for c in model.probability_columns()}, index=X.index)
        head["basis"] = kind
        head["model_used"] = source.label
        head["long_prior"] = float(model.long_share)  # the training window's long share: the side's yardstick
        parts = [head]
        position = {f: j for j, f in enumerate(model.features)}
        families, member = _family_matrix(tuple(model.features))
        for name, booster, columns in model.boosters() if shap else []:
            raw = np.asarray(booster_predict(booster, X[columns], pred_contrib=True), dtype=float)
            # every model input gets a column; those a booster does not read contribute exactly 0
            values = np.zeros((len(X), len(model.features)))
            values[:, [position[c] for c in columns]] = raw[:, :-1]
            base = raw[:, -1]
            # one array, one frame: a column per feature built as its own Series cost a day's explanation ~30 ms (issue 37)
            block = np.column_stack([base, base + values.sum(axis=1), values @ member, values])
            names = [f"{name}_base", f"{name}_margin", *(f"{name}_family__{f}" for f in families),
                     *(f"{name}_shap__{f}" for f in model.features)]
            parts.append(pd.DataFrame(block, index=X.index, columns=names))
        return pd.concat(parts, axis=1) if len(parts) > 1 else head


# ----------------------------------------------------------------------------- files


def download_champion_folds(settings: Settings, identity: dict[str, str], target: Path) -> Path | None:
    """Download the fold models of the champion's own training run (logged with its report) under ``target``; the
    directory holding ``fold_models/``, or None if the run holds none."""
    import mlflow

    run_id = identity.get("run_id")
    if not run_id:
        return None
    parent = settings.reports_path.relative_to(settings.reports_root).as_posix()
    artifact = "evaluation/fold_models" if parent == "." else f"evaluation/{parent}/fold_models"
    target.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(target)))
    except Exception:  # noqa: BLE001 - no fold models logged: the champion alone
        return None
    return local.parent


def champion_fold_sources(settings: Settings, identity: dict[str, str]) -> list[ModelSource]:
    """The champion's fold models as explanation sources: read from its run, not from reports/ (a later training that
    failed the gate rewrites reports/ but not the champion). Empty if the run holds none. The files are loaded into
    memory and the download removed."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="cascade-radar-folds-") as tmp:
        directory = download_champion_folds(settings, identity, Path(tmp))
        return fold_model_sources(directory) if directory is not None else []


POSITIVE, NEGATIVE = "#ff0051", "#008bfb"  # SHAP's colours: a push up, a push down
LOG_ODDS_IN_WORDS = "log-odds: +0.69 doubles the odds, −0.69 halves them"


def _absent(explanation: dict[str, object]) -> set[str]:
    """The features scored as missing that day: listed by the answer, with no value, or of a missing family."""
    values = explanation.get("feature_values") or {}
    missing = set(explanation.get("missing_families") or ())
    return (set(explanation.get("missing_features") or ()) | {n for n, v in values.items() if v is None}
            | {n for n in explanation["cascade"]["shap_by_feature"] if family_of(n) in missing})


def waterfall_rows(explanation: dict[str, object], top: int = 12) -> dict[str, object]:
    """What the waterfall draws for an answer with its detail: ``rows`` (label, log-odds), largest push first — each feature
    with a value that day by its label and value in its unit, then the rest of them summed — from ``start`` to ``end``
    (the margin). A feature with no value that day, or of a missing family, gets no bar (it is never a cause): what the
    model made of those gaps is folded into ``start`` (the base value + ``shap_of_missing``), so the bars still add up to
    the margin, and ``missing`` says which families were missing."""
    from features.build import feature_label

    cascade = explanation["cascade"]
    values_of = explanation.get("feature_values") or {}
    absent = _absent(explanation)
    shown = sorted(((n, v) for n, v in cascade["shap_by_feature"].items() if n not in absent and v != 0.0), key=lambda nv: -abs(nv[1]))
    rows = [(feature_label(n, float(values_of[n])), float(v)) for n, v in shown[:top]]
    if len(shown) > top:
        rows.append((f"{len(shown) - top} other features with a value", float(sum(v for _, v in shown[top:]))))
    hidden = float(sum(v for n, v in cascade["shap_by_feature"].items() if n in absent))
    return {"start": float(cascade["base_value"]) + hidden, "end": float(cascade["margin"]), "rows": rows,
            "missing": [title_of(f) for f in explanation.get("missing_families") or ()], "absent_features": len(absent)}


def family_rows(families: dict[str, float | None]) -> list[tuple[str, float | None]]:
    """The family panel's rows, bottom to top: missing families first, as "<title>: missing (scored as missing)" with no
    value (no bar), then each family's push from smallest to largest."""
    missing = [(f"{title_of(name)}: missing (scored as missing)", None) for name, v in families.items() if v is None]
    present = sorted(((title_of(name), float(v)) for name, v in families.items() if v is not None), key=lambda tv: tv[1])
    return missing + present


def _draw_waterfall(ax: object, drawn: dict[str, object]) -> None:
    """Horizontal waterfall: the bottom bar starts at ``drawn['start']``, each bar starts where the one below ended."""
    rows = list(reversed(drawn["rows"]))  # bottom to top: the largest push on top
    left = drawn["start"]
    ends = [left]
    span = max([abs(v) for _, v in rows] + [0.05])
    for k, (_, value) in enumerate(rows):
        ax.barh(k, value, left=left, height=0.62, color=POSITIVE if value > 0 else NEGATIVE)
        ax.text(left + value + (0.02 if value > 0 else -0.02) * span, k, f"{value:+.2f}", va="center", ha="left" if value > 0 else "right", fontsize=8)
        left += value
        ends.append(left)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.axvline(drawn["start"], color="#777", ls="--", lw=0.8)
    ax.axvline(drawn["end"], color="#111", ls=":", lw=1.0)
    ax.set_ylim(-0.8, len(rows) - 0.2)
    width = max(max(ends) - min(ends), 0.05)
    ax.set_xlim(min(ends) - 0.16 * width, max(ends) + 0.16 * width)  # room for the numbers beside the bars
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def plot_day(explanation: dict[str, object], path: Path, top: int = 12) -> dict[str, list[str]]:
    """Waterfall of the cascade model's top features (SHAP) beside the per-family pushes, both in log-odds; ``explanation``
    is an answer of the forecast path with its detail (``forecast.predict.CoinForecaster.forecast(..., detail=True)``).
    Missing data is never drawn as a cause: no bar for a feature with no value that day (``waterfall_rows``), a missing
    family is written "missing (scored as missing)" in the family panel, without a bar (``family_rows``). Returns the
    labels drawn, read back from the figure: ``waterfall`` (bottom to top) and one list per family panel."""
    plt = pyplot()

    cascade = explanation["cascade"]
    drawn = waterfall_rows(explanation, top)
    checklist = explanation.get("checklist") or []
    fig = plt.figure(figsize=(17, 6.5 + (1.6 if checklist else 0)))
    low = 0.1 if not checklist else 0.3  # room for the warning checklist under the waterfall
    ax_w = fig.add_axes([0.27, low, 0.34, 0.86 - low])  # room on the left for the features' labels, on the right for the families'
    _draw_waterfall(ax_w, drawn)
    asset = f"{explanation['asset']} " if explanation.get("asset") else ""
    headline = yardstick_said(explanation["p_cascade"], explanation["horizon_days"], explanation.get("base_rate"),  # type: ignore[arg-type]
                              explanation.get("relative_risk"), explanation.get("percentile"))  # type: ignore[arg-type]
    ax_w.set_title(f"{asset}{explanation['day']}: {headline}\n"
                   f"what pushed the odds of a cascade up (+) or down (−), as {explanation.get('model_used') or explanation['basis']} saw it"
                   + (f"\nno data that day: {', '.join(drawn['missing'])} (scored as missing, never drawn as a cause)" if drawn["missing"] else ""),
                   fontsize=10)
    gaps = " (and what the model made of that day's missing values)" if drawn["absent_features"] else ""
    ax_w.set_xlabel(f"odds of a cascade, in {LOG_ODDS_IN_WORDS}\nfrom the model's average day{gaps} ({drawn['start']:+.2f}, dashed) "
                    f"to this day ({drawn['end']:+.2f}, dotted)", fontsize=9)
    panels = [("cascade model: each family's push", cascade["shap_by_family"], "push on the odds of a cascade (log-odds; + more likely)")]
    if explanation.get("direction_model"):
        d = explanation["direction_model"]
        # the bars start from the model's average day (its base), not from the prior: that is the answer's long_prior
        prior = f"; prior {explanation['long_prior']:.2f}" if explanation.get("long_prior") is not None else ""
        panels.append((f"direction model: each family's push\nP(long | cascade) from the model's average day {d['base_probability']:.2f} to "
                       f"{explanation['p_long_given_cascade']:.2f}{prior}", d["shap_by_family"], "push towards a long (+) or short (−) squeeze, log-odds"))
    names = {f"{title_of(name)}{suffix}": name for name in REGISTRY for suffix in ("", ": missing (scored as missing)")}
    labels: dict[str, list[str]] = {"waterfall": [t.get_text() for t in ax_w.get_yticklabels()]}
    for k, (title, fams, xlabel) in enumerate(panels):
        ax_f = fig.add_axes([0.80, 0.58 - 0.48 * k if len(panels) > 1 else 0.1, 0.18, 0.3 if len(panels) > 1 else 0.76])
        rows = family_rows(fams)
        # one colour meaning in both panels: the family (as on the dashboard); the sign is the bar's side of zero
        for y, (label, value) in enumerate(rows):
            if value is not None:
                ax_f.barh(y, value, color=colour_of(names.get(label, label)))
        ax_f.set_yticks(range(len(rows)), [label.replace(": missing", ":\nmissing") for label, _ in rows], fontsize=8)
        ax_f.axvline(0, c="black", lw=0.8)
        ax_f.set_title(title, fontsize=10)
        ax_f.set_xlabel(xlabel, fontsize=8)
        labels[f"families {k}"] = [t.get_text().replace("\n", " ") for t in ax_f.get_yticklabels()]
    if checklist:  # the warning checklist, every family, read by the model or not, under the waterfall
        lines = [f"{'ON ' if c['on'] else 'off'}  {title_of(c['family'])}: {c['warning']}" + ("" if c["read_by_model"] else " (not read by the model)")
                 + f"  [{c['values_text']}]" for c in checklist]
        fig.text(0.01, 0.01, "the warning checklist (the warning signs of a build-up, family by family)\n" + "\n".join(lines),
                 fontsize=7.5, va="bottom", family="monospace")
    save_figure(fig, path, dpi=100)
    return labels
