"""The served OpenAPI document, completed: every route declares every status it can answer, in one error shape.

BentoML documents 400/404/500 with schemas that do not match what it sends (``detail`` a string, a list on
the wire) and knows nothing of the guard's 413/415 or the handlers' 404/422/503. It also labels the
document OpenAPI 3.0.2 while embedding JSON Schema 2020-12 (``anyOf`` with ``null``, numeric
``exclusiveMinimum``), which is OpenAPI 3.1: the document says 3.1.0, so clients and fuzzers read
``"day": null`` as allowed and ``price_usd > 0`` as written.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cascade_radar.config import Settings, settings_or_exit
from cascade_radar.rules import BASES
from serving.backtest import LEVERAGE_PATTERN, WHAT
from serving.guard import REASONS, ErrorBody
from serving.package import served_assets
from serving.schemas import BacktestAnswer, PingRequest, PredictRequest, RangeRequest, SignalsRequest
from serving.tables import FORMATS, SIGNALS_FORMATS
from training.backtest import BOOKS, POOLED

# the request model of each POST route, as the guard validates it (BentoML's inline copy drops the nulls)
REQUEST_MODELS: dict[str, type[BaseModel]] = {"/ping": PingRequest, "/predict": PredictRequest, "/explain": PredictRequest,
                                              "/predict_range": RangeRequest, "/predict_signals": SignalsRequest}

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
BODY_REQUIRED = ("/predict_range", "/predict_signals")  # routes with required fields (the others default every field)
# what each POST route can answer besides 200
ROUTE_STATUSES = {
    "/predict": (400, 401, 404, 408, 413, 415, 500, 503),
    "/explain": (400, 401, 404, 408, 413, 415, 500, 503),
    "/predict_range": (400, 401, 404, 408, 413, 415, 422, 500, 503),
    "/predict_signals": (400, 401, 404, 408, 413, 415, 422, 500, 503),
    "/ping": (400, 401, 408, 413, 415, 500),
}
# /v1/forecasts' page sizes, as configured by default (one home: the Settings fields)
PAGE_ROWS = Settings.model_fields["serving_forecasts_page_rows"].default
PAGE_MAX = Settings.model_fields["serving_forecasts_page_max"].default
# what each GET route of /v1 can answer besides 200
GET_STATUSES = {"/v1/signals": (400, 401, 404, 422, 503), "/v1/timeline": (400, 401, 404, 422, 503), "/v1/reconstruction": (400, 401, 404, 503),
                 "/v1/forecasts": (400, 401, 404, 503), "/v1/events": (400, 401, 404, 503), "/v1/episodes": (400, 401, 404, 503),
                 "/v1/calibration": (400, 401, 404, 503), "/v1/backtest": (400, 401, 404)}
CSV_ROUTES = {"/v1/signals": "the signals per day: panes (title, the unit and scale they draw in, series with their own units) and rows "
                             "(each column in its own unit); with format=signals a POST /predict_signals body",
              "/v1/timeline": "every answerable day's forecast with each family's push, and the refused runs",
              "/v1/events": "the labelled cascade events", "/v1/episodes": "the alert episodes, judged",
              "/v1/backtest": "what acting on the forecast was worth: every (book, leverage, rule)'s figures and the equity curves of "
                              "one book and leverage (BacktestAnswer); with format=csv the table, or with what=curves the curves"}
BODY_RULE = ("UTF-8 JSON (RFC 8259), at most 16 levels of arrays and objects deep (400 otherwise); an empty or whitespace-only body "
             "is the same request as {} — every field at its default — whatever its content type; a body must arrive within the "
             "read timeout (408)")
# the API's version: 2 since the one answer schema (`day`, `p_cascade`, `side`, ... in every answer, row and payload)
API_VERSION = "2.0.0"  # also the package's version (pyproject.toml; a test holds them equal)
DESCRIPTION = ("Early warning for crypto liquidation cascades: P(a cascade within H days), its side, and why.\n\n"
               "**[Open the risk dashboard → /dashboard](/dashboard)** — every coin today, and per coin the probability "
               "timeline with events, alert episodes, explanations and replays, drawn from the routes below.")
TAGS = {"forecast": "a coin's answer for a day or a range: P(cascade), side, drivers, age",
        "history": "what happened and what was said: signals, events, alert episodes, the forecast ledger",
        "health": "readiness of every coin, liveness, metrics"}


def tag_of(path: str) -> str:
    if path in ("/predict", "/explain", "/predict_range", "/predict_signals", "/v1/timeline"):
        return "forecast"
    if path in ("/v1/signals", "/v1/reconstruction", "/v1/events", "/v1/episodes", "/v1/forecasts", "/v1/calibration", "/v1/backtest"):
        return "history"
    return "health"


READINESS = {"type": "object", "properties": {"ready": {"type": "boolean"}, "asset": {"type": "string"},
                                              "reason": {"anyOf": [{"type": "string"}, {"type": "null"}]}, "assets": {"type": "object"}},
             "required": ["ready", "assets"]}


def whole_numbers_up_to(most: int) -> str:
    """The pattern of the whole numbers 1..``most`` written plainly (no sign, no leading zero, no space), as the route
    reads a limit. A query parameter travels as text: declared ``integer``, its bounds are not checked on the text the
    server receives, and fuzzers judge ``limit=100`` against them as a schema violation."""
    digits = str(most)
    options = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []  # fewer digits than ``most``
    for i, digit in enumerate(digits):  # as many: equal up to position i, smaller there, anything after
        low = 1 if i == 0 else 0
        if int(digit) > low:
            options.append(f"{digits[:i]}[{low}-{int(digit) - 1}][0-9]{{{len(digits) - i - 1}}}")
    return "^(?:" + "|".join([*options, digits]) + ")$"


def null_as_type(schema: Any) -> Any:
    """``anyOf: [{type: T, ...}, {type: null}]`` as ``{type: [T, null], ...}`` (recursively): the same JSON Schema, in the
    form generators read without misjudging ``null`` as a wrong type."""
    if isinstance(schema, list):
        return [null_as_type(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: null_as_type(v) for k, v in schema.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and len(options) == 2 and {"type": "null"} in options:
        (other,) = [o for o in options if o != {"type": "null"}]
        if isinstance(other.get("type"), str):
            out.pop("anyOf")
            out.update({**other, "type": [other["type"], "null"]})
    return out


def complete_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error.pop("$defs", {}).items():
        schemas[name] = definition
    schemas["ErrorBody"] = error
    for legacy in ("InvalidArgument", "NotFound", "InternalServerError"):  # BentoML's own, kept for any reference to them
        schemas[legacy] = dict(ERROR_REF)
    served = served_assets(settings_or_exit())  # the coins this service answers for (the settings' list, any tickers)
    for path, statuses in ROUTE_STATUSES.items():
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        responses = {"200": operation["responses"]["200"]}
        for status in statuses:
            responses[str(status)] = {"description": REASONS[status], "content": {"application/json": {"schema": ERROR_REF}}}
        operation["responses"] = responses
        request = REQUEST_MODELS[path].model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in request.pop("$defs", {}).items():
            schemas[name] = definition
        if "asset" in request.get("properties", {}):  # one of the served coins (any other: 404), as the query parameters say
            request["properties"]["asset"] = {**request["properties"]["asset"], "type": "string", "enum": served}
            request["properties"]["asset"].pop("pattern", None)
        operation["requestBody"] = {"description": BODY_RULE, "content": {"application/json": {"schema": request}}, "required": path in BODY_REQUIRED}
    ready = spec.get("paths", {}).get("/v1/ready", {}).get("get")
    if ready is not None:
        ready["responses"] = {str(s): {"description": "every coin's readiness" + (" (no coin ready)" if s == 503 else ""),
                                       "content": {"application/json": {"schema": READINESS}}} for s in (200, 503)}
    for path, statuses in GET_STATUSES.items():
        operation = spec.get("paths", {}).get(path, {}).get("get")
        if operation is None:
            continue
        ok = operation["responses"].get("200", {"description": "OK"})
        operation["responses"] = {"200": ok, **{str(s): {"description": REASONS[s], "content": {"application/json": {"schema": ERROR_REF}}}
                                                for s in statuses}}
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "event":
                parameter["description"] = "the event's first day, YYYY-MM-DD (matched to a labelled event within a day)"
                parameter["schema"] = {"type": "string", "format": "date", "default": "2025-10-10"}
            if parameter.get("name") in ("start", "end"):
                parameter["description"] = "first / last day, YYYY-MM-DD (inclusive)"
                parameter["schema"] = {"type": "string", "format": "date"}
            if parameter.get("name") == "asset":
                parameter["schema"] = {"type": "string", "enum": served + ([POOLED] if path == "/v1/backtest" else [])}
            if parameter.get("name") == "book":
                parameter["description"] = "the position of the curves: long, short, or side (the side the forecast names each day)"
                parameter["schema"] = {"type": "string", "enum": list(BOOKS), "default": "long"}
            if parameter.get("name") == "leverage":
                parameter["description"] = ("the leverage of the curves, times equity: one the backtest held (e.g. 3); default: the first "
                                            "of `backtest.leverages`")
                parameter["schema"] = {"type": "string", "pattern": f"^{LEVERAGE_PATTERN}$"}
            if parameter.get("name") == "what":
                parameter["description"] = "with format=csv: the table (every book, leverage and rule) or the curves of book and leverage"
                parameter["schema"] = {"type": "string", "enum": list(WHAT), "default": WHAT[0]}
            if parameter.get("name") == "basis":
                parameter["schema"] = {"type": "string", "enum": list(BASES), "default": BASES[0]}
            if parameter.get("name") == "limit":  # read as text by the route, so a bad one is a 400 naming it
                parameter["description"] = f"rows per page, a whole number from 1 to {PAGE_MAX} (serving_forecasts_page_max); default {PAGE_ROWS}"
                parameter["schema"] = {"type": "string", "pattern": whole_numbers_up_to(PAGE_MAX), "default": str(PAGE_ROWS)}
            if parameter.get("name") == "cursor":
                from operations.ledger import CURSOR_PATTERN

                parameter["description"] = ("the previous page's next_cursor, as given (none: the first page); pages run newest day "
                                            "first, then coin, then the order written")
                parameter["schema"] = {"type": "string", "pattern": f"^{CURSOR_PATTERN}$"}
    for path, what in CSV_ROUTES.items():  # JSON by default, CSV with format=csv
        operation = spec.get("paths", {}).get(path, {}).get("get")
        if operation is None:
            continue
        operation["responses"]["200"] = {"description": what, "content": {"application/json": {"schema": {"type": "object"}},
                                                                         "text/csv": {"schema": {"type": "string"}}}}
        for parameter in operation.get("parameters", []):
            if parameter.get("name") == "format" and path == "/v1/signals":
                parameter["description"] = ("json, csv for a spreadsheet (a file download), or signals: the days as a POST "
                                            "/predict_signals body (every family input, in the store's units)")
                parameter["schema"] = {"type": "string", "enum": list(SIGNALS_FORMATS), "default": "json"}
            elif parameter.get("name") == "format":
                parameter["description"] = "json, or csv for a spreadsheet (a file download)"
                parameter["schema"] = {"type": "string", "enum": list(FORMATS), "default": "json"}
    backtest = spec.get("paths", {}).get("/v1/backtest", {}).get("get")
    if backtest is not None:  # its JSON has a schema of its own
        answer = BacktestAnswer.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in answer.pop("$defs", {}).items():
            schemas[name] = definition
        schemas["BacktestAnswer"] = answer
        backtest["responses"]["200"]["content"]["application/json"]["schema"] = {"$ref": "#/components/schemas/BacktestAnswer"}
    spec.get("paths", {}).pop("/ping", None)  # the latency benchmark's floor, not part of the API
    for path, item in spec.get("paths", {}).items():
        for operation in item.values():
            if isinstance(operation, dict):
                operation["tags"] = [tag_of(path)]
    spec["tags"] = [{"name": name, "description": text} for name, text in TAGS.items()]
    spec.setdefault("info", {}).update(title="cascade-radar", description=DESCRIPTION, version=API_VERSION,
                                       contact={"name": "cascade-radar — open-source early warning for crypto liquidation cascades"})
    readyz = spec.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz.setdefault("responses", {})["503"] = {"description": "no coin ready (GET /v1/ready says why)"}
    # the document embeds pydantic's JSON Schema 2020-12 (anyOf-null, numeric exclusiveMinimum): that is OpenAPI 3.1
    spec["openapi"] = "3.1.0"
    return null_as_type(spec)
