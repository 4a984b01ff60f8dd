"""A seeded generator of a small, plausible multi-year history of every series.

It plants liquidation cascades of both directions, each preceded by the build-up the product
looks for (funding one-sided for days, OI rising faster than price, compressing volatility,
STH-NUPL and SOPR drifting, spot inflows drying up). Tests use it so that a clone without the
reference data still exercises every stage; ``planted_events`` says what a correct labeller finds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from features.store import HistoryStore

BUILDUP_DAYS = 14


@dataclass(frozen=True)
class SyntheticHistory:
    series: dict[str, pd.DataFrame]
    events: pd.DataFrame  # date, direction ("long" | "short")


def _event_days(rng: np.random.Generator, n_days: int, first: int, last: int) -> list[tuple[int, str]]:
    days, day = [], first + int(rng.integers(20, 50))
    while day < last:
        days.append((day, "long" if rng.random() < 0.55 else "short"))
        day += int(rng.integers(45, 90))
    return days


def generate_history(seed: int = 0, start: str = "2021-01-01", n_days: int = 1100, asset_scale: float = 1.0) -> SyntheticHistory:
    """Every stored series for ``n_days`` from ``start``, with planted cascades.

    All-exchange liquidations cover day 0 .. n-91, Binance-only ones the last 400 days (a third of
    the scale), mirroring the reference history's switch of liquidation series.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=n_days, freq="D", name="date")
    events = _event_days(rng, n_days, first=60, last=n_days - 20)
    build = np.zeros(n_days)
    sign = np.zeros(n_days)
    shock = np.zeros(n_days)
    for day, direction in events:
        d = 1.0 if direction == "long" else -1.0
        lo = max(0, day - BUILDUP_DAYS)
        build[lo:day] = np.linspace(0.2, 1.0, day - lo)
        sign[lo:day] = d
        shock[day] = d

    # price: volatility compresses and price extends in the direction of the crowded side
    sigma = 0.03 * (1 - 0.5 * build)
    log_ret = 0.0005 + 0.004 * build * sign + sigma * rng.standard_normal(n_days) - 0.11 * shock
    close = 30000 * asset_scale * np.exp(np.cumsum(log_ret))
    open_ = np.concatenate([[close[0]], close[:-1]])
    wick = np.abs(rng.standard_normal((2, n_days))) * 0.01 + 0.002 + 0.05 * np.abs(shock)
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.lognormal(10, 0.3, n_days) * (1 + 3 * np.abs(shock))
    ohlcv = pd.DataFrame({"open_usd": open_, "high_usd": high, "low_usd": low, "close_usd": close,
                          "volume_base": volume, "volume_usd": volume * close}, index=dates)

    # open interest: leverage builds up before a cascade, is flushed on the day
    oi_log = np.cumsum(0.001 + 0.02 * build + 0.01 * rng.standard_normal(n_days) - 0.18 * np.abs(shock))
    oi = 1e10 * asset_scale * np.exp(oi_log)
    open_interest = pd.DataFrame({"oi_close_usd": oi, "oi_high_usd": oi * 1.01, "oi_low_usd": oi * 0.99}, index=dates)

    funding = 0.0001 + 0.00004 * rng.standard_normal(n_days) + 0.0005 * build * sign
    funding_binance = pd.DataFrame({"funding_rate_binance_frac8h": funding, "funding_events": 3.0}, index=dates)
    funding_agg = pd.DataFrame({"funding_rate_oiw_frac8h": funding * 0.9 + 0.00001 * rng.standard_normal(n_days)}, index=dates)

    inflow = rng.lognormal(np.log(20000), 0.15, n_days) * (1 - 0.4 * build * (sign > 0))
    outflow = rng.lognormal(np.log(20000), 0.15, n_days) * (1 - 0.3 * build * (sign < 0))
    supply = 2e6 + np.cumsum(inflow - outflow)
    flows = pd.DataFrame({"inflow_coin": inflow, "outflow_coin": outflow, "supply_on_exchanges_coin": supply,
                          "reference_price_usd": close, "market_cap_usd": close * 19e6, "mvrv": 1.8 + 0.2 * rng.standard_normal(n_days).cumsum() * 0.05}, index=dates)
    flows["mvrv"] = flows["mvrv"].clip(lower=0.5)

    nupl = np.zeros(n_days)
    for t in range(1, n_days):
        nupl[t] = 0.9 * nupl[t - 1] + 0.02 * rng.standard_normal() + 0.03 * build[t] * sign[t] - 0.1 * shock[t]
    sth_realized = close * (1 - nupl)
    sth_sopr = 1 + 0.008 * rng.standard_normal(n_days) + 0.02 * build * sign - 0.04 * shock
    cohorts = pd.DataFrame({
        "cohort_price_usd": close, "sopr": sth_sopr + 0.005, "sth_sopr": sth_sopr, "lth_sopr": 2 + 0.1 * rng.standard_normal(n_days),
        "sth_nupl": nupl, "lth_nupl": 0.6 + 0.02 * rng.standard_normal(n_days), "sth_realized_price_usd": sth_realized,
        "lth_realized_price_usd": close * 0.4, "mvrv_zscore": 1.5 + 0.3 * rng.standard_normal(n_days),
    }, index=dates)

    # positioning: top traders lean into the crowded side; takers chase the squeeze's victims' opposite
    prng = np.random.default_rng(seed + 1000)  # its own stream: the other series stay what they were
    lean = 0.15 * prng.standard_normal(n_days).cumsum() * 0.05 + 0.25 * build * sign
    positioning = pd.DataFrame({
        "lsr_global_accounts": np.exp(0.1 + lean + 0.05 * prng.standard_normal(n_days)),
        "lsr_top_accounts": np.exp(0.05 + 1.5 * lean + 0.05 * prng.standard_normal(n_days)),
        "lsr_top_positions": np.exp(1.2 * lean + 0.08 * prng.standard_normal(n_days)),
        "taker_buy_usd": volume * close * (0.5 - 0.04 * build * sign + 0.02 * prng.standard_normal(n_days)),
        "taker_sell_usd": volume * close * (0.5 + 0.04 * build * sign + 0.02 * prng.standard_normal(n_days)),
    }, index=dates)

    # liquidations: lognormal noise around a slowly drifting level; cascades are 8-15x that level
    level = 1e8 * asset_scale * np.exp(np.cumsum(0.01 * rng.standard_normal(n_days)))
    total = level * rng.lognormal(0, 0.35, n_days)
    total = np.where(shock != 0, level * rng.uniform(8, 15, n_days), total)
    long_share = np.clip(0.5 + 0.1 * rng.standard_normal(n_days), 0.2, 0.8)
    long_share = np.where(shock > 0, 0.85, np.where(shock < 0, 0.15, long_share))
    liq = pd.DataFrame({"liq_long_usd": total * long_share, "liq_short_usd": total * (1 - long_share)}, index=dates)
    binance_noise = rng.lognormal(np.log(0.35), 0.2, (2, n_days))
    liq_binance = pd.DataFrame({"binance_liq_long_usd": liq["liq_long_usd"] * binance_noise[0],
                                "binance_liq_short_usd": liq["liq_short_usd"] * binance_noise[1]}, index=dates)

    series = {
        "ohlcv": ohlcv, "open_interest": open_interest, "funding_binance": funding_binance, "funding_aggregated": funding_agg,
        "exchange_flows": flows, "onchain_cohorts": cohorts, "positioning": positioning,
        "liquidations": liq.iloc[: n_days - 90], "liquidations_binance": liq_binance.iloc[n_days - 400:],
    }
    event_frame = pd.DataFrame({"date": [dates[d] for d, _ in events], "direction": [k for _, k in events]})
    return SyntheticHistory(series, event_frame)


def load_into(store: HistoryStore, history: SyntheticHistory) -> None:
    """Append every synthetic series to ``store`` through the validated path."""
    for name, frame in history.series.items():
        store.append(name, frame, source="synthetic")
