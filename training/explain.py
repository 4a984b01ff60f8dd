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

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.rules import IN_SAMPLE, OUT_OF_FOLD, OUT_OF_SAMPLE
from features.families import colour_of, family_of, title_of
from training.model import CascadeModel, load_fold_models
from training.plotting import pyplot, save_figure

if TYPE_CHECKING:
    from training.evaluate import Evaluation

SCALE = "log-odds (raw margin of the binary LightGBM model)"


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
    return [ModelSource(model, f"fold {fold['fold']} model (trained to {fold['train_last']})", pd.Timestamp(fold["test_first"]),
                        pd.Timestamp(fold["test_last"])) for fold, model in load_fold_models(reports)]


def fold_sources(evaluation: Evaluation) -> list[ModelSource]:
    """The in-memory fold models of an evaluation as explanation sources."""
    return [ModelSource(evaluation.fold_models[f.number], f"fold {f.number} model (trained to {f.train_end.date()})",
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

    def explain(self, table: pd.DataFrame) -> pd.DataFrame:
        """One row per day: probabilities, both models' base values, margins, per-feature and per-family SHAP."""
        groups: dict[int, list[pd.Timestamp]] = {}
        sources: dict[int, tuple[ModelSource, str]] = {}
        for day in table.index:
            source, kind = self.source_for(day)
            key = id(source) * 10 + (kind == OUT_OF_SAMPLE)
            groups.setdefault(key, []).append(day)
            sources[key] = (source, kind)
        parts = [self._explain_block(table.loc[days], *sources[key]) for key, days in groups.items()]
        return pd.concat(parts).sort_index()

    def _explain_block(self, table: pd.DataFrame, source: ModelSource, kind: str) -> pd.DataFrame:
        model = source.model
        X = table[model.features]
        pred = model.predict(X)
        cols: dict[str, pd.Series] = {c: pred[c] for c in ("p_cascade", "p_long", "p_short")}
        cols["basis"] = pd.Series(kind, index=X.index)
        cols["model_used"] = pd.Series(source.label, index=X.index)
        cols["long_prior"] = pd.Series(model.long_share, index=X.index)  # the training window's long share: the side's yardstick
        for name, booster, columns in model.boosters():
            contrib = contributions(booster, X[columns])
            # every model input gets a column; those a booster does not read contribute exactly 0
            contrib = Contributions(contrib.values.reindex(columns=model.features, fill_value=0.0), contrib.base)
            cols[f"{name}_base"] = contrib.base
            cols[f"{name}_margin"] = contrib.margin
            fam = contrib.by_family()
            cols.update({f"{name}_family__{f}": fam[f] for f in fam.columns})
            cols.update({f"{name}_shap__{f}": contrib.values[f] for f in contrib.values.columns})
        return pd.DataFrame(cols, index=X.index)


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


def plot_day(explanation: dict[str, object], path: Path, top: int = 12) -> None:
    """Waterfall of the cascade model's top features (SHAP) beside the per-family sums, both in log-odds; ``explanation`` is
    an answer of the forecast path with its detail (``forecast.predict.CoinForecaster.forecast(..., detail=True)``)."""
    import shap

    plt = pyplot()

    cascade = explanation["cascade"]
    values_of = explanation["feature_values"]
    from features.build import feature_label

    names = list(cascade["shap_by_feature"])
    values = np.array([cascade["shap_by_feature"][n] for n in names])
    # each bar named by its label with its value in its unit, as the family declares them (`30-day realized volatility
    # 27.8 %`), not a raw name beside a unitless number
    labels = [feature_label(n, None if values_of.get(n) is None else float(values_of[n])) for n in names]
    exp = shap.Explanation(values=values, base_values=cascade["base_value"], data=None, feature_names=labels)
    shap.plots.waterfall(exp, max_display=top, show=False)
    fig = plt.gcf()
    checklist = explanation.get("checklist") or []
    fig.set_size_inches(17, 6.5 + (1.6 if checklist else 0))
    ax_w = fig.axes[0]
    low = 0.1 if not checklist else 0.3  # room for the checklist under the waterfall
    ax_w.set_position([0.36, low, 0.33, 0.86 - low])  # room on the left for the features' meanings
    asset = f"{explanation['asset']} " if explanation.get("asset") else ""
    ax_w.set_title(f"{asset}{explanation['day']}: P(cascade within {explanation['horizon_days']}d) = {explanation['p_cascade']:.2f}\n"
                   f"log-odds contributions ({explanation['basis']})"
                   + (f"\nmissing that day: {', '.join(explanation['missing_families'])}" if explanation.get("missing_families") else ""), fontsize=10)
    panels = [("cascade model: per family", cascade["shap_by_family"], "log-odds of a cascade (+ more likely)")]
    if explanation.get("direction_model"):
        d = explanation["direction_model"]
        panels.append((f"direction model: per family\nfrom the prior P(long | cascade) {d['base_probability']:.2f} to "
                       f"{explanation['p_long_given_cascade']:.2f}", d["shap_by_family"], "log-odds (+ long, − short squeeze)"))
    for k, (title, fams, xlabel) in enumerate(panels):
        ax_f = fig.add_axes([0.80, 0.58 - 0.48 * k if len(panels) > 1 else 0.1, 0.18, 0.3 if len(panels) > 1 else 0.76])
        order = sorted(fams, key=lambda name: fams[name])
        # one colour meaning in both panels: the family (as on the dashboard); the sign is the bar's side of zero
        ax_f.barh([title_of(name) for name in order], [fams[name] for name in order], color=[colour_of(name) for name in order])
        ax_f.axvline(0, c="black", lw=0.8)
        ax_f.set_title(title, fontsize=10)
        ax_f.set_xlabel(xlabel, fontsize=8)
    ax_w.set_xlabel("log-odds of a cascade (base value + contributions = margin)", fontsize=9, labelpad=24)  # below SHAP's E[f(X)]
    if checklist:  # the seed's checklist, every family, read by the model or not, under the waterfall
        lines = [f"{'ON ' if c['on'] else 'off'}  {title_of(c['family'])}: {c['warning']}" + ("" if c["read_by_model"] else " (not read by the model)")
                 + f"  [{c['values_text']}]" for c in checklist]
        fig.text(0.01, 0.01, "the seed's checklist\n" + "\n".join(lines), fontsize=7.5, va="bottom", family="monospace")
    save_figure(fig, path, dpi=100)
