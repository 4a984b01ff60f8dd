"""Market-wide inputs: what every served coin's assembled panel says together on one day (issue 34's market-wide leverage).

A cascade that matters is rarely one coin's affair: on 2025-10-10 every coin fell and every book was flushed. These inputs
are the same on a day for every coin that reads them, and each is built from the coins' own assembled panels, day t from
days <= t only:

* ``market_oi_index`` — the coins' total open interest in USD, **chain-linked**: its day-on-day change is the total of the
  coins that have open interest on both days over their total the day before, so a coin whose history starts (or pauses)
  does not read as positions opened (or closed). The level is arbitrary (1.0 on the first day); only changes and ranks are
  read. In USD on purpose: the dollar value of open positions is what a fall has to liquidate (measured: the USD index's
  180-day range position ranked the 2020–2025 cascades at 0.69 pooled, the price-neutral one at 0.57);
* ``market_leverage_index`` — the same total net of price (yesterday's open interest valued at today's prices is the
  denominator): positions against the coins' market value, which moves with price since supplies barely change. Market
  capitalisations of every coin are not in the store, so this ratio is what "open interest against market value" can be
  from free data;
* ``market_funding_rank_mean`` — the mean over coins of each coin's funding percentile among its trailing
  ``trailing_norm_days``; ``market_funding_hot_share`` the share of coins whose percentile is at least ``HOT``;
* ``market_crowded_long_share`` / ``market_crowded_short_share`` — the share of coins whose all-accounts long/short ratio
  sits at or above ``HOT`` (at or below ``1 − HOT``) of its trailing percentiles;
* ``market_coins`` — how many coins fed the day (a share over fewer than ``min_coins`` coins is missing, not a small sample).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.transforms import trailing_rank

HOT = 0.9  # the top tenth of a coin's own trailing history: "extreme" for funding and crowding alike
MARKET_COLUMNS = ("market_oi_index", "market_leverage_index", "market_funding_rank_mean", "market_funding_hot_share",
                  "market_crowded_long_share", "market_crowded_short_share", "market_coins")


def chain_linked_total(values: pd.DataFrame, revalued: pd.DataFrame | None = None, min_coins: int = 1) -> pd.Series:
    """An index of the row total of ``values`` (days × coins) whose daily change uses only the coins present on both days.

    ``revalued``: what yesterday's values are worth today (default: yesterday's values). A day with fewer than
    ``min_coins`` coins on both days is missing, and the index carries its level across it.
    """
    before = values.shift(1) if revalued is None else revalued
    both = values.notna() & before.notna()
    today_total = values.where(both).sum(axis=1)
    before_total = before.where(both).sum(axis=1)
    enough = (both.sum(axis=1) >= min_coins) & (before_total > 0)
    log_change = np.log(today_total.where(enough) / before_total.where(enough))
    level = np.exp(log_change.fillna(0.0).cumsum())
    first = enough.idxmax() if enough.any() else None
    # missing before the first linked day and on days not linked: no number is better than a carried one there
    return level.where(enough & (level.index >= first)) if first is not None else level * np.nan


def share_of(flags: pd.DataFrame, present: pd.DataFrame, min_coins: int) -> pd.Series:
    """Share of the coins ``present`` that day whose ``flags`` are true; missing with fewer than ``min_coins`` present."""
    count = present.sum(axis=1)
    return (flags & present).sum(axis=1).div(count.where(count >= min_coins))


def market_inputs(panels: Mapping[str, pd.DataFrame], rank_days: int, min_coins: int) -> pd.DataFrame:
    """The ``MARKET_COLUMNS`` of every day any panel has, from the coins' assembled panels (``features.build.assemble``)."""
    panels = {coin: p for coin, p in panels.items() if not p.empty}
    if not panels:
        return pd.DataFrame(columns=list(MARKET_COLUMNS), dtype="float64")
    days = pd.DatetimeIndex(sorted(set().union(*(p.index for p in panels.values()))), name="date")

    def wide(column: str) -> pd.DataFrame:
        return pd.DataFrame({coin: p[column] if column in p.columns else np.nan for coin, p in panels.items()}).reindex(days).astype("float64")

    oi, price = wide("oi_close_usd"), wide("price_usd")
    out = pd.DataFrame(index=days)
    out["market_oi_index"] = chain_linked_total(oi, min_coins=min_coins)
    out["market_leverage_index"] = chain_linked_total(oi, revalued=oi.shift(1) * price / price.shift(1), min_coins=min_coins)
    funding_rank = wide("funding_rate_frac8h").apply(lambda s: trailing_rank(s, rank_days))
    out["market_funding_rank_mean"] = funding_rank.mean(axis=1).where(funding_rank.notna().sum(axis=1) >= min_coins)
    out["market_funding_hot_share"] = share_of(funding_rank >= HOT, funding_rank.notna(), min_coins)
    crowd_rank = np.log(wide("lsr_global_accounts").where(lambda x: x > 0)).apply(lambda s: trailing_rank(s, rank_days))
    out["market_crowded_long_share"] = share_of(crowd_rank >= HOT, crowd_rank.notna(), min_coins)
    out["market_crowded_short_share"] = share_of(crowd_rank <= 1 - HOT, crowd_rank.notna(), min_coins)
    out["market_coins"] = oi.notna().sum(axis=1).astype("float64")
    return out
