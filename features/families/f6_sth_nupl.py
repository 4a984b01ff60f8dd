"""Family 6 — short-term-holder NUPL: fast swings in recent buyers' paper profit."""

from __future__ import annotations

import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import sign_flips, sign_streak, trailing_rank, zscore


@family("nupl", "STH-NUPL", "tab:cyan", inputs=("sth_nupl",),
        warnings=(Warning("STH-NUPL extreme", ("nupl_sth_zscore",), "abs>=", 1.5),))
def sth_nupl_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    nupl = panel["sth_nupl"]
    out.add("sth", nupl, "STH net unrealized profit/loss, fraction of STH market value", label="STH-NUPL", unit="fraction")
    for w in cfg.change_windows:
        out.add(f"sth_change_{w}d", nupl - nupl.shift(w), f"change of STH-NUPL over {w} days (fraction points)",
                label=f"{w}-day change of STH-NUPL", unit="fraction points")
    out.add("sth_sign_streak", sign_streak(nupl, cfg.streak_cap_days), "days since STH-NUPL last changed sign (+ in profit, - in loss)",
            label="STH-NUPL sign streak", unit="days")
    out.add("sth_flips_30d", sign_flips(nupl, 30), "number of STH-NUPL sign flips in 30 days", label="STH-NUPL sign flips (30 days)", unit="count")
    n = cfg.trailing_norm_days
    out.add("sth_zscore", zscore(nupl, n), f"z-score of STH-NUPL versus the trailing {n} days", label=f"STH-NUPL z-score ({n} days)", unit="sigma")
    out.add("sth_rank", trailing_rank(nupl, n), f"percentile of STH-NUPL among the trailing {n} days",
            label=f"STH-NUPL percentile ({n} days)", unit="percentile")


@summary("nupl")
def describe_nupl(row: pd.Series) -> str:
    return f"STH-NUPL {row['nupl_sth']:+.2f}, {row['nupl_sth_change_7d']:+.2f} in 7 days"
