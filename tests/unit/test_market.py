"""The market-wide inputs (features.market): the chain-linked total, breadth shares, and no look-ahead across coins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.market import MARKET_COLUMNS, chain_linked_total, market_inputs, share_of


def days(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=n, freq="D", name="date")


def test_a_coin_that_starts_later_does_not_read_as_positions_opened() -> None:
    # A: 100 -> 110 -> 121 (+10 % a day); B appears on day 2 at 1,000 and rises 10 % on day 3
    oi = pd.DataFrame({"A": [100.0, 110.0, 121.0, 133.1], "B": [np.nan, np.nan, 1000.0, 1100.0]}, index=days(4))
    index = chain_linked_total(oi)
    assert np.isnan(index.iloc[0])  # nothing to link on the first day
    # day 1: 110/100; day 2: only A is on both days, 121/110; day 3: (133.1 + 1100) / (121 + 1000) = 1.1
    assert index.iloc[1:].tolist() == pytest.approx([1.1, 1.21, 1.331])
    # the plain total would have jumped ninefold on day 2
    assert oi.sum(axis=1).iloc[2] / oi.sum(axis=1).iloc[1] > 9


def test_the_price_neutral_total_moves_only_with_positions() -> None:
    oi = pd.DataFrame({"A": [100.0, 120.0, 120.0]}, index=days(3))
    price = pd.DataFrame({"A": [10.0, 12.0, 12.0]}, index=days(3))
    leverage = chain_linked_total(oi, revalued=oi.shift(1) * price / price.shift(1))
    assert leverage.iloc[1:].tolist() == pytest.approx([1.0, 1.0])  # OI rose 20 % with a 20 % price rise: no new positions


def test_too_few_coins_is_missing_not_one_coins_value() -> None:
    oi = pd.DataFrame({"A": [1.0, 2.0, 3.0], "B": [1.0, np.nan, 3.0]}, index=days(3))
    index = chain_linked_total(oi, min_coins=2)
    assert index.isna().tolist() == [True, True, True]  # day 1 and 2: only A on both days
    flags = pd.DataFrame({"A": [True, True], "B": [False, True], "C": [False, np.nan]}, index=days(2))
    present = flags.notna()
    assert share_of(flags.fillna(False).astype(bool), present, min_coins=3).tolist()[0] == pytest.approx(1 / 3)
    assert np.isnan(share_of(flags.fillna(False).astype(bool), present, min_coins=3).iloc[1])  # C missing: 2 coins


def panel(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    price = 100 * np.exp(np.cumsum(rng.normal(0, 0.03, n)))
    return pd.DataFrame({"price_usd": price, "oi_close_usd": price * np.exp(np.cumsum(rng.normal(0, 0.02, n))) * 1e6,
                         "funding_rate_frac8h": rng.normal(1e-4, 1e-4, n), "lsr_global_accounts": np.exp(rng.normal(0, 0.2, n))},
                        index=days(n))


def test_market_inputs_of_day_t_read_no_coin_after_t() -> None:
    panels = {f"c{i}": panel(400, i) for i in range(4)}
    full = market_inputs(panels, rank_days=60, min_coins=3)
    assert list(full.columns) == list(MARKET_COLUMNS) and full.iloc[100:].notna().all().all()
    for cut in (120, 250, 399):
        day = days(400)[cut]
        cut_panels = {k: p.loc[:day] for k, p in panels.items()}
        assert full.loc[day].to_numpy() == pytest.approx(market_inputs(cut_panels, 60, 3).loc[day].to_numpy())
    assert full["market_coins"].eq(4).all()
    assert ((full["market_crowded_long_share"].dropna() * 4) % 1 == 0).all()  # a share of four coins
