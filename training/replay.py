"""Event replays: how the warning built up before past cascades, from out-of-fold predictions only."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.rules import first_warning, side, side_right, side_uncertain, side_words, warning_window
from features.build import FeatureTable
from features.families import REGISTRY, colour_of, title_of
from training.explain import Explainer, present_by_family
from training.plotting import EVENT_COLOUR, pyplot, save_figure


@dataclass
class Replay:
    event: pd.Series
    days: pd.DataFrame  # per day before the event: p_cascade, p_long, p_short, alert, side, family contributions
    first_alert: pd.Timestamp | None
    lead_days: int | None
    side_at_first_alert: str | None
    covered_days: int
    earliest_alert: pd.Timestamp | None = None  # first alert anywhere in the window, possibly before the H-day warning window
    report: Path | None = None

    @property
    def slug(self) -> str:
        return f"{pd.Timestamp(self.event['start']).date()}_{self.event['direction']}"


def select_events(events: pd.DataFrame, settings: Settings, oof: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The configured events (matched within a day) plus the largest ones the out-of-fold period covers."""
    chosen, notes = [], []
    for wanted in settings.replay.events:
        day = pd.Timestamp(wanted)
        near = events[(events["start"] - day).abs() <= pd.Timedelta(days=1)]
        if near.empty:
            notes.append(f"{wanted}: no labelled event within a day (liquidation data may not cover it)")
        else:
            chosen.append(near.index[0])
    window = pd.Timedelta(days=settings.replay.window_days)
    covered = events[(events["start"] - window >= oof.index.min()) & (events["start"] <= oof.index.max() + pd.Timedelta(days=1))]
    extra = [i for i in covered.sort_values("peak_ratio", ascending=False).index if i not in chosen][: settings.replay.largest]
    chosen += extra
    return events.loc[chosen], notes


def replay_event(event: pd.Series, oof: pd.DataFrame, ft: FeatureTable, explainer: Explainer, settings: Settings,
                 side_skill: float | None = None) -> Replay:
    """The days before ``event``; ``side_skill``: the coin's out-of-fold side skill (the champion's), as every answer reads it
    to say "side uncertain"."""
    start = pd.Timestamp(event["start"])
    window = pd.date_range(start - pd.Timedelta(days=settings.replay.window_days), start - pd.Timedelta(days=1), freq="D")
    days = oof.reindex(window)[["fold", "p_cascade", "p_long", "p_short"]]
    have = days["p_cascade"].notna()
    explained = explainer.explain(ft.table.loc[window[have]]) if have.any() else pd.DataFrame(index=window[:0])
    # each family's push counts only the features with a value that day; a family with none is missing (NaN), never a cause
    shap = explained[[c for c in explained.columns if c.startswith("cascade_shap__")]]
    shap.columns = [c.removeprefix("cascade_shap__") for c in shap.columns]
    for fam, push in present_by_family(shap, ft.table).items():
        days[fam] = push
    # what the direction model made of each day: P(long | cascade) against the training long share, and its strongest push
    days["p_long_given_cascade"] = days["p_long"] / (days["p_long"] + days["p_short"])
    days["long_prior"] = explained["long_prior"] if "long_prior" in explained else np.nan
    direction = explained[[c for c in explained.columns if c.startswith("direction_shap__")]]
    direction.columns = [c.removeprefix("direction_shap__") for c in direction.columns]
    direction = present_by_family(direction, ft.table) if len(direction.columns) else direction
    days["direction_push"] = [None if row.isna().all() or not row.abs().max() else f"{title_of(row.abs().idxmax())} {row[row.abs().idxmax()]:+.2f}"
                              for _, row in direction.reindex(window).iterrows()] if len(direction.columns) else None
    days.attrs["horizon_days"] = settings.labels.horizon_days
    days["alert"] = days["p_cascade"] >= settings.alert_threshold
    days["side"] = side(days["p_long"], days["p_short"])
    uncertain = [side_uncertain(p, prior, settings.alerts.side_band, side_skill) if np.isfinite(p) else False
                 for p, prior in zip(days["p_long_given_cascade"], days["long_prior"], strict=True)]
    days.loc[np.asarray(uncertain, dtype=bool), "side"] = "uncertain"
    days.loc[~have, "side"] = None
    # lead time as the evaluation counts it: the first alert within the H days before the event
    alerts = days.index[days["alert"].fillna(False).astype(bool)]
    first = first_warning(alerts, start, settings.labels.horizon_days)
    return Replay(event, days, first, (start - first).days if first is not None else None,
                  days.at[first, "side"] if first is not None else None, int(have.sum()),
                  alerts[0] if len(alerts) else None)


def threshold_days(replay: Replay) -> int:
    return int(replay.days.attrs.get("horizon_days", 14))


def plot_replay(replay: Replay, threshold: float, path: Path, asset: str = "") -> None:
    plt = pyplot()
    days = replay.days
    fams = [c for c in REGISTRY if c in days.columns]
    fig, (ax_p, ax_c) = plt.subplots(2, 1, figsize=(11, 7), sharex=True, gridspec_kw={"height_ratios": [1, 1.2]})
    ax_p.plot(days.index, days["p_cascade"], c="black", marker=".", label="P(cascade within H)")
    ax_p.plot(days.index, days["p_long"], c="tab:red", lw=1, label="P(long squeeze)")
    ax_p.plot(days.index, days["p_short"], c="tab:blue", lw=1, label="P(short squeeze)")
    ax_p.axhline(threshold, c="grey", ls=":", label=f"alert threshold {threshold:g}")
    if replay.first_alert is not None:
        ax_p.axvline(replay.first_alert, c="darkorange", ls="--", label=f"first alert within H ({replay.lead_days} d before)")
    start_h = warning_window(replay.event["start"], threshold_days(replay))[0]
    ax_p.axvspan(start_h, days.index[-1] + pd.Timedelta(days=1), color="gold", alpha=0.12, label="warning window (H days)")
    start = pd.Timestamp(replay.event["start"])
    side_colour = EVENT_COLOUR[replay.event["direction"]]
    for ax in (ax_p, ax_c):  # the event day itself, on both panels
        ax.axvline(start, c=side_colour, lw=2.5, alpha=0.8)
    ax_p.plot([], [], c=side_colour, lw=2.5, label=f"event day ({side_words(replay.event['direction'])})")
    ax_p.set(ylim=(0, 1), ylabel="out-of-fold probability",
             title=f"{asset + ': ' if asset else ''}replay of the {start.date()} {side_words(replay.event['direction'])} event "
                   f"({replay.event['peak_ratio']:.1f}x median liquidations)")
    ax_p.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)  # beside the plot, never over the lines
    pos_base = np.zeros(len(days))
    neg_base = np.zeros(len(days))
    for fam in fams:
        v = days[fam].fillna(0).to_numpy()
        pos, neg = np.clip(v, 0, None), np.clip(v, None, 0)
        ax_c.bar(days.index, pos, bottom=pos_base, color=colour_of(fam), label=title_of(fam), width=0.8)
        ax_c.bar(days.index, neg, bottom=neg_base, color=colour_of(fam), width=0.8)
        pos_base += pos
        neg_base += neg
    ax_c.axhline(0, c="black", lw=0.8)
    top, bottom = float(pos_base.max(initial=0.0)), float(neg_base.min(initial=0.0))
    pad = 0.08 * max(top - bottom, 0.1)
    ax_c.set_ylim(bottom - pad, top + pad)  # every stacked bar whole, none cut at the top
    ax_c.set(ylabel="contribution to P(cascade), log-odds", title="Per-family SHAP contributions (out-of-fold models)")
    ax_c.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    ax_c.set_xlim(days.index[0] - pd.Timedelta(days=1), start + pd.Timedelta(days=1))
    fig.autofmt_xdate()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def reconstruction_lines(replay: Replay, panel: pd.DataFrame, ft: FeatureTable, settings: Settings) -> list[str]:
    """The build-up in a desk analyst's words (``features.reconstruction``) beside the model's path, as Markdown."""
    from features.reconstruction import reconstruct

    built = reconstruct(panel, ft.table, pd.Timestamp(replay.event["start"]), settings.replay.window_days)
    model = (f"The model: first alert {replay.first_alert.date()}, {replay.lead_days} days ahead, side `{replay.side_at_first_alert}`"
             if replay.first_alert is not None else f"The model: no alert in the {settings.labels.horizon_days} days before the event")
    pushed = replay.days[[c for c in REGISTRY if c in replay.days.columns]].sum().sort_values(ascending=False)
    if len(pushed.dropna()):
        model += "; over the window the families that pushed P(cascade) up most: " + ", ".join(
            f"{title_of(f)} {v:+.2f}" for f, v in pushed.dropna().head(3).items() if v > 0)
    rows = [[title_of(m["family"]), m["what"], m["text"].removeprefix(m["what"]).strip(), built["warning_onsets"].get(m["family"], {}).get("day", "-"),
             built["warning_onsets"].get(m["family"], {}).get("warning", "")] for m in built["families"]]
    from tabulate import tabulate

    return ["## Reconstruction", "", built["text"], "", model + ".", "",
            tabulate(rows, headers=["family", "series", "move (swing in the window's direction)", "warning on", "warning"], tablefmt="github"), ""]


def _verdict(said: str | None, event_direction: str) -> str:
    """The first alert's side against the event's (``side_right``): 'right', 'wrong', or why it is not scored."""
    right = side_right(None if said == "uncertain" else said, event_direction)
    if right is None:
        return "side uncertain: not scored" if said == "uncertain" else "two-sided event: not scored for side"
    return "right" if right else "wrong"


def write_replay(replay: Replay, settings: Settings, directory: Path, panel: pd.DataFrame | None = None, ft: FeatureTable | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    png = directory / f"{replay.slug}.png"
    plot_replay(replay, settings.alert_threshold, png, settings.asset)
    e = replay.event
    table = replay.days.copy()
    table.index = table.index.strftime("%Y-%m-%d")
    fam_cols = [c for c in REGISTRY if c in table.columns]
    show = table[["p_cascade", "p_long", "p_short", "alert", "side", "p_long_given_cascade", "long_prior", "direction_push", *fam_cols]].rename(
        columns={c: title_of(c) for c in fam_cols} | {"p_long_given_cascade": "P(long | cascade)", "long_prior": "prior", "direction_push": "direction: strongest push"})
    said = table["side"].dropna()
    direction_line = (f"**Direction, day by day**: P(long | cascade) went from {table['p_long_given_cascade'].dropna().iloc[0]:.2f} to "
                      f"{table['p_long_given_cascade'].dropna().iloc[-1]:.2f} against a training long share of {table['long_prior'].dropna().iloc[-1]:.2f}; "
                      f"of {len(said)} days it said long on {(said == 'long').sum()}, short on {(said == 'short').sum()}, uncertain on "
                      f"{(said == 'uncertain').sum()} — the event was a {side_words(e['direction'])}."
                      if len(said) and table["long_prior"].notna().any() else "")
    lines = [
        f"# Replay: {pd.Timestamp(e['start']).date()} — {side_words(e['direction'])}",
        "",
        f"Liquidations: longs ${e['long_usd'] / 1e6:,.0f}M, shorts ${e['short_usd'] / 1e6:,.0f}M over {e['days']} day(s), "
        f"{e['peak_ratio']:.1f}x the trailing median ({e['series']}).",
        "",
        f"Probabilities are **out-of-fold** (the model of the walk-forward fold whose test block holds each day — "
        f"what the model would have said then); {replay.covered_days} of the {len(replay.days)} days before the event have one.",
        "",
        (f"**First alert**: {replay.first_alert.date()} — **{replay.lead_days} days** before the event, "
         f"predicted side `{replay.side_at_first_alert}` ({_verdict(replay.side_at_first_alert, e['direction'])})."
         if replay.first_alert is not None else f"**No alert** in the {settings.labels.horizon_days} days before the event "
         f"(P(cascade) stayed below {settings.alert_threshold:g})."),
        "" if replay.earliest_alert is None or replay.earliest_alert == replay.first_alert else
        f"An earlier alert came on {replay.earliest_alert.date()} ({(pd.Timestamp(e['start']) - replay.earliest_alert).days} days before), "
        f"outside the {settings.labels.horizon_days}-day horizon the model predicts for.",
        "",
        direction_line,
        "",
        f"![replay]({png.name})",
        "",
        *(reconstruction_lines(replay, panel, ft, settings) if panel is not None and ft is not None else []),
        "Per-family columns: contribution to P(cascade) in log-odds; `direction: strongest push` is the direction model's family that "
        "pushed hardest that day (+ towards long, − towards short, log-odds); a family with no data that day reads `missing` (scored as missing, never a cause); `side` is `uncertain` within "
        f"{settings.alerts.side_band:g} of the prior.",
        "",
        show.to_markdown(floatfmt=".3f", missingval="missing"),
    ]
    path = directory / f"{replay.slug}.md"
    path.write_text("\n".join(lines))
    replay.report = path
    return path


def write_index(replays: list[Replay], notes: list[str], directory: Path) -> Path:
    rows = ["| event | direction | size | first alert within H | lead (days) | side at first alert | earliest alert in window | report |",
            "|---|---|---|---|---|---|---|---|"]
    for r in replays:
        e = r.event
        rows.append(f"| {pd.Timestamp(e['start']).date()} | {e['direction']} | {e['peak_ratio']:.1f}x | "
                    f"{r.first_alert.date() if r.first_alert is not None else 'none'} | {r.lead_days if r.lead_days is not None else '-'} | "
                    f"{r.side_at_first_alert or '-'} | {r.earliest_alert.date() if r.earliest_alert is not None else '-'} | [{r.slug}]({r.report.name}) |")
    text = "# Event replays\n\nOut-of-fold probabilities and per-family contributions before each event.\n\n" + "\n".join(rows)
    if notes:
        text += "\n\nNot replayed:\n\n" + "\n".join(f"- {n}" for n in notes)
    path = directory / "index.md"
    path.write_text(text + "\n")
    return path
