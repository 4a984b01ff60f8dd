"""Cascade labels — the only code in the project allowed to look forward.

A *cascade day* has total liquidations at least ``cascade_multiple`` times the trailing median of
the same series over the previous ``trailing_median_days`` (the day itself excluded), so the
judgement of day t uses data up to t only, and is scale-free: 2021's ordinary days, which
out-liquidate 2025's cascades in dollars, are compared with 2021, not with 2025.

Several liquidation series may cover a day (all-exchange, Binance-only): each day is judged on the
widest series that covers it, each series relative to its *own* history, so switching series
creates no step. Adjacent cascade days merge into one *event*; the target of day t is the
direction of the first event starting in (t, t + H], else ``none``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cascade_radar.config import LabelConfig
from features.schemas import SERIES

# widest scope first: (long column, short column, the stored series' scope — what an event's `series` says beside its size)
LIQUIDATION_SERIES: list[tuple[str, str, str]] = [
    ("liq_long_usd", "liq_short_usd", SERIES["liquidations"].scope),
    ("binance_liq_long_usd", "binance_liq_short_usd", SERIES["liquidations_binance"].scope),
    ("coinalyze_liq_long_usd", "coinalyze_liq_short_usd", SERIES["liquidations_coinalyze"].scope),
]
TARGETS = ("none", "long", "short")


@dataclass(frozen=True)
class Labels:
    daily: pd.DataFrame  # per day: liq_total_usd, liq_ratio, liq_series, cascade_day, day_direction, target, days_to_event
    events: pd.DataFrame  # per event: start, end, days, direction, long_usd, short_usd, total_usd, peak_ratio, series


def judge_days(panel: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Per day: the liquidation series used, total, ratio to its trailing median, cascade flag, direction.

    ``cascade_day`` is missing (not False) where no series covers the day with enough history.
    """
    index = panel.index
    chosen = pd.DataFrame({"liq_series": pd.Series(pd.NA, index=index, dtype="string"),
                           "liq_long_usd": np.nan, "liq_short_usd": np.nan, "liq_total_usd": np.nan, "liq_ratio": np.nan}, index=index)
    for long_col, short_col, name in LIQUIDATION_SERIES:
        if long_col not in panel.columns or short_col not in panel.columns:
            continue
        long, short = panel[long_col], panel[short_col]
        total = long + short
        trailing = total.shift(1).rolling(cfg.trailing_median_days, min_periods=cfg.min_trailing_days).median()
        ratio = total / trailing.where(trailing > 0)
        free = chosen["liq_ratio"].isna() & ratio.notna()
        chosen.loc[free, "liq_series"] = name
        chosen.loc[free, "liq_long_usd"] = long[free]
        chosen.loc[free, "liq_short_usd"] = short[free]
        chosen.loc[free, "liq_total_usd"] = total[free]
        chosen.loc[free, "liq_ratio"] = ratio[free]
    known = chosen["liq_ratio"].notna()
    cascade = (chosen["liq_ratio"] >= cfg.cascade_multiple).astype("boolean").where(known)
    chosen["cascade_day"] = cascade
    direction = np.where(chosen["liq_long_usd"] >= chosen["liq_short_usd"], "long", "short")
    chosen["day_direction"] = pd.Series(direction, index=index, dtype="string").where(cascade.fillna(False).astype(bool))
    return chosen


def find_events(days: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Merge cascade days at most ``merge_gap_days`` apart into events; direction by summed dollars."""
    hits = days.index[days["cascade_day"].fillna(False).astype(bool)]
    rows: list[dict[str, object]] = []
    group: list[pd.Timestamp] = []
    for day in hits:
        if group and (day - group[-1]).days > cfg.merge_gap_days:
            rows.append(_event_row(days, group))
            group = []
        group.append(day)
    if group:
        rows.append(_event_row(days, group))
    columns = ["start", "end", "days", "direction", "long_usd", "short_usd", "total_usd", "peak_ratio", "series"]
    return pd.DataFrame(rows, columns=columns)


def _event_row(days: pd.DataFrame, group: list[pd.Timestamp]) -> dict[str, object]:
    part = days.loc[group]
    long, short = float(part["liq_long_usd"].sum()), float(part["liq_short_usd"].sum())
    return {
        "start": group[0], "end": group[-1], "days": len(group), "direction": "long" if long >= short else "short",
        "long_usd": long, "short_usd": short, "total_usd": long + short,
        "peak_ratio": float(part["liq_ratio"].max()), "series": str(part["liq_series"].iloc[0]),
    }


def make_targets(days: pd.DataFrame, events: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Target of day t: direction of the first event starting in (t, t+H], else ``none``.

    Missing where some day of (t, t+H] is not judged (outside liquidation coverage): calling such a
    day ``none`` would invent calm that was never observed.
    """
    index = days.index
    target = pd.Series(pd.NA, index=index, dtype="string")
    days_to_event = pd.Series(np.nan, index=index)
    judged = days["cascade_day"].notna().astype(float)
    # all of (t, t+H] judged <=> the next H days' judged-count equals H (forward window: labels only)
    forward_judged = judged[::-1].rolling(horizon, min_periods=horizon).sum()[::-1].shift(-1)
    complete = forward_judged == horizon
    target[complete] = "none"
    starts = events.set_index("start")["direction"] if len(events) else pd.Series(dtype="string")
    positions = index.get_indexer(starts.index)
    for pos, direction in zip(positions, starts.to_numpy(), strict=True):
        lo = max(0, pos - horizon)
        for t in range(lo, pos):
            if not pd.isna(days_to_event.iat[t]):  # an earlier event already starts after t: it is the first
                continue
            target.iat[t] = direction
            days_to_event.iat[t] = pos - t
    # a day whose window holds an event is labelled even if some later day of the window is unjudged
    return pd.DataFrame({"target": target, "days_to_event": days_to_event})


def major_ahead(target: pd.Series, events: pd.DataFrame, horizon: int, multiple: float) -> pd.Series:
    """1 where a *major* event (peak >= ``multiple`` x the median) starts in (t, t+H], 0 where the target is known
    and none does, missing where the target is missing."""
    index = target.index
    out = pd.Series(0.0, index=index).where(target.notna())
    major = events[events["peak_ratio"] >= multiple] if len(events) else events
    for start in major["start"] if len(major) else []:
        window = (index >= start - pd.Timedelta(days=horizon)) & (index < start)
        out[window] = 1.0
    return out


def build_labels(panel: pd.DataFrame, cfg: LabelConfig) -> Labels:
    """Judge every day, find events and make the prediction targets (and the major-tier target)."""
    days = judge_days(panel, cfg)
    events = find_events(days, cfg)
    targets = make_targets(days, events, cfg.horizon_days)
    targets["major_ahead"] = major_ahead(targets["target"], events, cfg.horizon_days, cfg.major_multiple)
    return Labels(pd.concat([days, targets], axis=1), events)


def label_study(panels: dict[str, pd.DataFrame], cfg: LabelConfig, baselines: tuple[int, ...] = (90, 180, 365),
                multiples: tuple[float, ...] = (4.0, 6.0, 8.0)) -> pd.DataFrame:
    """Events per asset and year for every (trailing-median window, multiple) pair: what each definition would call a cascade.

    Rows: (asset, year); columns: ``<window>d_<multiple>x``; plus the share of labelled days with an event ahead
    under the configured definition. Only years with liquidation coverage for the whole window appear.
    """
    rows = {}
    for asset, panel in panels.items():
        for window in baselines:
            for multiple in multiples:
                variant = cfg.model_copy(update={"trailing_median_days": window, "cascade_multiple": multiple})
                events = find_events(judge_days(panel, variant), variant)
                years = events["start"].dt.year.value_counts()
                for year, count in years.items():
                    rows.setdefault((asset, int(year)), {})[f"{window}d_{multiple:g}x"] = int(count)
        judged = judge_days(panel, cfg)["cascade_day"].notna()
        for year in judged[judged].index.year.unique():
            rows.setdefault((asset, int(year)), {})
    table = pd.DataFrame.from_dict(rows, orient="index").fillna(0).astype(int)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["asset", "year"])
    columns = [f"{w}d_{m:g}x" for w in baselines for m in multiples]
    return table.reindex(columns=columns, fill_value=0).sort_index()
