"""The reference history in ``../shared/data`` read as if it were a provider.

Each file is mapped column by column onto the store's series with explicit unit conversions
(Coinglass funding is in percent per 8 h, Binance funding a fraction per 8 h: normalised to a
fraction here, once). Series of different scope stay separate series (all-exchange vs
Binance-only liquidations) — dollars are never spliced. The files and their caveats are
documented in the reference directory's README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cascade_radar.config import ASSETS, Settings
from features.schemas import SchemaError, validate
from features.store import AppendResult, HistoryStore

SOURCE = "reference"
PERCENT = 0.01


class ReferenceDataError(ValueError):
    """A reference file is missing, or a column or date in it is not what the mapping expects."""


@dataclass(frozen=True)
class FileMapping:
    """How one reference file feeds one stored series."""

    file: str  # "{asset}" is replaced by btc / eth
    series: str
    columns: dict[str, tuple[str, float]]  # source column -> (store column, multiplier to store unit)
    provider: str
    shift_days: int = 0  # the file's date labels a different day than the value describes
    assets: tuple[str, ...] = ASSETS
    note: str = ""
    # store columns computed from the mapped ones (which may include this file's own intermediate columns, consumed here)
    derive: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def filename(self, asset: str) -> str:
        return self.file.format(asset=asset.lower())


def taker_sell_from_quote_volume(frame: pd.DataFrame) -> pd.DataFrame:
    """Binance kline fields as the live connector reads them: taker sell = quote volume - taker-buy quote volume."""
    return frame.assign(perp_taker_sell_usd=frame["perp_volume_usd"] - frame["perp_taker_buy_usd"])


def taker_sell_from_base_volume(frame: pd.DataFrame) -> pd.DataFrame:
    """For a klines file without the quote volume (BTC, ETH, XRP, BNB): the quote volume approximated as the base volume valued
    at the taker buys' average price, quote ~ volume_coin x (taker_buy_quote / taker_buy_coin), so taker sell ~
    (volume_coin - taker_buy_coin) x taker-buy VWAP. The approximation assumes taker sells traded at the taker buys' average
    price; on the coins whose file has both (ADA, DOGE, SOL) the approximated quote volume is within a median 1e-4 of the
    reported one, and the taker-buy *share* it gives, buy / (buy + sell), is exactly the share in coins, taker_buy_coin /
    volume_coin. The approximated quote volume is stored as the day's ``perp_volume_usd`` too, so that sell = volume - buy holds
    on every stored day as it does for fetched klines."""
    volume_coin, buy_coin = frame.pop("volume_coin"), frame.pop("taker_buy_coin")
    vwap = frame["perp_taker_buy_usd"] / buy_coin.where(buy_coin > 0)
    return taker_sell_from_quote_volume(frame.assign(perp_volume_usd=volume_coin * vwap))


_KLINE_PRICES = {"open_usdt": ("perp_open_usd", 1.0), "high_usdt": ("perp_high_usd", 1.0), "low_usdt": ("perp_low_usd", 1.0),
                 "close_usdt": ("perp_close_usd", 1.0), "taker_buy_quote_volume_usdt": ("perp_taker_buy_usd", 1.0)}
_KLINES_NOTE = ("Binance's public futures/um daily kline archive (the rows GET /fapi/v1/klines answers), 2025-08..2025-11-15; wins over the "
                "Coinglass candle copy on the shared days (identical high/low/close; the copy's volume strays by up to 5 % on some days)")

# Order matters within a series: later files win on overlapping days (see store.append).
MAPPINGS: list[FileMapping] = [
    FileMapping(
        "{asset}_ohlcv_daily_binance_spot.csv", "ohlcv",
        {"open_usdt": ("open_usd", 1.0), "high_usdt": ("high_usd", 1.0), "low_usdt": ("low_usd", 1.0),
         "close_usdt": ("close_usd", 1.0), "volume_btc": ("volume_base", 1.0), "volume_usdt": ("volume_usd", 1.0)},
        "Binance spot (CryptoDataDownload layout)", assets=("BTC",), note="USDT taken as USD",
    ),
    FileMapping(
        "{asset}_open_interest_daily_coinglass.csv", "open_interest",
        {"cg_oi_agg_close_usd": ("oi_close_usd", 1.0), "cg_oi_coinmargin_close_usd": ("oi_coin_margined_usd", 1.0)},
        "Coinglass aggregated OI (daily)",
    ),
    FileMapping(
        "{asset}_open_interest_daily_coinglass_4h.csv", "open_interest",
        {"cg_oi_agg_close_usd": ("oi_close_usd", 1.0), "cg_oi_agg_high_usd": ("oi_high_usd", 1.0), "cg_oi_agg_low_usd": ("oi_low_usd", 1.0)},
        "Coinglass aggregated OI (4h bars summed to days)", assets=("BTC", "ETH", "SOL", "XRP"), note="same series as the daily file (ratio 1.000 on 291 days)",
    ),
    FileMapping(
        "{asset}_open_interest_daily_binance_usdm.csv", "open_interest_exchange",
        {"binance_{asset}usdt_oi_usd_at_0000utc": ("exchange_oi_close_usd", 1.0)},
        "Binance USD-M openInterestHist", shift_days=-1, assets=("BTC", "ETH"), note="OI at 00:00 UTC of date = close of the previous day",
    ),
    FileMapping(
        "{asset}_open_interest_daily_heun630_unverified.csv", "open_interest_unverified",
        {"oi_usd_unverified_source": ("unverified_oi_usd", 1.0)}, "unknown (unverified)", assets=("BTC",),
    ),
    FileMapping(
        "{asset}_funding_daily.csv", "funding_binance",
        {"lukmol_funding_mean": ("funding_rate_binance_frac8h", 1.0)},
        "Binance USD-M BTCUSDT funding (lukmol daily means)", assets=("BTC",),
    ),
    FileMapping(
        "{asset}_funding_daily.csv", "funding_binance",
        {"binance_funding_mean_8h": ("funding_rate_binance_frac8h", 1.0), "binance_funding_n": ("funding_events", 1.0)},
        "Binance USD-M funding (8h events averaged per day)", assets=("BTC", "ETH"),
    ),
    FileMapping(
        "{asset}_funding_daily.csv", "funding_aggregated",
        {"cg_funding_oiw_close_pct": ("funding_rate_oiw_frac8h", PERCENT), "cg_funding_volw_close_pct": ("funding_rate_volw_frac8h", PERCENT)},
        "Coinglass OI/volume-weighted funding", note="percent per 8 h -> fraction per 8 h",
    ),
    FileMapping(
        "{asset}_exchange_flows_daily_coinmetrics.csv", "exchange_flows",
        {"flow_in_ex_btc": ("inflow_coin", 1.0), "flow_out_ex_btc": ("outflow_coin", 1.0), "supply_on_ex_btc": ("supply_on_exchanges_coin", 1.0),
         "price_usd": ("reference_price_usd", 1.0), "market_cap_usd": ("market_cap_usd", 1.0), "mvrv": ("mvrv", 1.0)},
        "Coin Metrics community (CC BY-NC 4.0)", assets=("BTC",), note="flows are revised by the provider (not point-in-time)",
    ),
    FileMapping(
        "{asset}_onchain_cohorts_daily_chartinspect.csv", "onchain_cohorts",
        {"price_usd": ("cohort_price_usd", 1.0), "asopr": ("sopr", 1.0), "sth_sopr": ("sth_sopr", 1.0), "lth_sopr": ("lth_sopr", 1.0),
         "sth_nupl": ("sth_nupl", 1.0), "lth_nupl": ("lth_nupl", 1.0), "sth_realized_price_usd": ("sth_realized_price_usd", 1.0),
         "lth_realized_price_usd": ("lth_realized_price_usd", 1.0), "mvrv_zscore": ("mvrv_zscore", 1.0)},
        "ChartInspect cohorts", note="provider forward-fills some days; sth_sopr looks smoothed",
    ),
    FileMapping(
        "{asset}_liquidations_daily_coinglass.csv", "liquidations",
        {"cg_liq_long_usd": ("liq_long_usd", 1.0), "cg_liq_short_usd": ("liq_short_usd", 1.0)},
        "Coinglass aggregated liquidations (all exchanges)",
    ),
    FileMapping(
        "{asset}_liquidations_daily_coinglass_binance_4hsum.csv", "liquidations_binance",
        {"cg_binance_liq_long_usd": ("binance_liq_long_usd", 1.0), "cg_binance_liq_short_usd": ("binance_liq_short_usd", 1.0)},
        "Coinglass liquidations, Binance only (4h bars summed)", assets=("BTC", "ETH", "SOL", "XRP"),
    ),
    FileMapping(
        "{asset}_ohlcv_daily_binance_usdm.csv", "ohlcv_perp",
        {"open_usdt": ("perp_open_usd", 1.0), "high_usdt": ("perp_high_usd", 1.0), "low_usdt": ("perp_low_usd", 1.0),
         "close_usdt": ("perp_close_usd", 1.0), "volume_usdt": ("perp_volume_usd", 1.0)},
        "Binance USD-M perpetual candles (Coinglass)", note="USDT taken as USD; 2020-12..2021-07 strays from spot (see reference README)",
    ),
    FileMapping(  # reference README section 10: these four coins' files carry the base volumes but no quote volume
        "{asset}_ohlcv_daily_binance_usdm_klines.csv", "ohlcv_perp",
        {**_KLINE_PRICES, "volume_coin": ("volume_coin", 1.0), "taker_buy_volume_coin": ("taker_buy_coin", 1.0)},
        "Binance USD-M klines with taker-buy volume", assets=("BTC", "ETH", "XRP", "BNB"), derive=taker_sell_from_base_volume,
        note=_KLINES_NOTE + "; quote volume approximated from the base volume at the taker-buy VWAP",
    ),
    FileMapping(
        "{asset}_ohlcv_daily_binance_usdm_klines.csv", "ohlcv_perp", {**_KLINE_PRICES, "quote_volume_usdt": ("perp_volume_usd", 1.0)},
        "Binance USD-M klines with taker-buy volume", assets=("ADA", "DOGE", "SOL"), derive=taker_sell_from_quote_volume, note=_KLINES_NOTE,
    ),
    FileMapping(
        "{asset}_positioning_daily_coinglass.csv", "positioning",
        {"binance_lsr_global_accounts": ("lsr_global_accounts", 1.0), "binance_lsr_top_accounts": ("lsr_top_accounts", 1.0),
         "binance_lsr_top_positions": ("lsr_top_positions", 1.0), "taker_buy_usd": ("taker_buy_usd", 1.0), "taker_sell_usd": ("taker_sell_usd", 1.0)},
        "Coinglass: Binance long/short ratios, taker volume (Binance+OKX+Bybit)",
    ),
    FileMapping(
        "{asset}_orderbook_depth_daily_coinglass.csv", "orderbook_depth",
        {"bids_within_1pct_usd": ("bids_1pct_usd", 1.0), "asks_within_1pct_usd": ("asks_1pct_usd", 1.0)},
        "Coinglass futures order-book depth ±1 % (Binance+OKX+Bybit)", note="2024-04-25 onwards only",
    ),
    FileMapping(
        "{asset}_market_context_daily_coinglass.csv", "market_context",
        {"coinbase_premium_rate_pct": ("coinbase_premium_frac", PERCENT), "spot_etf_netflow_usd": ("spot_etf_netflow_usd", 1.0),
         "spot_etf_aum_usd": ("spot_etf_aum_usd", 1.0)},
        "Coinglass: Coinbase premium, US spot-ETF flows", assets=("BTC",), note="premium percent -> fraction",
    ),
]


@dataclass
class ReferenceLoad:
    """What the reference files of one series contributed (files in priority order, later wins)."""

    series: str
    paths: list[Path]
    frame: pd.DataFrame
    result: AppendResult | None = None


def read_mapped(path: Path, mapping: FileMapping, asset: str) -> pd.DataFrame:
    """Read one reference file and return it in the store's columns and units (rows all-missing dropped)."""
    if not path.exists():
        raise ReferenceDataError(f"{path}: file not found")
    raw = pd.read_csv(path)
    if "date" not in raw.columns:
        raise ReferenceDataError(f"{path}: column 'date' missing (columns: {list(raw.columns)})")
    dates = pd.to_datetime(raw["date"], format="%Y-%m-%d", errors="coerce")
    if dates.isna().any():
        row = int(dates.isna().to_numpy().nonzero()[0][0])
        raise ReferenceDataError(f"{path}: column 'date', row {row + 2}: {raw['date'].iloc[row]!r} is not YYYY-MM-DD")
    out = pd.DataFrame(index=pd.DatetimeIndex(dates + pd.Timedelta(days=mapping.shift_days), name="date"))
    for src, (dst, scale) in mapping.columns.items():
        src = src.format(asset=asset.lower())
        if src not in raw.columns:
            raise ReferenceDataError(f"{path}: column '{src}' missing (needed for {mapping.series}.{dst})")
        values = pd.to_numeric(raw[src], errors="coerce")
        bad = values.isna() & raw[src].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ReferenceDataError(f"{path}: column '{src}', row {row + 2}: {raw[src].iloc[row]!r} is not a number")
        out[dst] = values.to_numpy() * scale
    if mapping.derive is not None:
        out = mapping.derive(out)
    return out.dropna(how="all")


def available_mappings(reference_dir: Path, asset: str) -> list[tuple[FileMapping, Path]]:
    """The mappings of ``asset`` whose file exists in ``reference_dir``."""
    found = []
    for mapping in MAPPINGS:
        if asset in mapping.assets:
            path = reference_dir / mapping.filename(asset)
            if path.exists():
                found.append((mapping, path))
    return found


def import_reference(store: HistoryStore, reference_dir: Path, asset: str) -> list[ReferenceLoad]:
    """Load every reference file of ``asset`` into ``store`` through the validated append path."""
    if not reference_dir.is_dir():
        raise ReferenceDataError(f"{reference_dir}: reference-data directory not found (set CASCADE_RADAR_REFERENCE_DIR)")
    mapped = available_mappings(reference_dir, asset)
    if not mapped:
        raise ReferenceDataError(f"{reference_dir}: no reference file for asset {asset}")
    by_series: dict[str, list[tuple[FileMapping, Path]]] = {}
    for mapping, path in mapped:
        by_series.setdefault(mapping.series, []).append((mapping, path))
    loads = []
    for series, files in by_series.items():
        # Files of one series are combined first (later files win on shared days), then appended
        # once: re-importing is then a no-op instead of two writes that undo each other.
        frame = None
        for mapping, path in files:
            part = read_mapped(path, mapping, asset)
            frame = part if frame is None else part.combine_first(frame)
        try:
            validate(series, frame)
        except SchemaError as exc:
            raise ReferenceDataError(f"{', '.join(str(p) for _, p in files)}: {exc}") from None
        loads.append(ReferenceLoad(series, [path for _, path in files], frame))
    # every file is read and validated before the first write: a bad file leaves the store as it was
    for load in loads:
        source = SOURCE + ":" + "+".join(dict.fromkeys(path.name for path in load.paths))
        load.result = store.append(load.series, load.frame, source=source)
    return loads


def import_missing_stores(settings: Settings, assets: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The explicit first-run step: every coin of ``assets`` (and the context coin) whose store is empty gets the reference
    history. Returns, per coin imported or not, one line to print; coins whose store holds data are left alone."""
    said = {}
    for asset in dict.fromkeys([*assets, settings.features.context_asset]):
        each = settings.for_asset(asset)
        store = HistoryStore(each.data_path)
        if not store.is_empty():
            continue
        try:
            loads = import_reference(store, each.reference_path, asset)
        except ReferenceDataError as exc:
            said[asset] = (f"{asset}: no history in {each.data_path} and no reference history to load ({exc}); fetch it with "
                           f"`cascade-radar data update --asset {asset}`, or leave the coin out (--asset / CASCADE_RADAR_ASSETS)")
            continue
        said[asset] = f"{asset}: store was empty — loaded {len(loads)} series of the reference history from {each.reference_path}"
    return said
