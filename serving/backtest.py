"""What acting on the forecast was worth, as the service answers it (/v1/backtest): the files `make backtest` wrote.

The backtest runs offline (``training.backtest``: every coin, every policy, hundreds of random draws); the service only
reads what it wrote under reports/backtest/ with ``read_backtest`` — ~20 MB, about a second — once per coin and version
of the files (their modification time and size), and keeps it until they change. The answers themselves go through the
download cache (``serving.downloads``) under a key holding that version, so a client that has one gets a 304.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import threading
from collections import OrderedDict

import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.rules import alert_episodes, shown
from serving.schemas import BacktestAnswer
from serving.state import RequestError
from serving.tables import rows_csv
from training.backtest import BACKTEST_DIR, BOOK_WORDS, BOOKS, MODEL, PLACEBO, POOLED, RULE_WORDS, RULES, read_backtest

FILES = ("backtest.csv", "equity_curves.csv")  # what read_backtest reads
LEVERAGE_PATTERN = r"[0-9]+(\.[0-9]+)?x?"  # a leverage as a query parameter: 3, 2.5, 10x
WHAT = ("table", "curves")  # format=csv: the table (every book, leverage and rule) or the selected curves
NO_BACKTEST = "no backtest yet: run `make backtest` (it writes reports/backtest/)"
Version = tuple[tuple[int, int], ...]
KEEP_COINS = 3  # coins whose frames are kept in memory (their answers are kept by the download cache)


def backtest_version(settings: Settings) -> Version | None:
    """(modification time in ns, size) of each file of the last backtest, or None when one is missing."""
    directory = settings.reports_root / BACKTEST_DIR
    try:
        return tuple((s.st_mtime_ns, s.st_size) for s in ((directory / name).stat() for name in FILES))
    except FileNotFoundError:
        return None


class BacktestFiles:
    """The last backtest's (table, curves) of the last few coins asked for (~7 MB a coin; a read takes ~0.3 s), each read
    once per version of the files."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.read: OrderedDict[str, tuple[Version, pd.DataFrame, pd.DataFrame]] = OrderedDict()

    def frames(self, asset: str, version: Version) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(table, curves) of ``asset`` as ``read_backtest`` reads them; 404 naming the asset when the backtest has none."""
        with self.lock:  # one read at a time: a second request for the coin waits for the first one's frames
            kept = self.read.get(asset)
            if kept is not None:
                self.read.move_to_end(asset)
            if kept is None or kept[0] != version:
                try:
                    table, curves = read_backtest(self.settings, asset)
                except FileNotFoundError:  # removed since its version was read
                    raise RequestError("asset", NO_BACKTEST, 404) from None
                self.read = OrderedDict((a, k) for a, k in self.read.items() if k[0] == version)  # an older version's: let go
                kept = self.read[asset] = (version, table, curves)
                while len(self.read) > KEEP_COINS:
                    self.read.popitem(last=False)
        _, table, curves = kept
        if table.empty:
            raise RequestError("asset", f"{asset} is not in the last backtest (it holds {', '.join(self.assets()) or 'no coin'}): "
                                        "run `make backtest` with it among `assets`", 404)
        return table, curves

    def assets(self) -> list[str]:
        """The coins (and ``pooled``) the last backtest holds."""
        return [str(a) for a in pd.read_csv(self.settings.reports_root / BACKTEST_DIR / FILES[0], usecols=["asset"])["asset"].unique()]


def chosen_leverage(text: str | None, table: pd.DataFrame, configured: list[float]) -> float:
    """The leverage asked for (default: the first configured one the table holds, else its first): 400 when ``text`` is not
    a number, 404 when it was not backtested — each naming ``leverage``."""
    held = sorted(set(table["leverage"].astype(float)))
    if text is None:
        return next((v for v in configured if v in held), held[0])
    if not re.fullmatch(LEVERAGE_PATTERN, text):  # as the document declares it: a plain decimal number, `x` allowed after it
        raise RequestError("leverage", f"leverage {shown(text)} is not a number like 3 or 2.5 (an `x` after it is allowed)")
    value = float(text.removesuffix("x"))
    if value not in held:
        raise RequestError("leverage", f"leverage {value:g} was not backtested (backtested: {', '.join(f'{v:g}' for v in held)})", 404)
    return value


def _plain(value: object) -> object:
    """A cell as JSON holds it: NaN as null, numpy scalars as Python ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _column(frame: pd.DataFrame, name: str, kind: type) -> list[object] | None:
    """A curve's column per day, or None when it holds no value (chance's cut, the pooled book's exposure)."""
    if name not in frame or frame[name].isna().all():
        return None
    return [None if pd.isna(v) else kind(v) for v in frame[name]]


def _truth(value: object) -> bool:
    """A cut / liquidated cell as read from the CSV (a bool, or the text True / False where the column holds blanks)."""
    return value is True or str(value).lower() in ("true", "1", "1.0")


def cut_runs(dates: list[dt.date], cut: list[object] | None) -> list[dict[str, dt.date]]:
    """The runs of consecutive cut days, each as its first and last day (the alert-episode rule, ``rules.alert_episodes``)."""
    on = [bool(c) for c in (cut or [])][:len(dates)]
    flags = pd.Series(on + [False] * (len(dates) - len(on)), index=pd.Index(dates, dtype=object))
    return [{"first": first, "last": last} for first, last in alert_episodes(flags)]


def selected_curves(curves: pd.DataFrame, book: str, leverage: float) -> pd.DataFrame:
    return curves[(curves["book"] == book) & (curves["leverage"].astype(float) == leverage)]


def backtest_answer(settings: Settings, asset: str, version: Version, table: pd.DataFrame, curves: pd.DataFrame, book: str,
                    leverage: float) -> dict[str, object]:
    """/v1/backtest's JSON: the coin's table, and every rule's curve for ``book`` and ``leverage``."""
    cfg = settings.backtest
    held = sorted(set(table["leverage"].astype(float)))
    chosen = selected_curves(curves, book, leverage)
    dates = [d.date() for d in pd.DatetimeIndex(chosen.loc[chosen["rule"] == MODEL, "date"])]
    lines = []
    for rule in RULES:
        one = chosen[chosen["rule"] == rule]
        if one.empty:
            continue
        cut = _column(one.assign(cut=one["cut"].map(lambda v: None if pd.isna(v) else _truth(v))), "cut", bool)
        lines.append({"rule": rule, "label": RULE_WORDS[rule], "equity": _column(one, "equity", float),
                      "equity_p5": _column(one, "equity_p5", float) if rule == PLACEBO else None,
                      "equity_p95": _column(one, "equity_p95", float) if rule == PLACEBO else None,
                      "exposure": _column(one, "exposure", float), "cut": cut,
                      "liquidated": _column(one.assign(liquidated=one["liquidated"].map(lambda v: None if pd.isna(v) else _truth(v))),
                                            "liquidated", bool),
                      "cut_runs": cut_runs(dates, cut)})
    pooled = " (every coin with equal capital, rebalanced daily)" if asset == POOLED else ""
    about = (f"{asset}{pooled}, out of fold on daily bars: a position held at {', '.join(f'{v:g}x' for v in held)} and cut to "
             f"{cfg.cut_leverage:g}x on the day after each alert — the decision for day t+1 from the answer of day t, on days the "
             "model never saw — against the same position always on, cut when volatility is high (as many days) and cut on as "
             f"many random days (chance: {cfg.placebo_draws} draws, the median and its 5–95 % band).")
    caveat = ("Daily bars: the order of moves inside a day is not seen and a liquidation fills exactly at its level, with no "
              "slippage or fee — read liquidations as a floor, for every rule alike.")
    written = dt.datetime.fromtimestamp(version[0][0] / 1e9, dt.UTC)
    answer = BacktestAnswer(
        asset=asset, about=about, caveat=caveat, written_at=written,
        settings={"leverages": held, "cut_leverage": cfg.cut_leverage, "maintenance_margin": cfg.maintenance_margin, "fee": cfg.fee,
                  "starting_equity": cfg.starting_equity, "volatility_days": cfg.volatility_days, "placebo_draws": cfg.placebo_draws},
        books={b: BOOK_WORDS[b] for b in BOOKS if b in set(table["book"])}, rules=dict(RULE_WORDS),
        rows=table_rows(table), book=book, leverage=leverage, dates=dates, curves=lines)
    return answer.model_dump(mode="json")


def table_rows(table: pd.DataFrame) -> list[dict[str, object]]:
    """The table's rows as JSON holds them (NaN: null)."""
    return [{k: _plain(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def backtest_csv(asset: str, table: pd.DataFrame, curves: pd.DataFrame, what: str, book: str, leverage: float) -> str:
    """The table (every book, leverage and rule of ``asset``) or the curves of ``book`` and ``leverage``, as CSV."""
    if what == "table":
        return rows_csv(f"cascade-radar backtest of {asset}: one row per book, leverage and rule; equity a multiple of the start",
                        table_rows(table))
    chosen = selected_curves(curves, book, leverage).assign(date=lambda f: pd.to_datetime(f["date"]).dt.strftime("%Y-%m-%d"))
    title = f"cascade-radar backtest of {asset}: equity curves, {book} {leverage:g}x; equity a multiple of the start"
    return f"# {title}\n" + chosen.to_csv(index=False, float_format="%.10g")
