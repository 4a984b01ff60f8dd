"""Family 8 — liquidation memory: what has already been liquidated by the end of day t.

Not a leak: a day's liquidations are published by the end of that day, so they are known when the
forecast for day t is made; the target is about the *next* H days. Intensity is each day's total
relative to the trailing median of the same series (the day itself excluded), on the widest series
covering the day — the same scale-free measure the label uses, computed here backwards only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.labels import LIQUIDATION_SERIES, judge_days
from features.transforms import expanding_rank, rolling_mean

SERIES_COLUMNS = tuple(c for long, short, _ in LIQUIDATION_SERIES for c in (long, short))
MEMORY_CAP_DAYS = 365


def days_since(flag: pd.Series, known: pd.Series, cap: int) -> pd.Series:
    """Days since ``flag`` was last true (0 on the day itself), capped; missing where ``known`` is false."""
    positions = np.arange(len(flag), dtype=float)
    last = pd.Series(np.where(flag.to_numpy(dtype=bool), positions, np.nan), index=flag.index).ffill()
    out = (positions - last).clip(upper=cap).fillna(cap if flag.any() else np.nan)
    return out.where(known)


@family("liqmem", "liquidation memory", "tab:gray", inputs=(), optional_inputs=SERIES_COLUMNS,
        warnings=(Warning("liquidations running hot", ("liqmem_ratio_mean_7d",), ">=", 2.0),))
def liquidation_memory_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    days = judge_days(panel, cfg.labels)  # the configured label definition, so an override of it applies here too
    cascade_ratio = cfg.labels.cascade_multiple
    ratio = days["liq_ratio"]
    known = ratio.notna()
    out.add("ratio", ratio, "total liquidations of the day / trailing 90-day median of the same series",
            label="liquidations vs their median", unit="ratio")
    out.add("ratio_mean_3d", rolling_mean(ratio, 3), "3-day mean of the liquidation ratio", label="3-day liquidations vs median", unit="ratio")
    out.add("ratio_mean_7d", rolling_mean(ratio, 7), "7-day mean of the liquidation ratio", label="7-day liquidations vs median", unit="ratio")
    out.add("ratio_mean_30d", rolling_mean(ratio, 30), "30-day mean of the liquidation ratio", label="30-day liquidations vs median", unit="ratio")
    out.add("ratio_max_7d", ratio.rolling(7, min_periods=5).max(), "largest liquidation ratio of the last 7 days", label="largest liquidation day of 7", unit="ratio")
    out.add("days_since_cascade_day", days_since(ratio >= cascade_ratio, known, MEMORY_CAP_DAYS),
            f"days since the last day with liquidations >= {cascade_ratio:g}x their median (capped at {MEMORY_CAP_DAYS})",
            label="days since a cascade day", unit="days")
    long, total = days["liq_long_usd"], days["liq_total_usd"]
    out.add("long_share", long / total, "share of the day's liquidations that were longs", label="long share of liquidations", unit="fraction")
    long_share_7d = long.rolling(7, min_periods=5).sum() / total.rolling(7, min_periods=5).sum()
    out.add("long_share_7d", long_share_7d, "share of longs in the last 7 days' liquidations", label="7-day long share of liquidations", unit="fraction")
    out.add("long_share_7d_xrank", expanding_rank(long_share_7d), "percentile of the 7-day long share of liquidations among every earlier "
            "day of the coin (the direction model's input: higher, longs already being flushed)",
            label="7-day long share, all-history pctl", unit="percentile")


@summary("liqmem")
def describe_liquidation_memory(row: pd.Series) -> str:
    return (f"liquidations {row['liqmem_ratio_mean_7d']:.1f}x their median over 7 days, {row['liqmem_long_share_7d'] * 100:.0f} % longs, "
            f"{row['liqmem_days_since_cascade_day']:.0f} days since a cascade day")
