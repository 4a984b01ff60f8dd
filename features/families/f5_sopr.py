"""Family 5 — SOPR: profit taking (> 1) and seller exhaustion / capitulation (< 1)."""

from __future__ import annotations

import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import rolling_mean, sign_streak, zscore


@family("sopr", "SOPR", "tab:brown", inputs=("sth_sopr",), optional_inputs=("sopr",),
        warnings=(Warning("STH-SOPR extreme", ("sopr_sth_zscore",), "abs>=", 1.5),))
def sopr_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    sth, adjusted = panel["sth_sopr"], panel["sopr"]
    out.add("sth", sth, "short-term-holder SOPR (spent output value / its cost)", label="STH-SOPR", unit="index")
    out.add("sth_dist_1_pct", 100 * (sth - 1), "STH-SOPR distance from 1, percent (> 0: recent buyers sell in profit)",
            label="STH-SOPR distance from 1", unit="percent")
    for w in cfg.rolling_windows:
        out.add(f"sth_mean_{w}d", rolling_mean(sth, w), f"mean STH-SOPR over {w} days", label=f"{w}-day mean STH-SOPR", unit="index")
    out.add("sth_above_one_streak", sign_streak(sth - 1, cfg.streak_cap_days), "consecutive days STH-SOPR stayed on the same side of 1 (+ above, - below)",
            label="STH-SOPR streak above/below 1", unit="days")
    out.add("sth_zscore", zscore(sth, cfg.trailing_norm_days), f"z-score of STH-SOPR versus the trailing {cfg.trailing_norm_days} days",
            label=f"STH-SOPR z-score ({cfg.trailing_norm_days} days)", unit="sigma")
    out.add("adjusted", adjusted, "adjusted SOPR of all spent outputs", label="adjusted SOPR", unit="index")
    out.add("adjusted_mean_7d", rolling_mean(adjusted, 7), "mean adjusted SOPR over 7 days", label="7-day mean adjusted SOPR", unit="index")


@summary("sopr")
def describe_sopr(row: pd.Series) -> str:
    return f"STH-SOPR {row['sopr_sth']:.3f} (7-day mean {row['sopr_sth_mean_7d']:.3f})"
