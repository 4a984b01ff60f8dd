"""Sources -> panel -> signal families -> lags -> labels: one feature table per asset."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cascade_radar.config import FeatureConfig, Settings
from cascade_radar.files import atomic_write
from features.families import family_of, format_value, load_families
from features.labels import Labels, build_labels
from features.lags import add_lags
from features.market import market_inputs
from features.schemas import Column, column_spec
from features.splice import DIFFERENCE, FIRST_AVAILABLE, RATIO, Link, Refusal, Spliced, chain_link
from features.splice import first_available as first_available  # the updater's price lookup reads it from here
from features.store import HistoryStore

log = logging.getLogger(__name__)

LABEL_COLUMNS = ["target", "days_to_event", "cascade_day", "liq_ratio", "major_ahead"]
CATALOGUE_COLUMNS = ["name", "family", "label", "unit", "meaning"]  # label and unit: as each family declares them


@dataclass(frozen=True)
class FeatureTable:
    table: pd.DataFrame  # index date; feature columns, then LABEL_COLUMNS
    features: list[str]
    catalogue: pd.DataFrame  # CATALOGUE_COLUMNS
    labels: Labels

    @property
    def X(self) -> pd.DataFrame:  # noqa: N802 - the usual name for a design matrix
        return self.table[self.features]


@dataclass(frozen=True)
class Share:
    """A source that is a share of two stored columns: ``part / (part + rest)`` (missing where their sum is not > 0).
    Named by ``part``."""

    part: str
    rest: str

    @property
    def name(self) -> str:
        return self.part

    def read(self, panel: pd.DataFrame) -> pd.Series | None:
        if self.part not in panel.columns or self.rest not in panel.columns:
            return None
        total = panel[self.part] + panel[self.rest]
        return panel[self.part] / total.where(total > 0)


@dataclass(frozen=True)
class Derived:
    """A family input that more than one stored series can supply: its sources, highest priority first, and how they
    are joined (``features.splice``). A posted or stored value under the input's own name always comes first. Iterating
    gives the stored columns behind the input, in priority order (what the updater reads to know the input's series)."""

    sources: tuple[str | Share, ...]
    link: Link
    spec: Column | None = None  # unit and bounds of an input no stored column carries (else its first source's)

    def __iter__(self) -> Iterator[str]:
        for source in self.sources:
            yield from (source.part, source.rest) if isinstance(source, Share) else (source,)


# Family inputs that more than one stored series can supply. Open interest and taker flow come at different scopes
# (every exchange, a few, one): chain-linked, the level set by the source the series starts from. Funding: Binance's
# rate, else the OI-weighted cross-exchange one, linked by their difference. A price is the same quantity from every
# source: the first available.
DERIVED_INPUTS: dict[str, Derived] = {
    "price_usd": Derived(("close_usd", "perp_close_usd", "reference_price_usd", "cohort_price_usd"), FIRST_AVAILABLE),
    "oi_close_usd": Derived(("coinalyze_oi_close_usd", "bybit_oi_close_usd", "exchange_oi_close_usd"), RATIO),
    "funding_rate_frac8h": Derived(("funding_rate_binance_frac8h", "funding_rate_oiw_frac8h"), DIFFERENCE),
    # Binance's all-accounts long/short ratio keeps 30 days; Coinalyze's history of the same perpetual's ratio (a free key) goes back
    "lsr_global_accounts": Derived(("coinalyze_lsr_accounts",), RATIO),
    # the family reads the buy *share*, which every scope measures: Binance+OKX+Bybit, Binance's futures/data, Binance klines
    "taker_buy_share": Derived((Share("taker_buy_usd", "taker_sell_usd"), Share("binance_taker_buy_usd", "binance_taker_sell_usd"),
                                Share("perp_taker_buy_usd", "perp_taker_sell_usd")), DIFFERENCE,
                               Column("fraction", "aggressive buys / all aggressive futures volume of the day (0.5 = balanced)",
                                      min_value=0.0, max_value=1.0)),
}
LEVEL_SOURCE, CHANGE_SOURCE = "__level_source", "__change_source"  # suffixes of the panel's provenance columns


def input_spec(name: str) -> Column:
    """Unit, meaning and bounds of a family input: its stored column's, or for a derived input its declared spec, else
    its first source's."""
    derived = DERIVED_INPUTS.get(name)
    if derived is None:
        return column_spec(name)
    if derived.spec is not None:
        return derived.spec
    try:
        return column_spec(name)
    except KeyError:
        return column_spec(next(iter(derived)))


@dataclass(frozen=True)
class Assembly:
    """The assembled panel and the splices it refused (each names the input, the sources and the overlap)."""

    panel: pd.DataFrame
    refusals: tuple[Refusal, ...]


def splice_input(raw: pd.DataFrame, name: str, derived: Derived, min_overlap_days: int) -> Spliced:
    """Input ``name`` from ``raw`` by the one splicing rule: its own column first, then its sources (absent ones skipped)."""
    sources: dict[str, pd.Series] = {}
    for source in (name, *derived.sources):
        series = source.read(raw) if isinstance(source, Share) else raw[source] if source in raw.columns else None
        if series is not None:
            sources[source.name if isinstance(source, Share) else source] = series
    if not sources:
        sources[name] = pd.Series(float("nan"), index=raw.index)
    return chain_link(sources, derived.link, min_overlap_days, name)


def assemble(raw: pd.DataFrame, min_overlap_days: int | None = None) -> Assembly:
    """Add the canonical family inputs that more than one stored series can supply (``DERIVED_INPUTS``), each by the one
    splicing rule, with two provenance columns per input: ``<input>__level_source`` (the source that set its level) and
    ``<input>__change_source`` (the source that supplied the day); no family reads them. No value is carried across days.

    ``min_overlap_days``: the overlap a link needs (default ``FeatureConfig().splice_min_overlap_days``).
    """
    need = FeatureConfig().splice_min_overlap_days if min_overlap_days is None else min_overlap_days
    panel, refusals = raw.copy(), []
    for name, derived in DERIVED_INPUTS.items():
        spliced = splice_input(raw, name, derived, need)
        panel[name] = spliced.values
        panel[f"{name}{LEVEL_SOURCE}"] = spliced.level_source
        panel[f"{name}{CHANGE_SOURCE}"] = spliced.change_source
        refusals += spliced.refusals
    return Assembly(panel, tuple(refusals))


def assemble_panel(raw: pd.DataFrame, min_overlap_days: int | None = None) -> pd.DataFrame:
    """The assembled panel of ``raw`` (``assemble``), without the refusals."""
    return assemble(raw, min_overlap_days).panel


def compute_features(panel: pd.DataFrame, config: FeatureConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every registered family on ``panel`` plus configured lags; returns (features, catalogue)."""
    frames, rows = [], []
    for fam in load_families().values():
        result = fam.compute(panel, config)
        frames.append(result.frame())
        rows += [{"name": n, "family": fam.name, "label": result.labels[n], "unit": result.units[n], "meaning": m}
                 for n, m in result.meanings.items()]
    features = add_lags(pd.concat(frames, axis=1), config.lagged_features, config.lags)
    for name in features.columns[len(rows):]:
        base, lag = name.rsplit("_lag", 1)
        src = next(r for r in rows if r["name"] == base)
        rows.append({**src, "name": name, "label": f"{src['label']}, {lag} d earlier", "meaning": f"{src['meaning']} — {lag} days earlier"})
    return features, pd.DataFrame(rows, columns=CATALOGUE_COLUMNS)


@dataclass(frozen=True)
class MarketContext:
    """What every coin reads of the market: the context coin's (BTC's) assembled panel (for the freshness of the context
    families) and its features of those families (on-chain flows, SOPR, NUPL), which replace another coin's own; and the
    served coins' market-wide inputs (``features.market``), joined to every coin's panel, the context coin's included."""

    panel: pd.DataFrame
    features: pd.DataFrame
    families: tuple[str, ...]
    market: pd.DataFrame | None = None

    def until(self, day: pd.Timestamp) -> MarketContext:
        market = None if self.market is None else self.market.loc[:day]
        return MarketContext(self.panel.loc[:day], self.features.loc[:day], self.families, market)


def with_market_context(features: pd.DataFrame, context: MarketContext) -> pd.DataFrame:
    """``features`` with every context-family column replaced by the context coin's value of the same day; missing
    where the context coin has no value that day. Features of day t use data up to t only: no look-ahead."""
    columns = [c for c in context.features.columns if c in features.columns]
    out = features.copy()
    out[columns] = context.features.reindex(index=features.index, columns=columns).to_numpy()
    return out


def feature_frame(raw_panel: pd.DataFrame, settings: Settings, context: MarketContext | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(assembled panel, features, catalogue) of ``raw_panel``: what training and serving both compute, no labels.

    ``context``: the context coin's data (``load_market_context``), if this is another coin.
    """
    if raw_panel.empty:
        raise ValueError(f"{settings.asset}: no history in {settings.data_path} to build features from — run `make data-reference` (offline) or `cascade-radar data update`")
    assembly = assemble(raw_panel, settings.features.splice_min_overlap_days)
    for refusal in assembly.refusals:
        log.warning("%s: %s", settings.asset, refusal)
    panel = assembly.panel
    if context is not None and context.market is not None:  # the same market-wide inputs for every coin, BTC included
        panel = panel.join(context.market.reindex(panel.index).drop(columns=[c for c in context.market.columns if c in panel.columns]))
    # the families measure against the label definition of these settings (an override of it applies there too)
    features, catalogue = compute_features(panel, settings.features.model_copy(update={"labels": settings.labels}))
    if context is not None and not is_context_coin(settings):  # the context coin's own values are its context
        features = with_market_context(features, context)
    return panel, features, catalogue


def is_context_coin(settings: Settings) -> bool:
    """Does ``settings.asset`` read its own context families (the context coin itself, or no context configured)?"""
    return settings.asset == settings.features.context_asset or not settings.features.context_families


def market_wide_inputs(settings: Settings, stores: dict[str, HistoryStore] | None = None, until: pd.Timestamp | None = None) -> pd.DataFrame:
    """``features.market``'s inputs of the served coins (``settings.assets``), each from its assembled store."""
    stores = stores or {}
    panels = {}
    for asset in settings.assets:
        raw = (stores.get(asset) or load_history(settings.for_asset(asset))).panel()
        raw = raw.loc[:until] if until is not None else raw
        if not raw.empty:
            panels[asset] = assemble(raw, settings.features.splice_min_overlap_days).panel
    return market_inputs(panels, settings.features.trailing_norm_days, settings.features.market_min_coins)


def load_market_context(settings: Settings, until: pd.Timestamp | None = None, stores: dict[str, HistoryStore] | None = None) -> MarketContext | None:
    """The context coin's data and the market-wide inputs from the stores (up to ``until``); None if the context coin has
    no history."""
    cfg = settings.features
    ctx = settings.for_asset(cfg.context_asset)
    raw = ((stores or {}).get(cfg.context_asset) or load_history(ctx)).panel()
    if until is not None:
        raw = raw.loc[:until]
    if raw.empty:
        return None
    panel, features, _ = feature_frame(raw, ctx)
    return MarketContext(panel, features[[c for c in features.columns if family_of(c) in cfg.context_families]], tuple(cfg.context_families),
                         market_wide_inputs(settings, stores, until))


def market_context(settings: Settings) -> MarketContext | None:
    """The market context ``settings.asset`` reads (the context coin reads the market-wide inputs too)."""
    return load_market_context(settings)


def build_feature_table(raw_panel: pd.DataFrame, settings: Settings, until: pd.Timestamp | None = None,
                        context: MarketContext | None = None) -> FeatureTable:
    """The feature table of ``raw_panel`` (as read from the store), truncated at ``until`` if given."""
    if until is not None:
        raw_panel = raw_panel.loc[:until]
        context = context.until(until) if context is not None else None
    return feature_table_of(*feature_frame(raw_panel, settings, context), settings)


def load_history(settings: Settings) -> HistoryStore:
    """The asset's store, read only (it may be empty: the first-run import of the reference history is its own step,
    ``features.sources.reference.import_missing_stores``)."""
    return HistoryStore(settings.data_path)


def load_feature_table(store: HistoryStore, settings: Settings, until: pd.Timestamp | None = None) -> FeatureTable:
    """The feature table of ``settings.asset`` from its store, with the market context of the context asset."""
    return build_feature_table(store.panel(), settings, until, market_context(settings))


def load_feature_tables(settings: Settings, stores: dict[str, HistoryStore] | None = None) -> dict[str, FeatureTable]:
    """One feature table per coin of ``settings.assets`` (the pooled training set), from ``coin_frames``: the context
    coin's data turned into features once, not once per coin, and every coin's frames kept for the service's start."""
    frames = coin_frames(settings, stores)
    tables = {}
    for asset in settings.assets:
        if asset in frames.failed:
            raise frames.failed[asset]
        panel, features = frames.coins[asset]
        tables[asset] = feature_table_of(panel, features, frames.catalogue, settings.for_asset(asset))
    return tables


def feature_table_of(panel: pd.DataFrame, features: pd.DataFrame, catalogue: pd.DataFrame, settings: Settings) -> FeatureTable:
    """The feature table of an assembled panel and its features: the labels joined."""
    labels = build_labels(panel, settings.labels)
    table = pd.concat([features, labels.daily[LABEL_COLUMNS]], axis=1)
    return FeatureTable(table, list(features.columns), catalogue, labels)


@dataclass(frozen=True)
class CoinFrames:
    """Every coin's assembled panel and features (``feature_frame``), the catalogue and the market context; a coin whose
    frames could not be built is in ``failed`` with the error (an empty store: the ValueError saying what to run)."""

    coins: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
    catalogue: pd.DataFrame
    context: MarketContext | None
    failed: dict[str, Exception]
    cached: bool  # read from ``features.cache`` (else built, and written there when every coin built)


def coin_frames(settings: Settings, stores: dict[str, HistoryStore] | None = None) -> CoinFrames:
    """The frames of every coin of ``settings.assets``: read from the cache when the stores, settings and feature code are
    those they were built from (``features.cache``), else built — the context coin's once — and cached. The same frames
    either way (tested); the market context's errors propagate."""
    from features.cache import frames_key, read_frames, write_frames

    stores = stores or {}
    key = frames_key(settings, {a: s.root for a, s in stores.items()}) if settings.frame_cache else ""
    cached = read_frames(settings, key) if key else None
    if cached is not None and set(settings.assets) <= set(cached.coins):
        try:
            got = cached.context()
            context = None
            if got is not None:
                families = tuple(settings.features.context_families)
                context = MarketContext(got[0], got[1], families, got[2])
            return CoinFrames({a: cached.coin(a) for a in settings.assets}, cached.catalogue(), context, {}, True)
        except (OSError, ValueError) as exc:  # pruned by another process meanwhile, or a damaged file: build instead
            log.warning("feature frames in %s unreadable (%s): built again", cached.folder, exc)
    context = load_market_context(settings, stores=stores)
    coins, failed, catalogue = {}, {}, None
    for asset in settings.assets:
        each = settings.for_asset(asset)
        try:
            panel, features, catalogue = feature_frame((stores.get(asset) or load_history(each)).panel(), each, context)
        except Exception as exc:  # noqa: BLE001 - one coin's broken store says why for that coin, the others are built
            failed[asset] = exc
            continue
        coins[asset] = (panel, features)
    catalogue = catalogue if catalogue is not None else feature_catalogue(settings.features)
    if key and not failed:
        shared = None if context is None else (context.panel, context.features, context.market)
        write_frames(settings, key, coins, catalogue, shared)
    return CoinFrames(coins, catalogue, context, failed, False)


def feature_table_path(settings: Settings) -> Path:
    return settings.data_path / "feature_table.parquet"


def write_feature_table(ft: FeatureTable, settings: Settings) -> Path:
    """Write the table atomically (unique temporary file beside it, then rename)."""
    path = feature_table_path(settings)
    out = ft.table.copy()
    out["cascade_day"] = out["cascade_day"].astype("float64")
    atomic_write(path, out.to_parquet)
    return path


def feature_catalogue(config: FeatureConfig | None = None) -> pd.DataFrame:
    """The feature catalogue (``CATALOGUE_COLUMNS``) of ``config``: it does not depend on data, so it is computed on a
    small synthetic panel."""
    from features.sources.synthetic import generate_history

    history = generate_history(seed=0, n_days=60)
    panel = assemble_panel(pd.concat(history.series.values(), axis=1))
    return compute_features(panel, config or FeatureConfig())[1]


@functools.cache
def _catalogue_by_name(config_json: str | None = None) -> dict[str, dict[str, str]]:
    config = FeatureConfig.model_validate_json(config_json) if config_json else None
    return {row["name"]: row for row in feature_catalogue(config).to_dict("records")}


def catalogue_rows(config: FeatureConfig | None = None) -> dict[str, dict[str, str]]:
    """The catalogue of ``config`` (default: the default config) by feature name, computed once per process and config."""
    return _catalogue_by_name(None if config is None else config.model_dump_json())


def feature_meanings() -> dict[str, str]:
    """Every feature's one-line meaning (the catalogue), computed once per process."""
    return {name: row["meaning"] for name, row in catalogue_rows().items()}


def shown_as(catalogue: dict[str, dict[str, str]], name: str, value: float | None) -> dict[str, str]:
    """The feature's ``label``, ``unit`` and ``value_text`` (its value as a person reads it) from ``catalogue`` (rows by
    name, as each family declares them); a feature outside it reads as its own name, unitless."""
    row = catalogue.get(name, {"label": name, "unit": "index"})
    return {"label": row["label"], "unit": row["unit"], "value_text": format_value(value, row["unit"])}


def feature_display(name: str, value: float | None, config: FeatureConfig | None = None) -> dict[str, str]:
    """``shown_as`` in the catalogue of ``config`` (default: the default config)."""
    return shown_as(catalogue_rows(config), name, value)


def feature_label(name: str, value: float | None) -> str:
    """``30-day realized volatility 27.8 %``: the feature's label and its value in its unit (``: no data`` if missing)."""
    shown = feature_display(name, value)
    missing = value is None or pd.isna(value)
    return f"{shown['label']}: no data" if missing else f"{shown['label']} {shown['value_text']}"
