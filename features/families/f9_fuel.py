"""Family 9 — liquidation fuel map (a candidate): how much open interest would be liquidated by a move of x % either way.

The map is an estimate built from daily open interest and the daily price path alone, day t from days <= t:

* **Positions in coins.** Open interest is counted in coins (``oi_close_usd / price_usd``), so a price move does not read as
  positions opened or closed. The splice's level drops out: only day-on-day ratios of the series are used.
* **Opening.** A rise of open interest on day d opens a cohort of that many coins at the day's typical price
  ``(high + low + close) / 3`` (the close where no candle is stored). Every contract has a long and a short side, so the
  same cohort opens on both books. The long/short *account* ratios are not used to split it: they count heads, not
  size, and the two books hold the same number of contracts.
* **Leverage.** Each cohort is spread over the tiers ``fuel_leverage_tiers`` with the weights ``fuel_tier_weights``. A
  long of tier L opened at P is liquidated at ``P·(1 − 1/L + mm)``, a short at ``P·(1 + 1/L − mm)``
  (``mm = fuel_maintenance_margin``).
* **Closing.** A fall of open interest on day t closes the same fraction of every open cohort (proportional, not oldest
  first): each cohort is multiplied by ``OI_t / OI_{t-1}``. Cohorts older than ``fuel_max_age_days`` count as closed, which
  keeps the map's memory bounded (day t reads days t − age..t only). On a day the modelled liquidations caused the fall,
  survivors shrink too: the map errs towards less fuel after a flush.
* **Liquidation.** A long cohort of a tier is gone once the price traded at or below its level after the day it opened
  (the daily low from the next day on, the close on the opening day itself: the order of the day's trades is unknown);
  a short once the price traded at or above its level (daily high). A live long's level is therefore below today's close,
  a live short's above.

Features, per band x of ``fuel_bands``: the share of open interest (coins) whose long-liquidation level lies within x
below today's close, the share whose short level lies within x above, their sum (fuel in reach of an x move either way)
and their difference (+: more longs to flush). Missing until ``fuel_max_age_days`` days of open interest are stored
(70 % of them), and on a day without open interest or price. No warning sign: the shares' level rests on the assumed
tiers, weights and memory (on BTC 2020-2025 the 5 % long share has a median of 1 %, a maximum of 12 %), so no round
threshold would mean the same under another setting.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig
from features.families import FeatureSet, family, summary
from features.transforms import min_periods


def leverage_tiers(cfg: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """(leverage, weight) per tier, weights normalised to sum 1; a setting that cannot describe a book is refused by name."""
    lev, w = np.asarray(cfg.fuel_leverage_tiers, float), np.asarray(cfg.fuel_tier_weights, float)
    if len(lev) == 0 or len(lev) != len(w):
        raise ValueError(f"features.fuel_leverage_tiers ({len(lev)} tiers) and features.fuel_tier_weights ({len(w)} weights) "
                         "must be non-empty and of the same length")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("features.fuel_tier_weights must be >= 0 with a positive sum")
    if (lev <= 1).any() or (1 / lev <= cfg.fuel_maintenance_margin).any():
        raise ValueError(f"features.fuel_leverage_tiers must each be > 1 and below 1 / features.fuel_maintenance_margin "
                         f"({1 / cfg.fuel_maintenance_margin:g} at {cfg.fuel_maintenance_margin:g}): got {cfg.fuel_leverage_tiers}")
    return lev, w / w.sum()


def _shift(values: np.ndarray, days: int, fill: float) -> np.ndarray:
    """``values`` moved ``days`` later (day t gets day t - days), ``fill`` before the start."""
    if days == 0:
        return values
    out = np.full_like(values, fill)
    out[days:] = values[:-days]
    return out


def liquidation_fuel(oi_coins: pd.Series, close: pd.Series, high: pd.Series, low: pd.Series, leverage: np.ndarray,
                     weights: np.ndarray, mm: float, bands: list[float], max_age: int) -> dict[str, pd.DataFrame]:
    """Per day, the share of open interest (coins) whose estimated liquidation level is within each band of today's close:
    ``{"long": frame, "short": frame}``, one column per band (the method: the module's docstring). Vectorised over days;
    one pass per cohort age and tier."""
    oi, px = oi_coins.to_numpy(float), close.to_numpy(float)
    hi = np.fmax(high.to_numpy(float), px)  # a candle whose high misses the close: the close bounds it
    lo = np.fmin(low.to_numpy(float), px)
    typical = np.where(np.isfinite(hi) & np.isfinite(lo), (hi + lo + px) / 3, px)
    prev = _shift(oi, 1, np.nan)
    pair = np.isfinite(oi) & np.isfinite(prev) & (prev > 0)
    opened = np.where(pair, np.maximum(oi - prev, 0.0), 0.0)  # coins opened on the day
    kept = np.where(pair & (oi < prev), oi / np.where(pair, prev, 1.0), 1.0)  # share of every cohort still open after the day
    log_kept = np.cumsum(np.log(kept))  # a cohort of day d holds opened[d] * exp(log_kept[t] - log_kept[d]) on day t
    near = {side: np.zeros((len(oi), len(bands))) for side in ("long", "short")}
    run_low, run_high = np.full(len(oi), np.inf), np.full(len(oi), -np.inf)  # extremes of the days after the cohort's
    for age in range(max_age + 1):
        if age > 0:
            run_low = np.fmin(run_low, _shift(lo, age - 1, np.inf))
            run_high = np.fmax(run_high, _shift(hi, age - 1, -np.inf))
        size = _shift(opened, age, 0.0) * np.exp(log_kept - _shift(log_kept, age, 0.0))
        if not size.any():
            continue
        entry, entry_close = _shift(typical, age, np.nan), _shift(px, age, np.nan)
        floor, ceiling = np.fmin(run_low, entry_close), np.fmax(run_high, entry_close)  # NaN only where both are unknown
        for lev, weight in zip(leverage, weights, strict=True):
            long_level, short_level = entry * (1 - 1 / lev + mm), entry * (1 + 1 / lev - mm)
            long_alive = long_level < floor  # NaN compares False: a cohort of an unknown price holds nothing
            short_alive = short_level > ceiling
            for j, band in enumerate(bands):
                near["long"][:, j] += weight * size * (long_alive & (long_level >= px * (1 - band)))
                near["short"][:, j] += weight * size * (short_alive & (short_level <= px * (1 + band)))
    known = pd.Series(pair, index=oi_coins.index).rolling(max_age + 1, min_periods=1).sum() >= min_periods(max_age + 1)
    usable = (known & oi_coins.gt(0) & close.notna()).to_numpy()
    return {side: pd.DataFrame(np.where(usable[:, None], values / np.where(usable, oi, 1.0)[:, None], np.nan), index=oi_coins.index,
                               columns=list(bands)) for side, values in near.items()}


def band_name(band: float) -> str:
    """``0.05`` -> ``5pct`` (feature names carry the band in whole percent, or tenths below 1 %)."""
    pct = band * 100
    return f"{pct:.0f}pct" if abs(pct - round(pct)) < 1e-9 else f"{pct:g}pct".replace(".", "p")


@family("fuel", "liquidation fuel map", "goldenrod", inputs=("oi_close_usd", "price_usd"),
        optional_inputs=("high_usd", "low_usd", "perp_high_usd", "perp_low_usd"), candidate=True)
def fuel_features(panel: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
    price = panel["price_usd"]
    # the spot candle's high and low where it is stored (it sets the price first), else the perpetual's
    high, low = panel["high_usd"].fillna(panel["perp_high_usd"]), panel["low_usd"].fillna(panel["perp_low_usd"])
    leverage, weights = leverage_tiers(cfg)
    fuel = liquidation_fuel(panel["oi_close_usd"] / price, price, high, low, leverage, weights, cfg.fuel_maintenance_margin,
                            cfg.fuel_bands, cfg.fuel_max_age_days)
    tiers = ", ".join(f"{lev:g}x" for lev in leverage)
    for band in cfg.fuel_bands:
        name, pct = band_name(band), f"{band * 100:g} %"
        long, short = fuel["long"][band], fuel["short"][band]
        out.add(f"long_within_{name}", long, f"estimated share of open interest whose long-liquidation level lies within {pct} below "
                f"today's close (opened on OI rises at the day's typical price over tiers {tiers}; not yet liquidated by the price path)",
                label=f"long fuel within {pct} below", unit="fraction")
        out.add(f"short_within_{name}", short, f"estimated share of open interest whose short-liquidation level lies within {pct} above "
                f"today's close (same map as the long side)", label=f"short fuel within {pct} above", unit="fraction")
        out.add(f"total_within_{name}", long + short, f"estimated share of open interest liquidated by a {pct} move either way "
                "(long plus short fuel)", label=f"fuel within {pct} either way", unit="fraction")
        out.add(f"imbalance_{name}", long - short, f"long minus short fuel within {pct} (+: more longs within reach of a fall than "
                "shorts of a rise)", label=f"long minus short fuel ({pct})", unit="fraction points")


@summary("fuel")
def describe_fuel(row: pd.Series) -> str:
    return (f"{row['fuel_long_within_5pct'] * 100:.0f} % of open interest would be liquidated by a 5 % fall, "
            f"{row['fuel_short_within_5pct'] * 100:.0f} % by a 5 % rise (estimated)")
