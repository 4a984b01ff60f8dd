"""An event's build-up in a desk analyst's words: over the days before a cascade, what each signal family did (start → low /
high → end, in the family's units), when its warning sign switched on, the resulting sequence, the funding sign's
persistence and the RSI divergence — from the assembled panel and the features, nothing else.

The desk analysis the project started from reconstructed 2025-10-10 by hand as "price expansion → OI expansion → SOPR up → STH-NUPL flip → RSI divergence →
defended leverage → catalyst → cascade"; ``reconstruct`` writes the same kind of account for any event and coin, with the
numbers, so a replay reads as an analysis rather than a table. The model's path (first alert, lead, side, the families
that pushed) is added by the callers that hold a model (the replay, the API).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.families import load_families


@dataclass(frozen=True)
class Measure:
    """The series a family is read by in a reconstruction, and how to say it."""

    family: str
    column: str
    what: str
    unit: str
    scale: float = 1.0
    digits: int = 2
    relative: bool = True  # a change in % (price, OI, flows) or in the unit itself (SOPR, NUPL, funding)


MEASURES: tuple[Measure, ...] = (
    Measure("price", "price_usd", "price", "k$", 1e-3, 1),
    Measure("oi", "oi_close_usd", "aggregated open interest", "B$", 1e-9, 1),
    Measure("funding", "funding_rate_frac8h", "funding", "% per 8 h", 100.0, 4, relative=False),
    Measure("flows", "inflow_coin", "exchange inflow (7-day mean)", "coins/day", 1.0, 0),
    Measure("sopr", "sth_sopr", "STH-SOPR", "", 1.0, 3, relative=False),
    Measure("nupl", "sth_nupl", "STH-NUPL", "", 1.0, 3, relative=False),
    Measure("positioning", "lsr_global_accounts", "long/short account ratio", "", 1.0, 2, relative=False),
)
# a desk analyst's words for a family's move, up / down
WORDS = {"price": ("price expansion", "price drawdown"), "oi": ("OI expansion", "OI flush"), "funding": ("funding positive", "funding negative"),
         "flows": ("inflows rising", "inflows falling"), "sopr": ("SOPR up", "SOPR down"), "nupl": ("STH-NUPL up", "STH-NUPL down"),
         "positioning": ("crowding long", "crowding short")}


def _series(panel: pd.DataFrame, measure: Measure, window: pd.DatetimeIndex) -> pd.Series:
    if measure.column not in panel.columns:
        return pd.Series(dtype=float)
    values = panel[measure.column].astype(float)
    if measure.family == "flows":
        values = values.rolling(7, min_periods=4).mean()
    return values.reindex(window).dropna() * measure.scale


def _fmt(value: float, measure: Measure) -> str:
    return f"{value:,.{measure.digits}f}{' ' + measure.unit if measure.unit else ''}"


def family_move(panel: pd.DataFrame, measure: Measure, window: pd.DatetimeIndex) -> dict[str, object] | None:
    """Start, low, high and end of the family's series over ``window`` (days and values), its net move and the swing in
    the direction the window went (low → high when it ended higher, high → low otherwise)."""
    s = _series(panel, measure, window)
    if len(s) < 3:
        return None
    low_day, high_day = s.idxmin(), s.idxmax()
    start, end = float(s.iloc[0]), float(s.iloc[-1])
    up = end >= start
    a_day, b_day = (low_day, high_day) if up and low_day <= high_day else (high_day, low_day) if not up and high_day <= low_day else (s.index[0], s.index[-1])
    a, b = float(s[a_day]), float(s[b_day])
    change = (b / a - 1.0) * 100 if measure.relative and a else b - a
    said = f"{_fmt(a, measure)} ({a_day:%m-%d}) → {_fmt(b, measure)} ({b_day:%m-%d})"
    said += f", {change:+.1f} %" if measure.relative else f", {change:+.{measure.digits}f}"
    out: dict[str, object] = {"family": measure.family, "what": measure.what, "unit": measure.unit, "column": measure.column,
                              "start": {"day": f"{s.index[0]:%Y-%m-%d}", "value": start}, "end": {"day": f"{s.index[-1]:%Y-%m-%d}", "value": end},
                              "low": {"day": f"{low_day:%Y-%m-%d}", "value": float(s.min())}, "high": {"day": f"{high_day:%Y-%m-%d}", "value": float(s.max())},
                              "swing": {"from": f"{a_day:%Y-%m-%d}", "to": f"{b_day:%Y-%m-%d}", "change": float(change),
                                        "change_unit": "%" if measure.relative else measure.unit or "points"},
                              "direction": "up" if b >= a else "down", "text": f"{measure.what} {said}",
                              "values": {f"{d:%Y-%m-%d}": float(v) for d, v in s.items()}}
    if measure.family in ("nupl", "funding"):  # the sign: when it flipped, how long it held
        sign = np.sign(s.to_numpy())
        flips = [s.index[i] for i in range(1, len(s)) if sign[i] != sign[i - 1] and sign[i] != 0]
        out["flips"] = [f"{d:%Y-%m-%d}" for d in flips]
        out["positive_share"] = float((sign > 0).mean())
        run = 1
        for i in range(len(sign) - 1, 0, -1):  # the current run of one sign, up to the window's end
            if sign[i - 1] != sign[-1]:
                break
            run += 1
        out["last_sign_days"] = run
    return out


def warning_onsets(features: pd.DataFrame, window: pd.DatetimeIndex) -> dict[str, dict[str, str]]:
    """Per family, the first day in ``window`` its warning sign was on (the warning checklist), and the warning's name."""
    out = {}
    frame = features.reindex(window)
    for name, family in load_families().items():
        first: tuple[pd.Timestamp, str] | None = None
        for warning in family.warnings:
            if not any(f in frame.columns for f in warning.features):
                continue
            on = warning.on(frame).fillna(False).astype(bool)
            if on.any():
                day = on.index[on.to_numpy()][0]
                if first is None or day < first[0]:
                    first = (day, warning.label)
        if first is not None:
            out[name] = {"day": f"{first[0]:%Y-%m-%d}", "warning": first[1]}
    return out


def rsi_divergence(features: pd.DataFrame, start: pd.Timestamp, lookback_days: int) -> dict[str, object] | None:
    """The RSI divergence active in the ``lookback_days`` before ``start`` (bearish before a long squeeze is the warning
    checklist's sign): its kind, first and last day on, and strength."""
    window = pd.date_range(start - pd.Timedelta(days=lookback_days), start - pd.Timedelta(days=1), freq="D")
    frame = features.reindex(window)
    found = []
    for kind, column in (("bearish", "price_rsi_bear_div_strength"), ("bullish", "price_rsi_bull_div_strength")):
        if column not in frame.columns:
            continue
        on = frame[column].fillna(0) > 0
        if on.any():
            days = on.index[on.to_numpy()]
            found.append({"kind": kind, "first": f"{days[0]:%Y-%m-%d}", "last": f"{days[-1]:%Y-%m-%d}", "days_on": int(on.sum()),
                          "max_strength": float(frame[column].max())})
    return max(found, key=lambda f: f["days_on"]) if found else None


def reconstruct(panel: pd.DataFrame, features: pd.DataFrame, start: pd.Timestamp | str, window_days: int = 30,
                divergence_days: int = 100) -> dict[str, object]:
    """The build-up before an event starting on ``start``: every family's move over the ``window_days`` before it, the
    warning onsets and the sequence they make, funding's sign, the RSI divergence of the ``divergence_days`` before, and a
    short text with the numbers."""
    start = pd.Timestamp(start)
    window = pd.date_range(start - pd.Timedelta(days=window_days), start - pd.Timedelta(days=1), freq="D")
    moves = [m for m in (family_move(panel, measure, window) for measure in MEASURES) if m is not None]
    onsets = warning_onsets(features, window)
    divergence = rsi_divergence(features, start, divergence_days)
    by_family = {m["family"]: m for m in moves}
    # the sequence: each family that moved, in the order its warning switched on (families without one after, by their swing)
    events = []
    for m in moves:
        up = m["direction"] == "up"
        word = WORDS[m["family"]][0 if up else 1]
        if m["family"] == "nupl" and m.get("flips"):
            word = "STH-NUPL flip"
        if m["family"] == "funding":  # funding is read by its sign, not by its drift
            word = WORDS["funding"][0 if m["end"]["value"] > 0 else 1]
        when = onsets.get(m["family"], {}).get("day") or m["swing"]["to"]
        events.append((when, word))
    if divergence is not None:
        events.append((divergence["first"], f"{divergence['kind']} RSI divergence"))
    sequence = [word for _, word in sorted(events)]
    parts = [m["text"] for m in moves]
    funding = by_family.get("funding")
    if funding is not None:
        parts.append(f"funding {'positive' if funding['end']['value'] > 0 else 'negative'} for the last {funding['last_sign_days']} days "
                     f"({funding['positive_share'] * 100:.0f} % of the window positive)")
    if divergence is not None:
        parts.append(f"a {divergence['kind']} RSI divergence on {divergence['days_on']} days from {divergence['first']} to {divergence['last']}")
    nupl = by_family.get("nupl")
    if nupl is not None and nupl.get("flips"):
        parts.append(f"STH-NUPL changed sign on {', '.join(nupl['flips'][-2:])}")
    text = (f"In the {window_days} days before {start:%Y-%m-%d}: " + "; ".join(parts) + ". Sequence: " + " → ".join(sequence) + " → cascade.")
    return {"start": f"{start:%Y-%m-%d}", "window": {"first": f"{window[0]:%Y-%m-%d}", "last": f"{window[-1]:%Y-%m-%d}"},
            "families": moves, "warning_onsets": onsets, "rsi_divergence": divergence, "sequence": sequence, "text": text}
