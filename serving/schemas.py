"""Request and response models of the prediction API (pydantic; validation errors become HTTP 400)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from cascade_radar.config import Asset, Settings
from features.build import input_spec
from features.families import optional_inputs, required_inputs


_LIMITS = Settings()
AssetName = Annotated[Asset, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]


def asset_field() -> object:
    return Field(default="BTC", description="coin: BTC, ETH, SOL, XRP, DOGE, BNB or ADA")


class PingRequest(BaseModel):
    """/ping takes no field."""

    model_config = ConfigDict(extra="forbid")


Basis = Literal["auto", "champion"]


def basis_field() -> object:
    return Field(default="auto", description="which model answers for a past day: 'auto' — the walk-forward fold model whose test block "
                 "holds the day (out-of-fold: what it would have said then), else the champion (out-of-sample after its training "
                 "data); 'champion' — the champion on every day (in-sample, i.e. hindsight, on the days it was trained on)")


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = asset_field()
    basis: Basis = basis_field()
    as_of: dt.date | None = Field(default=None, description="day to predict (YYYY-MM-DD); default: the latest day with price, OI and funding")


class RangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = asset_field()
    basis: Basis = basis_field()
    start: dt.date
    end: dt.date


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str


class Driver(BaseModel):
    feature: str
    family: str
    value: float | None = Field(description="the feature's value that day (null if missing)")
    contribution: float = Field(description="SHAP contribution to the cascade log-odds")


class FamilyFreshness(BaseModel):
    family: str
    data_through: dt.date | None = Field(description="last day with the family's inputs, at or before the forecast day (null: none)")
    days_behind: int | None = Field(description="forecast day minus data_through")
    stale: bool = Field(description="missing, or more than `alerts.stale_after_days` behind")


class Prediction(BaseModel):
    asset: str
    as_of: dt.date
    data_through: dt.date = Field(description="last day of history the server (or the posted window) holds")
    horizon_days: int
    cascade_probability: float = Field(ge=0, le=1, description="P(a liquidation cascade starts within horizon_days)")
    long_probability: float = Field(ge=0, le=1, description="P(cascade and it is a long squeeze)")
    short_probability: float = Field(ge=0, le=1, description="P(cascade and it is a short squeeze)")
    direction: Literal["long", "short"]
    alert: bool = Field(description="cascade_probability >= the configured alert threshold")
    basis: str = Field(description="out-of-fold (a walk-forward fold model that never saw the day), out-of-sample (the champion, after "
                       "its training data) or in-sample (the champion was trained on this day's outcome: hindsight)")
    hindsight: bool = Field(description="true when basis is in-sample: not what the model would have said that day")
    missing_inputs: list[str] = Field(default_factory=list, description="model inputs with no value on as_of (their features are missing)")
    freshness: list[FamilyFreshness] = Field(description="every family: the last day with data and how far behind as_of")
    stale: list[str] = Field(description="families missing or stale on as_of (scored as missing, not as 0)")
    as_of_age_days: int = Field(description="days from as_of to today (UTC): how old the answer's data are")
    model: ModelInfo
    top_drivers: list[Driver]


class RangeRow(BaseModel):
    as_of: dt.date
    cascade_probability: float
    long_probability: float
    short_probability: float
    direction: Literal["long", "short"]
    alert: bool
    basis: str = Field(description="out-of-fold, out-of-sample or in-sample (see Prediction.basis)")
    hindsight: bool


class RangeResponse(BaseModel):
    asset: str
    start: dt.date
    end: dt.date
    horizon_days: int
    model: ModelInfo
    rows: list[RangeRow]


class Explanation(BaseModel):
    model_config = ConfigDict(extra="forbid")  # every field declared: a client generated from the document sees them all

    asset: str
    date: dt.date
    horizon_days: int
    sentence: str = Field(description="the explanation in words, built from the numbers below")
    scale: str = Field(description="unit of every contribution (log-odds of the binary model)")
    basis: str = Field(description="out-of-fold, out-of-sample or in-sample (see Prediction.basis)")
    hindsight: bool
    model_used: str = Field(description="which model produced this explanation (a fold model or the champion)")
    cascade_probability: float
    long_probability: float
    short_probability: float
    direction: Literal["long", "short"]
    alert: bool
    cascade: dict[str, object] = Field(description="base_value, margin, families, family_probability_effect, features (log-odds)")
    direction_model: dict[str, object] | None = Field(default=None, description="the same for the direction model (+ long, - short)")
    top_drivers: list[Driver]
    missing_families: list[str] = Field(default_factory=list, description="families with no value that day (scored as missing, not as 0)")
    freshness: list[FamilyFreshness]
    stale: list[str]
    as_of_age_days: int = Field(description="days from the explained day to today (UTC)")
    model: ModelInfo


def _signal_field(name: str, required: bool) -> tuple[object, object]:
    spec = input_spec(name)
    bounds: dict[str, float] = {}
    if spec.min_value is not None:
        bounds["ge" if spec.min_inclusive else "gt"] = spec.min_value
    if spec.max_value is not None:
        bounds["le"] = spec.max_value
    text = f"{spec.description}, {spec.unit}" + (" (null if not observed that day)" if required else " (optional)")
    # a family input must be sent, but may be null: a day without it is scored with those features missing
    return float | None, Field(description=text, **bounds) if required else Field(default=None, description=text, **bounds)


def signal_row_model() -> type[BaseModel]:
    """One day of raw signals: a field per family input (required key, null allowed) and per optional input,
    with the store's units and bounds.

    Built from the family registry, so a new family's inputs are accepted here without an edit.
    """
    fields: dict[str, tuple[object, object]] = {"date": (dt.date, Field(description="UTC day"))}
    fields.update({name: _signal_field(name, True) for name in required_inputs()})
    fields.update({name: _signal_field(name, False) for name in optional_inputs()})
    return create_model("SignalRow", __config__=ConfigDict(extra="forbid", allow_inf_nan=False),
                        __doc__="One day of raw signals, in the store's units.", **fields)


SignalRow = signal_row_model()


class SignalsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset: AssetName = Field(default="BTC", description="coin the signals are of; for a coin other than BTC the on-chain families "
                         "(flows, SOPR, NUPL) are read from the stored BTC history, as in training")
    signals: list[SignalRow] = Field(min_length=1, max_length=_LIMITS.serving_max_signal_rows,  # type: ignore[valid-type]
                                     description=f"consecutive daily rows, oldest first: at least {_LIMITS.serving_min_signal_rows}, "
                                     f"at most {_LIMITS.serving_max_signal_rows}")

