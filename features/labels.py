"""Cascade labels — the only code in the project allowed to look forward.

A *cascade day* has total liquidations at least ``cascade_multiple`` times the trailing median of
the same series over the previous ``trailing_median_days`` (the day itself excluded), so the
judgement of day t uses data up to t only, and is scale-free: 2021's ordinary days, which
out-liquidate 2025's cascades in dollars, are compared with 2021, not with 2025.

Several liquidation series may cover a day (all-exchange, Binance-only): each day is judged on the
widest series that covers it, each series relative to its *own* history, so switching series
creates no step. Adjacent cascade days merge into one *event*; the target of day t is the
direction of the first event starting in (t, t + H], else ``none``.

The side of an event (and of a cascade day) is ``cascade_radar.rules.event_side``: the side holding at least
``side_share`` of its dollars; else the side its price move implies (a fall liquidates longs) when that move is at least
``side_sigmas`` of the coin's daily volatility before the event; else ``two-sided`` — a cascade, but no squeeze of one side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cascade_radar.config import LabelConfig
from cascade_radar.rules import EVENT_SIDES, event_side, move_sigmas
from features.schemas import SERIES

# widest scope first: (long column, short column, the stored series' scope — what an event's `series` says beside its size)
LIQUIDATION_SERIES: list[tuple[str, str, str]] = [
    ("liq_long_usd", "liq_short_usd", SERIES["liquidations"].scope),
    ("binance_liq_long_usd", "binance_liq_short_usd", SERIES["liquidations_binance"].scope),
    ("coinalyze_liq_long_usd", "coinalyze_liq_short_usd", SERIES["liquidations_coinalyze"].scope),
]
NONE = "none"  # the target of a day with no event ahead
TARGETS = (NONE, *EVENT_SIDES)  # none, long, short, two-sided
PRICE = "price_usd"  # the assembled panel's price: an event's move is measured on its daily close
EVENT_COLUMNS = ["start", "end", "days", "direction", "side_basis", "long_share", "price_move", "move_sigmas", "long_usd", "short_usd",
                 "total_usd", "peak_ratio", "series"]


@dataclass(frozen=True)
class Labels:
    daily: pd.DataFrame  # per day: liq_total_usd, liq_ratio, liq_series, cascade_day, close, daily_vol, day_direction, target, days_to_event
    events: pd.DataFrame  # per event: EVENT_COLUMNS (direction by event_side; side_basis, long_share, price_move, move_sigmas: why)


def price_terms(panel: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Per day: ``close`` and ``daily_vol`` — the std of daily log returns over the ``side_vol_days`` up to and including
    that day (so the volatility an event starting on s is measured against is the value of day s - 1: no look-ahead).
    Missing (NaN) without a price column."""
    close = panel[PRICE].astype(float).where(panel[PRICE] > 0) if PRICE in panel.columns else pd.Series(np.nan, index=panel.index)
    returns = np.log(close).diff()
    vol = returns.rolling(cfg.side_vol_days, min_periods=cfg.side_vol_min_days).std()
    return pd.DataFrame({"close": close, "daily_vol": vol}, index=panel.index)


def side_of(days: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp, long: float, short: float, cfg: LabelConfig) -> dict[str, object]:
    """The side of the days ``first``..``last`` (their liquidated dollars ``long``/``short``) by ``event_side``, with the terms
    it was decided on: the move is the log of the close of ``last`` over the close of the day before ``first``, against the
    daily volatility of that day before."""
    before = first - pd.Timedelta(days=1)
    base = days["close"].get(before, np.nan)
    vol = float(days["daily_vol"].get(before, np.nan))
    move = float(np.log(days["close"].get(last, np.nan) / base)) if np.isfinite(base) else float("nan")
    span = (last - first).days + 1
    direction, basis = event_side(long, short, move, vol, span, cfg.side_share, cfg.side_sigmas)
    return {"direction": direction, "side_basis": basis, "long_share": long / (long + short) if long + short > 0 else float("nan"),
            "price_move": move, "move_sigmas": move_sigmas(move, vol, span)}


def judge_days(panel: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Per day: the liquidation series used, total, ratio to its trailing median, cascade flag, close and daily volatility
    (``price_terms``), and a cascade day's side (``event_side`` on that day alone).

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
    chosen[["close", "daily_vol"]] = price_terms(panel, cfg)
    direction = pd.Series(pd.NA, index=index, dtype="string")
    for day in index[cascade.fillna(False).to_numpy(dtype=bool)]:  # a cascade day's side: the event rule on that day alone
        direction[day] = side_of(chosen, day, day, chosen.at[day, "liq_long_usd"], chosen.at[day, "liq_short_usd"], cfg)["direction"]
    chosen["day_direction"] = direction
    return chosen


def find_events(days: pd.DataFrame, cfg: LabelConfig) -> pd.DataFrame:
    """Merge cascade days at most ``merge_gap_days`` apart into events; the side by ``event_side`` on their summed dollars
    and their price move (``side_of``)."""
    hits = days.index[days["cascade_day"].fillna(False).astype(bool)]
    rows: list[dict[str, object]] = []
    group: list[pd.Timestamp] = []
    for day in hits:
        if group and (day - group[-1]).days > cfg.merge_gap_days:
            rows.append(_event_row(days, group, cfg))
            group = []
        group.append(day)
    if group:
        rows.append(_event_row(days, group, cfg))
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def _event_row(days: pd.DataFrame, group: list[pd.Timestamp], cfg: LabelConfig) -> dict[str, object]:
    part = days.loc[group]
    long, short = float(part["liq_long_usd"].sum()), float(part["liq_short_usd"].sum())
    return {
        "start": group[0], "end": group[-1], "days": len(group), **side_of(days, group[0], group[-1], long, short, cfg),
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
    target[complete] = NONE
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


def cascade_within(days_to_event: pd.Series, cascade_day: pd.Series, horizon: int) -> pd.Series:
    """The target of a shorter horizon h (the term structure): 1 where the first event starts in (t, t+h], 0 where none does
    and every day of (t, t+h] is judged, missing otherwise — so a day's h-day target is known h days after it, earlier
    than its H-day one. From the H-day labels' ``days_to_event`` (h <= H) and the days' ``cascade_day`` (missing: unjudged)."""
    judged = cascade_day.notna().astype(float)
    forward_judged = judged[::-1].rolling(horizon, min_periods=horizon).sum()[::-1].shift(-1)  # the next h days: labels only
    out = pd.Series(np.nan, index=days_to_event.index)
    out[forward_judged == horizon] = 0.0
    out[days_to_event <= horizon] = 1.0
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
