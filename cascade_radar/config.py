"""The one configuration object of cascade-radar.

Every tunable number lives here, typed and documented, overridable from the environment with the
prefix ``CASCADE_RADAR_`` (nested fields use ``__``: ``CASCADE_RADAR_LABELS__HORIZON_DAYS=10``).
The whole object is logged to MLflow with every training run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def project_relative(text: str) -> str:
    """``text`` with the project's absolute path removed (files named relative to it) and the home directory as ``~``: an
    answer a client reads never discloses where or as whom the service runs."""
    text = text.replace(str(PROJECT_ROOT) + "/", "").replace(str(PROJECT_ROOT), ".")
    home = str(Path.home())
    return text.replace(home + "/", "~/") if len(home) > 1 else text
INSIDE_BENTO = (PROJECT_ROOT.parent / "bento.yaml").exists()  # a built Bento: <bento>/bento.yaml and <bento>/src/<code>

ASSETS: tuple[str, ...] = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA")  # the default coin list, written once
# A coin is any ticker, not one of a fixed list: desks watch every listed perpetual (issue 37). The rule is ASCII letters and
# digits only, so Unicode case folding can never turn another string into a coin ("ſol".upper() is "SOL").
COIN_PATTERN = r"[A-Za-z0-9]{2,15}"
COIN_RULE = "a coin is 2 to 15 letters A-Z or digits 0-9 (BTC, 1000PEPE), case-insensitive"


def coin_name(value: object) -> object:
    """A coin name as the coin list spells it (upper case), or a ValueError saying the rule; non-strings are left to the
    ``str`` check. The refused value is repeated cut short (a 60 kB name never comes back whole)."""
    if not isinstance(value, str):
        return value
    if not re.fullmatch(COIN_PATTERN, value):
        said = repr(value) if len(value) <= 30 else f"{value[:30]!r}… ({len(value):,} characters)"
        raise ValueError(f"{COIN_RULE}; got {said}")
    return value.upper()


# the type of every coin field: validated and upper-cased; pydantic names the field (``assets.3``) in its error
Asset = Annotated[str, BeforeValidator(coin_name), WithJsonSchema({"type": "string", "pattern": f"^{COIN_PATTERN}$", "description": COIN_RULE})]

# The model choice `make tune` selected by nested walk-forward (families, hyper-parameters, direction inputs).
# It is committed with the code; ModelConfig takes its defaults from it, the environment still overrides.
SELECTION_FILE = PROJECT_ROOT / "training" / "selection.json"
# `make tune` writes its choice here instead, beside the local store (git-ignored), so that tuning never dirties the tree;
# `cascade-radar tune --commit` writes the committed file. While it exists, the local choice is the one in force. Read at
# import, as the choice is (ModelConfig's defaults): the test suite moves it with CASCADE_RADAR_LOCAL_SELECTION_FILE.
LOCAL_SELECTION_FILE = Path(os.environ.get("CASCADE_RADAR_LOCAL_SELECTION_FILE") or PROJECT_ROOT / "data" / "selection.local.json")


def selection_file() -> Path | None:
    """The file of the model choice in force: the local one of `make tune` when there is one, else the committed one (None:
    neither; the defaults written in ModelConfig)."""
    return next((path for path in (LOCAL_SELECTION_FILE, SELECTION_FILE) if path.exists()), None)


def selected_choice() -> dict[str, object]:
    """The model choice in force (``selection_file``; empty if `make tune` never wrote one)."""
    path = selection_file()
    return json.loads(path.read_text())["choice"] if path else {}


class LabelConfig(BaseModel):
    """Definition of a cascade day, an event and the prediction target (see README, 'Labels')."""

    horizon_days: int = Field(default=14, ge=1, description="H: predict the first event starting in (t, t+H]")
    trailing_median_days: int = Field(default=90, ge=7, description="window of the trailing median of total liquidations")
    min_trailing_days: int = Field(default=30, ge=5, description="days of history needed before a day can be judged")
    cascade_multiple: float = Field(default=4.0, gt=1, description="a cascade day has total liquidations >= this multiple of the trailing median")
    merge_gap_days: int = Field(default=1, ge=1, description="cascade days at most this many days apart form one event")
    major_multiple: float = Field(default=8.0, gt=1, description="a *major* event peaks at >= this multiple of the trailing median; "
                                  "skill on the major tier is reported beside the main label")
    side_share: float = Field(default=0.60, gt=0.5, le=1, description="an event's side is the side holding at least this share of its "
                              "liquidated dollars (cascade_radar.rules.event_side); below it the price move decides")
    side_sigmas: float = Field(default=1.5, gt=0, description="without a dollar side, an event whose price move is at least this many "
                               "daily volatilities (scaled by sqrt(days)) is a long squeeze if price fell, a short squeeze if it rose; "
                               "otherwise two-sided")
    side_vol_days: int = Field(default=30, ge=5, description="the daily volatility the price move is measured against: std of daily log "
                               "returns over this many days, up to the day before the event")
    side_vol_min_days: int = Field(default=20, ge=3, description="returns needed in that window; fewer: the move names no side")


class FeatureConfig(BaseModel):
    """Windows and lags of the feature table; feature names are derived from these numbers."""

    return_windows: list[int] = Field(default=[1, 3, 7, 14, 30], description="price return horizons (days)")
    change_windows: list[int] = Field(default=[3, 7, 14, 30], description="change horizons of OI and STH-NUPL (days)")
    rolling_windows: list[int] = Field(default=[3, 7, 14, 30], description="rolling mean / sum windows (days)")
    ma_windows: list[int] = Field(default=[20, 50, 200], description="moving averages the price distance is measured from (days)")
    vol_windows: list[int] = Field(default=[7, 30], description="realized-volatility windows (days)")
    trailing_norm_days: int = Field(default=180, description="window of the trailing distribution used for z-scores and ranks")
    market_min_coins: int = Field(default=3, ge=1, description="served coins a market-wide input needs on a day (the market-wide "
                                  "leverage family); fewer: the input is missing that day rather than one coin's value")
    rsi_period: int = 14
    divergence_lookback_days: int = Field(default=30, description="how far back the RSI divergence detector looks for the previous swing high/low")
    divergence_pivot_days: int = Field(default=3, description="a swing high must be the highest close of ±this many days (confirmed only after them)")
    drawdown_days: int = Field(default=365, description="drawdown is measured from the highest price of this many trailing days")
    streak_cap_days: int = Field(default=90, description="sign streaks are capped here: beyond it a run is simply 'long', and features keep a bounded memory")
    splice_min_overlap_days: int = Field(default=5, ge=1, le=30, description="days two sources of one input (e.g. aggregated and one "
                                         "exchange's open interest) must overlap within the 30 before a switch for the series to be "
                                         "chain-linked from one onto the other; fewer: the link is refused, named, and the input goes "
                                         "missing instead of jumping level")
    context_asset: Asset = Field(default="BTC", description="the coin whose on-chain families are market-wide context for every coin")
    context_families: list[str] = Field(default=["flows", "sopr", "nupl"], description="families every coin takes from the context asset "
                                        "(BTC's holders and exchange flows move the whole market; alts have no such series of their own)")
    fuel_leverage_tiers: list[float] = Field(default=[5, 10, 25, 50, 100], description="fuel map: the leverage tiers new open "
                                             "interest is spread over (each > 1 / fuel_maintenance_margin is refused)")
    fuel_tier_weights: list[float] = Field(default=[0.25, 0.30, 0.25, 0.12, 0.08], description="fuel map: the share of new open "
                                           "interest opened at each tier of fuel_leverage_tiers (same length; normalised to sum 1)")
    fuel_maintenance_margin: float = Field(default=0.005, ge=0, lt=0.2, description="fuel map: maintenance margin as a fraction of the "
                                           "position (a long at P with leverage L is liquidated at P·(1 − 1/L + mm))")
    fuel_bands: list[float] = Field(default=[0.05, 0.10], description="fuel map: distances from today's price (fractions) within which "
                                    "liquidation levels count as near")
    fuel_max_age_days: int = Field(default=90, ge=7, le=365, description="fuel map: positions opened more than this many days ago are "
                                   "taken as closed (the map's memory; at least this many days of open interest before a value)")
    bollinger_days: int = Field(default=20, ge=5, description="compression: window of the Bollinger bands (days)")
    bollinger_sigmas: float = Field(default=2.0, gt=0, description="compression: half-width of the Bollinger bands, in standard deviations")
    compression_rank_days: int = Field(default=365, ge=30, description="compression: trailing window of the coin's own history the band "
                                       "width and range ratio are ranked in (today included)")
    range_compression_days: list[int] = Field(default=[7, 90], min_length=2, max_length=2, description="compression: the short and the "
                                              "long high-low range whose ratio measures range compression (days)")
    vol_of_vol_days: int = Field(default=30, ge=5, description="compression: window of the std of the 30-day realized vol's daily changes")
    lags: list[int] = Field(default=[3, 7], description="lags added to the features listed in lagged_features")
    lagged_features: list[str] = Field(
        default=[
            "price_return_7d",
            "price_rsi_14",
            "oi_change_7d",
            "oi_change_14d",
            "funding_rate_mean_7d",
            "funding_rate_zscore",
            "flows_netflow_sum_7d",
            "sopr_sth_mean_7d",
            "nupl_sth",
            "nupl_sth_change_7d",
        ],
        description="features that also get lagged copies (name_lagK)",
    )
    labels: LabelConfig = Field(default_factory=LabelConfig, description="the label definition the families measure against "
                                "(liquidation memory counts cascade days as the label does); `feature_frame` sets it from Settings.labels")


class FoldConfig(BaseModel):
    """Walk-forward (expanding window) evaluation folds."""

    n_folds: int = Field(default=4, ge=1)
    min_train_days: int = Field(default=365, ge=60, description="labelled days before the first test block")
    purge_days: int | None = Field(default=None, description="gap between training targets and a test block; default = label horizon")


class ModelConfig(BaseModel):
    """LightGBM hyper-parameters of the cascade model and the direction model."""

    # Shallow, heavily regularised trees: ~60 events in ~1,700 serially correlated days is little data.
    n_estimators: int = 200
    learning_rate: float = 0.02
    num_leaves: int = 4
    max_depth: int = 2
    min_child_samples: int = 100
    subsample: float = 0.8
    subsample_freq: int = 1
    colsample_bytree: float = 0.3
    reg_lambda: float = 5.0
    n_jobs: int = 2
    random_state: int = 7
    direction_n_estimators: int = 100
    calibrate: bool = Field(
        default=False,
        description="Platt-scale P(cascade) on out-of-fold margins of earlier folds. Off by default: measured on BTC it lowered "
        "Brier skill from 0.08 to 0.02, because prevalence shifts between folds; the unweighted log-loss fit is better calibrated",
    )
    families: list[str] | None = Field(
        default=["price", "oi", "funding", "flows", "sopr", "nupl"],
        description="signal families the cascade model reads (None: every registered family but the candidate families, "
        "which are read only when named); default: the choice of "
        "`make tune` (data/selection.local.json where tuned locally, else the committed training/selection.json)",
    )
    direction_families: list[str] | None = Field(default=None, description="families the direction model reads (None: the same as "
                                                 "`families`); chosen by `make tune` like the rest")
    direction_inputs: dict[str, int] | None = Field(default=None, description="the direction model's inputs, each with the side it points "
                                                    "to by hypothesis (+1: higher means a long squeeze, -1: a short squeeze); None: LightGBM "
                                                    "on the features of `direction_families`, signs free")
    direction_kind: Literal["score", "monotone"] = Field(default="score", description="with `direction_inputs`: 'score' — no fitted "
                                                         "weights, the signed mean of the inputs (percentiles against the coin's own past) "
                                                         "calibrated by a one-input logistic on the training window; 'monotone' — LightGBM "
                                                         "constrained to the declared signs")
    missing_example_share: float = Field(default=0.03, ge=0, le=0.5, description="per family, this share of training rows is "
                                         "added again with the family's features blanked, so that a missing value is scored as missing, not as 0")
    missing_example_weight: float = Field(default=0.2, gt=0, le=1, description="weight of those blanked copies")
    missing_example_families: int = Field(default=3, ge=1, le=8, description="family dropout: besides one family at a time, copies "
                                          "with random sets of up to this many families blanked together (a store often lacks several "
                                          "at once); also the largest set of missing families whose out-of-fold skill is measured")
    major_head: bool = Field(default=True, description="also fit P(a *major* cascade within H days) — an event peaking at >= "
                             "`labels.major_multiple` x the trailing median: a LightGBM binary model on the cascade model's features, "
                             "calibrated like it, never above P(cascade)")
    major_from: Literal["share", "head"] = Field(default="share", description="how P(major) is read: `share` = P(cascade) x the "
                                                 "share of the training window's cascade days with a major event ahead (ranks like "
                                                 "P(cascade)); `head` = the major head. Measured out of fold on the reference history "
                                                 "(major tier, pooled ROC-AUC): head 0.635, P(cascade) 0.680 — too few major events to "
                                                 "learn severity beyond 'a cascade is likely'")
    term_horizons: list[int] = Field(default=[3, 7], description="the term structure's shorter horizons (days, each shorter than "
                                     "`labels.horizon_days`): P(cascade within h days) from a LightGBM binary model each, capped by the "
                                     "next longer horizon so that it never falls with the horizon; the H-day number is p_cascade itself")
    volatility_features: list[str] = Field(
        default=["price_realized_vol_7d", "price_realized_vol_30d", "price_vol_ratio_7d_30d"],
        description="inputs of the volatility baseline (a logistic regression on them alone)",
    )
    exclude_features: list[str] = Field(
        default=["oi_usd_bn", "flows_inflow_k", "flows_outflow_k", "flows_netflow_k", "flows_netflow_sum_*", "*_xrank"],
        description="feature-name patterns kept in the table but not fed to models: raw levels that trend over the years "
        "(dollars of OI, coins moved) let trees learn the calendar instead of the build-up",
    )

    @field_validator("term_horizons")
    @classmethod
    def _shortest_first(cls, value: list[int]) -> list[int]:
        return sorted(set(value))

    @model_validator(mode="before")
    @classmethod
    def _committed_choice(cls, data: object) -> object:
        """Fields not given explicitly take the choice of `make tune` in force (``selection_file``)."""
        if isinstance(data, dict):
            return {**selected_choice(), **data}
        return data


class TuneConfig(BaseModel):
    """The search space and procedure of `make tune` (nested walk-forward model selection)."""

    family_sets: dict[str, list[str] | None] = Field(
        default={
            "six": ["price", "oi", "funding", "flows", "sopr", "nupl"],
            "six_positioning": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning"],
            "six_liqmem": ["price", "oi", "funding", "flows", "sopr", "nupl", "liqmem"],
            "all": None,
            "derivatives": ["price", "oi", "funding", "positioning", "liqmem"],
            "price": ["price"],
            # the candidate families (issue 34), each on top of every established family
            "all_fuel": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "fuel"],
            "all_compression": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "compression"],
            "all_fuel_compression": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "fuel", "compression"],
            "all_market": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "market"],
            "all_market_compression": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "market", "compression"],
            "all_market_fuel_compression": ["price", "oi", "funding", "flows", "sopr", "nupl", "positioning", "liqmem", "market", "fuel",
                                            "compression"],
        },
        description="candidate families of the cascade model (None: every registered family but the candidate families, which "
        "a set reads only by name)",
    )
    param_sets: dict[str, dict[str, float | int]] = Field(
        default={
            "shallow": {"num_leaves": 4, "max_depth": 2, "min_child_samples": 100, "n_estimators": 200, "learning_rate": 0.02},
            "deeper": {"num_leaves": 8, "max_depth": 3, "min_child_samples": 200, "n_estimators": 300, "learning_rate": 0.02},
            "stumps": {"num_leaves": 2, "max_depth": 1, "min_child_samples": 100, "n_estimators": 400, "learning_rate": 0.03},
        },
        description="candidate LightGBM hyper-parameters (both models)",
    )
    direction_sets: dict[str, list[str] | None] = Field(
        default={
            "same": None,
            "funding_positioning": ["funding", "positioning"],
            "funding_positioning_price": ["funding", "positioning", "price"],
            "funding_positioning_liqmem": ["funding", "positioning", "liqmem"],
        },
        description="candidate families of the direction model (None: the cascade model's)",
    )
    direction_scores: dict[str, dict[str, object]] = Field(
        default={
            "crowding_score_4_inputs": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1,
                                                          "liqmem_long_share_7d_xrank": 1, "positioning_lsr_global_accounts_zscore_90d_xrank": 1}},
            "crowding_monotone_4_inputs": {"kind": "monotone", "inputs": {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1,
                                                              "liqmem_long_share_7d_xrank": 1, "positioning_lsr_global_accounts_zscore_90d_xrank": 1}},
            "crowding_score_3_inputs": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1,
                                                          "liqmem_long_share_7d_xrank": 1}},
            "funding_taker_score": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1}},
            # issue 34: the long/short account ratio against its own trailing half-year, and the same crowding across the market
            "funding_taker_accounts_score": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1,
                                                                         "positioning_lsr_global_accounts_rank": 1}},
            "funding_taker_market_crowding_score": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1,
                                                                                "positioning_taker_buy_share_mean_7d_xrank": -1,
                                                                                "market_crowded_long_share": 1, "market_crowded_short_share": -1}},
        },
        description="candidate direction models with declared signs (ModelConfig.direction_inputs / direction_kind), named for what "
        "they read (the crowding of one side, by 3 or 4 inputs): the warning checklist's logic — "
        "crowded longs (high funding, many long accounts, longs already liquidated) precede long squeezes, aggressive buying short squeezes",
    )
    free_sign_directions: bool = Field(default=False, description="also try the LightGBM direction models of `direction_sets` (signs "
                                       "free). Off: measured nested out-of-fold, they learn the calendar — with them the pooled direction "
                                       "ROC-AUC was 0.60 (BTC 0.61), one outer fold picking a free-sign model")
    preferred_family_set: str | None = Field(default="all", description="the design's full set of families: chosen unless a smaller set "
                                             "beats it by more than one standard error of the inner-fold scores (None: the best score wins)")
    inner_folds: int = Field(default=3, ge=2, description="walk-forward folds inside each outer training window")
    inner_min_train_days: int = Field(default=180, ge=60, description="labelled days before the first inner test block")
    n_jobs: int = Field(default=1, ge=1, description="local processes that run the search's fits (one candidate on one inner fold "
                        "each, one LightGBM thread per process); 1: every fit in this process, one after another (docs/model.md, "
                        "'The search on more cores or a cluster'). Ignored when `dask_scheduler` is set")
    dask_scheduler: str | None = Field(default=None, description="address of a Dask scheduler (e.g. tcp://10.0.0.5:8786): the search's "
                                       "fits run on its workers, which need the project's environment but not its data (the feature "
                                       "tables travel with the work); None: local, as `n_jobs` says")


class GateConfig(BaseModel):
    """Evaluation gate a new model must pass to become the `champion`."""

    metrics: list[str] = Field(default=["pr_auc", "brier_skill"])
    baselines: list[str] = Field(default=["base_rate", "rule", "logistic", "volatility"])
    min_margin: float = 0.0


class OperationsConfig(BaseModel):
    """`cascade-radar today` / `daily`: freshness, the forecast ledger and alerts."""

    model_config = ConfigDict(hide_input_in_errors=True)  # its webhook URLs are secrets

    stale_after_days: int = Field(default=2, ge=0, description="a family whose last value is more than this many days before the "
                                  "forecast day is stale")
    max_missing_families: int = Field(default=1, ge=0, description="a day is answered when at most this many of the families the "
                                      "model reads have no data within stale_after_days (they are flagged missing, scored as missing and "
                                      "never named a driver); with more it is refused with the reason. 1: the model is trained to score "
                                      "one missing family (its missing-value copies blank one family at a time), not several")
    skill_floor: float | None = Field(default=None, ge=0.5, le=1, description="a day is answered when the champion's out-of-fold "
                                      "ROC-AUC measured without that day's missing families is at least this; unset: the coin's "
                                      "volatility-baseline ROC-AUC on the same days ('volatility is high'), so an answer always beats it")
    side_band: float = Field(default=0.05, ge=0, lt=0.5, description="a day whose P(long | cascade) lies within this of the training "
                             "long share says 'side uncertain' (so does a coin whose side has no out-of-fold skill)")
    max_age_days: int = Field(default=3, ge=0, description="an answer whose day is more than this many days before today (UTC) is "
                              "*outdated*: `today` and `daily` say so and exit 3, so cron and systemd notice")
    ledger_file: Path = Field(default=Path("ledger/forecasts.jsonl"), description="the forecast ledger (append-only), under the data dir")
    update_store: bool = Field(default=True, description="`daily` first fetches new days from the live providers")
    webhook_urls: list[str] = Field(default=[], description="alert webhooks (secrets: masked in logs, never in MLflow or the ledger); "
                                    "CASCADE_RADAR_ALERTS__WEBHOOK_URLS as a JSON list")
    rise_step: float = Field(default=0.2, gt=0, lt=1, description="an alert is also sent when P(cascade) rises by this much ...")
    rise_window_days: int = Field(default=3, ge=1, description="... within this many days")
    timeout_seconds: float = Field(default=5.0, gt=0, description="per webhook call")
    lock_wait_seconds: float = Field(default=0.0, ge=0, description="`daily`: how long a second copy waits for the one running "
                                     "(0: it stops at once, exit 5, and says which process holds the lock)")
    retries: int = Field(default=3, ge=0, description="retries on 5xx and connection errors (never on 4xx)")
    backoff_seconds: float = Field(default=1.0, ge=0, description="first retry delay, doubled each time")

    @field_validator("webhook_urls")
    @classmethod
    def _http_urls(cls, urls: list[str]) -> list[str]:
        """Every webhook an http(s) URL with a host. The message names the webhook by position, never its URL (a secret)."""
        for number, url in enumerate(urls, start=1):
            parts = urlsplit(url.strip()) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                scheme = f"scheme {parts.scheme!r}" if parts is not None and parts.scheme in ("ftp", "file", "mailto", "ws", "wss", "") else "not a URL"
                raise ValueError(f"webhook #{number} is not an http(s) URL with a host ({scheme})")
        return [u.strip() for u in urls]


class ReplayConfig(BaseModel):
    """Which past events `cascade-radar replay` reconstructs."""

    events: list[str] = Field(default=["2025-04-22", "2025-10-10"], description="event days to replay (an event starting within a day of each)")
    largest: int = Field(default=4, ge=0, description="also replay this many of the largest labelled events (by size vs median)")
    window_days: int = Field(default=30, ge=5, description="days before the event shown")


class BacktestConfig(BaseModel):
    """`cascade-radar backtest`: what cutting leverage on an alert would have saved, in money, over the out-of-fold days
    (training.backtest). Daily bars: a position is re-levered at every close and liquidated when the day's low (long) or
    high (short) reaches its liquidation price."""

    leverages: list[float] = Field(default=[3.0, 10.0], min_length=1, description="leverages a position is held at (x equity)")
    cut_leverage: float = Field(default=1.0, ge=0, description="the leverage held on a cut day (0: flat)")
    maintenance_margin: float = Field(default=0.005, ge=0, lt=0.2, description="maintenance margin, a fraction of the position: a "
                                      "long entered at P with leverage L is liquidated at P·(1 − 1/L + mm), a short at P·(1 + 1/L − mm)")
    fee: float = Field(default=0.0005, ge=0, lt=0.05, description="cost per unit of notional traded (0.0005 = 5 bp), on every change "
                       "of the position, the daily re-levering included")
    starting_equity: float = Field(default=1.0, gt=0, description="equity on the first day, per coin")
    volatility_days: int = Field(default=30, ge=5, description="the volatility rule's window: std of daily log returns over this many "
                                 "days up to the deciding day")
    placebo_draws: int = Field(default=200, ge=10, description="draws of the placebo that cuts on as many days, chosen at random")
    seed: int = Field(default=35, description="random-number seed of the placebo's draws (each coin draws from its own stream)")

    @model_validator(mode="after")
    def _liquidation_below_entry(self) -> BacktestConfig:
        """A leverage at or above 1 / maintenance margin is liquidated at entry: refused. The cut leverage is below every other."""
        if self.maintenance_margin > 0 and any(lev >= 1 / self.maintenance_margin for lev in self.leverages):
            raise ValueError(f"backtest.leverages {self.leverages}: each must be below 1 / maintenance_margin "
                             f"({1 / self.maintenance_margin:g}), else the position is liquidated where it opens")
        if any(lev <= self.cut_leverage for lev in self.leverages):
            raise ValueError(f"backtest.leverages {self.leverages}: each must be above cut_leverage {self.cut_leverage:g} "
                             "(a cut lowers the leverage)")
        return self


class Settings(BaseSettings):
    """All settings of cascade-radar. Paths are resolved against the project root."""

    # hide_input_in_errors: a refused value is never echoed into a traceback or log (webhook URLs and tokens are secrets)
    model_config = SettingsConfigDict(env_prefix="CASCADE_RADAR_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True,
                                      env_parse_none_str="null")  # CASCADE_RADAR_X=null unsets an optional setting

    asset: Asset = Field(default="BTC", description="the coin a command answers for (explain, replay, serving default); not given: "
                         "BTC, or the first of `assets` when BTC is not one of them")
    assets: list[Asset] = Field(default=list(ASSETS), min_length=1, description="the coins pooled into one model by `make train` / "
                                "`make tune` and served by the service; any tickers (" + COIN_RULE + "); each is evaluated on its "
                                "own and gets the champion only if it passes the gate")
    data_dir: Path = Path("data")
    reference_dir: Path = Path("../shared/data")
    reports_dir: Path = Path("reports")
    mlruns_dir: Path = Path("mlruns")
    mlflow_tracking_uri: str | None = Field(default=None, description="default sqlite:///<project>/mlruns/mlflow.db")
    experiment_name: str = "cascade-radar"
    alert_threshold: float = Field(default=0.5, gt=0, lt=1, description="p_cascade at or above which a day is an alert where no line "
                                   "is chosen (no `false_alarm_budget_per_30d`, a champion trained before the lines, the walk-forward's "
                                   "first fold)")
    false_alarm_budget_per_30d: float | None = Field(default=1.0, ge=0, description="each coin's alert line is chosen, not fixed: the "
                                                     "lowest P(cascade) whose out-of-fold alert episodes include at most this many false "
                                                     "alarms per 30 days, in alert on no more days than have a cascade ahead "
                                                     "(training.thresholds); None: `alert_threshold` for every coin")

    serving_min_signal_rows: int = Field(default=365, ge=30, description="rows /predict_signals needs: every window and lag fits, so "
                                         "posted and stored history give the same features")
    packaged_dir: Path | None = Field(default=None, description="serve the champions and history packaged by `make bento` in this "
                                      "folder instead of the MLflow store and the data directory (set inside a Bento)")
    serving_explanation_cache_mb: int = Field(default=256, ge=1, description="memory the service keeps past days' explanations in "
                                              "(SHAP values, every coin together; least recently used evicted beyond it): a coin is "
                                              "ready when its latest day is explained, a past day is explained on its first request")
    frame_cache: bool = Field(default=True, description="keep every coin's panel and features on disk (data/.cache/frames/) per "
                              "version of the stores, the feature settings and the feature code, so a start reads them instead "
                              "of building them; false: always build, write nothing")
    serving_max_body_bytes: int = Field(default=2_000_000, ge=10_000, description="largest request body the API reads (413 above)")
    serving_max_signal_rows: int = Field(default=4000, ge=400, description="most rows one /predict_signals request may post (413 above)")
    serving_registry_check_seconds: float = Field(default=60.0, ge=0, description="how often (at most) the service looks for a new "
                                                  "champion in the registry; a moved alias is loaded in the background")
    serving_api_token: str | None = Field(default=None, description="when set, every route but /readyz and /livez needs it: "
                                          "'Authorization: Bearer <token>' (the dashboard: open /dashboard/?token=<token> once, a cookie "
                                          "carries it on). Off by default: the service binds to 127.0.0.1. A secret: never logged")
    serving_read_timeout_seconds: float = Field(default=10.0, gt=0, description="a request body must arrive within this (408 after)")
    serving_idle_timeout_seconds: float = Field(default=15.0, gt=0, le=3600, description="a connection is closed when a request's headers "
                                                "do not arrive within this: a new connection that sends nothing or only part of its "
                                                "headers, and a kept-alive one that stays idle")
    serving_cookie_secure: bool = Field(default=False, description="mark the token cookie Secure even when the request reached the service "
                                        "as plain HTTP (set it behind a TLS-terminating proxy; requests that arrive over HTTPS get it anyway)")
    serving_download_concurrency: int = Field(default=1, ge=1, le=64, description="whole-history answers (/v1/signals, /v1/timeline, "
                                              "/v1/events, /v1/episodes) built and sent at once; the others wait their "
                                              "turn: heavy downloads cannot starve /predict")
    serving_download_share: float = Field(default=0.25, gt=0, le=1, description="at most this share of the time goes to whole-history "
                                          "answers while they queue: after one that took t seconds the next waits t x (1/share - 1)")
    serving_download_cache_mb: float = Field(default=64.0, ge=0, description="memory for computed history answers, kept per coin's data "
                                             "version (ETag) and reused until a new champion or new data; least recently used evicted")
    serving_forecasts_page_rows: int = Field(default=100, ge=1, description="rows of a /v1/forecasts page when the request gives no "
                                             "limit (at most serving_forecasts_page_max)")
    serving_forecasts_page_max: int = Field(default=1000, ge=1, le=100_000, description="most rows one /v1/forecasts page may ask for "
                                            "(limit above it: 400); each is read from the ledger and its checksum verified")
    bentoml_port: int = 3000
    provider_urls: dict[str, str] = Field(default={}, description="per connector name, a base URL that replaces the provider's own (a "
                                          "local emulator, a proxy); CASCADE_RADAR_PROVIDER_URLS as a JSON object")

    features: FeatureConfig = FeatureConfig()
    labels: LabelConfig = LabelConfig()
    folds: FoldConfig = FoldConfig()
    model: ModelConfig = ModelConfig()
    gate: GateConfig = GateConfig()
    tune: TuneConfig = TuneConfig()
    replay: ReplayConfig = ReplayConfig()
    alerts: OperationsConfig = OperationsConfig()
    backtest: BacktestConfig = BacktestConfig()

    @field_validator("assets", mode="before")
    @classmethod
    def _upper_assets(cls, value: object) -> object:
        if isinstance(value, str):  # "BTC,ETH" as well as a JSON list
            value = json.loads(value) if value.strip().startswith("[") else value.split(",")
        return [v.strip() if isinstance(v, str) else v for v in value] if isinstance(value, list) else value  # Asset upper-cases

    @field_validator("assets")
    @classmethod
    def _each_coin_once(cls, value: list[str]) -> list[str]:
        """A coin listed twice would be pooled twice (its days weigh double) and registered twice: refused, naming it."""
        twice = sorted({a for a in value if value.count(a) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} listed more than once; list each coin once")
        return value

    @model_validator(mode="after")
    def _asset_among_the_coins(self) -> Settings:
        """The coin a command answers for, when not given, is BTC if it is configured, else the first configured coin: a
        list of other coins (``CASCADE_RADAR_ASSETS='["C001", ...]'``) serves and explains one of its own by default."""
        if "asset" not in self.model_fields_set and self.asset not in self.assets:
            self.asset = self.assets[0]
        return self

    @field_validator("serving_api_token", mode="before")
    @classmethod
    def _usable_token(cls, value: object) -> object:
        """A token travels in a header and a cookie: printable ASCII without spaces, quotes, commas or semicolons, and long
        enough to resist guessing. Empty means no token. The message never shows the value (a secret)."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,}", value):
            raise ValueError("the API token must be at least 16 characters of A-Z a-z 0-9 . _ ~ + / = - (no spaces, quotes, commas or "
                             "semicolons: it travels in a header and a cookie)")
        return value

    @model_validator(mode="after")
    def _purge_covers_the_horizon(self) -> Settings:
        """A purge shorter than the label horizon lets a training target see into the test block: refused."""
        if self.folds.purge_days is not None and self.folds.purge_days < self.labels.horizon_days:
            raise ValueError(f"folds.purge_days {self.folds.purge_days} is shorter than labels.horizon_days {self.labels.horizon_days}: "
                             "training targets would overlap the test block (leave it unset: it defaults to the horizon)")
        return self

    @model_validator(mode="after")
    def _term_inside_the_horizon(self) -> Settings:
        """The term structure's horizons lie strictly inside the label horizon (the H-day number is p_cascade)."""
        wrong = [h for h in self.model.term_horizons if not 1 <= h < self.labels.horizon_days]
        if wrong:
            raise ValueError(f"model.term_horizons {wrong}: each must be at least 1 and shorter than labels.horizon_days "
                             f"{self.labels.horizon_days} (the {self.labels.horizon_days}-day number is p_cascade itself)")
        return self

    @model_validator(mode="after")
    def _inside_a_bento(self) -> Settings:
        """Inside a built Bento (its ``bento.yaml`` beside the code) serve what `make bento` packaged, unless told otherwise:
        `bentoml serve <tag>` does not apply the bentofile's environment outside a container."""
        if self.packaged_dir is None and INSIDE_BENTO:
            self.packaged_dir = Path("serving/packaged")
            if "data_dir" not in self.model_fields_set:
                self.data_dir = Path("serving/packaged/data")
        return self

    def for_asset(self, asset: str) -> Settings:
        """The same settings answering for ``asset``."""
        return self.model_copy(update={"asset": asset.upper()})

    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else (PROJECT_ROOT / path).resolve()

    @property
    def data_path(self) -> Path:
        """Directory of this asset's history store."""
        return self._resolve(self.data_dir) / self.asset.lower()

    @property
    def packaged_path(self) -> Path | None:
        return self._resolve(self.packaged_dir) if self.packaged_dir is not None else None

    @property
    def reference_path(self) -> Path:
        return self._resolve(self.reference_dir)

    @property
    def reports_path(self) -> Path:
        """reports/ for the default asset (BTC), reports/<asset>/ for the others, so assets never overwrite each other."""
        return self.reports_root if self.asset == "BTC" else self.reports_root / self.asset.lower()

    @property
    def reports_root(self) -> Path:
        return self._resolve(self.reports_dir)

    @property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self._resolve(self.mlruns_dir) / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        return str(self._resolve(self.mlruns_dir) / "artifacts")

    @property
    def registered_model_name(self) -> str:
        return f"cascade-radar-{self.asset.lower()}"

    @property
    def purge_days(self) -> int:
        return self.folds.purge_days if self.folds.purge_days is not None else self.labels.horizon_days

    def loggable(self) -> dict[str, object]:
        """The whole config as plain JSON-able data. It holds no secret: provider keys stay in the environment
        variables their connectors declare (`cascade-radar data update --help` lists them)."""
        return self.model_dump(mode="json", exclude={"alerts": {"webhook_urls"}, "serving_api_token": True})  # secrets

    @property
    def ledger_path(self) -> Path:
        return self._resolve(self.data_dir) / self.alerts.ledger_file


def settings_problems(exc: Exception) -> str:
    """A pydantic ValidationError of the settings as one line: every setting at fault and why, never the value given (it
    may be a secret)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    parts = []
    for err in errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in err["loc"]) or "settings"
        parts.append(f"setting '{where}' (environment CASCADE_RADAR_{where.upper().replace('.', '__')}): {err['msg']}")
    return "; ".join(parts)


def settings_or_exit(**overrides: object) -> Settings:
    """Settings for a long-running process (the service): unusable ones end it with one line on stderr, not a traceback."""
    from pydantic import ValidationError

    try:
        return get_settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"cascade-radar: {settings_problems(exc)}") from None


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with explicit overrides (e.g. from the CLI)."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
