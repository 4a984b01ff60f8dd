"""Declared schemas of every stored series: a UTC-day index and named, unit-bearing columns.

Column names are unique across series so that the daily panel (all series side by side) needs no
prefixes; a column's suffix states its unit (``_usd``, ``_btc``, ``_frac8h`` …).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Column:
    """One stored column: its unit, an optional lower bound, and whether every write must carry it."""

    unit: str
    description: str
    min_value: float | None = None
    min_inclusive: bool = True
    required: bool = True
    max_value: float | None = None  # inclusive

    @property
    def upper(self) -> float:
        """The largest plausible value (inclusive): the declared maximum, else the unit's plausibility limit."""
        return self.max_value if self.max_value is not None else PLAUSIBLE[self.unit]

    @property
    def lower(self) -> float:
        """The smallest plausible value: the declared minimum (inclusive per ``min_inclusive``), else minus the unit's limit."""
        return self.min_value if self.min_value is not None else -PLAUSIBLE[self.unit]


FIRST_DAY = dt.date(2009, 1, 3)  # Bitcoin's genesis block: no crypto market signal is older

# Beyond these magnitudes a value is a unit or parsing error, not a market (the whole crypto market is ~4e12 USD; a daily
# volume of 1e13 USD would be a thousand times the largest ever): a signal outside them is refused, stored or posted.
PLAUSIBLE: dict[str, float] = {"USD": 1e13, "coin": 1e14, "ratio": 1e4, "fraction": 10.0, "fraction per 8 h": 0.05, "count": 1e4, "z": 100.0}


@dataclass(frozen=True)
class SeriesSchema:
    """A stored series: name, signal family, meaning, and its columns."""

    name: str
    family: str
    description: str
    columns: dict[str, Column] = field(default_factory=dict)
    # the exchanges it covers, as a reader is told beside a number from it ("$404M (Binance only)"); '' where it goes
    # without saying. A quantity measured at two scopes differs by the scope (Binance alone is about a third of three).
    scope: str = ""

    @property
    def required_columns(self) -> list[str]:
        return [c for c, spec in self.columns.items() if spec.required]


class SchemaError(ValueError):
    """A frame does not match its series' schema; the message names series, date and column."""

    def __init__(self, series: str, message: str, *, date: object = None, column: str | None = None) -> None:
        where = [f"series '{series}'"]
        if column is not None:
            where.append(f"column '{column}'")
        if date is not None:
            where.append(f"date {pd.Timestamp(date).date()}")
        super().__init__(f"{', '.join(where)}: {message}")
        self.series, self.date, self.column = series, date, column


_POS = dict(min_value=0.0, min_inclusive=False)
_NONNEG = dict(min_value=0.0)
# Exchanges cap funding far inside ±5 % per 8 h: a larger "fraction" is a percent taken for a fraction.
_FUNDING = dict(min_value=-0.05, max_value=0.05)
_NUPL = dict(min_value=-5.0, max_value=1.0)  # NUPL = 1 - realized/market value <= 1

SERIES: dict[str, SeriesSchema] = {
    s.name: s
    for s in [
        SeriesSchema(
            "ohlcv", "price", "daily spot candle (UTC day)",
            {
                "open_usd": Column("USD", "open", **_POS),
                "high_usd": Column("USD", "high", **_POS),
                "low_usd": Column("USD", "low", **_POS),
                "close_usd": Column("USD", "close", **_POS),
                "volume_base": Column("coin", "base volume", **_NONNEG),
                "volume_usd": Column("USD", "quote volume", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "ohlcv_perp", "price", "daily candle of the exchange's USDT-margined perpetual (UTC day); the price where no spot candle is stored",
            {
                "perp_open_usd": Column("USD", "open", **_POS),
                "perp_high_usd": Column("USD", "high", **_POS),
                "perp_low_usd": Column("USD", "low", **_POS),
                "perp_close_usd": Column("USD", "close", **_POS),
                "perp_volume_usd": Column("USD", "quote volume", required=False, **_NONNEG),
                # Binance kline fields 10 and 7 - 10: the free, full-history taker flow of the exchange's main perpetual
                "perp_taker_buy_usd": Column("USD", "aggressive (taker) buy volume of the perpetual, quote", required=False, **_NONNEG),
                "perp_taker_sell_usd": Column("USD", "aggressive (taker) sell volume of the perpetual: quote volume - taker-buy quote volume",
                                              required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "positioning", "positioning", "crowding of one side: Binance long/short account ratios and aggressive (taker) futures volume",
            {
                "lsr_global_accounts": Column("ratio", "long/short account ratio, all Binance accounts", required=False, **_POS),
                "lsr_top_accounts": Column("ratio", "long/short account ratio of Binance top traders", required=False, **_POS),
                "lsr_top_positions": Column("ratio", "long/short position-size ratio of Binance top traders", required=False, **_POS),
                "taker_buy_usd": Column("USD", "aggressive buy volume of futures", required=False, **_NONNEG),
                "taker_sell_usd": Column("USD", "aggressive sell volume of futures", required=False, **_NONNEG),
                "binance_taker_buy_usd": Column("USD", "aggressive buy volume of Binance futures only", required=False, **_NONNEG),
                "binance_taker_sell_usd": Column("USD", "aggressive sell volume of Binance futures only", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "positioning_coinalyze", "positioning",
            "Coinalyze's long/short ratio of the asset's Binance USDT perpetual, daily (free key; full daily history)",
            {"coinalyze_lsr_accounts": Column("ratio", "accounts net long / accounts net short on Binance's USDT perpetual (Coinalyze 'r'; "
                                              "Binance's all-accounts long/short ratio)", **_POS)},
        ),
        SeriesSchema(
            "orderbook_depth", "liquidity", "futures order-book depth within ±1 % of mid, end of UTC day",
            {
                "bids_1pct_usd": Column("USD", "bids within 1 % below mid", **_NONNEG),
                "asks_1pct_usd": Column("USD", "asks within 1 % above mid", **_NONNEG),
            },
        ),
        SeriesSchema(
            "market_context", "market", "BTC market context: Coinbase premium, US spot-ETF flows",
            {
                "coinbase_premium_frac": Column("fraction", "Coinbase vs Binance BTC price premium", required=False, min_value=-0.2, max_value=0.2),
                "spot_etf_netflow_usd": Column("USD", "net flow into US spot BTC ETFs (can be negative)", required=False),
                "spot_etf_aum_usd": Column("USD", "assets under management of US spot BTC ETFs", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "open_interest", "open_interest", "aggregated perpetual+futures open interest, all exchanges, end of UTC day",
            {
                "oi_close_usd": Column("USD", "OI at 24:00 UTC", **_NONNEG),
                "oi_high_usd": Column("USD", "intraday high of OI", required=False, **_NONNEG),
                "oi_low_usd": Column("USD", "intraday low of OI", required=False, **_NONNEG),
                "oi_coin_margined_usd": Column("USD", "coin-margined part of OI", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "open_interest_exchange", "open_interest", "open interest of one exchange's main perpetual, end of UTC day (scope differs from the aggregate)",
            {"exchange_oi_close_usd": Column("USD", "OI at 24:00 UTC", **_NONNEG)},
        ),
        SeriesSchema(
            "open_interest_bybit", "open_interest", "Bybit linear perpetual open interest, end of UTC day (one exchange; long daily history)",
            {
                "bybit_oi_coin": Column("coin", "OI in coins", **_NONNEG),
                "bybit_oi_close_usd": Column("USD", "OI valued at the day's close", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "open_interest_coinalyze", "open_interest",
            "open interest summed over the asset's perpetuals on the major exchanges Coinalyze lists, valued in USD by the provider, "
            "end of UTC day (free key; full daily history)",
            {"coinalyze_oi_close_usd": Column("USD", "OI at 24:00 UTC (close of the provider's daily bar)", **_NONNEG)},
        ),
        SeriesSchema(
            "open_interest_unverified", "open_interest", "OI series of unstated provider (reference only, not used by features)",
            {"unverified_oi_usd": Column("USD", "OI, provider unknown", **_NONNEG)},
        ),
        SeriesSchema(
            "funding_binance", "funding", "Binance USD-M perpetual funding, mean of the day's 8 h rates",
            {
                "funding_rate_binance_frac8h": Column("fraction per 8 h", "mean funding rate of the day", **_FUNDING),
                "funding_events": Column("count", "funding events in the day", required=False, **_NONNEG),
            },
        ),
        SeriesSchema(
            "funding_aggregated", "funding", "OI-/volume-weighted funding across exchanges, close of UTC day",
            {
                "funding_rate_oiw_frac8h": Column("fraction per 8 h", "OI-weighted funding", **_FUNDING),
                "funding_rate_volw_frac8h": Column("fraction per 8 h", "volume-weighted funding", required=False, **_FUNDING),
            },
        ),
        SeriesSchema(
            "exchange_flows", "exchange_flows", "on-chain flows into / out of exchanges (Coin Metrics tagging)",
            {
                "inflow_coin": Column("coin", "FlowInExNtv", **_NONNEG),
                "outflow_coin": Column("coin", "FlowOutExNtv", **_NONNEG),
                "supply_on_exchanges_coin": Column("coin", "SplyExNtv", required=False, **_NONNEG),
                "reference_price_usd": Column("USD", "Coin Metrics reference price", required=False, **_POS),
                "market_cap_usd": Column("USD", "market capitalisation", required=False, **_POS),
                "mvrv": Column("ratio", "market cap / realized cap", required=False, **_POS),
            },
        ),
        SeriesSchema(
            "onchain_cohorts", "sopr", "SOPR, STH/LTH SOPR and NUPL, STH realized price (ChartInspect cohorts)",
            {
                "cohort_price_usd": Column("USD", "price used by the provider", required=False, **_POS),
                "sopr": Column("ratio", "adjusted SOPR", required=False, **_POS),
                "sth_sopr": Column("ratio", "short-term-holder SOPR", required=False, **_POS),
                "lth_sopr": Column("ratio", "long-term-holder SOPR", required=False, **_POS),
                "sth_nupl": Column("fraction", "short-term-holder NUPL (can be negative)", required=False, **_NUPL),
                "lth_nupl": Column("fraction", "long-term-holder NUPL", required=False, **_NUPL),
                "sth_realized_price_usd": Column("USD", "STH realized price", required=False, **_POS),
                "lth_realized_price_usd": Column("USD", "LTH realized price", required=False, **_POS),
                "mvrv_zscore": Column("z", "MVRV Z-score", required=False),
            },
        ),
        SeriesSchema(
            "liquidations", "liquidations", "forced liquidations of futures on Binance, OKX and Bybit (CoinGlass's aggregate), USD per UTC day",
            {
                "liq_long_usd": Column("USD", "longs liquidated", **_NONNEG),
                "liq_short_usd": Column("USD", "shorts liquidated", **_NONNEG),
            },
            scope="Binance+OKX+Bybit",
        ),
        SeriesSchema(
            "liquidations_binance", "liquidations", "forced liquidations on Binance only, USD per UTC day (about a third of the aggregate)",
            {
                "binance_liq_long_usd": Column("USD", "longs liquidated", **_NONNEG),
                "binance_liq_short_usd": Column("USD", "shorts liquidated", **_NONNEG),
            },
            scope="Binance only",
        ),
        SeriesSchema(
            "liquidations_coinalyze", "liquidations", "forced liquidations summed over the major exchanges' perpetuals Coinalyze lists, USD per UTC day",
            {
                "coinalyze_liq_long_usd": Column("USD", "longs liquidated", **_NONNEG),
                "coinalyze_liq_short_usd": Column("USD", "shorts liquidated", **_NONNEG),
            },
            scope="Coinalyze's major exchanges",
        ),
    ]
}


def empty_frame(series: str) -> pd.DataFrame:
    """An empty frame with the series' columns and a daily index."""
    cols = list(SERIES[series].columns)
    return pd.DataFrame({c: pd.Series(dtype="float64") for c in cols}, index=pd.DatetimeIndex([], name="date", dtype="datetime64[ns]"))


def validate(series: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Check ``frame`` against the schema of ``series`` and return it in canonical form.

    Canonical form: a ``DatetimeIndex`` named ``date`` of UTC midnights (ns), strictly increasing,
    every schema column present (optional ones filled with NaN) as float64, in schema order.
    Raises :class:`SchemaError` naming series, date and column of the first problem.
    """
    if series not in SERIES:
        raise SchemaError(series, f"unknown series; known: {', '.join(SERIES)}")
    schema = SERIES[series]
    if not isinstance(frame.index, pd.DatetimeIndex):
        raise SchemaError(series, f"index must be a DatetimeIndex of UTC days, got {type(frame.index).__name__}")
    index = frame.index
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    not_midnight = index != index.normalize()
    if not_midnight.any():
        raise SchemaError(series, "timestamps must be UTC day starts (00:00)", date=index[not_midnight][0])
    duplicated = index.duplicated()
    if duplicated.any():
        raise SchemaError(series, "duplicate day", date=index[duplicated][0])
    if len(index) > 1:
        backwards = np.flatnonzero(np.diff(index.asi8) <= 0)
        if len(backwards):
            raise SchemaError(series, f"dates are not increasing (after {index[backwards[0]].date()})", date=index[backwards[0] + 1])
    unknown = [c for c in frame.columns if c not in schema.columns]
    if unknown:
        raise SchemaError(series, f"unexpected column(s) {unknown}; schema has {list(schema.columns)}", column=unknown[0])
    for col in schema.required_columns:
        if col not in frame.columns:
            raise SchemaError(series, "required column missing", column=col)
    out = pd.DataFrame(index=pd.DatetimeIndex(index.astype("datetime64[ns]"), name="date"))
    for col, spec in schema.columns.items():
        if col not in frame.columns:
            out[col] = np.nan
            continue
        values = pd.to_numeric(frame[col].reset_index(drop=True), errors="coerce")
        bad_type = values.isna() & frame[col].reset_index(drop=True).notna()
        if bad_type.any():
            pos = int(np.flatnonzero(bad_type)[0])
            raise SchemaError(series, f"non-numeric value {frame[col].iloc[pos]!r} ({spec.unit} expected)", date=index[pos], column=col)
        arr = values.to_numpy(dtype="float64")
        inf = np.isinf(arr)
        if inf.any():
            raise SchemaError(series, "infinite value", date=index[int(np.flatnonzero(inf)[0])], column=col)
        inclusive = spec.min_inclusive or spec.min_value is None
        with np.errstate(invalid="ignore"):
            bad = arr < spec.lower if inclusive else arr <= spec.lower
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            op = ">=" if inclusive else ">"
            raise SchemaError(series, f"impossible value {arr[pos]:g} (must be {op} {spec.lower:g} {spec.unit})", date=index[pos], column=col)
        with np.errstate(invalid="ignore"):
            above = arr > spec.upper
        if above.any():
            pos = int(np.flatnonzero(above)[0])
            raise SchemaError(series, f"impossible value {arr[pos]:g} (must be <= {spec.upper:g} {spec.unit})", date=index[pos], column=col)
        out[col] = arr
    return out


def column_spec(column: str) -> Column:
    """The declared spec of a stored column (names are unique across series)."""
    for schema in SERIES.values():
        if column in schema.columns:
            return schema.columns[column]
    raise KeyError(f"no stored series has a column '{column}'")
