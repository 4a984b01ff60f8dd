"""Family 4 — exchange flows: spot participation (coins moving to / from exchanges)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import log_return, pct_change, rolling_mean, rolling_sum


@family("flows", "exchange flows", "tab:green", inputs=("inflow_coin", "outflow_coin", "price_usd"), optional_inputs=("supply_on_exchanges_coin",),
        warnings=(Warning("spot inflows drying into a rally", ("flows_inflow_vs_price_14d",), "<=", -0.2),))
def exchange_flow_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    inflow, outflow, price = panel["inflow_coin"], panel["outflow_coin"], panel["price_usd"]
    netflow = inflow - outflow
    out.add("inflow_k", inflow / 1e3, "coins sent to exchanges in the day, thousands", label="exchange inflow", unit="k coins")
    out.add("outflow_k", outflow / 1e3, "coins withdrawn from exchanges in the day, thousands", label="exchange outflow", unit="k coins")
    out.add("netflow_k", netflow / 1e3, "inflow - outflow, thousands of coins (> 0: coins arriving to be sold)",
            label="exchange netflow", unit="k coins")
    n = cfg.trailing_norm_days
    norm_in, norm_out = rolling_mean(inflow, n), rolling_mean(outflow, n)
    for w in cfg.rolling_windows:
        out.add(f"netflow_sum_{w}d", rolling_sum(netflow, w) / 1e3, f"net exchange flow over {w} days, thousands of coins",
                label=f"{w}-day exchange netflow", unit="k coins")
        out.add(f"inflow_ratio_{w}d", rolling_mean(inflow, w) / norm_in, f"{w}-day mean inflow / its trailing {n}-day mean",
                label=f"{w}-day inflow vs its norm", unit="ratio")
        out.add(f"outflow_ratio_{w}d", rolling_mean(outflow, w) / norm_out, f"{w}-day mean outflow / its trailing {n}-day mean",
                label=f"{w}-day outflow vs its norm", unit="ratio")
    # price up while exchange inflows dry up: the rally is carried by derivatives, not spot
    out.add("inflow_vs_price_14d", np.log(rolling_mean(inflow, 14) / norm_in) - log_return(price, 14),
            "log(14-day inflow / trailing norm) minus the 14-day price return (< 0: spot drying up into a rally)",
            label="14-day inflow vs price", unit="log ratio")
    out.add("exchange_supply_change_30d", pct_change(panel["supply_on_exchanges_coin"], 30), "relative change of coins held on exchanges over 30 days",
            label="30-day change of exchange supply", unit="fraction")


@summary("flows")
def describe_flows(row: pd.Series) -> str:
    return f"inflows {row['flows_inflow_ratio_7d']:.2f}x their norm, net {row['flows_netflow_sum_7d']:+.1f}k coins in 7 days"
