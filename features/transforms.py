"""Small causal transforms shared by the signal families.

Every function here looks only backwards: the value at day t depends on days <= t. Windows are
in days on a continuous daily index; a window tolerates a few missing days (``min_periods``) but
nothing is ever forward-filled.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def min_periods(window: int) -> int:
    """Observations a rolling window needs: 70 % of it, so an isolated gap does not blank a week."""
    return max(1, int(np.ceil(0.7 * window)))


def log_return(price: pd.Series, days: int) -> pd.Series:
    return np.log(price / price.shift(days))


def pct_change(values: pd.Series, days: int) -> pd.Series:
    return values / values.shift(days) - 1.0


def rolling_mean(values: pd.Series, days: int) -> pd.Series:
    return values.rolling(days, min_periods=min_periods(days)).mean()


def rolling_sum(values: pd.Series, days: int) -> pd.Series:
    # a sum over a window with missing days would be biased low: rescale by the observed share
    mean = values.rolling(days, min_periods=min_periods(days)).mean()
    return mean * days


def zscore(values: pd.Series, days: int) -> pd.Series:
    """How unusual today is versus the trailing ``days`` (today included)."""
    roll = values.rolling(days, min_periods=max(10, days // 3))
    std = roll.std()
    return (values - roll.mean()) / std.where(std > 0)


def trailing_rank(values: pd.Series, days: int) -> pd.Series:
    """Percentile (0..1] of today's value among the trailing ``days`` (today included)."""
    return values.rolling(days, min_periods=max(10, days // 3)).rank(pct=True)


def expanding_rank(values: pd.Series, min_days: int = 90) -> pd.Series:
    """Percentile (0..1] of today's value among every earlier value of the same series (today included): the coin's own
    past is the yardstick, so levels that drift between regimes (funding, positioning) compare across years and coins."""
    return values.expanding(min_periods=min_days).rank(pct=True)


def range_position(values: pd.Series, days: int) -> pd.Series:
    """Where today sits in the trailing min..max range: 0 at the low, 1 at the high."""
    roll = values.rolling(days, min_periods=max(10, days // 3))
    low, high = roll.min(), roll.max()
    span = (high - low).where(high > low)
    return (values - low) / span


def sign_streak(values: pd.Series, cap: int | None = None) -> pd.Series:
    """Signed length of the current run of same-sign values: +5 = fifth positive day in a row.

    Zero and missing values end a run (a missing day is not assumed to continue it). With ``cap``
    the length saturates at ±cap, so the value depends on at most the last ``cap`` days.
    """
    sign = np.sign(values.to_numpy(dtype="float64"))
    out = np.full(len(sign), np.nan)
    run = 0.0
    for i, s in enumerate(sign):
        if np.isnan(s):
            run = 0.0
            continue
        if s == 0:
            run = 0.0
        elif run * s > 0:
            run += s
        else:
            run = s
        out[i] = run
    if cap is not None:
        out = np.clip(out, -cap, cap)
    return pd.Series(out, index=values.index)


def sign_flips(values: pd.Series, days: int) -> pd.Series:
    """Number of sign changes within the trailing ``days``."""
    sign = np.sign(values)
    flipped = (sign != sign.shift(1)) & sign.notna() & sign.shift(1).notna()
    return flipped.astype("float64").where(sign.notna()).rolling(days, min_periods=min_periods(days)).sum()


def rsi(close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder's RSI: averages of gains and losses started from a simple mean of the first period, then smoothed by 1/period.

    A missing close holds the averages (the day contributes nothing) and yields a missing RSI.
    """
    values = close.to_numpy(dtype="float64")
    out = np.full(len(values), np.nan)
    avg_gain = avg_loss = np.nan
    first_gains: list[float] = []
    first_losses: list[float] = []
    prev = np.nan
    for i, price in enumerate(values):
        if np.isnan(price):
            continue
        if np.isnan(prev):
            prev = price
            continue
        change = price - prev
        prev = price
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if np.isnan(avg_gain):
            first_gains.append(gain)
            first_losses.append(loss)
            if len(first_gains) == period:
                avg_gain, avg_loss = float(np.mean(first_gains)), float(np.mean(first_losses))
            else:
                continue
        else:
            avg_gain = (avg_gain * (period - 1) + gain) / period
            avg_loss = (avg_loss * (period - 1) + loss) / period
        out[i] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return pd.Series(out, index=close.index)


def rsi_divergence(close: pd.Series, rsi_values: pd.Series, pivot_days: int, lookback_days: int, kind: str) -> pd.DataFrame:
    """Automatic RSI divergence detector, causal.

    A swing high at day p is the highest close of p-k..p+k (k = ``pivot_days``); it is known only
    at p+k. ``kind="bearish"``: the latest two known swing highs, at most ``lookback_days`` apart,
    show price making a higher high while RSI makes a lower high. ``kind="bullish"`` mirrors it on
    swing lows (lower low in price, higher low in RSI). Returns, per day:
    ``strength`` (RSI points between the two swings, 0 when no divergence is active),
    ``price_move`` (relative price change between them) and ``age`` (days since the second swing;
    NaN when none). A divergence stays active for ``lookback_days`` after its second swing.
    """
    if kind not in {"bearish", "bullish"}:
        raise ValueError(f"kind must be 'bearish' or 'bullish', got {kind!r}")
    sign = 1.0 if kind == "bearish" else -1.0
    price = close.to_numpy(dtype="float64") * sign  # mirror lows into highs
    osc = rsi_values.to_numpy(dtype="float64") * sign
    n, k = len(price), pivot_days
    strength = np.zeros(n)
    move = np.zeros(n)
    age = np.full(n, np.nan)
    pivots: list[int] = []
    for t in range(n):
        p = t - k
        if p - k >= 0:
            window = price[p - k : t + 1]
            others = np.delete(window, k)  # strictly highest: a flat stretch is not a swing
            if not np.isnan(window).any() and not np.isnan(osc[p]) and price[p] > others.max():
                pivots.append(p)
        if np.isnan(price[t]) or len(pivots) < 2:
            if np.isnan(price[t]):
                strength[t] = move[t] = np.nan
            continue
        p1, p2 = pivots[-2], pivots[-1]
        if p2 - p1 > lookback_days or t - p2 > lookback_days:
            continue
        if price[p2] > price[p1] and osc[p2] < osc[p1]:
            strength[t] = osc[p1] - osc[p2]
            move[t] = abs(price[p2] / price[p1] - 1.0)
            age[t] = t - p2
    return pd.DataFrame({"strength": strength, "price_move": move, "age": age}, index=close.index)
