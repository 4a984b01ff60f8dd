"""Request and response models of the prediction API (pydantic; validation errors become HTTP 400)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from cascade_radar.config import Asset, BacktestConfig, settings_or_exit
from cascade_radar.rules import ANSWER_BASES, AUTO, BASES, BASIS_RULE, coin_key
from features.build import input_spec
from features.families import optional_inputs, required_inputs
from features.schemas import FIRST_DAY
from training.backtest import BAND, BOOKS, RULES, VARYING

_LIMITS = settings_or_exit()


def date_text(value: object) -> object:
    """A day only as the text YYYY-MM-DD: a number (``"day": 0`` would read as 1970-01-01) or anything else is refused."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value  # built in Python (tests, the service itself)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("a day is written as a string YYYY-MM-DD")


Probability = Annotated[float, Field(ge=0, le=1)]
# a well-formed coin name (else 400 naming `asset`); whether it is served is the handler's question (404 naming `asset`):
# the served coins are `settings.assets`, any tickers, not a list fixed in the schema
AssetName = Annotated[Asset, BeforeValidator(lambda v: coin_key(v) if isinstance(v, str) else v)]
Day = Annotated[dt.date, BeforeValidator(date_text)]


def asset_field() -> object:
    return Field(default=_LIMITS.asset, description="coin: one of the served coins (GET /v1/ready lists them; any other: 404)")


class PingRequest(BaseModel):
    """/ping takes no field."""

    model_config = ConfigDict(extra="forbid")


Basis = Literal[BASES]  # type: ignore[valid-type] - what a caller may ask for (cascade_radar.rules)
AnswerBasis = Literal[ANSWER_BASES]  # type: ignore[valid-type] - which model answered


def basis_field() -> object:
    return Field(default=AUTO, description=BASIS_RULE)


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = asset_field()
    basis: Basis = basis_field()
    day: Day | None = Field(default=None, description="day to answer (YYYY-MM-DD); default: the last answerable day (at most "
                                "`alerts.max_missing_families` of the families the model reads lack data within `alerts.stale_after_days` of it)")


class RangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = asset_field()
    basis: Basis = basis_field()
    start: Day = Field(description="first day, YYYY-MM-DD")
    end: Day = Field(description="last day, YYYY-MM-DD (inclusive)")


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str


class Driver(BaseModel):
    feature: str
    label: str = Field(description="the feature's name for people, as its family declares it (`cascade-radar features list`)")
    family: str
    feature_value: float = Field(description="the feature's value that day (a feature with no value that day, or of a missing "
                                 "family, is never a driver)")
    unit: str = Field(description="the unit of feature_value, as its family declares it")
    value_text: str = Field(description="feature_value as a person reads it in its unit (`27.8 %`, `1.5 σ`)")
    shap: float = Field(description="the feature's SHAP contribution to the cascade log-odds")


class FamilyFreshness(BaseModel):
    family: str
    read_by_model: bool = Field(description="the answering model reads this family")
    data_through: dt.date | None = Field(description="last day with the family's inputs, at or before the answered day (null: none)")
    days_behind: int | None = Field(description="today (UTC) minus data_through")
    stale: bool = Field(description="no data within `alerts.stale_after_days` before the answered day")


class WarningChecklistItem(BaseModel):
    family: str
    warning: str = Field(description="the warning sign, as an analyst writes it down")
    on: bool
    rule: str = Field(description="when it is on (a round threshold, not fitted)")
    values: dict[str, float | None] = Field(description="the feature values behind it that day (null: missing)")
    values_text: str = Field(description="the same values by the features' labels, each in its unit (`volatility compression 0.931×`)")
    read_by_model: bool = Field(description="whether the answering model reads this family")


class Forecast(BaseModel):
    """The one answer for a coin and a day: /predict, the dashboard, `cascade-radar today`, the ledger row and the alert
    payload all carry these fields with these names."""

    asset: str
    day: dt.date = Field(description="the answered day")
    horizon_days: int
    p_cascade: float = Field(ge=0, le=1, description="P(a liquidation cascade starts within horizon_days)")
    p_long: float = Field(ge=0, le=1, description="P(cascade and it is a long squeeze)")
    p_short: float = Field(ge=0, le=1, description="P(cascade and it is a short squeeze)")
    p_major: float | None = Field(ge=0, le=1, description="P(a *major* cascade starts within horizon_days) — one whose peak day reaches "
                                  f"{_LIMITS.labels.major_multiple:g}x the trailing median (`labels.major_multiple`): the champion's "
                                  "major head, never above p_cascade (null: not measured — a champion trained before it)")
    p_cascade_by_horizon: dict[str, Probability | None] = Field(description="the term structure: P(a cascade starts within h days), "
                                                                "keyed by h in days as text (`model.term_horizons`, then horizon_days, "
                                                                "whose value is p_cascade); never falling as h grows (null: not "
                                                                "measured — a champion trained before its term heads)")
    side: Literal["long", "short"] = Field(description="the likelier side: long when p_long >= p_short")
    side_uncertain: bool = Field(description="the side is not worth stating: the coin's direction has no out-of-fold skill (side_skill "
                                 "null or <= 0), or p_long_given_cascade lies within `alerts.side_band` of long_prior")
    p_long_given_cascade: float = Field(ge=0, le=1, description="P(long squeeze | a cascade): the direction model's answer")
    long_prior: float = Field(ge=0, le=1, description="the answering model's training long share: what the side is judged against")
    side_skill: float | None = Field(description="the coin's out-of-fold Brier skill of P(long | cascade) against the training long "
                                     "share, from the champion's training run (null: not measured)")
    alert: bool = Field(description="p_cascade >= alert_threshold")
    alert_threshold: float = Field(gt=0, lt=1, description="the coin's alert line: the lowest P(cascade) whose out-of-fold alert "
                                   "episodes in the champion's walk-forward stay within `false_alarm_budget_per_30d` false alarms per 30 "
                                   "days, in alert on no more days than have a cascade ahead (else the configured `alert_threshold`)")
    alert_threshold_basis: str = Field(description="how the alert line was chosen, and what it gave out of fold, in words")
    basis: AnswerBasis = Field(description="which model answered: " + BASIS_RULE)
    hindsight: bool = Field(description="true when basis is in-sample: not what the model would have said that day")
    model: ModelInfo
    model_used: str = Field(description="the model that produced the numbers (a fold model of the champion's run, or the champion)")
    data_through: dt.date | None = Field(description="the coin's last answerable day (the default day)")
    age_days: int = Field(description="today (UTC) minus day: how old the answer's data are")
    outdated: bool = Field(description="age_days > `alerts.max_age_days`: the store needs `cascade-radar daily`")
    freshness: list[FamilyFreshness] = Field(description="every family: its last day with data and how far behind today")
    stale: list[str] = Field(description="families with no data within `alerts.stale_after_days` before the day")
    missing_families: list[str] = Field(description="families the model reads that are stale or have no value that day: scored as "
                                        "missing (not as 0) and never named a driver; at most `alerts.max_missing_families`, else the day "
                                        "is refused")
    base_rate: float | None = Field(ge=0, le=1, description="the yardstick of p_cascade: the share of the coin's days followed by a "
                                    "cascade within horizon_days, over the champion's walk-forward out-of-fold days (each fold's test "
                                    "block — the days its skill, percentile and calibration are measured on; not the final fit's "
                                    "training days), saved with the champion (null: not measured)")
    base_rate_basis: str = Field(description="whose base rate it is: the coin, its out-of-fold days and how many were followed by a cascade")
    relative_risk: float | None = Field(ge=0, description="p_cascade / base_rate: 1 is the coin's normal, 2 twice as likely as on an "
                                        "ordinary day (null: no base rate)")
    percentile: float | None = Field(ge=0, le=100, description="where p_cascade stands among the coin's out-of-fold answers of the "
                                     "champion's walk-forward, in percent (0: below all of them, 100: at or above the highest), read "
                                     "from their 101 quantiles saved with the champion (null: not measured)")
    expected_roc_auc: float | None = Field(description="the yardstick of skill: the champion's out-of-fold ROC-AUC (its walk-forward) on "
                                           "days missing the same families as this one — 0.5 is chance (null: not measured)")
    expected_roc_auc_basis: str = Field(description="whose number expected_roc_auc is: the coin's days, or every coin's (pooled) where the "
                                        "coin has too few events, and which families were missing")
    skill_floor: float | None = Field(description="a day is answered only when expected_roc_auc reaches this (`alerts.skill_floor`; by "
                                      "default the coin's volatility baseline on the same days)")
    top_drivers: list[Driver]
    checklist: list[WarningChecklistItem] = Field(description="the warning checklist (the warning signs of a build-up, as an analyst "
                                                  "writes them down for each family): every family's signs that day, on or off, with "
                                                  "the values behind them — whether or not the model reads the family")
    sentence: str = Field(description="the answer in words, built from the numbers")


class RangeRow(BaseModel):
    """One day of /predict_range: the same numbers under the same names as that day's /predict answer."""

    day: dt.date
    p_cascade: float
    p_long: float
    p_short: float
    p_major: float | None = Forecast.model_fields["p_major"]
    p_cascade_by_horizon: dict[str, Probability | None] = Forecast.model_fields["p_cascade_by_horizon"]
    side: Literal["long", "short"]
    alert: bool
    basis: AnswerBasis
    hindsight: bool


class RefusedRun(BaseModel):
    first: dt.date
    last: dt.date
    reason: str = Field(description="why these days are not answered (the first day's reason)")


class RangeResponse(BaseModel):
    asset: str
    start: dt.date
    end: dt.date
    horizon_days: int
    model: ModelInfo
    data_through: dt.date | None
    rows: list[RangeRow] = Field(description="every answerable day of [start, end]")
    refused: list[RefusedRun] = Field(description="runs of days in [start, end] that are not answered, with why")


class ModelExplanation(BaseModel):
    base_value: float
    margin: float = Field(description="base_value + the sum of shap_by_feature: the model's raw log-odds")
    shap_by_family: dict[str, float | None] = Field(description="per family the model reads, its push: the sum of the SHAP values of its "
                                                    "features that have a value that day (null: the family is missing that day — "
                                                    "scored as missing, never a push); base_value + shap_of_missing + these = margin")
    shap_of_missing: float = Field(description="the sum of the SHAP values of missing_features: what the model made of the gaps. "
                                   "Part of the margin, never a driver: no chart, table or sentence shows it as one")
    shap_by_feature: dict[str, float] = Field(description="every model feature's raw SHAP value (log-odds), those of missing_features "
                                              "included, so that base_value + their sum = margin; what a person reads leaves the "
                                              "missing ones out")


class CascadeExplanation(ModelExplanation):
    probability_effect_by_family: dict[str, float | None] = Field(description="how much p_cascade would fall without the family's push "
                                                                  "(null: the family is missing that day)")


class DirectionExplanation(ModelExplanation):
    meaning: str
    base_probability: float = Field(description="P(long | cascade) at base_value (the direction model's average day): where its bars "
                                    "start from. Not the prior: that is the answer's long_prior (the training long share)")


class Explanation(Forecast):
    """The forecast with every SHAP value behind it (/explain, `cascade-radar explain`)."""

    model_config = ConfigDict(extra="forbid")  # every field declared: a client generated from the document sees them all

    scale: str = Field(description="unit of every SHAP value (log-odds of the binary model)")
    cascade: CascadeExplanation
    direction_model: DirectionExplanation | None = Field(description="the direction model (+ long, - short squeeze); null: none")
    feature_values: dict[str, float | None] = Field(description="every model feature's value that day (null: missing)")
    missing_features: list[str] = Field(description="the model features scored as missing that day: no value, or of one of "
                                        "missing_families. Never a driver; their SHAP values add up to shap_of_missing")


def _signal_field(name: str, required: bool) -> tuple[object, object]:
    spec = input_spec(name)
    # the store's own bounds (features.schemas): a posted value the store would refuse is refused here too
    bounds = {"ge" if spec.min_inclusive or spec.min_value is None else "gt": spec.lower, "le": spec.upper}
    text = f"{spec.description}, {spec.unit}" + (" (null if not observed that day)" if required else " (optional)")
    # a family input must be sent, but may be null: a day without it is scored with those features missing
    return float | None, Field(description=text, **bounds) if required else Field(default=None, description=text, **bounds)


def signal_row_model() -> type[BaseModel]:
    """One day of raw signals: a field per family input (required key, null allowed) and per optional input,
    with the store's units and bounds.

    Built from the family registry, so a new family's inputs are accepted here without an edit.
    """
    fields: dict[str, tuple[object, object]] = {"date": (Day, Field(description=f"UTC day, YYYY-MM-DD, from {FIRST_DAY} to tomorrow (a day outside: 422)"))}
    fields.update({name: _signal_field(name, True) for name in required_inputs()})
    fields.update({name: _signal_field(name, False) for name in optional_inputs()})
    return create_model("SignalRow", __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
                        __doc__="One day of raw signals, in the store's units.", **fields)


SignalRow = signal_row_model()


class SignalsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = Field(default=_LIMITS.asset, description="coin the signals are of; for a coin other than the context coin "
                         f"({_LIMITS.features.context_asset}) the on-chain families (flows, SOPR, NUPL) are read from its stored "
                         "history, as in training")
    signals: list[SignalRow] = Field(min_length=1, max_length=_LIMITS.serving_max_signal_rows,  # type: ignore[valid-type]
                                     description=f"consecutive daily rows, oldest first: at least {_LIMITS.serving_min_signal_rows}, "
                                     f"at most {_LIMITS.serving_max_signal_rows}")


# ------------------------------------------------------------------ /v1/backtest: what acting on the forecast was worth
def _configured(name: str) -> str:
    """The description of a backtest setting, as the setting itself declares it (cascade_radar.config.BacktestConfig)."""
    return BacktestConfig.model_fields[name].description or name


class BacktestSettings(BaseModel):
    leverages: list[float] = Field(description="the leverages the backtest held positions at, times equity (those its table has)")
    cut_leverage: float = Field(description=_configured("cut_leverage") + ", times equity")
    maintenance_margin: float = Field(description=_configured("maintenance_margin"))
    fee: float = Field(description=_configured("fee"))
    starting_equity: float = Field(description=_configured("starting_equity") + "; every equity below is a multiple of it")
    volatility_days: int = Field(description=_configured("volatility_days"))
    placebo_draws: int = Field(description=_configured("placebo_draws"))


class _BacktestFigures(BaseModel):
    asset: str = Field(description="the coin, or `pooled`: every coin with equal capital, rebalanced daily")
    book: Literal[BOOKS] = Field(description="the position: long, short, or side — the side the forecast names each day (the "  # type: ignore[valid-type]
                                 "crowded side, where a squeeze would hit)")
    leverage: float = Field(description="the leverage held on a day that is not cut, times equity")
    rule: Literal[RULES] = Field(description="what cuts the position: forecast (the day after an alert), always_on (never), "  # type: ignore[valid-type]
                                 "volatility (the days after the highest realized volatility, as many as the forecast cut), placebo "
                                 "(as many random days: chance; its figures are the median over the draws) or relative_risk (the "
                                 "leverage divided by P(cascade) / base rate when above 1)")
    days: int = Field(description="days traded: out-of-fold days only, each decided by the answer of the day before")
    days_cut: int = Field(description="days held below the full leverage")
    share_cut: float = Field(description="days_cut / days, a fraction")
    events: int = Field(description="cascade events whose first day was traded")
    events_caught: float = Field(description="events whose first day was cut (chance: the median over its draws)")
    liquidations: float = Field(description="days the position was liquidated (chance: the median over its draws)")
    worst_drawdown: float = Field(description="the deepest fall of equity from its running peak, a fraction (-0.5: half lost)")
    final_equity: float = Field(description="equity after the last day, a multiple of the starting equity (1: as much as at the "
                                "start, 0: everything lost)")
    return_per_risk: float | None = Field(description="mean daily return over the mean leverage held, times 365: the yearly "
                                          "return per unit of leverage held, a fraction (null: never at risk)")


BacktestRow = create_model(  # the band's columns from the backtest's own list of the figures that differ between draws
    "BacktestRow", __base__=_BacktestFigures, __doc__="One rule's figures for a coin, book and leverage (a row of backtest.csv).",
    **{f"{name}_p{q}": (float | None, Field(default=None, description=f"chance only: the {q}th percentile of {name} over its draws "
                                             "(null for the other rules)"))
       for q in BAND for name in VARYING})


class DayRun(BaseModel):
    first: dt.date
    last: dt.date = Field(description="inclusive")


class BacktestCurve(BaseModel):
    rule: Literal[RULES]  # type: ignore[valid-type]
    label: str = Field(description="the rule in plain words")
    equity: list[float | None] = Field(description="per day of `dates`, equity at the close, a multiple of the starting equity "
                                       "(chance: that day's median over its draws)")
    equity_p5: list[float | None] | None = Field(default=None, description="chance only: that day's 5th percentile over its draws")
    equity_p95: list[float | None] | None = Field(default=None, description="chance only: that day's 95th percentile over its draws")
    exposure: list[float | None] | None = Field(default=None, description="per day, the leverage held, times equity (negative: "
                                                "short); null for chance and the pooled book")
    cut: list[bool | None] | None = Field(default=None, description="per day, held below the full leverage (null for chance and "
                                          "the pooled book)")
    liquidated: list[bool | None] | None = Field(default=None, description="per day, liquidated that day (null for chance and the "
                                                 "pooled book)")
    cut_runs: list[DayRun] = Field(description="the runs of consecutive cut days (the forecast's: the alert shading)")


class BacktestAnswer(BaseModel):
    """/v1/backtest: the last `make backtest` of one coin (or the pooled book)."""

    asset: str
    about: str = Field(description="what this backtest is, in one sentence")
    caveat: str = Field(description="what daily bars cannot see")
    written_at: dt.datetime = Field(description="when `make backtest` wrote the files read (UTC)")
    settings: BacktestSettings = Field(description="the backtest's settings as configured for this service (`backtest.*`); the "
                                       "leverages are those the files hold")
    books: dict[str, str] = Field(description="every book, in plain words")
    rules: dict[str, str] = Field(description="every rule, in plain words")
    rows: list[BacktestRow] = Field(description="every (book, leverage, rule) of the coin: the backtest's table")  # type: ignore[valid-type]
    book: Literal[BOOKS] = Field(description="the book of `curves`")  # type: ignore[valid-type]
    leverage: float = Field(description="the leverage of `curves`, times equity")
    dates: list[dt.date] = Field(description="the days traded, oldest first")
    curves: list[BacktestCurve] = Field(description="every rule's equity curve for `book` and `leverage`, one value a day")

