"""The signals behind a forecast, as a desk reads them: price, liquidations in dollars, open interest, funding,
positioning, and for BTC exchange flows, SOPR and STH-NUPL — per day, from the same assembled panel the features are
built from (``CoinForecaster.panel``). `GET /v1/signals` serves them (JSON or CSV) and the coin page draws them on the
probability timeline's time axis; ``format=signals`` serves the days as a `POST /predict_signals` body.

One name, one unit: a column holds its values in the unit its name and the store declare (``funding_rate_frac8h`` a
fraction per 8 h, as stored and as /predict_signals reads it), whatever a chart shows; a pane that draws a column in
another unit says so (its ``unit``) and by how much it multiplies (its ``scale``: funding is drawn in % per 8 h).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import input_spec
from features.families import optional_inputs, required_inputs
from features.schemas import SERIES


@dataclass(frozen=True)
class Pane:
    """One chart pane: a title, the unit of its axis, and the panel columns it draws (column -> label). The columns keep
    their own unit (``input_spec``); the pane draws ``value * scale`` in ``unit``."""

    name: str
    title: str
    unit: str
    series: dict[str, str]
    scale: float = 1.0  # a column's unit -> the pane's unit (funding: a fraction per 8 h drawn in percent)


def _liquidated(side: str, series: str) -> str:
    """'longs liquidated (Binance+OKX+Bybit)': a liquidation series always beside its scope (the stored series')."""
    return f"{side} liquidated ({SERIES[series].scope})"


PANES: tuple[Pane, ...] = (
    Pane("price", "price", "USD", {"price_usd": "close"}),
    Pane("liquidations", "liquidations", "USD per day",
         {"liq_long_usd": _liquidated("longs", "liquidations"), "liq_short_usd": _liquidated("shorts", "liquidations"),
          "binance_liq_long_usd": _liquidated("longs", "liquidations_binance"), "binance_liq_short_usd": _liquidated("shorts", "liquidations_binance")}),
    Pane("open_interest", "open interest", "USD", {"oi_close_usd": "aggregated open interest (close)"}),
    Pane("funding", "funding rate", "% per 8 h", {"funding_rate_frac8h": "funding (Binance, else OI-weighted)"}, scale=100.0),
    Pane("positioning", "positioning", "ratio / share", {"lsr_global_accounts": "long/short accounts (Binance)",
                                                         "lsr_top_positions": "long/short top-trader positions", "taker_buy_share": "taker buy share"}),
    Pane("flows", "exchange flows", "coins per day", {"inflow_coin": "inflow", "outflow_coin": "outflow"}),
    Pane("sopr", "SOPR", "ratio", {"sopr": "aSOPR", "sth_sopr": "STH-SOPR"}),
    Pane("nupl", "STH-NUPL", "fraction", {"sth_nupl": "STH-NUPL"}),
)


def unit_of(column: str) -> str:
    """The unit a signal column holds: its family input's, or its stored column's (``features.schemas``)."""
    return input_spec(column).unit


def signal_frame(panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> tuple[list[Pane], pd.DataFrame]:
    """The panes this coin has data for, and their columns per day of [start, end], each in its own unit (missing: NaN)."""
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
                frame[column] = panel[column].astype(float)
        panes.append(Pane(pane.name, pane.title, pane.unit, present, pane.scale))
    columns = [c for p in panes for c in p.series]
    frame = frame[columns].loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
    return panes, frame


def signals_answer(asset: str, panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, object]:
    """/v1/signals: the panes (title, the unit and scale they draw in, columns with their labels and own units) and one row
    per day (null where a series has no value), each column in its own unit."""
    panes, frame = signal_frame(panel, start, end)
    values = frame.to_numpy(dtype=float)
    rows = [{"day": f"{day:%Y-%m-%d}", **{c: (None if np.isnan(v) else float(v)) for c, v in zip(frame.columns, row, strict=True)}}
            for day, row in zip(frame.index, values, strict=True)]
    return {"asset": asset, "start": rows[0]["day"] if rows else None, "end": rows[-1]["day"] if rows else None,
            "panes": [{"name": p.name, "title": p.title, "unit": p.unit, "scale": p.scale,
                       "series": [{"column": c, "label": label, "unit": unit_of(c)} for c, label in p.series.items()]}
                      for p in panes], "rows": rows}


def signals_body(asset: str, panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> dict[str, object]:
    """/v1/signals?format=signals: the days of [start, end] as a `POST /predict_signals` body — ``date`` and every family
    input (``serving.schemas.SignalRow``'s fields), in the store's units, null where the day has none. Posted back, it is
    answered like ``/predict`` answers its last day."""
    inputs = list(dict.fromkeys([*required_inputs(), *optional_inputs()]))
    frame = panel.reindex(columns=inputs).astype(float).loc[pd.Timestamp(start) if start else None : pd.Timestamp(end) if end else None]
    values = frame.to_numpy(dtype=float)
    rows = [{"date": f"{day:%Y-%m-%d}", **{c: (None if np.isnan(v) else float(v)) for c, v in zip(inputs, row, strict=True)}}
            for day, row in zip(frame.index, values, strict=True)]
    return {"asset": asset, "signals": rows}


def signals_csv(asset: str, panel: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None) -> str:
    """The same numbers as CSV: ``day`` then one column per series, its own unit in the header (``price_usd [USD]``,
    ``funding_rate_frac8h [fraction per 8 h]``)."""
    _, frame = signal_frame(panel, start, end)
    out = frame.rename(columns={c: f"{c} [{unit_of(c)}]" for c in frame.columns})
    out.index = out.index.strftime("%Y-%m-%d")
    out.index.name = "day"
    return f"# cascade-radar signals of {asset}\n" + out.to_csv(float_format="%.10g")
