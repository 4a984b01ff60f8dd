"""Every file a training run leaves for people: the Markdown report, its plots, out-of-fold predictions,
feature importance, events and the fold models. ``write_report`` is the one place that writes them
and it returns the paths it wrote, which the pipeline logs to MLflow as they are. A run writes them in its own
folder (``staged_reports``), published over the reports folder as one set when the run ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.files import staged_folder
from features.build import FeatureTable
from training.evaluate import POOLED, TABLE_METRICS, Evaluation, Verdict
from training.model import FOLD_MODELS_DIR, MAJOR, PROBABILITY_COLUMNS, CascadeModel, is_cascade, save_fold_models
from training.plotting import EVENT_COLOUR, pyplot, save_figure
from training.thresholds import line_of

OOF_COLUMNS = ["date", "asset", "fold", *PROBABILITY_COLUMNS, "target"]
OOF_FILE = "oof_predictions.csv"


@contextmanager
def staged_reports(settings: Settings) -> Iterator[Path]:
    """The run's own reports folder (``reports/.runs/<UTC time>-<pid>-…``, laid out like ``reports/``), published over
    ``reports/`` when the block ends: each file replaced by a rename, each ``fold_models/`` swapped whole. A block that
    raises, or a run killed inside it, leaves the published reports as they were; a killed run's folder is settled by the
    next run. Call it holding the training lock."""
    with staged_folder(settings.reports_root, whole=(FOLD_MODELS_DIR,)) as staged:
        yield staged


def format_table(table: pd.DataFrame) -> str:
    out = table.copy()
    for col in out.columns:
        out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}")
    return out.to_markdown()


def write_oof(evaluation: Evaluation, directory: Path) -> list[Path]:
    oof = evaluation.oof["model"].reset_index()
    oof["date"] = oof["date"].dt.strftime("%Y-%m-%d")
    path = directory / OOF_FILE
    heads = [c for c in oof.columns if c == MAJOR or c.startswith(("p_cascade_", "within_"))]  # the heads' answers and targets
    oof[[*OOF_COLUMNS, *heads]].to_csv(path, index=False, float_format="%.6f")
    baselines_frame = pd.concat({name: pred for name, pred in evaluation.oof.items() if name != "model"}, names=["predictor"]).reset_index()
    baselines_frame["date"] = baselines_frame["date"].dt.strftime("%Y-%m-%d")
    other = directory / "oof_baselines.csv"
    baselines_frame.to_csv(other, index=False, float_format="%.6f")
    return [path, other]


def read_oof(directory: Path) -> pd.DataFrame:
    """The out-of-fold predictions of the last evaluation written under ``directory``."""
    path = directory / OOF_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: out-of-fold predictions come from an evaluation — run `make train` first")
    return pd.read_csv(path, parse_dates=["date"]).set_index("date")


def plot_pr(evaluation: Evaluation, asset: str, path: Path) -> Path:  # one coin's view of the evaluation
    from sklearn.metrics import precision_recall_curve

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, pred in evaluation.oof.items():
        precision, recall, _ = precision_recall_curve(is_cascade(pred["target"]), pred["p_cascade"])
        ax.step(recall, precision, where="post", label=f"{name} (AP {evaluation.scores.loc[(asset, name), 'pr_auc']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", title=f"{asset}: precision-recall, out-of-fold", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    return save_figure(fig, path)


def plot_reliability(evaluation: Evaluation, asset: str, path: Path) -> Path:
    """``asset``'s reliability diagram, out of fold: the model's bins are the ones its champion carries
    (``training.yardstick``) and the dashboard's calibration chart draws; two baselines beside it."""
    from training.yardstick import reliability_bins

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for name in ("model", "logistic", "rule"):
        pred = evaluation.oof[name]
        pred = pred[pred["asset"] == asset]
        bins = reliability_bins(is_cascade(pred["target"]), pred["p_cascade"].to_numpy())
        ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], marker="o", label=name)
    coin = ((evaluation.yardstick or {}).get("coins") or {}).get(asset)
    if coin and coin.get("base_rate") is not None:
        ax.axhline(coin["base_rate"], c="grey", ls=":", lw=1, label=f"base rate {coin['base_rate']:.2f}")
    ax.set(xlabel="predicted P(cascade within H days)", ylabel="observed frequency", title=f"{asset}: reliability, out-of-fold",
           xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="upper left")
    return save_figure(fig, path)


def plot_timeline(evaluation: Evaluation, events: pd.DataFrame, threshold: float, horizon: int, asset: str, path: Path) -> Path:
    """Out-of-fold P(cascade) with every alert episode shaded as a hit (an event followed) or a false alarm, and the
    events marked by side and size."""
    from training.metrics import judge_episodes

    plt = pyplot()
    pred = evaluation.oof["model"].sort_index()
    fig, ax = plt.subplots(figsize=(13, 4.5))
    episodes = judge_episodes(pred["p_cascade"], threshold, events, horizon)
    for ep in episodes.itertuples():
        hit = ep.outcome == "hit"
        ax.axvspan(ep.first, ep.last + pd.Timedelta(days=1), color="tab:green" if hit else "tab:gray", alpha=0.18 if hit else 0.25, lw=0)
    hits, false_alarms = int((episodes["outcome"] == "hit").sum()), int((episodes["outcome"] == "false alarm").sum())
    ax.plot(pred.index, pred["p_cascade"], lw=0.8, c="black", label="P(cascade within H), out-of-fold")
    ax.fill_between(pred.index, 0, pred["p_long"], color="tab:red", alpha=0.2, lw=0, label="P(long squeeze)")
    ax.axhline(threshold, c="grey", ls=":", lw=1, label=f"alert threshold {threshold:g}")
    shown = events[(events["start"] >= pred.index[0]) & (events["start"] <= pred.index[-1])]
    for event in shown.itertuples():
        colour = EVENT_COLOUR[event.direction]
        ax.axvline(event.start, color=colour, lw=0.6, alpha=0.5)
        ax.scatter([event.start], [1.02], s=12 + 4 * min(float(event.peak_ratio), 30), color=colour, clip_on=False, zorder=5)
    for fold in evaluation.folds[1:]:
        ax.axvline(fold.test_start, color="grey", lw=0.5, ls="--")
    ax.scatter([], [], color=EVENT_COLOUR["long"], s=30, label="long-squeeze event (size: x median)")
    ax.scatter([], [], color=EVENT_COLOUR["short"], s=30, label="short-squeeze event")
    ax.scatter([], [], color=EVENT_COLOUR["two-sided"], s=30, label="two-sided event")
    ax.fill_between([], [], color="tab:green", alpha=0.3, label=f"alert episode followed by an event ({hits})")
    ax.fill_between([], [], color="tab:gray", alpha=0.4, label=f"false alarm ({false_alarms})")
    ax.set(ylim=(0, 1), ylabel="P(cascade within H days)", xlabel="day (dashed: walk-forward fold boundaries)")
    ax.set_title(f"{asset}: out-of-fold cascade probability, alert episodes and labelled events", pad=16)  # above the event markers
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    return save_figure(fig, path)


def feature_importance(model: CascadeModel) -> pd.DataFrame:
    imp = pd.DataFrame({"feature": model.features})
    for name, booster, columns in model.boosters():
        gain = pd.Series(booster.feature_importance("gain"), index=columns)
        imp[f"{name}_gain"] = gain.reindex(model.features, fill_value=0.0).to_numpy()
    if "direction_gain" not in imp:
        imp["direction_gain"] = 0.0
    return imp.sort_values("cascade_gain", ascending=False)


def plot_importance(imp: pd.DataFrame, asset: str, path: Path, top: int = 25) -> Path:
    plt = pyplot()
    head = imp.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 7))
    ax.barh(head["feature"], head["cascade_gain"])
    ax.set(title=f"{asset}: cascade model, top {top} features by gain", xlabel="total gain")
    return save_figure(fig, path)


def skill_section(model: CascadeModel, asset: str) -> list[str]:
    """The report's lines on expected skill by missing families: the user tiers, every single family missing, and the floor."""
    if not model.skill:
        return []
    from training.skill import TIER_LABELS, TIERS, skill_frame, tier_skill

    frame = skill_frame(model.skill, [asset])
    singles = frame[~frame["missing"].str.contains(r"\+", regex=True)]
    tiers = tier_skill(model.skill, asset)
    return ["## Expected skill by the families a day lacks", "",
            "Out-of-fold ROC-AUC of each fold's model re-scoring its own test days with those families blanked (scored as missing); a day "
            "is answered when its number reaches the floor. Every pair and triple is in `skill_by_missing.csv`.", "",
            "| user tier | families missing | ROC-AUC |", "|---|---|---|",
            *[f"| {TIER_LABELS[tier]} | {', '.join(TIERS[tier]) or 'none'} | {'-' if v is None else f'{v:.3f}'} |" for tier, v in tiers.items()], "",
            singles.set_index("missing").to_markdown(floatfmt=".3f"), ""]


HEAD_LABELS = {"major_head_roc_auc": "major ROC-AUC, P(major)", "major_roc_auc": "major ROC-AUC, P(cascade)",
               "major_head_pr_auc": "major PR-AUC, P(major)", "major_pr_auc": "major PR-AUC, P(cascade)", "major_base_rate": "major base rate"}
HORIZON_LABELS = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "p_cascade_roc_auc": "ROC-AUC, P(cascade)", "base_rate": "base rate"}


def head_label(metric: str) -> str:
    """A severity or term-structure metric as the tables head it: 'major ROC-AUC, P(major)', '3 d ROC-AUC, P(cascade)'."""
    if metric in HEAD_LABELS:
        return HEAD_LABELS[metric]
    h, _, what = metric.removeprefix("within_").partition("d_")
    return f"{h} d {HORIZON_LABELS.get(what, what)}"


def heads_section(evaluation: Evaluation, asset: str, settings: Settings) -> list[str]:
    """The report's lines on severity and the term structure: the major head against P(cascade) read as a major score, and
    each shorter horizon's head against its own target, beside the baselines (whose P(cascade) is their score of both)."""
    table = evaluation.heads_table(asset)
    if table.empty or table.isna().all().all():
        return []
    labels = {c: head_label(c) for c in table.columns}
    h = settings.labels.horizon_days
    return ["## Severity and term structure", "",
            f"`P(major)`: the major head — P(a cascade peaking at >= {settings.labels.major_multiple:g}x the trailing median within {h} days), "
            "never above P(cascade) — scored on the major tier beside P(cascade) read as a major score. `<h> d`: each shorter horizon's "
            "head, P(cascade within h days), against its own target (an event starting within h days), beside P(cascade within "
            f"{h} days) read as that score; a baseline has neither head, its P(cascade) is its score of both. All out-of-fold.", "",
            format_table(table.rename(columns=labels)), ""]


def yardstick_section(evaluation: Evaluation, asset: str, directory: Path) -> tuple[list[str], list[Path]]:
    """The report's lines on the yardstick every answer carries (``training.yardstick``): the base rate, the spread of the
    out-of-fold answers a day's percentile is read from, and the calibration bins (``calibration.csv``, drawn in
    ``reliability.png``); with the files written."""
    coin = ((evaluation.yardstick or {}).get("coins") or {}).get(asset)
    if not coin or coin.get("base_rate") is None:
        return [], []
    path = directory / "calibration.csv"
    pd.DataFrame(coin["calibration"]).to_csv(path, index=False, float_format="%.4f")
    q = coin["quantiles"]
    h = evaluation.yardstick["horizon_days"]  # type: ignore[index]
    lines = ["## The yardstick of every answer", "",
             f"Base rate: **{coin['base_rate']:.3f}** — {coin['event_days']:,} of {asset}'s {coin['days']:,} out-of-fold days "
             f"({coin['first_day']}..{coin['last_day']}) were followed by a cascade within {h} days. Every answer for {asset} carries it "
             "(`base_rate`), its P(cascade) relative to it (`relative_risk`) and its percentile among the out-of-fold answers below "
             "(`percentile`).", "",
             "| out-of-fold P(cascade) | 10th | 25th | 50th | 75th | 90th percentile |", "|---|---|---|---|---|---|",
             "| | " + " | ".join(f"{q[k]:.3f}" for k in (10, 25, 50, 75, 90)) + " |", "",
             "Calibration (the [reliability diagram](reliability.png), bins in `calibration.csv`; the dashboard's coin page draws the same):", "",
             "| P(cascade) bin | mean predicted | observed | days |", "|---|---|---|---|",
             *[f"| {b['p_low']:.3f}–{b['p_high']:.3f} | {b['mean_predicted']:.3f} | {b['observed']:.3f} | {b['days']} |" for b in coin["calibration"]], ""]
    return lines, [path]


def _count(evaluation: Evaluation, asset: str, metric: str) -> str:
    """A count among the model's scores of ``asset`` ('?' where the run did not measure it)."""
    value = evaluation.scores.loc[(asset, "model")].get(metric, float("nan")) if (asset, "model") in evaluation.scores.index else float("nan")
    return "?" if pd.isna(value) else f"{int(value)}"


def write_report(evaluation: Evaluation, verdict: Verdict, ft: FeatureTable, model: CascadeModel, settings: Settings,
                 directory: Path) -> list[Path]:
    """The report, its plots and tables, and the fold models under ``directory``; returns every path written
    (the report itself first)."""
    directory.mkdir(parents=True, exist_ok=True)
    asset = settings.asset
    written = write_oof(evaluation, directory)
    written += save_fold_models(evaluation.fold_models, evaluation.fold_descriptions(), directory)
    written.append(plot_pr(evaluation, asset, directory / "pr_curve.png"))
    written.append(plot_reliability(evaluation, asset, directory / "reliability.png"))
    line, line_basis = line_of(evaluation.yardstick, asset, settings.alert_threshold)
    written.append(plot_timeline(evaluation, ft.labels.events, line, settings.labels.horizon_days, asset, directory / "timeline.png"))
    imp = feature_importance(model)
    imp.to_csv(directory / "feature_importance.csv", index=False)
    written += [directory / "feature_importance.csv", plot_importance(imp, asset, directory / "feature_importance.png")]
    ft.labels.events.to_csv(directory / "events.csv", index=False)
    written.append(directory / "events.csv")
    if model.skill:
        from training.skill import skill_frame

        skill_frame(model.skill, [asset]).to_csv(directory / "skill_by_missing.csv", index=False, float_format="%.4f")
        written.append(directory / "skill_by_missing.csv")
    yardstick_lines, yardstick_files = yardstick_section(evaluation, asset, directory)
    written += yardstick_files
    folds = pd.DataFrame(evaluation.fold_descriptions()).set_index("fold")
    h = settings.labels.horizon_days
    lines = [
        f"# cascade-radar evaluation — {asset}",
        "",
        f"Walk-forward, expanding window, {len(evaluation.folds)} folds, purge gap {settings.purge_days} days "
        f"(label horizon H = {h}). All numbers are out-of-fold. Alert lines are chosen, not fixed: every predictor is judged at "
        "its own line, each fold at the line the coin's earlier folds chose (the first fold at the configured "
        f"{settings.alert_threshold:g}); the timeline and the live answers use {asset}'s line from every out-of-fold day: "
        f"P(cascade) >= {line:.2f} — {line_basis}.",
        "",
        f"The model is pooled over {', '.join(settings.assets)} (one model for every coin); the baselines are fitted on "
        f"{asset} alone. Direction metrics are on days with a long or short event ahead (two-sided: "
        f"{_count(evaluation, asset, 'two_sided_days')} days before {_count(evaluation, asset, 'two_sided_events')} caught events, "
        "not scored for side); `base_rate`'s direction accuracy is "
        "\"always the majority side of the training window\". `major_*`: the same probabilities scored against major events "
        f"(peak >= {settings.labels.major_multiple:g}x the median).",
        "",
        f"## Model vs baselines — {asset}, every fold together",
        "",
        format_table(evaluation.table(asset)),
        "",
        f"Gate ({' and '.join(settings.gate.metrics)} above every baseline): **{'passed' if verdict.passed else 'failed'}**"
        + ("" if verdict.passed else " — " + "; ".join(verdict.reasons)),
        "",
        "## Per fold",
        "",
        format_table(evaluation.per_fold.loc[asset][TABLE_METRICS]),
        "",
        *heads_section(evaluation, asset, settings),
        *skill_section(model, asset),
        *yardstick_lines,
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
        verdict.note(),
    ]
    path = directory / "evaluation.md"
    path.write_text("\n".join(lines))
    return [path, *written]


SUMMARY_COLUMNS = {"pr_auc": "PR-AUC", "roc_auc": "ROC-AUC", "brier_skill": "Brier skill", "base_rate": "prevalence",
                   "event_recall": "event recall", "median_lead_days": "median lead (d)", "false_alarms_per_30d": "false alarms / 30 d",
                   "direction_day_accuracy": "direction acc.", "direction_auc": "direction AUC", "direction_block_auc": "direction block AUC",
                   "direction_brier_skill": "direction Brier skill", "direction_log_loss": "direction log loss", "major_pr_auc": "major PR-AUC",
                   "major_roc_auc": "major ROC-AUC"}


def coin_table(evaluation: Evaluation) -> pd.DataFrame:
    """One row per coin and pooled: the model's metrics, the volatility baseline's beside them (``vol …``), and the
    majority-side direction accuracy (the base rate's)."""
    rows = {}
    for asset in [*evaluation.assets, POOLED]:
        table = evaluation.scores.loc[asset]
        row = {label: table.loc["model", key] for key, label in SUMMARY_COLUMNS.items()}
        if "volatility" in table.index:
            for key in ("pr_auc", "roc_auc", "brier_skill", "event_recall"):
                row[f"vol {SUMMARY_COLUMNS[key]}"] = table.loc["volatility", key]
        heads = [c for c in ("major_head_roc_auc", "major_head_pr_auc") if c in table.columns]  # the model's heads, where it has them
        heads += [c for c in table.columns if c.startswith("within_") and c.endswith("d_roc_auc")]
        for key in heads:
            row[head_label(key)] = table.loc["model", key]
        if "volatility" in table.index and "major_roc_auc" in table.columns:
            row["vol major ROC-AUC"] = table.loc["volatility", "major_roc_auc"]
        if "base_rate" in table.index:
            row["majority side acc."] = table.loc["base_rate", "direction_day_accuracy"]
            row["prior log loss"] = table.loc["base_rate", "direction_log_loss"]  # the training window's long share
        rows[asset] = row
    return pd.DataFrame(rows).T.rename_axis("asset")


def write_summary(evaluation: Evaluation, verdicts: dict[str, Verdict], root: Path, folders: dict[str, Path] | None = None) -> list[Path]:
    """The per-coin table (Markdown and CSV) of a pooled evaluation in ``root`` (the reports root, or a run's own
    folder), linking each coin's report and reliability diagram in ``folders`` (each coin's report folder); returns the
    paths."""
    root.mkdir(parents=True, exist_ok=True)
    table = coin_table(evaluation)
    table["gate"] = [("passed" if verdicts[a].passed else "failed") if a in verdicts else "" for a in table.index]
    csv = root / "coins.csv"
    table.to_csv(csv, float_format="%.4f")
    failed = [f"- {a}: " + "; ".join(v.reasons) for a, v in verdicts.items() if not v.passed]
    lines = [f"# cascade-radar — every coin, pooled model ({len(evaluation.folds)} walk-forward folds, out-of-fold)", "",
             format_table(table.drop(columns="gate")), "", "Gate: " + ", ".join(f"{a} {'passed' if v.passed else 'failed'}" for a, v in verdicts.items()),
             "", *failed]
    if folders:  # each coin's own report and its reliability diagram (out-of-fold calibration), per coin
        links = [f"- {a}: [report]({(f / 'evaluation.md').relative_to(root).as_posix()}) · "
                 f"[reliability diagram]({(f / 'reliability.png').relative_to(root).as_posix()})" for a, f in folders.items()]
        lines += ["", "Each coin's report and reliability diagram (out-of-fold calibration; `prevalence` is the base rate every answer "
                  "carries):", "", *links]
    md = root / "coins.md"
    md.write_text("\n".join(lines) + "\n")
    return [md, csv]
