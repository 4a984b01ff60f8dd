"""Family 2 — perpetual open interest: leverage building up, with or without spot demand.

Input ``oi_close_usd`` is chain-linked from every stored OI series (all exchanges, Coinalyze's majors, Bybit, Binance) by
the one splicing rule: changes, z-scores and range positions are those of whichever source covers the day, the level is
that of the source the series starts from.
"""

from __future__ import annotations

import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import pct_change, range_position, zscore


@family("oi", "open interest", "tab:orange", inputs=("oi_close_usd", "price_usd"), optional_inputs=("market_cap_usd",),
        warnings=(Warning("OI rising faster than price", ("oi_change_vs_price_14d",), ">=", 0.05),))
def open_interest_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    oi, price = panel["oi_close_usd"], panel["price_usd"]
    out.add("usd_bn", oi / 1e9, "open interest, billions of USD, at the scope of the source the series starts from "
            "(all exchanges where that history is stored)", label="open interest", unit="B$")
    for w in cfg.change_windows:
        out.add(f"change_{w}d", pct_change(oi, w), f"relative change of open interest over {w} days", label=f"{w}-day OI change", unit="fraction")
    for w in cfg.change_windows:
        out.add(f"change_vs_price_{w}d", pct_change(oi, w) - pct_change(price, w),
                f"OI change minus price change over {w} days (> 0: leverage building without spot demand)",
                label=f"{w}-day OI change minus price change", unit="fraction points")
    out.add("to_market_cap_pct", 100 * oi / panel["market_cap_usd"], "open interest (at the scope of the source the series starts "
            "from) as a percentage of market capitalisation",
            label="open interest / market cap", unit="percent")
    n = cfg.trailing_norm_days
    out.add(f"range_position_{n}d", range_position(oi, n), f"OI within its trailing {n}-day min..max range (0..1)",
            label=f"OI position in its {n}-day range", unit="fraction")
    out.add("zscore", zscore(oi, n), f"z-score of OI versus its trailing {n} days", label=f"OI z-score ({n} days)", unit="sigma")


@summary("oi")
def describe_open_interest(row: pd.Series) -> str:
    return f"{row['oi_change_14d'] * 100:+.0f} % in 14 days while price {(row['oi_change_14d'] - row['oi_change_vs_price_14d']) * 100:+.0f} %"
