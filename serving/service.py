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
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cascade_radar.config import Settings, project_relative, settings_or_exit
from cascade_radar.rules import BASES, age_days, coin_key, shown
from serving.backtest import NO_BACKTEST, WHAT, BacktestFiles, backtest_answer, backtest_csv, backtest_version, chosen_leverage
from serving.connections import limit_idle_connections
from serving.dashboard import dashboard
from serving.downloads import Downloads
from serving.guard import ApiGuard, error_response
from serving.metrics import RequestMetrics
from serving.openapi import GET_STATUSES, REQUEST_MODELS, complete_openapi
from serving.schemas import Explanation, Forecast, PredictRequest, RangeRequest, RangeResponse, SignalsRequest
from serving.state import CoinStates, RequestError, ServingState
from serving.tables import FORMATS, SIGNALS_FORMATS, csv_response, rows_csv
from training.backtest import BOOKS, POOLED

health = FastAPI(title="cascade-radar health", docs_url=None, redoc_url=None, openapi_url=None)
T = TypeVar("T")

# request model of every POST route: the guard validates bodies with them before BentoML sees one
ROUTES = REQUEST_MODELS
# the answers that can carry a coin's whole history: cached per data version, built and sent a few at a time
HEAVY_ROUTES = ("/v1/signals", "/v1/timeline", "/v1/events", "/v1/episodes", "/v1/backtest")  # (/v1/forecasts answers a page from an index)
# every route the service answers, as /metrics labels them (any other path is "other": the series stay bounded)
ROUTE_TEMPLATES = (*REQUEST_MODELS, *GET_STATUSES, "/v1/ready", "/", "/docs.json", "/schema.json", "/metrics", "/readyz", "/livez", "/healthz")


def query_dates(**values: str | None) -> dict[str, dt.date | None] | JSONResponse:
    """Query parameters as dates (None where absent), or the 400 naming the first that is not YYYY-MM-DD."""
    out: dict[str, dt.date | None] = {}
    for name, value in values.items():
        try:
            out[name] = dt.date.fromisoformat(value) if value is not None else None
        except ValueError:
            return error_response(400, f"{name} {shown(value)} is not a date YYYY-MM-DD", name)
    return out


def not_one_of(field: str, value: str, choices: tuple[str, ...]) -> JSONResponse | None:
    """The 400 naming ``field`` when ``value`` is not one of ``choices``, else None."""
    return None if value in choices else error_response(400, f"{field} {shown(value)} is not one of {', '.join(choices)}", field)


def answer(fn: Callable[[], T]) -> T | JSONResponse:
    """``fn()``, or the error answer of the RequestError it raised (status and field from the error)."""
    try:
        return fn()
    except RequestError as exc:
        return error_response(exc.status, exc.message, exc.field)


# BentoML's own metrics label requests by the raw path (unbounded series): the guard counts them by route instead
@bentoml.service(name="cascade_radar", traffic={"timeout": 60}, metrics={"enabled": False})
@bentoml.asgi_app(health, path="/v1")
@bentoml.asgi_app(dashboard, path="/dashboard")
class CascadeRadar:
    """Cascade risk, direction and its explanation, for any day of the history or posted signals."""

    def __init__(self) -> None:
        settings = Settings()
        limit_idle_connections(settings.serving_idle_timeout_seconds)  # before the first connection: uvicorn has no header timeout
        self.downloads = Downloads(int(settings.serving_download_cache_mb * 1e6), settings.serving_download_concurrency)
        self.coins = CoinStates.load(settings)
        self.backtests = BacktestFiles(settings)  # the files `make backtest` wrote, read on the first question

    def __is_ready__(self) -> bool:
        self.coins.refresh(force=False)  # a withdrawn champion is not ready within the check interval
        return self.coins.ready

    @health.get("/ready")
    def ready(self) -> JSONResponse:
        """Readiness of every coin with the reason when not ready (the built-in /readyz only says 503 when no coin is)."""
        self.coins.refresh(force=False)
        coins: dict[str, Any] = {}
        for asset, s in self.coins.states.items():
            body: dict[str, Any] = {"ready": s.ready, "reason": project_relative(s.reason) if s.reason else None,
                                    "degraded": project_relative(s.degraded) if s.degraded else None}  # served, registry unread
            if s.ready:
                f = s.forecaster
                last = f.data_through
                body.update(model=s.model_info(), history=f"{s.first_day.date()}..{s.last_day.date()}", answerable=f.answerable_span(),
                            first_answerable_day=str(f.answerable_days[0].date()) if last is not None else None,
                            data_through=str(last.date()) if last is not None else None,
                            age_days=age_days(last) if last is not None else None, max_age_days=s.settings.alerts.max_age_days,
                            reads=list(f.read_families), alert_threshold=f.alert_threshold, horizon_days=s.settings.labels.horizon_days)
            coins[asset] = body
        default = self.coins.settings.asset
        top = {"asset": default, **coins.get(default, {}), "ready": self.coins.ready, "assets": coins}
        return JSONResponse(top, status_code=200 if self.coins.ready else 503)

    @health.get("/forecasts")
    def forecasts(self, asset: str | None = None, start: str | None = None, end: str | None = None, limit: str | None = None,
                  cursor: str | None = None) -> JSONResponse:
        """The forecast ledger's rows (what the model said each day, as it said it), filtered by coin and day range, a page
        at a time: newest day first, then coin, then the order written. ``limit`` rows per page (default and most:
        ``serving_forecasts_page_rows`` / ``_page_max``); ``next_cursor`` (null on the last page) asks for the next one.
        The ledger's index finds the page, so its cost does not grow with the ledger."""

        from operations.ledger import Ledger, LedgerError, PageError, page_limit

        dates = query_dates(start=start, end=end)
        if isinstance(dates, JSONResponse):
            return dates
        bounds = {name: day.isoformat() if day else None for name, day in dates.items()}
        coin = coin_key(asset) if asset is not None else None
        if coin is not None and coin not in self.coins.states:
            return error_response(404, f"{shown(asset)} is not served (served: {', '.join(self.coins.states)})", "asset")
        settings = self.coins.settings
        try:  # a corrupt line is left out (and counted), never the whole ledger: `cascade-radar ledger --check` names it
            size = page_limit(limit, settings.serving_forecasts_page_rows, settings.serving_forecasts_page_max)
            page = Ledger(settings.ledger_path).page(coin, bounds["start"], bounds["end"], size, cursor)
        except PageError as exc:
            return error_response(400, str(exc), exc.field)
        except (LedgerError, OSError) as exc:
            return error_response(503, str(exc), None)
        return JSONResponse({"rows": [{k: v for k, v in r.items() if k != "checksum"} for r in page.rows], "count": len(page.rows),
                             "next_cursor": page.next_cursor, "bad_lines": page.bad_lines})

    @health.get("/signals")
    def signals(self, request: Request, asset: str | None = None, start: str | None = None, end: str | None = None,
                format: str = "json") -> Response:  # noqa: A002
        """The signals behind the forecasts, per day, each column in the unit its name and the store declare: price,
        liquidations (USD), open interest (USD), funding (a fraction per 8 h; its pane is drawn in % per 8 h), positioning,
        and for BTC exchange flows, SOPR and STH-NUPL — the numbers the features are built from. ``format=csv`` for a
        spreadsheet; ``format=signals`` for the days as a POST /predict_signals body (every family input; default start:
        as many days before ``end`` as one body may hold)."""

        refused = not_one_of("format", format, SIGNALS_FORMATS)
        if refused:
            return refused
        bounds = query_dates(start=start, end=end)
        if isinstance(bounds, JSONResponse):
            return bounds

        def make(state: ServingState) -> Response:
            got = state.signals(bounds["start"], bounds["end"], form=format)
            return csv_response(got, f"cascade-radar-signals-{state.settings.asset}.csv") if format == "csv" else JSONResponse(got)

        return self._download(request, asset, ("signals", start, end, format), make)

    @health.get("/timeline")
    def timeline(self, request: Request, asset: str | None = None, start: str | None = None, end: str | None = None, basis: str = "auto",
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

        def make(state: ServingState) -> Response:
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

        return self._download(request, asset, ("timeline", start, end, basis, format), make)

    @health.get("/reconstruction")
    def reconstruction(self, asset: str | None = None, event: str = "2025-10-10") -> JSONResponse:
        """The build-up before a cascade in a desk analyst's words: over the 30 days before ``event``, each family's move (start,
        low, high, end, in its units), when its warning switched on, the sequence, funding's sign, the RSI divergence, a
        short text, and the model's first alert, lead and side."""

        dates = query_dates(event=event)
        if isinstance(dates, JSONResponse):
            return dates
        return self._past(asset, lambda state: state.reconstruction(dates["event"]))

    @health.get("/calibration")
    def calibration(self, asset: str | None = None) -> JSONResponse:
        """The coin's calibration out of fold, drawn as the coin page's reliability diagram: the champion's walk-forward
        answers for ``asset`` on days its fold models never saw, in ~10 equal-count bins — each bin's mean predicted
        P(cascade) beside the share of its days a cascade followed within the horizon — with the base rate those days give
        every answer (``base_rate``). The numbers are saved with the champion."""
        return self._past(asset, lambda state: state.forecaster.calibration())

    @health.get("/events")
    def events(self, request: Request, asset: str | None = None, format: str = "json") -> Response:  # noqa: A002
        """The labelled cascade events of ``asset`` (side — long, short or two-sided — and what decided it: side_basis,
        long_share, price_move, move_sigmas; dollars, size against the trailing median, notable ones).
        ``format=csv`` for a spreadsheet."""
        refused = not_one_of("format", format, FORMATS)
        if refused:
            return refused
        return self._download(request, asset, ("events", format), lambda state: self._as(state.events_answer(), "events", format))

    @health.get("/episodes")
    def episodes(self, request: Request, asset: str | None = None, basis: str = "auto", format: str = "json") -> Response:  # noqa: A002
        """Every alert episode of ``asset`` under ``basis`` (see /predict), judged against the events: hit, false alarm,
        pending, unjudged. ``format=csv`` for a spreadsheet."""
        refused = not_one_of("format", format, FORMATS) or not_one_of("basis", basis, BASES)
        if refused:
            return refused
        return self._download(request, asset, ("episodes", basis, format), lambda state: self._as(state.episodes_answer(basis), "episodes", format))

    @health.get("/backtest")
    def backtest(self, request: Request, asset: str | None = None, book: str = "long", leverage: str | None = None, format: str = "json",  # noqa: A002
                 what: str = "table") -> Response:
        """What acting on the forecast was worth, in money: the last `make backtest` of ``asset`` (a coin, or ``pooled``) —
        a position held at a leverage and cut the day after each alert, out of fold on daily bars, against always on, a
        volatility rule and chance. JSON: every (book, leverage, rule)'s figures, and every rule's daily equity curve for
        ``book`` (long, short, side: the side the forecast names) and ``leverage`` (default: the first configured); equity is
        a multiple of the starting equity. ``format=csv``: the table, or with ``what=curves`` the curves. 404 until `make
        backtest` has run."""
        refused = (not_one_of("format", format, FORMATS) or not_one_of("book", book, BOOKS) or not_one_of("what", what, WHAT))
        if refused:
            return refused
        asset = self.coins.settings.asset if asset is None else asset
        name = POOLED if asset.lower() == POOLED else coin_key(asset)
        if name != POOLED and name not in self.coins.states:
            return error_response(404, f"{shown(asset)} is not served (served: {', '.join(self.coins.states)}, and {POOLED})", "asset")
        version = backtest_version(self.coins.settings)
        if version is None:
            return error_response(404, NO_BACKTEST, None)

        def run() -> Response:
            table, curves = self.backtests.frames(name, version)
            lev = chosen_leverage(leverage, table, self.coins.settings.backtest.leverages)

            def make() -> Response:
                if format == "csv":
                    suffix = "" if what == "table" else f"-curves-{book}-{lev:g}x"
                    return csv_response(backtest_csv(name, table, curves, what, book, lev), f"cascade-radar-backtest-{name}{suffix}.csv")
                return JSONResponse(backtest_answer(self.coins.settings, name, version, table, curves, book, lev))

            key = ("backtest", name, book, lev, format, what if format == "csv" else None, version)
            return self.downloads.answer(key, make, request.headers.get("if-none-match"))

        return answer(run)  # type: ignore[return-value]

    def _past(self, asset: str | None, fn: Callable[[ServingState], dict[str, Any]]) -> Response:
        """``fn``'s answer as JSON, or the error answer naming the field."""
        return answer(lambda: JSONResponse(fn(self._state(asset))))  # type: ignore[return-value]

    @staticmethod
    def _as(body: dict[str, Any], rows: str, format: str) -> Response:  # noqa: A002
        """``body`` as JSON, or with ``format=csv`` its list under ``rows`` as CSV."""
        if format != "csv":
            return JSONResponse(body)
        title = f"cascade-radar {rows} of {body['asset']}"
        return csv_response(rows_csv(title, body[rows]), f"cascade-radar-{rows}-{body['asset']}.csv")

    def _download(self, request: Request, asset: str | None, what: tuple[object, ...], make: Callable[[ServingState], Response]) -> Response:
        """A history answer through the download cache (``serving.downloads``): built at most a few at a time, kept per
        coin, data version (the champion and the last day: what a reload changes) and query, sent with an ETag."""

        def run() -> Response:
            state = self._state(asset)
            key = (state.settings.asset, state.identity.get("version"), str(state.last_day.date()), *what)
            return self.downloads.answer(key, lambda: make(state), request.headers.get("if-none-match"))

        return answer(run)  # type: ignore[return-value]

    def _state(self, asset: str | None) -> ServingState:
        """The state of ``asset``; not given: the default coin (``settings.asset``: BTC, or the first served coin)."""
        return self.coins.get(self.coins.settings.asset if asset is None else asset)

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


_limits = settings_or_exit()  # a setting the service cannot use ends `make serve` with one line, not a traceback
CascadeRadar.add_asgi_middleware(ApiGuard, routes=ROUTES, max_body_bytes=_limits.serving_max_body_bytes,
                                 max_rows=_limits.serving_max_signal_rows, docs_patch=complete_openapi,
                                 read_timeout=_limits.serving_read_timeout_seconds, token=_limits.serving_api_token,
                                 metrics=RequestMetrics(ROUTE_TEMPLATES), secure_cookie=_limits.serving_cookie_secure,
                                 heavy_paths=HEAVY_ROUTES, heavy_slots=_limits.serving_download_concurrency,
                                 heavy_share=_limits.serving_download_share)
