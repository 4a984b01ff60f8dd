"""Family 10 — compression against the coin's own history (a candidate): a market coiled before a large move.

Every value of day t reads days <= t, and every rank is taken among the coin's own trailing ``compression_rank_days``
(today included) — never the full sample, which would know the future's spread:

* **vol of vol**: the standard deviation, over ``vol_of_vol_days``, of the day-on-day changes of the annualised 30-day
  realized volatility (volatility that itself stops moving is a calm that tends to end abruptly);
* **Bollinger band width**: ``2·k·σ / mean`` of the close over ``bollinger_days`` (k = ``bollinger_sigmas``), and its
  percentile among the trailing ``compression_rank_days`` — the classic squeeze is the width at a low of the year;
* **range compression**: the high-low range of the short window over that of the long one (``range_compression_days``,
  daily highs and lows where stored, else closes), and its trailing percentile;
* **days in a squeeze**: consecutive days the band width stayed in the lowest decile of its trailing history.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import log_return, min_periods, sign_streak, trailing_rank

SQUEEZE_RANK = 0.1  # a band width in the lowest tenth of its trailing history is a squeeze
REALIZED_VOL_DAYS = 30


def bollinger_width(close: pd.Series, days: int, sigmas: float) -> pd.Series:
    """Width of the Bollinger bands relative to their middle: ``2·sigmas·std / mean`` of the last ``days`` closes."""
    roll = close.rolling(days, min_periods=min_periods(days))
    return 2 * sigmas * roll.std() / roll.mean()


def range_ratio(high: pd.Series, low: pd.Series, short: int, long: int) -> pd.Series:
    """High-low range of the last ``short`` days over that of the last ``long`` days (0..1; small: compressed)."""
    def span(days: int) -> pd.Series:
        return high.rolling(days, min_periods=min_periods(days)).max() - low.rolling(days, min_periods=min_periods(days)).min()

    wide = span(long)
    return span(short) / wide.where(wide > 0)


@family("compression", "volatility compression", "tab:blue", inputs=("price_usd",),
        optional_inputs=("high_usd", "low_usd", "perp_high_usd", "perp_low_usd"), candidate=True,
        warnings=(Warning("Bollinger squeeze", ("compression_bb_width_rank",), "<=", SQUEEZE_RANK),))
def compression_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    price = panel["price_usd"]
    high = panel["high_usd"].fillna(panel["perp_high_usd"]).fillna(price).clip(lower=price)
    low = panel["low_usd"].fillna(panel["perp_low_usd"]).fillna(price).clip(upper=price)
    n, rank_days, w = cfg.bollinger_days, cfg.compression_rank_days, cfg.vol_of_vol_days
    vol = log_return(price, 1).rolling(REALIZED_VOL_DAYS, min_periods=min_periods(REALIZED_VOL_DAYS)).std() * np.sqrt(365)
    out.add(f"vol_of_vol_{w}d", vol.diff().rolling(w, min_periods=min_periods(w)).std(), f"std over {w} days of the daily changes "
            f"of the annualised {REALIZED_VOL_DAYS}-day realized volatility", label=f"volatility of volatility ({w} d)", unit="fraction points")
    width = bollinger_width(price, n, cfg.bollinger_sigmas)
    out.add(f"bb_width_{n}d", width, f"width of the {n}-day Bollinger bands (±{cfg.bollinger_sigmas:g} sd) relative to their middle",
            label=f"Bollinger band width ({n} d)", unit="fraction")
    width_rank = trailing_rank(width, rank_days)
    out.add("bb_width_rank", width_rank, f"percentile of today's Bollinger band width among the coin's trailing {rank_days} days "
            "(low: a squeeze)", label=f"band width percentile ({rank_days} d)", unit="percentile")
    short, long = cfg.range_compression_days
    ratio = range_ratio(high, low, short, long)
    out.add(f"range_ratio_{short}d_{long}d", ratio, f"high-low range of the last {short} days / that of the last {long} days "
            "(small: compressed)", label=f"{short}-day range / {long}-day range", unit="ratio")
    out.add("range_ratio_rank", trailing_rank(ratio, rank_days), f"percentile of the {short}/{long}-day range ratio among the coin's "
            f"trailing {rank_days} days", label=f"range ratio percentile ({rank_days} d)", unit="percentile")
    squeezed = (width_rank <= SQUEEZE_RANK).astype(float).where(width_rank.notna()) - 0.5  # + in a squeeze, - out of it
    out.add("squeeze_days", sign_streak(squeezed, cfg.streak_cap_days).clip(lower=0),
            f"consecutive days the band width stayed in the lowest {SQUEEZE_RANK:.0%} of its trailing {rank_days} days (0: not in a squeeze)",
            label="days in a Bollinger squeeze", unit="days")


@summary("compression")
def describe_compression(row: pd.Series) -> str:
    text = f"Bollinger width at the {row['compression_bb_width_rank'] * 100:.0f}th percentile of its year"
    days = row["compression_squeeze_days"]
    return text + (f", squeezed {days:.0f} days" if days > 0 else "")
