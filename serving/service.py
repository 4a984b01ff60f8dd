"""The BentoML prediction service (class API, BentoML >= 1.2).

Start it with `make serve` (``bentoml serve serving.service:CascadeRadar``). Nothing happens at
import: the champions and the history are loaded in ``__init__``; a coin whose champion or history is
missing is *not ready* with the reason (GET /v1/ready), the others answer. ``serving.guard.ApiGuard``
stands in front: limits, validation and one error shape for every 4xx/5xx. The risk dashboard
(``serving.dashboard``) is mounted at /dashboard and reads the routes below like any client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import bentoml
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response

from cascade_radar.config import Settings, project_relative
from cascade_radar.rules import BASES, age_days
from serving.dashboard import dashboard
from serving.guard import ApiGuard, error_response
from serving.openapi import REQUEST_MODELS, complete_openapi
from serving.schemas import Explanation, Forecast, PredictRequest, RangeRequest, RangeResponse, SignalsRequest
from serving.state import CoinStates, RequestError, ServingState
from serving.tables import FORMATS, csv_response, rows_csv

health = FastAPI(title="cascade-radar health", docs_url=None, redoc_url=None, openapi_url=None)
T = TypeVar("T")

# request model of every POST route: the guard validates bodies with them before BentoML sees one
ROUTES = REQUEST_MODELS


def query_dates(**values: str | None) -> dict[str, dt.date | None] | JSONResponse:
    """Query parameters as dates (None where absent), or the 400 naming the first that is not YYYY-MM-DD."""
    out: dict[str, dt.date | None] = {}
    for name, value in values.items():
        try:
            out[name] = dt.date.fromisoformat(value) if value is not None else None
        except ValueError:
            return error_response(400, f"{name} {value!r} is not a date YYYY-MM-DD", name)
    return out


def not_one_of(field: str, value: str, choices: tuple[str, ...]) -> JSONResponse | None:
    """The 400 naming ``field`` when ``value`` is not one of ``choices``, else None."""
    return None if value in choices else error_response(400, f"{field} {value!r} is not one of {', '.join(choices)}", field)


def answer(fn: Callable[[], T]) -> T | JSONResponse:
    """``fn()``, or the error answer of the RequestError it raised (status and field from the error)."""
    try:
        return fn()
    except RequestError as exc:
        return error_response(exc.status, exc.message, exc.field)


@bentoml.service(name="cascade_radar", traffic={"timeout": 60})
@bentoml.asgi_app(health, path="/v1")
@bentoml.asgi_app(dashboard, path="/dashboard")
class CascadeRadar:
    """Cascade risk, direction and its explanation, for any day of the history or posted signals."""

    def __init__(self) -> None:
        self.coins = CoinStates.load(Settings())

    def __is_ready__(self) -> bool:
        self.coins.refresh(force=False)  # a withdrawn champion is not ready within the check interval
        return self.coins.ready

    @health.get("/ready")
    def ready(self) -> JSONResponse:
        """Readiness of every coin with the reason when not ready (the built-in /readyz only says 503 when no coin is)."""
        self.coins.refresh(force=False)
        coins: dict[str, Any] = {}
        for asset, s in self.coins.states.items():
            body: dict[str, Any] = {"ready": s.ready, "reason": project_relative(s.reason) if s.reason else None}
            if s.ready:
                f = s.forecaster
                last = f.data_through
                body.update(model=s.model_info(), history=f"{s.first_day.date()}..{s.last_day.date()}", answerable=f.answerable_span(),
                            first_answerable_day=str(f.answerable_days[0].date()) if last is not None else None,
                            data_through=str(last.date()) if last is not None else None,
                            age_days=age_days(last) if last is not None else None, max_age_days=s.settings.alerts.max_age_days,
                            reads=list(f.read_families), alert_threshold=s.settings.alert_threshold, horizon_days=s.settings.labels.horizon_days)
            coins[asset] = body
        default = self.coins.settings.asset
        top = {"asset": default, **coins.get(default, {}), "ready": self.coins.ready, "assets": coins}
        return JSONResponse(top, status_code=200 if self.coins.ready else 503)

    @health.get("/forecasts")
    def forecasts(self, asset: str | None = None, start: str | None = None, end: str | None = None) -> JSONResponse:
        """The forecast ledger's rows (what the model said each day, as it said it), filtered by coin and day range."""

        from operations.ledger import Ledger, LedgerError

        dates = query_dates(start=start, end=end)
        if isinstance(dates, JSONResponse):
            return dates
        bounds = {name: day.isoformat() if day else None for name, day in dates.items()}
        if asset is not None and asset.upper() not in self.coins.states:
            return error_response(404, f"{asset} is not served (served: {', '.join(self.coins.states)})", "asset")
        try:  # a corrupt line is left out (and counted), never the whole ledger: `cascade-radar ledger --check` names it
            rows, bad = Ledger(self.coins.settings.ledger_path).scan()
        except (LedgerError, OSError) as exc:
            return error_response(503, str(exc), None)
        rows = [r for r in rows if (asset is None or r["asset"] == asset.upper()) and (bounds["start"] is None or r["day"] >= bounds["start"])
                and (bounds["end"] is None or r["day"] <= bounds["end"])]
        return JSONResponse({"rows": [{k: v for k, v in r.items() if k != "checksum"} for r in rows], "count": len(rows), "bad_lines": len(bad)})

    @health.get("/signals")
    def signals(self, asset: str = "BTC", start: str | None = None, end: str | None = None, format: str = "json") -> Response:  # noqa: A002
        """The signals behind the forecasts, per day and in their units: price, liquidations (USD), open interest (USD),
        funding (% per 8 h), positioning, and for BTC exchange flows, SOPR and STH-NUPL — the numbers the features are
        built from. ``format=csv`` for a spreadsheet."""

        refused = not_one_of("format", format, FORMATS)
        if refused:
            return refused
        bounds = query_dates(start=start, end=end)
        if isinstance(bounds, JSONResponse):
            return bounds

        def run() -> Response:
            got = self._state(asset).signals(bounds["start"], bounds["end"], csv=format == "csv")
            return csv_response(got, f"cascade-radar-signals-{asset.upper()}.csv") if format == "csv" else JSONResponse(got)

        return answer(run)  # type: ignore[return-value]

    @health.get("/timeline")
    def timeline(self, asset: str = "BTC", start: str | None = None, end: str | None = None, basis: str = "auto",
                 format: str = "json") -> Response:  # noqa: A002
        """The probability timeline: /predict_range's row of every answerable day of [start, end] (default: every
        answerable day) with each family's push on the cascade log-odds (``shap_by_family``, as /explain says it), and the
        refused runs — the numbers of the dashboard's timeline and replays. ``format=csv`` for a spreadsheet."""
        refused = not_one_of("format", format, FORMATS) or not_one_of("basis", basis, BASES)
        if refused:
            return refused
        dates = query_dates(start=start, end=end)
        if isinstance(dates, JSONResponse):
            return dates

        def run() -> Response:
            state = self._state(asset)
            days = state.forecaster.answerable_days
            first = dates["start"] or (days[0].date() if len(days) else state.first_day.date())
            last = dates["end"] or (days[-1].date() if len(days) else state.last_day.date())
            got = state.range(first, last, basis=basis, families=True)
            body = {"asset": state.settings.asset, "start": str(first), "end": str(last), "basis": basis,
                    "horizon_days": state.settings.labels.horizon_days, "model": state.model_info(), **got}
            if format == "csv":
                title = f"cascade-radar timeline of {body['asset']}, {first}..{last}, basis {basis}, model {body['model']['name']} v{body['model']['version']}"
                return csv_response(rows_csv(title, got["rows"], ["day", "p_cascade"]), f"cascade-radar-timeline-{body['asset']}.csv")
            return JSONResponse(body)

        return answer(run)  # type: ignore[return-value]

    @health.get("/reconstruction")
    def reconstruction(self, asset: str = "BTC", event: str = "2025-10-10") -> JSONResponse:
        """The build-up before a cascade in the seed's words: over the 30 days before ``event``, each family's move (start,
        low, high, end, in its units), when its warning switched on, the sequence, funding's sign, the RSI divergence, a
        short text, and the model's first alert, lead and side."""

        dates = query_dates(event=event)
        if isinstance(dates, JSONResponse):
            return dates
        return self._past(asset, lambda state: state.reconstruction(dates["event"]))

    @health.get("/events")
    def events(self, asset: str = "BTC", format: str = "json") -> Response:  # noqa: A002
        """The labelled cascade events of ``asset`` (side, dollars, size against the trailing median, notable ones).
        ``format=csv`` for a spreadsheet."""
        refused = not_one_of("format", format, FORMATS)
        if refused:
            return refused
        return self._past(asset, lambda state: state.events_answer(), "events" if format == "csv" else None)

    @health.get("/episodes")
    def episodes(self, asset: str = "BTC", basis: str = "auto", format: str = "json") -> Response:  # noqa: A002
        """Every alert episode of ``asset`` under ``basis`` (see /predict), judged against the events: hit, false alarm,
        pending, unjudged. ``format=csv`` for a spreadsheet."""
        refused = not_one_of("format", format, FORMATS) or not_one_of("basis", basis, BASES)
        if refused:
            return refused
        return self._past(asset, lambda state: state.episodes_answer(basis), "episodes" if format == "csv" else None)

    def _past(self, asset: str, fn: Callable[[ServingState], dict[str, Any]], csv_rows: str | None = None) -> Response:
        """``fn``'s answer as JSON, or with ``csv_rows`` the answer's list under that key as CSV."""

        def run() -> Response:
            body = fn(self._state(asset))
            if csv_rows is None:
                return JSONResponse(body)
            title = f"cascade-radar {csv_rows} of {body['asset']}"
            return csv_response(rows_csv(title, body[csv_rows]), f"cascade-radar-{csv_rows}-{body['asset']}.csv")

        return answer(run)  # type: ignore[return-value]

    def _state(self, asset: str) -> ServingState:
        return self.coins.get(asset)

    @bentoml.api(route="/ping")
    def ping(self) -> dict[str, bool]:
        """Trivial endpoint: the HTTP floor for latency benchmarks."""
        return {"pong": True}

    # Request models are positional-only parameters: the JSON body *is* the model (validated by the guard first).
    @bentoml.api(route="/predict")
    def predict(self, request: PredictRequest, /) -> Forecast:
        """The forecast of ``asset`` for ``day`` (default: its last answerable day): P(cascade), side, alert, basis, drivers, age."""
        return answer(lambda: Forecast(**self._state(request.asset).prediction(request.day, request.basis)))  # type: ignore[return-value]

    @bentoml.api(route="/predict_signals")
    def predict_signals(self, request: SignalsRequest, /) -> Forecast:
        """The same forecast for the last day of posted raw daily signals (same feature and forecast code as a stored day)."""
        return answer(lambda: Forecast(**self._state(request.asset).predict_signals(request.signals)))  # type: ignore[return-value]

    @bentoml.api(route="/explain")
    def explain(self, request: PredictRequest, /) -> Explanation:
        """The forecast with every SHAP value behind it: per feature, per family, both models, and a sentence."""
        return answer(lambda: Explanation(**self._state(request.asset).explanation(request.day, request.basis)))  # type: ignore[return-value]

    @bentoml.api(route="/predict_range")
    def predict_range(self, request: RangeRequest, /) -> RangeResponse:
        """One row per answerable day from ``start`` to ``end`` (inclusive), and the refused runs with why — for timelines."""

        def run() -> RangeResponse:
            state = self._state(request.asset)
            got = state.range(request.start, request.end, basis=request.basis)
            return RangeResponse(asset=state.settings.asset, start=request.start, end=request.end, horizon_days=state.settings.labels.horizon_days,
                                 model=state.model_info(), data_through=state.forecaster.data_through, **got)

        return answer(run)  # type: ignore[return-value]


_limits = Settings()
CascadeRadar.add_asgi_middleware(ApiGuard, routes=ROUTES, max_body_bytes=_limits.serving_max_body_bytes,
                                 max_rows=_limits.serving_max_signal_rows, docs_patch=complete_openapi,
                                 read_timeout=_limits.serving_read_timeout_seconds, token=_limits.serving_api_token)
