"""What the forecast is worth in money: a de-risking backtest over the out-of-fold answers.

Why: ROC-AUC and lead days do not answer what a desk asks first — *had I cut my leverage when it said so, would I have been
liquidated less, and what would it have cost me?* This module holds a leveraged position on every coin and cuts it while
the coin is in alert, and drives the same rule by realized volatility and by chance, so the forecast is judged against
the cheapest alternatives that cut as often.

Honest by construction:

* **Out of fold.** Only the days each fold's model never saw are traded: the answer of out-of-fold day d decides the
  exposure held on day d + 1 (no look-ahead: the decision for day t + 1 uses the answer of day t). The alert line of
  each fold is the walk-forward one (``training.thresholds.walk_forward_thresholds``: chosen from earlier folds' days),
  and the base rate the relative risk divides by is the coin's share of labelled days with a cascade ahead over the
  fold's training window (days before the fold's first day minus the purge). In-sample days are excluded and counted.
* **Daily bars.** The position is re-levered at every close (entry = the previous close). It is liquidated when the
  day's low (long) or high (short) reaches ``entry·(1 − 1/L + mm)`` (long) or ``entry·(1 + 1/L − mm)`` (short); then
  the margin is lost down to the maintenance margin (equity × L × mm is left, no liquidation fee taken — generous to
  the liquidated) and the position re-opens the next day at the policy's leverage with what is left. Intraday order is
  not seen: a day whose low and high both matter is judged on the side the position holds.
* **Costs.** Funding every day: notional × the day's three 8-hour rates (the store keeps their mean, fraction per 8 h);
  longs pay a positive rate, shorts receive it (a day without a stored rate: none, counted). A fee on every change of
  notional, ``|Δ notional| × fee`` — the daily re-levering too, since a constant leverage trades its drift.
* **Baselines by the same rule.** *Always on* never cuts. *Volatility* cuts the days after the highest realized
  volatility, as many as the forecast cut; its level is matched on the same out-of-fold period in hindsight (it knows how
  often the forecast alerted; an advantage to the baseline, not to the forecast). *Chance* (the placebo) cuts as many
  days chosen at random, many draws from a fixed random-number stream: its median and 5–95 % band. *Relative risk* scales the leverage
  continuously, ``L / max(1, P(cascade) / base rate)``.
* **Pooled** is a book holding every coin with equal capital, rebalanced daily: its daily return is the mean of the
  coins' daily returns (coins trading that day); counts (liquidations, days cut, events caught) are summed.

Books: ``long``, ``short`` and ``side`` — the side the forecast names (``cascade_radar.rules.side`` of the deciding day's
P(long squeeze) and P(short squeeze)): the crowded side, where a squeeze would hit; a trader riding the crowd holds it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cascade_radar.config import BacktestConfig, Settings
from cascade_radar.rules import LONG, side

DAYS_PER_YEAR = 365  # crypto trades every day
BOOKS = ("long", "short", "side")
BOOK_WORDS = {"long": "long", "short": "short", "side": "the forecast's side (the crowded side)"}  # as a person reads them
MODEL, ALWAYS_ON, VOLATILITY, PLACEBO, RELATIVE_RISK = "forecast", "always_on", "volatility", "placebo", "relative_risk"
RULES = (MODEL, ALWAYS_ON, VOLATILITY, PLACEBO, RELATIVE_RISK)
RULE_WORDS = {MODEL: "cut when the forecast alerts", ALWAYS_ON: "always on", VOLATILITY: "cut when volatility is high",
              PLACEBO: "cut on random days (chance)", RELATIVE_RISK: "scaled down by relative risk"}
POOLED = "pooled"
KEY_NAMES = ["book", "leverage", "rule", "draw"]  # draw: the placebo's draw, -1 for every other rule
FIGURES = ["days", "days_cut", "share_cut", "events", "events_caught", "liquidations", "worst_drawdown", "final_equity",
           "return_per_risk"]
VARYING = ["events_caught", "liquidations", "worst_drawdown", "final_equity", "return_per_risk"]  # what differs between draws
BAND = (5, 95)  # the placebo's band, percent
BACKTEST_DIR = "backtest"


# ------------------------------------------------------------------ inputs
def daily_bars(panel: pd.DataFrame) -> pd.DataFrame:
    """Per day ``high``, ``low``, ``close`` (USD) and ``funding_frac8h`` (the mean of the day's 8-hour rates) from an
    assembled panel. The perpetual's bars first — the instrument a leveraged position holds, whose price liquidates it —
    else the spot bars; never a mix (a spot low against a perpetual close would invent wicks)."""
    for prefix in ("perp_", ""):
        cols = [f"{prefix}high_usd", f"{prefix}low_usd", f"{prefix}close_usd"]
        if all(c in panel.columns for c in cols) and panel[cols].notna().all(axis=1).any():
            bars = panel[cols].set_axis(["high", "low", "close"], axis=1).astype(float)
            bars["funding_frac8h"] = panel["funding_rate_frac8h"].astype(float) if "funding_rate_frac8h" in panel else np.nan
            bars.attrs["source"] = "perpetual" if prefix else "spot"
            return bars
    raise ValueError("no daily bars: the store has neither perp_high_usd/perp_low_usd/perp_close_usd nor high_usd/low_usd/close_usd "
                     "(the candle series) — run `make data-reference` or `cascade-radar data update`")


def realized_vol(close: pd.Series, days: int) -> pd.Series:
    """Std of daily log returns over the ``days`` up to and including each day (known at its close)."""
    return np.log(close.where(close > 0)).diff().rolling(days, min_periods=days).std()


def training_base_rate(oof: pd.DataFrame, target: pd.Series, purge_days: int) -> pd.Series:
    """Per out-of-fold row (one coin's, with ``fold``), the coin's share of labelled days with a cascade ahead over its
    fold's training window: the labelled days (``target``, the labels' daily target) before the fold's first day minus
    ``purge_days``. Only what a model trained for the fold could have known: the relative risk stays out of fold."""
    labelled = target.dropna()
    out = pd.Series(np.nan, index=oof.index, dtype=float)
    for fold, rows in oof.groupby("fold"):
        known = labelled[labelled.index < rows.index.min() - pd.Timedelta(days=purge_days)]
        if len(known):
            out[(oof["fold"] == fold).to_numpy()] = float((known != "none").mean())
    return out


def decisions(oof: pd.DataFrame, alert_line: pd.Series, base_rate: pd.Series) -> pd.DataFrame:
    """One coin's out-of-fold answers as decisions, per answered day: ``p_cascade``, ``p_long``, ``p_short``, ``fold``,
    ``alert`` (P(cascade) at or above the fold's line), ``side`` and ``relative_risk`` (P(cascade) / base rate)."""
    out = oof[["fold", "p_cascade", "p_long", "p_short"]].copy()
    out["alert_line"] = alert_line.reindex(oof.index).astype(float)
    out["alert"] = (out["p_cascade"] >= out["alert_line"]).fillna(False).astype(bool)
    out["side"] = side(out["p_long"].to_numpy(), out["p_short"].to_numpy())
    out["base_rate"] = base_rate.reindex(oof.index).astype(float)
    out["relative_risk"] = out["p_cascade"] / out["base_rate"].where(out["base_rate"] > 0)
    return out.sort_index()


def trading_days(decided: pd.DataFrame, bars: pd.DataFrame, config: BacktestConfig) -> pd.DataFrame:
    """Per traded day t — the day after each answered day d — the bars of t, the close of d (the entry), the day's
    funding (fraction per day: 3 × the mean 8-hour rate; none where not stored) and the decision made on d.

    Holes are refused by name (a day without a bar inside the period would hide its move); days after the last bar
    are not traded."""
    days = decided.index + pd.Timedelta(days=1)
    full = bars.reindex(bars.index.union(days).union(decided.index))
    vol = realized_vol(full["close"], config.volatility_days)
    have = full.loc[days, ["high", "low", "close"]].notna().all(axis=1).to_numpy() & full.loc[decided.index, "close"].notna().to_numpy()
    if not have.all():
        missing = days[~have]
        inside = missing[missing < days[have].max()] if have.any() else missing
        if len(inside) or not have.any():
            shown = ", ".join(str(d.date()) for d in (inside if len(inside) else missing)[:5])
            raise ValueError(f"daily bars missing on {len(inside) or len(missing)} day(s) of the out-of-fold period ({shown}...): "
                             "the backtest needs a high, low and close on every day and the one before — repair the candle series")
    decided, days = decided[have], days[have]
    trade = pd.DataFrame({"prev_close": full.loc[decided.index, "close"].to_numpy(), **{c: full.loc[days, c].to_numpy() for c in ("high", "low", "close")}},
                         index=pd.DatetimeIndex(days, name="date"))
    funding = full.loc[days, "funding_frac8h"].to_numpy(dtype=float)
    trade["funding_missing"] = np.isnan(funding)
    trade["funding_day"] = 3.0 * np.nan_to_num(funding, nan=0.0)  # three payments a day
    trade["decided_on"] = decided.index
    for col in ("fold", "p_cascade", "p_long", "p_short", "alert_line", "alert", "side", "base_rate", "relative_risk"):
        trade[col] = decided[col].to_numpy()
    trade["realized_vol"] = vol.loc[decided.index].to_numpy()  # known at the close of the deciding day
    trade.attrs["source"] = bars.attrs.get("source", "")
    return trade


# ------------------------------------------------------------------ the rules
def volatility_cut(vol: np.ndarray, k: int) -> np.ndarray:
    """Cut on the ``k`` days of highest volatility (NaN never cut; ties by order): the same count as the forecast."""
    order = np.argsort(-np.nan_to_num(vol, nan=-np.inf), kind="stable")
    cut = np.zeros(len(vol), dtype=bool)
    cut[order[: min(k, int(np.isfinite(vol).sum()))]] = True
    return cut


def placebo_cuts(n: int, k: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(n, draws): each draw cuts exactly ``k`` of ``n`` days chosen uniformly at random."""
    ranks = rng.random((n, draws)).argsort(axis=0).argsort(axis=0)
    return ranks < k


def coin_rng(seed: int, asset: str) -> np.random.Generator:
    """The placebo's random-number stream for a coin, from ``backtest.seed`` and the coin's name (every run, every machine the same draws)."""
    return np.random.default_rng([seed, zlib.crc32(asset.encode())])


def exposures(trade: pd.DataFrame, config: BacktestConfig, rng: np.random.Generator) -> tuple[pd.MultiIndex, np.ndarray]:
    """Every policy's signed leverage per traded day: the columns are (book, leverage, rule, draw). Each is decided from
    the answer of the day before (the ``trade`` row carries it)."""
    n, draws = len(trade), config.placebo_draws
    alert = trade["alert"].to_numpy(dtype=bool)
    k = int(alert.sum())
    cuts = {MODEL: alert[:, None], ALWAYS_ON: np.zeros((n, 1), dtype=bool),
            VOLATILITY: volatility_cut(trade["realized_vol"].to_numpy(dtype=float), k)[:, None],
            PLACEBO: placebo_cuts(n, k, draws, rng)}
    signs = {"long": np.ones(n), "short": -np.ones(n), "side": np.where(trade["side"].to_numpy() == LONG, 1.0, -1.0)}
    rr = trade["relative_risk"].to_numpy(dtype=float)
    keys, blocks = [], []
    for book in BOOKS:
        for lev in config.leverages:
            for rule in RULES:
                if rule == RELATIVE_RISK:
                    size = (lev / np.maximum(1.0, np.nan_to_num(rr, nan=1.0)))[:, None]
                else:
                    size = np.where(cuts[rule], config.cut_leverage, lev)
                blocks.append(signs[book][:, None] * size)
                keys += [(book, float(lev), rule, d if rule == PLACEBO else -1) for d in range(size.shape[1])]
    return pd.MultiIndex.from_tuples(keys, names=KEY_NAMES), np.hstack(blocks)


# ------------------------------------------------------------------ the mechanics
@dataclass(frozen=True)
class Simulation:
    """Per traded day and policy: equity at the close, liquidated that day, fee and funding paid (funding < 0: received)."""

    equity: np.ndarray
    liquidated: np.ndarray
    fees: np.ndarray
    funding: np.ndarray

    start: float = 1.0

    @property
    def returns(self) -> np.ndarray:
        """Daily returns on the equity of the day before (0 once nothing is left)."""
        before = np.vstack([np.full(self.equity.shape[1], self.start), self.equity[:-1]])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(before > 0, self.equity / before - 1.0, 0.0)


def simulate(trade: pd.DataFrame, exposure: np.ndarray, config: BacktestConfig) -> Simulation:
    """Run every policy (``exposure``: days × policies, signed leverage) over the traded days.

    Each day, in order: re-lever at the previous close to ``exposure × equity`` (fee on the notional traded: the
    position's drift since then and any change of leverage); liquidated if the day's low (long) / high (short) reaches
    the liquidation price — equity × L × mm is left; else the close-to-close move and the day's funding."""
    prev = trade["prev_close"].to_numpy(dtype=float)
    high, low, close = (trade[c].to_numpy(dtype=float) for c in ("high", "low", "close"))
    funding_day = trade["funding_day"].to_numpy(dtype=float)
    n, m = exposure.shape
    mm = config.maintenance_margin
    equity, liquidated = np.empty((n, m)), np.zeros((n, m), dtype=bool)
    fees, funding = np.empty((n, m)), np.empty((n, m))
    before, carried = np.full(m, config.starting_equity), np.zeros(m)
    for t in range(n):
        lev = exposure[t]
        size = np.abs(lev)
        notional = lev * before
        fee = np.abs(notional - carried) * config.fee
        with np.errstate(divide="ignore"):
            reach = np.where(size > 0, 1.0 / np.where(size > 0, size, 1.0) - mm, np.inf)  # the fall (rise) that liquidates
        hit = ((lev > 0) & (low[t] <= prev[t] * (1.0 - reach))) | ((lev < 0) & (high[t] >= prev[t] * (1.0 + reach)))
        move = close[t] / prev[t] - 1.0
        paid = notional * funding_day[t]
        after = np.where(hit, before * size * mm - fee, before - fee + notional * move - paid)
        after = np.maximum(after, 0.0)
        equity[t], liquidated[t], fees[t], funding[t] = after, hit, fee, np.where(hit, 0.0, paid)
        carried = np.where(hit, 0.0, notional * (1.0 + move))
        before = after
    return Simulation(equity, liquidated, fees, funding, config.starting_equity)


# ------------------------------------------------------------------ the figures
def path_figures(returns: np.ndarray, abs_exposure: np.ndarray, start: float) -> dict[str, np.ndarray]:
    """Per policy: worst drawdown (equity from its running peak, the start included), final equity, and the annualised
    return per unit of time at risk — the mean daily return over the mean leverage held, × 365."""
    equity = start * np.cumprod(1.0 + returns, axis=0)
    peak = np.maximum.accumulate(np.vstack([np.full(returns.shape[1], start), equity]), axis=0)[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, equity / peak - 1.0, -1.0).min(axis=0)
        at_risk = abs_exposure.mean(axis=0)
        per_risk = np.where(at_risk > 0, returns.mean(axis=0) / at_risk * DAYS_PER_YEAR, np.nan)
    return {"worst_drawdown": drawdown, "final_equity": equity[-1], "return_per_risk": per_risk}


def summarise(keys: pd.MultiIndex, figures: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (book, leverage, rule): the figures; the placebo's row holds its draws' median, and ``<figure>_p5`` /
    ``<figure>_p95`` its band for the figures that differ between draws (``VARYING``; every draw cuts as many days)."""
    frame = pd.DataFrame({k: figures[k] for k in FIGURES}, index=keys)
    plain = frame[frame.index.get_level_values("rule") != PLACEBO].droplevel("draw")
    draws = frame[frame.index.get_level_values("rule") == PLACEBO].groupby(level=["book", "leverage", "rule"])
    placebo = draws.median()
    for q in BAND:
        placebo = placebo.join(draws[VARYING].quantile(q / 100).add_suffix(f"_p{q}"))
    table = pd.concat([plain, placebo])
    order = {r: i for i, r in enumerate(RULES)}
    return table.sort_index(key=lambda ix: ix.map(order) if ix.name == "rule" else ix.map({b: i for i, b in enumerate(BOOKS)})
                            if ix.name == "book" else ix)


@dataclass
class CoinBacktest:
    """One coin's backtest. ``table``: a row per (book, leverage, rule) with ``FIGURES`` (placebo: median and band);
    ``curves``: per traded day and (book, leverage, rule) the exposure, equity, whether the day was cut and liquidated
    (placebo: the draws' median equity and its band); ``days``: per traded day the bars and the deciding answer;
    ``excluded``: the days not traded and why."""

    asset: str
    table: pd.DataFrame
    curves: pd.DataFrame
    days: pd.DataFrame
    excluded: dict[str, int]
    returns: pd.DataFrame = field(repr=False)  # days × policies, for pooling
    abs_exposure: pd.DataFrame = field(repr=False)
    counts: pd.DataFrame = field(repr=False)  # policies × (liquidations, days_cut, events, events_caught, days)


def backtest_coin(asset: str, decided: pd.DataFrame, bars: pd.DataFrame, events: pd.DataFrame, config: BacktestConfig,
                  in_sample_days: int = 0) -> CoinBacktest:
    """One coin: ``decided`` (``decisions``: its out-of-fold answers), ``bars`` (``daily_bars``), ``events`` (the labels'
    events, ``start`` and ``direction``); ``in_sample_days``: labelled days the models trained on that have no out-of-fold
    answer (reported, never traded)."""
    trade = trading_days(decided, bars, config)
    keys, exposure = exposures(trade, config, coin_rng(config.seed, asset))
    sim = simulate(trade, exposure, config)
    full = np.array([k[1] for k in keys])
    cut = np.abs(exposure) < full[None, :] - 1e-12
    starts = set(pd.to_datetime(events["start"]).dt.normalize()) if len(events) else set()
    event_day = trade.index.isin(list(starts))
    counts = pd.DataFrame({"days": np.full(len(keys), len(trade)), "days_cut": cut.sum(axis=0), "events": np.full(len(keys), event_day.sum()),
                           "events_caught": (cut & event_day[:, None]).sum(axis=0), "liquidations": sim.liquidated.sum(axis=0)}, index=keys)
    returns = sim.returns
    figures = {**{c: counts[c].to_numpy() for c in counts}, **path_figures(returns, np.abs(exposure), config.starting_equity)}
    figures["share_cut"] = figures["days_cut"] / max(len(trade), 1)
    table = summarise(keys, figures)
    curves = coin_curves(trade.index, keys, exposure, sim, cut)
    excluded = {"in_sample_days": int(in_sample_days), "answered_days": len(decided), "traded_days": len(trade),
                "not_traded_at_the_end": len(decided) - len(trade), "days_without_funding": int(trade["funding_missing"].sum())}
    return CoinBacktest(asset, table, curves, trade, excluded, pd.DataFrame(returns, index=trade.index, columns=keys),
                        pd.DataFrame(np.abs(exposure), index=trade.index, columns=keys), counts)


def coin_curves(dates: pd.DatetimeIndex, keys: pd.MultiIndex, exposure: np.ndarray, sim: Simulation, cut: np.ndarray) -> pd.DataFrame:
    """Long format, per traded day and (book, leverage, rule): ``exposure`` (signed leverage), ``equity``, ``cut``,
    ``liquidated``; the placebo's rows: each day's median equity over its draws with ``equity_p5`` / ``equity_p95`` (a
    band per day, not one draw's path)."""
    rule = keys.get_level_values("rule")
    frames = []
    for j in np.flatnonzero(rule != PLACEBO):
        book, lev, name, _ = keys[j]
        frames.append(pd.DataFrame({"date": dates, "book": book, "leverage": lev, "rule": name, "exposure": exposure[:, j],
                                    "equity": sim.equity[:, j], "cut": cut[:, j], "liquidated": sim.liquidated[:, j]}))
    placebo = keys.droplevel("draw")
    for book, lev, name in dict.fromkeys(placebo[rule == PLACEBO]):
        cols = np.flatnonzero((rule == PLACEBO) & (keys.get_level_values("book") == book) & (keys.get_level_values("leverage") == lev))
        eq = sim.equity[:, cols]
        frames.append(pd.DataFrame({"date": dates, "book": book, "leverage": lev, "rule": name, "exposure": np.nan,
                                    "equity": np.median(eq, axis=1), "equity_p5": np.percentile(eq, BAND[0], axis=1),
                                    "equity_p95": np.percentile(eq, BAND[1], axis=1), "cut": np.nan, "liquidated": np.nan}))
    return pd.concat(frames, ignore_index=True)


def pool(coins: list[CoinBacktest], config: BacktestConfig) -> CoinBacktest:
    """Every coin in one book with equal capital, rebalanced daily: the mean of the coins' daily returns (those trading
    that day); counts summed over coins."""
    returns = pd.concat([c.returns for c in coins], keys=range(len(coins))).groupby(level=1).mean().sort_index()
    abs_exposure = pd.concat([c.abs_exposure for c in coins], keys=range(len(coins))).groupby(level=1).mean().sort_index()
    keys = returns.columns
    counts = sum((c.counts for c in coins[1:]), coins[0].counts)
    figures = {**{c: counts[c].to_numpy() for c in counts}, **path_figures(returns.to_numpy(), abs_exposure.to_numpy(), config.starting_equity)}
    figures["share_cut"] = figures["days_cut"] / np.maximum(figures["days"], 1)
    table = summarise(keys, figures)
    equity = config.starting_equity * np.cumprod(1.0 + returns.to_numpy(), axis=0)
    sim = Simulation(equity, np.full(equity.shape, np.nan), np.full(equity.shape, np.nan), np.full(equity.shape, np.nan), config.starting_equity)
    curves = coin_curves(returns.index, keys, np.full(equity.shape, np.nan), sim, np.full(equity.shape, np.nan))
    excluded = {k: int(sum(c.excluded[k] for c in coins)) for k in coins[0].excluded}
    return CoinBacktest(POOLED, table, curves, pd.DataFrame(index=returns.index), excluded, returns, abs_exposure, counts)


# ------------------------------------------------------------------ what a person reads
def event_window(coin: CoinBacktest, day: pd.Timestamp, book: str = "long", before: int = 5, after: int = 4) -> pd.DataFrame:
    """The ``before`` + 1 + ``after`` traded days around ``day``: the price move (close, low and high against the entry),
    the answer that decided the day, and per leverage the forecast's exposure and every rule's equity, each rebased to 1
    on the day before the window (a window reads as what it cost, not as the history before it)."""
    days = coin.days
    window = days.loc[day - pd.Timedelta(days=before): day + pd.Timedelta(days=after)]
    if window.empty:
        return pd.DataFrame()
    out = pd.DataFrame({"close": window["close"] / window["prev_close"] - 1, "low": window["low"] / window["prev_close"] - 1,
                        "high": window["high"] / window["prev_close"] - 1, "p_cascade (day before)": window["p_cascade"],
                        "alert": window["alert"], "side named": window["side"]}, index=window.index)
    curves = coin.curves[(coin.curves["book"] == book) & coin.curves["date"].isin(window.index)]
    first = window.index[0]
    for lev in sorted(curves["leverage"].unique()):
        at = curves[curves["leverage"] == lev]
        forecast = at[at["rule"] == MODEL].set_index("date")
        out[f"{lev:g}x exposure"] = forecast["exposure"]
        for rule in (MODEL, ALWAYS_ON, VOLATILITY, RELATIVE_RISK):
            series = at[at["rule"] == rule].set_index("date")
            base = _equity_before(coin, book, lev, rule, first)
            out[f"{lev:g}x {rule}"] = series["equity"] / base if base > 0 else np.nan
            if rule != RELATIVE_RISK:
                out.loc[series.index[series["liquidated"].astype(bool)], f"{lev:g}x {rule}"] *= -1  # marked: liquidated that day
    return out


def _equity_before(coin: CoinBacktest, book: str, lev: float, rule: str, first: pd.Timestamp) -> float:
    rows = coin.curves[(coin.curves["book"] == book) & (coin.curves["leverage"] == lev) & (coin.curves["rule"] == rule)]
    earlier = rows[rows["date"] < first]
    return float(earlier["equity"].iloc[-1]) if len(earlier) else 1.0


def headline(results: dict[str, CoinBacktest], books: tuple[str, ...] = ("long", "side")) -> pd.DataFrame:
    """The table `cascade-radar backtest` prints: per coin (and pooled), book and leverage — days cut, events caught,
    liquidations, final equity and return per unit of risk of the forecast against always on, volatility and chance (its
    median and 5–95 % band), and whether the forecast beat the volatility rule and the band (on final equity)."""
    rows = []
    for asset, coin in results.items():
        t = coin.table
        for book in books:
            for lev in sorted(t.index.get_level_values("leverage").unique()):
                def at(rule: str, col: str, t: pd.DataFrame = t, book: str = book, lev: float = lev) -> float:
                    return float(t.loc[(book, lev, rule), col])

                fc, vol, lo, hi = at(MODEL, "final_equity"), at(VOLATILITY, "final_equity"), at(PLACEBO, "final_equity_p5"), at(PLACEBO, "final_equity_p95")
                rows.append({"asset": asset, "book": book, "leverage": lev, "days": int(at(MODEL, "days")),
                             "days cut": int(at(MODEL, "days_cut")), "events": int(at(MODEL, "events")),
                             "caught fc/vol/chance": f"{at(MODEL, 'events_caught'):.0f}/{at(VOLATILITY, 'events_caught'):.0f}/{at(PLACEBO, 'events_caught'):.0f}",
                             "liquidations fc/on/vol/chance": f"{at(MODEL, 'liquidations'):.0f}/{at(ALWAYS_ON, 'liquidations'):.0f}/"
                                                              f"{at(VOLATILITY, 'liquidations'):.0f}/{at(PLACEBO, 'liquidations'):.0f}",
                             "equity forecast": fc, "equity always on": at(ALWAYS_ON, "final_equity"), "equity volatility": vol,
                             "equity chance": at(PLACEBO, "final_equity"), "chance 5-95%": f"{_g(lo)}–{_g(hi)}",
                             "equity rel. risk": at(RELATIVE_RISK, "final_equity"),
                             "ret/risk fc": at(MODEL, "return_per_risk"), "ret/risk on": at(ALWAYS_ON, "return_per_risk"),
                             "ret/risk vol": at(VOLATILITY, "return_per_risk"), "ret/risk chance": at(PLACEBO, "return_per_risk"),
                             "beats volatility": "yes" if fc > vol else "no",
                             "vs chance band": "above" if fc > hi else "below" if fc < lo else "inside"})
    return pd.DataFrame(rows)


def _g(value: float) -> str:
    return f"{value:.3g}"


def verdicts(results: dict[str, CoinBacktest], book: str = "long") -> dict[str, str]:
    """Per coin in words: did the forecast's cut beat the volatility rule and chance's band at each leverage (final equity)."""
    table = headline(results, (book,))
    out = {}
    for asset, rows in table.groupby("asset", sort=False):
        out[asset] = "; ".join(f"{r['leverage']:g}x {book}: {'beat' if r['beats volatility'] == 'yes' else 'did not beat'} volatility, "
                               f"{r['vs chance band']} chance's 5–95 % band" for _, r in rows.iterrows())
    return out


# ------------------------------------------------------------------ the stage: load, run, write, log
@dataclass
class BacktestResult:
    coins: dict[str, CoinBacktest]  # every coin and ``pooled``
    files: list[Path]
    run_id: str | None
    notes: list[str]


def coin_inputs(settings: Settings, asset: str) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(decisions, bars, events, in-sample days) of ``asset``: its out-of-fold answers from the last evaluation's reports
    at the walk-forward alert lines, its daily bars and funding from the store, its labelled events."""
    from features.build import assemble_panel, load_history
    from features.labels import build_labels
    from training.report import read_oof
    from training.thresholds import walk_forward_thresholds

    each = settings.for_asset(asset)
    oof = read_oof(each.reports_path)
    oof = oof[oof["asset"] == asset].sort_index()
    if oof.empty:
        raise ValueError(f"{asset}: no out-of-fold answers in {each.reports_path} — run `make train` first")
    panel = assemble_panel(load_history(each).panel())
    labels = build_labels(panel, settings.labels)
    line = walk_forward_thresholds(oof, settings.false_alarm_budget_per_30d, settings.alert_threshold)
    decided = decisions(oof, line, training_base_rate(oof, labels.daily["target"], settings.purge_days))
    labelled = labels.daily["target"].dropna().index
    in_sample = int((~labelled.isin(oof.index)).sum())
    return decided, daily_bars(panel), labels.events, in_sample


def coin_backtest(settings: Settings, asset: str) -> CoinBacktest:
    """One coin's backtest computed from the reports and the store (what `cascade-radar backtest` runs per coin)."""
    decided, bars, events, in_sample = coin_inputs(settings, asset)
    return backtest_coin(asset, decided, bars, events, settings.backtest, in_sample)


def read_backtest(settings: Settings, asset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, curves) of ``asset`` (or ``pooled``) as the last `cascade-radar backtest` wrote them under
    reports/backtest/: the table's rows per (book, leverage, rule), the curves' per day. Reads files only."""
    directory = settings.reports_root / BACKTEST_DIR
    if not (directory / "backtest.csv").exists():
        raise FileNotFoundError(f"{directory / 'backtest.csv'} not found: run `make backtest` first")
    table = pd.read_csv(directory / "backtest.csv")
    curves = pd.read_csv(directory / "equity_curves.csv", parse_dates=["date"])
    return table[table["asset"] == asset].reset_index(drop=True), curves[curves["asset"] == asset].reset_index(drop=True)


def run_backtest(settings: Settings) -> BacktestResult:
    """Every coin of ``settings.assets`` and the pooled book: computed, written under reports/backtest/ (backtest.md,
    backtest.csv, equity_curves.csv) and logged as an MLflow run of the project's experiment."""
    coins, notes = {}, []
    for asset in settings.assets:
        try:
            coins[asset] = coin_backtest(settings, asset)
        except FileNotFoundError as exc:
            notes.append(f"{asset}: {exc}")
    if not coins:
        raise FileNotFoundError("no coin has out-of-fold answers: " + "; ".join(notes))
    if len(coins) > 1:
        coins[POOLED] = pool(list(coins.values()), settings.backtest)
    files = write_backtest(coins, settings, notes)
    run_id = log_backtest(coins, settings, files)
    return BacktestResult(coins, files, run_id, notes)


def write_backtest(coins: dict[str, CoinBacktest], settings: Settings, notes: list[str]) -> list[Path]:
    from cascade_radar.files import atomic_write

    directory = settings.reports_root / BACKTEST_DIR
    directory.mkdir(parents=True, exist_ok=True)
    table = pd.concat({a: c.table for a, c in coins.items()}, names=["asset"]).reset_index()
    curves = pd.concat([c.curves.assign(asset=a) for a, c in coins.items()], ignore_index=True)
    curves = curves[["asset", *[c for c in curves.columns if c != "asset"]]]
    curves["date"] = pd.to_datetime(curves["date"]).dt.strftime("%Y-%m-%d")
    paths = [directory / "backtest.csv", directory / "equity_curves.csv", directory / "backtest.md"]
    atomic_write(paths[0], lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    atomic_write(paths[1], lambda p: curves.to_csv(p, index=False, float_format="%.6g"))
    text = backtest_markdown(coins, settings, notes)
    atomic_write(paths[2], lambda p: p.write_text(text))
    return paths


def format_headline(table: pd.DataFrame) -> pd.DataFrame:
    """The headline as text cells: equities to 3 significant digits, returns per risk as percentages."""
    out = table.copy()
    for col in [c for c in out.columns if c.startswith("equity ")]:
        out[col] = out[col].map(_g)
    for col in [c for c in out.columns if c.startswith("ret/risk ")]:
        out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"{v:+.0%}")
    out["leverage"] = out["leverage"].map(lambda v: f"{v:g}x")
    return out


def backtest_markdown(coins: dict[str, CoinBacktest], settings: Settings, notes: list[str]) -> str:
    cfg = settings.backtest
    any_coin = next(c for a, c in coins.items() if a != POOLED)
    lines = ["# What the forecast is worth: a de-risking backtest", "",
             f"Out-of-fold days only: each answer decides the next day's exposure. Leverage {', '.join(f'{v:g}x' for v in cfg.leverages)}, "
             f"cut to {cfg.cut_leverage:g}x while the coin is in alert (its walk-forward line); maintenance margin {cfg.maintenance_margin:g}, "
             f"fee {cfg.fee * 1e4:g} bp per unit of notional traded (daily re-levering included), funding every day from the store. "
             f"Volatility: the days after the highest {cfg.volatility_days}-day realized volatility, as many as the forecast cut "
             f"(matched on the same period in hindsight). Chance: {cfg.placebo_draws} draws of as many random days (the same draws every run: random-number seed {cfg.seed}); "
             f"median and {BAND[0]}–{BAND[1]} % band. Pooled: equal capital in every coin, rebalanced daily.", "",
             "Daily bars: a wick inside a day is seen only through the day's low and high, the order of intraday moves is not "
             "seen, a liquidation fills exactly at its level with no slippage and no liquidation fee. Real liquidations come "
             "sooner and cost more (mark-price wicks, fees, partial fills): read the liquidation counts as a floor.", "",
             "Days: " + "; ".join(f"{a} {c.excluded['traded_days']} traded ({c.excluded['in_sample_days']} labelled in-sample days "
                                  f"excluded{', ' + str(c.excluded['days_without_funding']) + ' without funding' if c.excluded['days_without_funding'] else ''})"
                                  for a, c in coins.items() if a != POOLED) + ".", "",
             f"Bars: the {any_coin.days.attrs.get('source', 'perpetual')} high, low and close where stored.", ""]
    for note in notes:
        lines.append(f"- not backtested: {note}")
    table = format_headline(headline(coins))
    lines += ["## Headline: long and the forecast's side", "", "`caught`: events whose first day was cut (forecast / volatility / chance "
              "median). `ret/risk`: mean daily return over the mean leverage held, annualised.", "", table.to_markdown(index=False), ""]
    lines += ["## Short", "", format_headline(headline(coins, ("short",))).to_markdown(index=False), ""]
    lines += ["## Verdicts (final equity, long)", ""] + [f"- {a}: {v}" for a, v in verdicts(coins).items()] + [""]
    for day in settings.replay.events:
        stamp = pd.Timestamp(day)
        lines += [f"## {day} day by day (long; equity rebased to 1 the day before the window; LIQ: liquidated that day)", ""]
        for asset, coin in coins.items():
            if asset == POOLED:
                continue
            window = event_window(coin, stamp)
            if window.empty:
                lines += [f"{asset}: not in its out-of-fold period", ""]
                continue
            lines += [f"**{asset}**", "", format_window(window).to_markdown(), ""]
    lines += ["Every figure: `backtest.csv` (per coin, book, leverage, rule); daily equity: `equity_curves.csv`."]
    return "\n".join(lines) + "\n"


def format_window(window: pd.DataFrame) -> pd.DataFrame:
    out = window.copy()
    out.index = out.index.strftime("%Y-%m-%d")
    for col in ("close", "low", "high"):
        out[col] = out[col].map(lambda v: f"{v:+.1%}")
    out["p_cascade (day before)"] = out["p_cascade (day before)"].map(lambda v: f"{v:.2f}")
    out["alert"] = out["alert"].map(lambda v: "ALERT" if v else "")
    for col in [c for c in out.columns if c.endswith("exposure")]:
        out[col] = out[col].map(lambda v: f"{v:g}x")
    for col in [c for c in out.columns if c.split(" ", 1)[0].endswith("x") and not c.endswith("exposure")]:
        out[col] = out[col].map(lambda v: "-" if pd.isna(v) else f"LIQ {-v:.3f}" if v < 0 else f"{v:.3f}")
    return out


def headline_metrics(coins: dict[str, CoinBacktest], leverage: float) -> dict[str, float]:
    """The run's few metrics: per coin and pooled, at ``leverage`` long, final equity of the forecast, always on,
    volatility and chance's median, and the liquidations of each."""
    out = {}
    for asset, coin in coins.items():
        for rule in (MODEL, ALWAYS_ON, VOLATILITY, PLACEBO):
            row = coin.table.loc[("long", leverage, rule)]
            out[f"{asset}.long_{leverage:g}x.final_equity.{rule}"] = float(row["final_equity"])
            out[f"{asset}.long_{leverage:g}x.liquidations.{rule}"] = float(row["liquidations"])
    return out


def log_backtest(coins: dict[str, CoinBacktest], settings: Settings, files: list[Path]) -> str:
    """One MLflow run in the project's experiment: the backtest settings as parameters, the headline metrics (long: final
    equity at the lowest leverage, liquidations at the highest, per coin and rule), backtest.md and backtest.csv as
    artifacts, the headline as the run's description."""
    import mlflow

    from training.register import setup_tracking
    from training.train import git_revision

    experiment_id = setup_tracking(settings)
    names = [a for a in coins if a != POOLED]
    label = "+".join(names) if len(names) <= 3 else f"{len(names)} coins"
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"backtest {label} · {git_revision()}") as run:
        mlflow.set_tags({"stage": "backtest", "assets": ",".join(names)})
        mlflow.log_params({f"backtest.{k}": v for k, v in settings.backtest.model_dump(mode="json").items()}
                          | {"alert_threshold": settings.alert_threshold, "false_alarm_budget_per_30d": settings.false_alarm_budget_per_30d})
        low, high = min(settings.backtest.leverages), max(settings.backtest.leverages)  # equity at the lowest, liquidations at the highest
        metrics = {k: v for k, v in headline_metrics(coins, low).items() if ".final_equity." in k}
        metrics |= {k: v for k, v in headline_metrics(coins, high).items() if ".liquidations." in k}
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.set_tag("mlflow.note.content", format_headline(headline(coins, ("long",))).to_markdown(index=False))
        for path in files:
            if path.name != "equity_curves.csv":  # tens of MB: it stays in reports/backtest/
                mlflow.log_artifact(str(path), artifact_path=BACKTEST_DIR)
        return run.info.run_id
