"""Family 7 — positioning: how crowded one side is (long/short ratios, aggressive taker volume).

Ratios are taken in logs (a 2:1 and a 1:2 crowd are equally far from balance) and judged against
their own trailing distribution, so coins and years with different habits share one scale. Measured
on BTC days with a cascade ahead, a high top-trader account ratio goes with long squeezes and a high
taker-buy share with short squeezes: this family is mostly about the side. The taker-buy share is read as one
input, spliced from the widest taker flow stored (three exchanges, else Binance's) by the one splicing rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import expanding_rank, rolling_mean, sign_streak, trailing_rank, zscore

# per ratio: its meaning, and who it counts (the labels' short form)
RATIOS = {"top_accounts": ("top traders' long/short account ratio", "top-trader accounts"),
          "top_positions": ("top traders' long/short position ratio", "top-trader positions"),
          "global_accounts": ("all accounts' long/short ratio", "all accounts")}
Z_DAYS = 90


@family("positioning", "positioning", "tab:pink", inputs=(), optional_inputs=tuple(f"lsr_{k}" for k in RATIOS) + ("taker_buy_share",),
        warnings=(Warning("one side crowded (top traders)", ("positioning_lsr_top_accounts_zscore_90d",), "abs>=", 2.0),))
def positioning_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    n = cfg.trailing_norm_days
    for key, (meaning, who) in RATIOS.items():
        log_ratio = np.log(panel[f"lsr_{key}"])
        out.add(f"lsr_{key}_log", log_ratio, f"log of the {meaning} (> 0: more longs)",
                label=f"{who} L/S ratio", unit="log ratio")
        out.add(f"lsr_{key}_zscore_{Z_DAYS}d", zscore(log_ratio, Z_DAYS), f"z-score of the log {meaning} versus the trailing {Z_DAYS} days",
                label=f"{who} L/S z-score ({Z_DAYS} d)", unit="sigma")
        out.add(f"lsr_{key}_rank", trailing_rank(log_ratio, n), f"percentile of the {meaning} among the trailing {n} days",
                label=f"{who} L/S percentile ({n} d)", unit="percentile")
        out.add(f"lsr_{key}_change_7d", log_ratio - log_ratio.shift(7), f"7-day change of the log {meaning}",
                label=f"{who} L/S, 7-day change", unit="log ratio")
    top = zscore(np.log(panel["lsr_top_accounts"]), Z_DAYS)
    out.add("lsr_top_accounts_crowded_streak", sign_streak(top.where(top.abs() >= 1.0), cfg.streak_cap_days),
            "consecutive days the top-trader account ratio stayed >= 1 sd from its 90-day mean (+ long, - short)",
            label="days top traders stayed crowded", unit="days")
    share = panel["taker_buy_share"]  # every scope's share, chain-linked (features.build DERIVED_INPUTS)
    out.add("taker_buy_share", share, "aggressive buys / all aggressive futures volume of the day (0.5 = balanced)",
            label="taker-buy share", unit="fraction")
    mean7 = rolling_mean(share, 7)
    out.add("taker_buy_share_mean_7d", mean7, "7-day mean taker-buy share", label="7-day taker-buy share", unit="fraction")
    out.add("taker_buy_share_zscore", zscore(mean7, Z_DAYS), f"z-score of the 7-day taker-buy share versus the trailing {Z_DAYS} days",
            label=f"taker-buy share z-score ({Z_DAYS} d)", unit="sigma")
    out.add("taker_buy_share_mean_7d_xrank", expanding_rank(mean7), "percentile of the 7-day taker-buy share among every earlier day "
            "of the coin (the direction model's input: higher, aggressive buying)",
            label="7-day taker-buy share, all-history pctl", unit="percentile")
    global_z = zscore(np.log(panel["lsr_global_accounts"]), Z_DAYS)
    out.add(f"lsr_global_accounts_zscore_{Z_DAYS}d_xrank", expanding_rank(global_z), f"percentile of the {Z_DAYS}-day z-score of all "
            "accounts' long/short ratio among every earlier day of the coin (the direction model's input: higher, more longs)",
            label="all accounts L/S z-score, all-history pctl", unit="percentile")
    out.add("taker_buy_share_streak", sign_streak(share - 0.5, cfg.streak_cap_days), "consecutive days takers leaned the same way (+ buying)", label="taker lean streak", unit="days")


@summary("positioning")
def describe_positioning(row: pd.Series) -> str:
    z = row["positioning_lsr_top_accounts_zscore_90d"]
    lean = "longs" if z > 0 else "shorts"
    return f"top traders lean to {lean} ({z:+.1f} sd), taker buys {row['positioning_taker_buy_share_mean_7d'] * 100:.0f} % over 7 days"
