"""The signals behind a forecast, as a desk reads them: price, liquidations in dollars, open interest, funding,
positioning, and for BTC exchange flows, SOPR and STH-NUPL — per day, in their units, from the same assembled panel
the features are built from (``CoinForecaster.panel``). `GET /v1/signals` serves them (JSON or CSV) and the coin
page draws them on the probability timeline's time axis.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Pane:
    """One chart pane: a title, the unit of its axis, and the panel columns it draws (column -> label)."""

    name: str
    title: str
    unit: str
    series: dict[str, str]
    scale: float = 1.0  # stored unit -> the pane's unit (a fraction per 8 h shown in percent)


PANES: tuple[Pane, ...] = (
    Pane("price", "price", "USD", {"price_usd": "close"}),
    Pane("liquidations", "liquidations", "USD per day",
         {"liq_long_usd": "longs liquidated (Binance+OKX+Bybit)", "liq_short_usd": "shorts liquidated (Binance+OKX+Bybit)", "binance_liq_long_usd": "longs liquidated, Binance",
          "binance_liq_short_usd": "shorts liquidated, Binance"}),
    Pane("open_interest", "open interest", "USD", {"oi_close_usd": "aggregated open interest (close)"}),
    Pane("funding", "funding rate", "% per 8 h", {"funding_rate_frac8h": "funding (Binance, else OI-weighted)"}, scale=100.0),
    Pane("positioning", "positioning", "ratio / share", {"lsr_global_accounts": "long/short accounts (Binance)",
                                                         "lsr_top_positions": "long/short top-trader positions", "taker_buy_share": "taker buy share"}),
    Pane("flows", "exchange flows", "coins per day", {"inflow_coin": "inflow", "outflow_coin": "outflow"}),
    Pane("sopr", "SOPR", "ratio", {"sopr": "aSOPR", "sth_sopr": "STH-SOPR"}),
    Pane("nupl", "STH-NUPL", "fraction", {"sth_nupl": "STH-NUPL"}),
)


def signal_frame(panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> tuple[list[Pane], pd.DataFrame]:
    """The panes this coin has data for, and their columns per day of [start, end] in the panes' units (missing: NaN)."""
    frame = pd.DataFrame(index=panel.index)
    if "taker_buy_share" not in panel.columns:  # a raw panel: the share from the aggregated dollars (the assembled one chain-links it)
        buy, sell = panel.get("taker_buy_usd"), panel.get("taker_sell_usd")
        if buy is not None and sell is not None:
            frame["taker_buy_share"] = buy / (buy + sell).where(lambda t: t > 0)
    panes = []
    for pane in PANES:
        present = {c: label for c, label in pane.series.items() if (c in panel.columns and panel[c].notna().any()) or
                   (c in frame.columns and frame[c].notna().any())}
        if not present:
            continue
        for column in present:
            if column not in frame.columns:
                frame[column] = panel[column].astype(float) * pane.scale
        panes.append(Pane(pane.name, pane.title, pane.unit, present, pane.scale))
    columns = [c for p in panes for c in p.series]
    frame = frame[columns].loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
    return panes, frame


def signals_answer(asset: str, panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, object]:
    """/v1/signals: the panes (title, unit, columns and labels) and one row per day (null where a series has no value)."""
    panes, frame = signal_frame(panel, start, end)
    values = frame.to_numpy(dtype=float)
    rows = [{"day": f"{day:%Y-%m-%d}", **{c: (None if np.isnan(v) else float(v)) for c, v in zip(frame.columns, row, strict=True)}}
            for day, row in zip(frame.index, values, strict=True)]
    return {"asset": asset, "start": rows[0]["day"] if rows else None, "end": rows[-1]["day"] if rows else None,
            "panes": [{"name": p.name, "title": p.title, "unit": p.unit, "series": [{"column": c, "label": label} for c, label in p.series.items()]}
                      for p in panes], "rows": rows}


def signals_csv(asset: str, panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> str:
    """The same numbers as CSV: ``day`` then one column per series, its unit in the header (``price_usd [USD]``)."""
    panes, frame = signal_frame(panel, start, end)
    units = {c: p.unit for p in panes for c in p.series}
    out = frame.rename(columns={c: f"{c} [{units[c]}]" for c in frame.columns})
    out.index = out.index.strftime("%Y-%m-%d")
    out.index.name = "day"
    return f"# cascade-radar signals of {asset}\n" + out.to_csv(float_format="%.10g")
