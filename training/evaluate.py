"""Walk-forward evaluation of the model and its baselines on the same folds, and the report."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402

from cascade_radar.config import Settings  # noqa: E402
from features.build import FeatureTable  # noqa: E402
from training.metrics import direction_day_accuracy, event_metrics, probability_metrics  # noqa: E402
from training.model import (  # noqa: E402
    PROBABILITY_COLUMNS,
    CascadeModel,
    PlattCalibrator,
    Predictor,
    baselines,
    is_cascade,
    model_features,
)
from training.splits import Fold, walk_forward_folds  # noqa: E402

OOF_COLUMNS = ["date", "fold", *PROBABILITY_COLUMNS, "target"]
TABLE_METRICS = ["pr_auc", "roc_auc", "brier", "brier_skill", "log_loss", "event_recall", "median_lead_days",
                 "false_alarms_per_30d", "direction_accuracy", "direction_day_accuracy"]


@dataclass
class Evaluation:
    folds: list[Fold]
    oof: dict[str, pd.DataFrame]  # predictor name -> date-indexed fold, p_cascade, p_long, p_short, target
    pooled: pd.DataFrame  # rows: predictor, columns: metrics
    per_fold: pd.DataFrame  # rows: (predictor, fold)
    fold_models: dict[int, CascadeModel]  # the model fitted for each fold: out-of-fold explanations use these

    def table(self) -> pd.DataFrame:
        return self.pooled[TABLE_METRICS]


def predictors(settings: Settings) -> list[Predictor]:
    return [CascadeModel(settings.model), *baselines()]


def _score(pred: pd.DataFrame, reference: pd.DataFrame, events: pd.DataFrame, settings: Settings) -> dict[str, float]:
    y = is_cascade(pred["target"])
    scores = probability_metrics(y, pred["p_cascade"].to_numpy(), reference["p_cascade"].to_numpy())
    scores.update(event_metrics(pred, events, settings.labels.horizon_days, settings.alert_threshold))
    scores["direction_day_accuracy"] = direction_day_accuracy(pred)
    return scores


def walk_forward(ft: FeatureTable, settings: Settings) -> Evaluation:
    """Fit every predictor on each fold's training days, predict its test days, score pooled and per fold."""
    labelled = ft.table[ft.table["target"].notna()]
    folds = walk_forward_folds(labelled.index, settings.folds, settings.purge_days)
    X = labelled[model_features(ft.features, settings.model.exclude_features)]
    target = labelled["target"].astype(str)
    parts: dict[str, list[pd.DataFrame]] = {}
    fold_models: dict[int, CascadeModel] = {}
    for fold in folds:
        for predictor in predictors(settings):
            predictor.fit(X.loc[fold.train_days], target.loc[fold.train_days])
            if isinstance(predictor, CascadeModel):
                fold_models[fold.number] = predictor
                if settings.model.calibrate and parts.get("model"):
                    earlier = pd.concat(parts["model"])
                    predictor.calibrator = PlattCalibrator().fit(earlier["margin"].to_numpy(), is_cascade(earlier["target"]))
            pred = predictor.predict(X.loc[fold.test_days])
            pred.insert(0, "fold", fold.number)
            pred["target"] = target.loc[fold.test_days]
            parts.setdefault(predictor.name, []).append(pred)
    oof = {name: pd.concat(frames).rename_axis("date") for name, frames in parts.items()}
    events = ft.labels.events
    reference = oof["base_rate"]
    pooled = pd.DataFrame({name: _score(pred, reference, events, settings) for name, pred in oof.items()}).T
    rows = {}
    for name, pred in oof.items():
        for fold in folds:
            sel = pred["fold"] == fold.number
            rows[(name, fold.number)] = _score(pred[sel], reference[sel], events, settings)
    per_fold = pd.DataFrame(rows).T.rename_axis(["predictor", "fold"])
    return Evaluation(folds, oof, pooled, per_fold, fold_models)


def gate(evaluation: Evaluation, settings: Settings) -> tuple[bool, list[str]]:
    """Does the model beat every configured baseline on every configured metric? Returns (passed, reasons)."""
    reasons = []
    model = evaluation.pooled.loc["model"]
    for baseline in settings.gate.baselines:
        for metric in settings.gate.metrics:
            mine, theirs = float(model[metric]), float(evaluation.pooled.loc[baseline, metric])
            if not (mine > theirs + settings.gate.min_margin):
                reasons.append(f"{metric} {mine:.4f} does not beat {baseline} ({theirs:.4f})")
    return not reasons, reasons


# ----------------------------------------------------------------------------- report
def format_table(table: pd.DataFrame) -> str:
    out = table.copy()
    for col in out.columns:
        out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}")
    return out.to_markdown()


FOLD_MODELS_DIR = "fold_models"


def write_fold_models(evaluation: Evaluation, directory: Path) -> None:
    """Each fold's model and its test block, so past days can be explained out-of-fold later."""
    root = directory / FOLD_MODELS_DIR
    shutil.rmtree(root, ignore_errors=True)
    for fold in evaluation.folds:
        evaluation.fold_models[fold.number].save(root / f"fold{fold.number}")
    (root / "folds.json").write_text(json.dumps([f.describe() for f in evaluation.folds], indent=1))


def write_oof(evaluation: Evaluation, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    oof = evaluation.oof["model"].reset_index()
    oof["date"] = oof["date"].dt.strftime("%Y-%m-%d")
    oof[OOF_COLUMNS].to_csv(path, index=False, float_format="%.6f")
    baselines_frame = pd.concat({name: pred for name, pred in evaluation.oof.items() if name != "model"}, names=["predictor"]).reset_index()
    baselines_frame["date"] = baselines_frame["date"].dt.strftime("%Y-%m-%d")
    baselines_frame.to_csv(path.with_name("oof_baselines.csv"), index=False, float_format="%.6f")


def plot_pr(evaluation: Evaluation, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, pred in evaluation.oof.items():
        y = is_cascade(pred["target"])
        precision, recall, _ = precision_recall_curve(y, pred["p_cascade"])
        ax.step(recall, precision, where="post", label=f"{name} (AP {evaluation.pooled.loc[name, 'pr_auc']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall, out-of-fold", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(evaluation: Evaluation, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name in ("model", "logistic", "rule"):
        pred = evaluation.oof[name]
        frac, mean = calibration_curve(is_cascade(pred["target"]), pred["p_cascade"], n_bins=10, strategy="quantile")
        ax.plot(mean, frac, marker="o", label=name)
    ax.set(xlabel="predicted P(cascade within H days)", ylabel="observed frequency", title="Reliability, out-of-fold", xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_timeline(evaluation: Evaluation, events: pd.DataFrame, threshold: float, path: Path) -> None:
    pred = evaluation.oof["model"]
    fig, ax = plt.subplots(figsize=(13, 4))
    ax.plot(pred.index, pred["p_cascade"], lw=0.8, c="black", label="P(cascade within H)")
    ax.fill_between(pred.index, 0, pred["p_long"], color="tab:red", alpha=0.25, lw=0, label="P(long squeeze)")
    ax.axhline(threshold, c="grey", ls=":", lw=1, label=f"alert threshold {threshold:g}")
    shown = events[(events["start"] >= pred.index[0]) & (events["start"] <= pred.index[-1])]
    for event in shown.itertuples():
        ax.axvline(event.start, color="tab:red" if event.direction == "long" else "tab:blue", lw=0.8, alpha=0.8)
    for fold in evaluation.folds[1:]:
        ax.axvline(fold.test_start, color="grey", lw=0.5, ls="--")
    ax.plot([], [], c="tab:red", label="long-squeeze event")
    ax.plot([], [], c="tab:blue", label="short-squeeze event")
    ax.set(ylim=(0, 1), title="Out-of-fold cascade probability with labelled events (dashed: fold boundaries)")
    ax.legend(loc="upper left", ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(evaluation: Evaluation, ft: FeatureTable, settings: Settings, directory: Path, extra: str = "") -> Path:
    """Markdown report + plots + out-of-fold predictions under ``directory``; returns the report path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_oof(evaluation, directory / "oof_predictions.csv")
    write_fold_models(evaluation, directory)
    plot_pr(evaluation, directory / "pr_curve.png")
    plot_reliability(evaluation, directory / "reliability.png")
    plot_timeline(evaluation, ft.labels.events, settings.alert_threshold, directory / "timeline.png")
    passed, reasons = gate(evaluation, settings)
    folds = pd.DataFrame([f.describe() for f in evaluation.folds]).set_index("fold")
    h = settings.labels.horizon_days
    lines = [
        f"# cascade-radar evaluation — {settings.asset}",
        "",
        f"Walk-forward, expanding window, {len(evaluation.folds)} folds, purge gap {settings.purge_days} days "
        f"(label horizon H = {h}). Alert: P(cascade) >= {settings.alert_threshold:g}. All numbers are out-of-fold.",
        "",
        "## Model vs baselines (pooled out-of-fold)",
        "",
        format_table(evaluation.table()),
        "",
        f"Gate ({' and '.join(settings.gate.metrics)} above every baseline): **{'passed' if passed else 'failed'}**"
        + ("" if passed else " — " + "; ".join(reasons)),
        "",
        "## Per fold",
        "",
        format_table(evaluation.per_fold[TABLE_METRICS]),
        "",
        "## Folds",
        "",
        folds.to_markdown(),
        "",
        "## Plots",
        "",
        "![precision-recall](pr_curve.png) ![reliability](reliability.png)",
        "",
        "![timeline](timeline.png)",
        "",
        extra,
    ]
    path = directory / "evaluation.md"
    path.write_text("\n".join(lines))
    return path
