"""Family 11 — market-wide leverage (a candidate): how much of the whole market is levered and crowded the same day.

Its inputs are the market-wide columns of ``features.market`` (the served coins' open interest, funding and positioning
taken together, chain-linked where coins come and go), joined to every coin's panel: the values are the same for every
coin on a day. Day t reads days <= t only.

* **market open interest**: the change of the coins' total open interest in USD over 7 and 30 days, where it sits in
  its trailing ``trailing_norm_days`` range, and its percentile among the trailing 365 days;
* **market leverage**: the 30-day change of the same total net of price (positions against market value);
* **breadth**: the mean of the coins' funding percentiles, the share of coins with funding in their top tenth, and the
  shares of coins whose all-accounts long/short ratio is in its top (crowded longs) or bottom (crowded shorts) tenth.

Measured before it was built (full sample, a fixed sign, no fit, 2020–2025, any cascade within 14 days, mean over the
seven coins): the total's 180-day range position 0.69 ROC-AUC (BTC 0.65), the mean funding percentile 0.68; the
coin's own open interest range position 0.68. Whether it adds to the families already read is the nested selection's
question (`make tune`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import range_position, trailing_rank

RANK_DAYS = 365


def log_change(index: pd.Series, days: int) -> pd.Series:
    """Natural-log change of a chain-linked index over ``days`` (missing if either end is)."""
    return np.log(index / index.shift(days))


@family("market", "market-wide leverage", "darkslateblue", inputs=("market_oi_index",),
        optional_inputs=("market_leverage_index", "market_funding_rank_mean", "market_funding_hot_share",
                         "market_crowded_long_share", "market_crowded_short_share"), candidate=True, market_wide=True,
        warnings=(Warning("market open interest near its 6-month high", ("market_oi_range_position_180d",), ">=", 0.9),))
def market_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    oi, n = panel["market_oi_index"], cfg.trailing_norm_days
    for w in (7, 30):
        out.add(f"oi_change_{w}d", log_change(oi, w), f"log change over {w} days of the served coins' total open interest in USD "
                "(chain-linked over the coins present on both days)", label=f"market OI, {w}-day change", unit="log ratio")
    out.add(f"oi_range_position_{n}d", range_position(oi, n), f"the coins' total open interest within its trailing {n}-day "
            "min..max range (0..1)", label=f"market OI range position ({n} d)", unit="fraction")
    out.add(f"oi_rank_{RANK_DAYS}d", trailing_rank(oi, RANK_DAYS), f"percentile of the coins' total open interest among the "
            f"trailing {RANK_DAYS} days", label=f"market OI percentile ({RANK_DAYS} d)", unit="percentile")
    out.add("leverage_change_30d", log_change(panel["market_leverage_index"], 30), "log change over 30 days of the coins' total "
            "open interest net of price (positions against market value)", label="market leverage, 30-day change", unit="log ratio")
    out.add("funding_rank_mean", panel["market_funding_rank_mean"], f"mean over the coins of each coin's funding percentile "
            f"among its trailing {n} days", label="mean funding percentile of the coins", unit="percentile")
    out.add("funding_hot_share", panel["market_funding_hot_share"], f"share of the coins whose funding is in the top tenth of "
            f"its trailing {n} days", label="coins with extreme funding", unit="fraction")
    out.add("crowded_long_share", panel["market_crowded_long_share"], "share of the coins whose all-accounts long/short ratio is "
            f"in the top tenth of its trailing {n} days", label="coins with crowded longs", unit="fraction")
    out.add("crowded_short_share", panel["market_crowded_short_share"], "share of the coins whose all-accounts long/short ratio "
            f"is in the bottom tenth of its trailing {n} days", label="coins with crowded shorts", unit="fraction")


@summary("market")
def market_summary(row: pd.Series) -> str:
    position = row["market_oi_range_position_180d"]
    return (f"market open interest at {position:.0%} of its 6-month range, "
            f"{row['market_funding_hot_share']:.0%} of coins with extreme funding")
