"""Family 3 — funding rates: one-sided positioning that persists for days.

Input ``funding_rate_frac8h`` is a fraction per 8 h (0.0001 = 0.01 %): the percent-quoted
sources were converted once, at the source boundary.
"""

from __future__ import annotations

import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, SideHint, Warning, family, summary
from features.transforms import expanding_rank, rolling_mean, sign_streak, trailing_rank, zscore


@family("funding", "funding", "tab:red", inputs=("funding_rate_frac8h",),
        warnings=(Warning("funding persistently one-sided", ("funding_above_neutral_streak",), ">=", 5),
                  Warning("funding extreme", ("funding_rate_zscore",), "abs>=", 1.5)),
        side_hint=SideHint("funding_rate_mean_7d", 1.0))  # above 1 bp / 8 h longs pay: crowded longs
def funding_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    rate = panel["funding_rate_frac8h"] * 1e4  # basis points per 8 h: readable magnitudes
    out.add("rate", rate, "funding rate of the day, basis points per 8 h", label="funding rate", unit="bp/8h")
    for w in cfg.rolling_windows:
        out.add(f"rate_mean_{w}d", rolling_mean(rate, w), f"mean funding over {w} days, bp per 8 h", label=f"{w}-day mean funding", unit="bp/8h")
    out.add("rate_mean_30d_xrank", expanding_rank(rolling_mean(rate, 30)), "percentile of the 30-day mean funding among every earlier "
            "day of the coin (the direction model's input: higher, longs more crowded)",
            label="30-day funding, all-history percentile", unit="percentile")
    out.add("sign_streak", sign_streak(rate, cfg.streak_cap_days), "consecutive days funding kept its sign (+ longs pay, - shorts pay)",
            label="funding sign streak", unit="days")
    # 1 bp / 8 h is Binance's neutral rate: persistence above it is what crowds longs
    out.add("above_neutral_streak", sign_streak(rate - 1.0, cfg.streak_cap_days).clip(lower=0), "consecutive days funding stayed above the neutral 1 bp / 8 h",
            label="days of funding above neutral", unit="days")
    n = cfg.trailing_norm_days
    out.add("rate_zscore", zscore(rolling_mean(rate, 3), n), f"z-score of 3-day mean funding versus the trailing {n} days",
            label=f"funding z-score ({n} days)", unit="sigma")
    out.add("rate_rank", trailing_rank(rate, n), f"percentile of today's funding among the trailing {n} days",
            label=f"funding percentile ({n} days)", unit="percentile")


@summary("funding")
def describe_funding(row: pd.Series) -> str:
    streak = int(row["funding_sign_streak"])
    side = "positive" if streak > 0 else "negative"
    days = f"{abs(streak)}+" if abs(streak) >= 90 else str(abs(streak))
    return f"{row['funding_rate_mean_7d']:+.1f} bp/8h over 7 days; {side} {days} days running"
