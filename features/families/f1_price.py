"""Family 1 — price & momentum: extension, RSI and its divergences, volatility compression."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, Warning, family, summary
from features.transforms import log_return, rolling_mean, rsi, rsi_divergence


@family("price", "price & momentum", "tab:purple", inputs=("price_usd",),
        warnings=(Warning("RSI divergence", ("price_rsi_bear_div_strength", "price_rsi_bull_div_strength"), ">", 0.0),
                  Warning("volatility compressed", ("price_vol_compression",), "<=", 0.6)))
def price_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    price = panel["price_usd"]
    daily = log_return(price, 1)
    for w in cfg.return_windows:
        out.add(f"return_{w}d", log_return(price, w), f"log return of price over {w} days", label=f"{w}-day price return", unit="fraction")
    for w in cfg.ma_windows:
        out.add(f"dist_sma_{w}d", price / rolling_mean(price, w) - 1, f"price relative to its {w}-day simple moving average", label=f"price vs its {w}-day average", unit="fraction")
    vols = {}
    for w in cfg.vol_windows:
        vols[w] = daily.rolling(w, min_periods=max(3, int(0.7 * w))).std() * np.sqrt(365)
        out.add(f"realized_vol_{w}d", vols[w], f"annualised std of daily log returns over {w} days", label=f"{w}-day realized volatility", unit="fraction")
    short, long = min(cfg.vol_windows), max(cfg.vol_windows)
    long_vol = daily.rolling(cfg.trailing_norm_days, min_periods=cfg.trailing_norm_days // 3).std() * np.sqrt(365)
    out.add("vol_compression", vols[short] / long_vol, f"{short}-day realized vol / {cfg.trailing_norm_days}-day vol (<1 = compressed)",
            label="volatility compression", unit="ratio")
    out.add(f"vol_ratio_{short}d_{long}d", vols[short] / vols[long], f"{short}-day / {long}-day realized vol",
            label=f"{short}-day / {long}-day volatility", unit="ratio")
    high = price.rolling(cfg.drawdown_days, min_periods=1).max()
    out.add(f"drawdown_{cfg.drawdown_days}d", price / high - 1, f"price relative to its highest close of the trailing {cfg.drawdown_days} days (<= 0)",
            label=f"drawdown from the {cfg.drawdown_days}-day high", unit="fraction")
    rsi_values = rsi(price, cfg.rsi_period)
    out.add(f"rsi_{cfg.rsi_period}", rsi_values, f"Wilder RSI({cfg.rsi_period}) of the daily price", label=f"RSI({cfg.rsi_period})", unit="RSI points")
    for kind, short_name in (("bearish", "bear"), ("bullish", "bull")):
        div = rsi_divergence(price, rsi_values, cfg.divergence_pivot_days, cfg.divergence_lookback_days, kind)
        higher = "higher high in price, lower high in RSI" if kind == "bearish" else "lower low in price, higher low in RSI"
        out.add(f"rsi_{short_name}_div_strength", div["strength"], f"{kind} RSI divergence ({higher}): RSI points between the swings, 0 if none",
                label=f"{kind} RSI divergence", unit="RSI points")
        out.add(f"rsi_{short_name}_div_price_move", div["price_move"], f"{kind} RSI divergence: relative price move between the two swings",
                label=f"{kind} divergence price move", unit="fraction")
        out.add(f"rsi_{short_name}_div_age", div["age"], f"days since the second swing of the active {kind} divergence (missing if none)",
                label=f"age of the {kind} divergence", unit="days")


@summary("price")
def describe_price(row: pd.Series) -> str:
    text = f"price {row['price_return_14d'] * 100:+.0f} % in 14 days, RSI {row['price_rsi_14']:.0f}"
    if row["price_rsi_bear_div_strength"] > 0:
        text += f", bearish RSI divergence ({row['price_rsi_bear_div_strength']:.0f} pts)"
    elif row["price_rsi_bull_div_strength"] > 0:
        text += f", bullish RSI divergence ({row['price_rsi_bull_div_strength']:.0f} pts)"
    return text
