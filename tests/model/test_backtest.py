"""The de-risking backtest by hand, on a ten-day history with one known cascade (a -15 % low on day 6): liquidation at 10x
but not at 3x, the funding and fee arithmetic, the one-day delay between an answer and the exposure it sets, and the
baselines cutting on as many days as the forecast."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cascade_radar.config import BacktestConfig
from training.backtest import (
    ALWAYS_ON,
    MODEL,
    PLACEBO,
    POOLED,
    VOLATILITY,
    backtest_coin,
    coin_rng,
    decisions,
    event_window,
    exposures,
    placebo_cuts,
    pool,
    simulate,
    trading_days,
    training_base_rate,
    volatility_cut,
)

DAYS = pd.date_range("2024-01-01", periods=11, freq="D")  # day 0 (an answer only) .. day 10
CRASH = DAYS[6]  # the cascade: the day's low 15 % under the previous close


def bars(low_on_crash: float = 85.0, funding: float = 0.0, high_on: dict[pd.Timestamp, float] | None = None) -> pd.DataFrame:
    """Flat closes at 100, lows and highs 1 % away, one crash day whose low is ``low_on_crash`` (close back at 100)."""
    frame = pd.DataFrame({"high": 101.0, "low": 99.0, "close": 100.0, "funding_frac8h": funding}, index=DAYS)
    frame.loc[CRASH, "low"] = low_on_crash
    for day, high in (high_on or {}).items():
        frame.loc[day, "high"] = high
    return frame


def answers(alert_days: tuple[pd.Timestamp, ...] = (), p_long: float = 0.3, p_short: float = 0.1) -> pd.DataFrame:
    """Out-of-fold answers on days 0..9 (each decides the next day): P(cascade) 0.8 on ``alert_days`` (line 0.5), else 0.2."""
    days = DAYS[:-1]
    oof = pd.DataFrame({"fold": 1, "p_cascade": [0.8 if d in alert_days else 0.2 for d in days], "p_long": p_long, "p_short": p_short,
                        "target": "none"}, index=days)
    return decisions(oof, pd.Series(0.5, index=days), pd.Series(0.2, index=days))


def config(**kw: object) -> BacktestConfig:
    return BacktestConfig(**{"fee": 0.0, "placebo_draws": 50, "volatility_days": 5, **kw})


def one_path(trade: pd.DataFrame, leverage: list[float], cfg: BacktestConfig):  # noqa: ANN201 - Simulation
    return simulate(trade, np.asarray(leverage, dtype=float)[:, None], cfg)


def test_the_crash_liquidates_a_10x_long_but_not_a_3x_long() -> None:
    cfg = config()
    trade = trading_days(answers(), bars(), cfg)
    assert trade.index[0] == DAYS[1] and trade.index[-1] == DAYS[10]  # each answer decides the day after it
    n = len(trade)
    ten, three = one_path(trade, [10.0] * n, cfg), one_path(trade, [3.0] * n, cfg)
    crash = trade.index.get_loc(CRASH)
    # 10x: liquidation price 100 * (1 - 1/10 + 0.005) = 90.5 >= the low 85; what is left: equity x L x mm = 1 x 10 x 0.005
    assert ten.liquidated[:, 0].tolist() == [i == crash for i in range(n)]
    assert ten.equity[crash, 0] == pytest.approx(0.05)
    assert ten.equity[-1, 0] == pytest.approx(0.05)  # re-opened at 10x with what was left; flat closes after
    # 3x: liquidation price 100 * (1 - 1/3 + 0.005) = 67.2 < 85; the close is back at 100: nothing lost
    assert not three.liquidated.any()
    assert three.equity[:, 0] == pytest.approx(np.ones(n))


def test_a_short_is_liquidated_by_the_days_high() -> None:
    cfg = config()
    trade = trading_days(answers(), bars(low_on_crash=99.0, high_on={DAYS[3]: 110.0}), cfg)
    sim = one_path(trade, [-10.0] * len(trade), cfg)
    # short 10x: liquidation price 100 * (1 + 1/10 - 0.005) = 109.5 <= the high 110
    assert sim.liquidated[:, 0].tolist() == [d == DAYS[3] for d in trade.index]
    assert sim.equity[trade.index.get_loc(DAYS[3]), 0] == pytest.approx(0.05)


def test_funding_is_three_eight_hour_rates_a_day_paid_by_longs_received_by_shorts() -> None:
    cfg = config()
    trade = trading_days(answers(), bars(low_on_crash=99.0, funding=0.0001), cfg)
    assert trade["funding_day"].tolist() == pytest.approx([0.0003] * len(trade))
    long3, short3 = one_path(trade, [3.0] * len(trade), cfg), one_path(trade, [-3.0] * len(trade), cfg)
    # day 1: notional 3 x 1, pays 3 x 0.0003 = 0.0009; flat prices, so each day x (1 -/+ 0.0009)
    assert long3.equity[0, 0] == pytest.approx(1 - 0.0009)
    assert short3.equity[0, 0] == pytest.approx(1 + 0.0009)
    assert long3.equity[1, 0] == pytest.approx((1 - 0.0009) ** 2)
    assert long3.funding[0, 0] == pytest.approx(0.0009) and short3.funding[0, 0] == pytest.approx(-0.0009)
    # a day without a stored rate pays none (and is counted)
    gap = bars(low_on_crash=99.0, funding=0.0001)
    gap.loc[DAYS[2], "funding_frac8h"] = np.nan
    holed = trading_days(answers(), gap, cfg)
    assert holed.loc[DAYS[2], "funding_day"] == 0.0 and int(holed["funding_missing"].sum()) == 1


def test_the_fee_is_charged_on_every_change_of_notional() -> None:
    cfg = config(fee=0.0005)
    frame = bars(low_on_crash=99.0)
    frame.loc[DAYS[3]:, "close"] = 110.0  # +10 % on day 3, flat after
    frame.loc[DAYS[3]:, ["high", "low"]] = [111.0, 109.0]
    trade = trading_days(answers(), frame, cfg)
    sim = one_path(trade, [3.0, 1.0, 3.0, 3.0] + [3.0] * (len(trade) - 4), cfg)
    e1 = 1 - 3 * 0.0005  # day 1: opens 3 x 1 of notional
    e2 = e1 - abs(1 * e1 - 3 * 1) * 0.0005  # day 2: cut to 1x: from 3 (flat day) to 1 x e1
    fee3 = abs(3 * e2 - 1 * e1) * 0.0005  # day 3: back to 3x
    e3 = e2 - fee3 + 3 * e2 * 0.10  # ... and the +10 % move
    fee4 = abs(3 * e3 - 3 * e2 * 1.10) * 0.0005  # day 4: re-levered to 3x of the new equity: the drift is traded too
    assert sim.fees[:4, 0] == pytest.approx([3 * 0.0005, abs(e1 - 3) * 0.0005, fee3, fee4])
    assert sim.equity[:4, 0] == pytest.approx([e1, e2, e3, e3 - fee4])


def test_an_alert_on_day_5_cuts_day_6_not_day_5() -> None:
    cfg = config()
    trade = trading_days(answers(alert_days=(DAYS[5],)), bars(), cfg)
    keys, exposure = exposures(trade, cfg, coin_rng(cfg.seed, "BTC"))
    forecast = exposure[:, keys.get_loc(("long", 10.0, MODEL, -1))]
    assert forecast[trade.index.get_loc(DAYS[5])] == 10.0  # the day of the alert: held
    assert forecast[trade.index.get_loc(DAYS[6])] == cfg.cut_leverage  # the day after: cut
    assert (forecast == 10.0).sum() == len(trade) - 1
    # so the cut saves the 10x long from the crash of day 6 ...
    saved = simulate(trade, exposure, cfg)
    assert not saved.liquidated[:, keys.get_loc(("long", 10.0, MODEL, -1))].any()
    assert saved.liquidated[:, keys.get_loc(("long", 10.0, ALWAYS_ON, -1))].sum() == 1
    # ... and an alert on the crash day itself comes too late (the leak canary: using day t's answer for day t would save it)
    late = trading_days(answers(alert_days=(CRASH,)), bars(), cfg)
    keys, exposure = exposures(late, cfg, coin_rng(cfg.seed, "BTC"))
    assert simulate(late, exposure, cfg).liquidated[:, keys.get_loc(("long", 10.0, MODEL, -1))].sum() == 1


def test_the_placebo_cuts_as_many_days_and_repeats_with_its_seed() -> None:
    draws = placebo_cuts(200, 37, 50, coin_rng(35, "ETH"))
    assert draws.shape == (200, 50) and (draws.sum(axis=0) == 37).all()
    assert (draws == placebo_cuts(200, 37, 50, coin_rng(35, "ETH"))).all()
    assert (draws != placebo_cuts(200, 37, 50, coin_rng(36, "ETH"))).any()
    assert (draws != placebo_cuts(200, 37, 50, coin_rng(35, "SOL"))).any()  # each coin its own stream
    assert len({tuple(np.flatnonzero(draws[:, j])) for j in range(50)}) > 40  # the draws differ


def test_the_volatility_rule_cuts_the_most_volatile_days_as_often_as_the_forecast() -> None:
    vol = np.array([0.01, np.nan, 0.05, 0.03, 0.04, 0.02])
    assert volatility_cut(vol, 2).tolist() == [False, False, True, False, True, False]
    assert volatility_cut(vol, 9).sum() == 5  # never a day without a volatility


def test_every_baseline_cuts_on_as_many_days_as_the_forecast_and_the_event_is_caught() -> None:
    cfg = config()
    alerts = (DAYS[2], DAYS[5], DAYS[6])
    events = pd.DataFrame({"start": [CRASH], "direction": ["long"]})
    coin = backtest_coin("BTC", answers(alert_days=alerts), bars(), events, cfg, in_sample_days=7)
    t = coin.table
    for lev in (3.0, 10.0):
        cut = {rule: t.loc[("long", lev, rule), "days_cut"] for rule in (MODEL, VOLATILITY, PLACEBO)}
        assert cut == {MODEL: 3, VOLATILITY: 3, PLACEBO: 3}
        assert t.loc[("long", lev, ALWAYS_ON), "days_cut"] == 0
    assert t.loc[("long", 10.0, MODEL), "events_caught"] == 1 and t.loc[("long", 10.0, MODEL), "events"] == 1
    assert t.loc[("long", 10.0, MODEL), "liquidations"] == 0 and t.loc[("long", 10.0, ALWAYS_ON), "liquidations"] == 1
    assert t.loc[("long", 10.0, ALWAYS_ON), "final_equity"] == pytest.approx(0.05)
    assert t.loc[("long", 10.0, ALWAYS_ON), "worst_drawdown"] == pytest.approx(-0.95)
    assert coin.excluded["in_sample_days"] == 7 and coin.excluded["traded_days"] == 10
    # the side book holds the side the forecast names: P(long squeeze) > P(short squeeze): long
    assert t.loc[("side", 10.0, MODEL), "final_equity"] == t.loc[("long", 10.0, MODEL), "final_equity"]
    window = event_window(coin, CRASH)
    assert window.loc[CRASH, "10x exposure"] == cfg.cut_leverage and window.loc[CRASH, "10x always_on"] < 0  # marked liquidated


def test_the_relative_risk_base_rate_comes_from_the_folds_training_window() -> None:
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    target = pd.Series(["none"] * 40, index=days, dtype=object)
    target[days[:10]] = "long"  # 10 of the first 20 days have a cascade ahead
    target[days[20:]] = "long"  # every later day: must not reach the first fold's base rate
    oof = pd.DataFrame({"fold": [1] * 10 + [2] * 10}, index=days[20:40])
    base = training_base_rate(oof, target, purge_days=0)
    assert base.iloc[0] == pytest.approx(10 / 20)  # fold 1 starts on day 20: days 0..19
    assert base.iloc[-1] == pytest.approx(20 / 30)  # fold 2 starts on day 30: days 0..29
    assert training_base_rate(oof, target, purge_days=5).iloc[0] == pytest.approx(10 / 15)  # the purge drops days 15..19


def test_pooled_is_the_mean_of_the_coins_daily_returns() -> None:
    cfg = config()
    up = bars(low_on_crash=99.0)
    up.loc[DAYS[4]:, ["high", "low", "close"]] = [111.0, 109.0, 110.0]  # +10 % on day 4
    a = backtest_coin("A", answers(), up, pd.DataFrame(columns=["start", "direction"]), cfg)
    b = backtest_coin("B", answers().iloc[:5], bars(low_on_crash=99.0), pd.DataFrame(columns=["start", "direction"]), cfg)
    pooled = pool([a, b], cfg)
    assert pooled.asset == POOLED
    key = ("long", 3.0, ALWAYS_ON, -1)
    # day 4: A +30 %, B flat -> +15 %; after day 5 only A trades (flat)
    assert pooled.returns.loc[DAYS[4], key] == pytest.approx(0.15)
    assert pooled.table.loc[("long", 3.0, ALWAYS_ON), "final_equity"] == pytest.approx(1.15)
    assert pooled.table.loc[("long", 3.0, ALWAYS_ON), "days"] == 15


def test_a_hole_in_the_bars_is_refused_by_day() -> None:
    holed = bars()
    holed.loc[DAYS[4], "low"] = np.nan
    with pytest.raises(ValueError, match="2024-01-05"):
        trading_days(answers(), holed, config())


def test_a_leverage_liquidated_at_entry_is_refused() -> None:
    with pytest.raises(ValidationError, match="maintenance_margin"):
        BacktestConfig(leverages=[3, 250], maintenance_margin=0.005)
    with pytest.raises(ValidationError, match="cut_leverage"):
        BacktestConfig(leverages=[3, 10], cut_leverage=3)
