"""The BentoML prediction service (class API, BentoML >= 1.2).

Start it with `make serve` (``bentoml serve serving.service:CascadeRadar``). Nothing happens at
import: the champion and the history are loaded in ``__init__``; if either is missing the service
still starts, reports *not ready* on /readyz and says why on GET /v1/ready.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any

import bentoml
from bentoml.exceptions import BentoMLException
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from cascade_radar.config import Settings
from serving.schemas import Explanation, Prediction, PredictRequest, RangeRequest, RangeResponse, SignalsRequest
from serving.state import CoinStates, RequestError, ServingState

health = FastAPI(title="cascade-radar health", docs_url=None, redoc_url=None, openapi_url=None)


class ApiError(BentoMLException):
    """A 4xx answer whose message names the request field at fault."""

    error_code = HTTPStatus.BAD_REQUEST


@contextmanager
def caller_errors() -> Iterator[None]:
    """Turn a RequestError (bad input, named field) into the 4xx BentoML answers with."""
    try:
        yield
    except RequestError as exc:
        raise ApiError(str(exc), error_code=HTTPStatus(exc.status)) from None


@bentoml.service(name="cascade_radar", traffic={"timeout": 60})
@bentoml.asgi_app(health, path="/v1")
class CascadeRadar:
    """Cascade risk, direction and its explanation, for any day of the history or posted signals."""

    def __init__(self) -> None:
        self.coins = CoinStates.load(Settings())

    def __is_ready__(self) -> bool:
        return self.coins.ready

    @health.get("/ready")
    def ready(self) -> JSONResponse:
        """Readiness of every coin with the reason when not ready (the built-in /readyz only says 503 when no coin is)."""
        coins: dict[str, Any] = {}
        for asset, s in self.coins.states.items():
            body: dict[str, Any] = {"ready": s.ready, "reason": s.reason or None}
            if s.ready:
                body.update(model=s.model_info(), history=f"{s.first_day.date()}..{s.last_day.date()}",
                            latest_complete_day=str(s.latest_complete_day().date()))
            coins[asset] = body
        default = self.coins.settings.asset
        top = {"ready": self.coins.ready, "asset": default, **coins.get(default, {}), "assets": coins}
        top["ready"] = self.coins.ready
        return JSONResponse(top, status_code=200 if self.coins.ready else 503)

    def _state(self, asset: str) -> ServingState:
        """The coin's state, or the 404 / 503 answer that says why not."""
        with caller_errors():
            return self.coins.get(asset)

    @bentoml.api(route="/ping")
    def ping(self) -> dict[str, bool]:
        """Trivial endpoint: the HTTP floor for latency benchmarks."""
        return {"pong": True}

    # Request models are positional-only parameters: the JSON body *is* the model, and its
    # extra="forbid" turns a misspelt field into a 400 that names it.
    @bentoml.api(route="/predict")
    def predict(self, request: PredictRequest, /) -> Prediction:
        """Cascade probability and direction of ``asset`` for ``as_of`` (default: the latest day with the core inputs)."""
        state = self._state(request.asset)
        with caller_errors():
            return Prediction(**state.prediction(state.resolve_day(request.as_of)))

    @bentoml.api(route="/predict_signals")
    def predict_signals(self, request: SignalsRequest, /) -> Prediction:
        """The same prediction for the last day of posted raw daily signals (same feature code as training)."""
        state = self._state(request.asset)
        with caller_errors():
            return Prediction(**state.predict_signals(request.signals))

    @bentoml.api(route="/explain")
    def explain(self, request: PredictRequest, /) -> Explanation:
        """Full SHAP explanation of ``as_of``: per feature, per family, both models, and a sentence."""
        state = self._state(request.asset)
        with caller_errors():
            day = state.resolve_day(request.as_of)
        return Explanation(**state.explanation(day), asset=state.settings.asset, model=state.model_info())

    @bentoml.api(route="/predict_range")
    def predict_range(self, request: RangeRequest, /) -> RangeResponse:
        """One row per day from ``start`` to ``end`` (inclusive), for dashboards."""
        state = self._state(request.asset)
        with caller_errors():
            rows = state.range(request.start, request.end)
        return RangeResponse(asset=state.settings.asset, start=request.start, end=request.end, horizon_days=state.settings.labels.horizon_days,
                             model=state.model_info(), rows=rows)
