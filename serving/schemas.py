"""Request and response models of the prediction API (pydantic; validation errors become HTTP 400)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: dt.date | None = Field(default=None, description="day to predict (YYYY-MM-DD); default: the latest day with price, OI and funding")


class RangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: dt.date
    end: dt.date

    @field_validator("end")
    @classmethod
    def _after_start(cls, end: dt.date, info: object) -> dt.date:
        start = info.data.get("start")  # type: ignore[attr-defined]
        if start is not None and end < start:
            raise ValueError(f"end {end} is before start {start}")
        return end


class ModelInfo(BaseModel):
    name: str
    version: str
    alias: str


class Driver(BaseModel):
    feature: str
    family: str
    value: float | None = Field(description="the feature's value that day (null if missing)")
    contribution: float = Field(description="SHAP contribution to the cascade log-odds")


class Prediction(BaseModel):
    as_of: dt.date
    data_through: dt.date = Field(description="last day of history the server (or the posted window) holds")
    horizon_days: int
    cascade_probability: float = Field(ge=0, le=1, description="P(a liquidation cascade starts within horizon_days)")
    long_probability: float = Field(ge=0, le=1, description="P(cascade and it is a long squeeze)")
    short_probability: float = Field(ge=0, le=1, description="P(cascade and it is a short squeeze)")
    direction: Literal["long", "short"]
    alert: bool = Field(description="cascade_probability >= the configured alert threshold")
    basis: str = Field(description="in-sample (the model was trained on this day's outcome) or out-of-sample")
    missing_inputs: list[str] = Field(default_factory=list, description="model inputs with no value on as_of (their features are missing)")
    model: ModelInfo
    top_drivers: list[Driver]


class RangeRow(BaseModel):
    as_of: dt.date
    cascade_probability: float
    long_probability: float
    short_probability: float
    direction: Literal["long", "short"]
    alert: bool
    basis: str


class RangeResponse(BaseModel):
    start: dt.date
    end: dt.date
    horizon_days: int
    model: ModelInfo
    rows: list[RangeRow]


class Explanation(BaseModel):
    model_config = ConfigDict(extra="allow")

    date: dt.date
    sentence: str
    scale: str
    basis: str
    cascade_probability: float
    long_probability: float
    short_probability: float
    cascade: dict[str, object]
    direction_model: dict[str, object] | None = None
    top_drivers: list[Driver]
    model: ModelInfo


class SignalRow(BaseModel):
    """One day of raw signals, in the store's units."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    date: dt.date
    close_usd: float = Field(gt=0, description="daily close price, USD")
    oi_close_usd: float = Field(ge=0, description="aggregated open interest at the end of the day, USD")
    funding_rate_frac8h: float = Field(ge=-0.05, le=0.05, description="mean funding rate of the day, fraction per 8 h (0.0001 = 0.01 %)")
    sth_sopr: float = Field(gt=0, description="short-term-holder SOPR")
    sth_nupl: float = Field(ge=-5, le=1, description="short-term-holder NUPL, fraction")
    sopr: float | None = Field(default=None, gt=0, description="adjusted SOPR (optional)")
    inflow_coin: float | None = Field(default=None, ge=0, description="coins sent to exchanges (optional)")
    outflow_coin: float | None = Field(default=None, ge=0, description="coins withdrawn from exchanges (optional)")
    supply_on_exchanges_coin: float | None = Field(default=None, ge=0, description="coins held on exchanges (optional)")
    market_cap_usd: float | None = Field(default=None, gt=0, description="market capitalisation, USD (optional)")


class SignalsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[SignalRow] = Field(min_length=1, description="consecutive daily rows, oldest first")

    @field_validator("signals")
    @classmethod
    def _consecutive_days(cls, rows: list[SignalRow]) -> list[SignalRow]:
        for i in range(1, len(rows)):
            step = (rows[i].date - rows[i - 1].date).days
            if step != 1:
                what = "duplicate" if step == 0 else "not increasing" if step < 0 else f"a gap of {step - 1} day(s)"
                raise ValueError(f"signals[{i}].date {rows[i].date}: days must be consecutive, oldest first ({what} after {rows[i - 1].date})")
        return rows
