"""The served OpenAPI document, completed: every route declares every status it can answer, in one error shape.

BentoML documents 400/404/500 with schemas that do not match what it sends (``detail`` a string, a list on
the wire) and knows nothing of the guard's 413/415 or the handlers' 404/422/503. OpenAPI 3.0 has no
``null`` type, so optional fields become ``nullable`` (a fuzzer then knows ``"as_of": null`` is allowed).
"""

from __future__ import annotations

from typing import Any

from serving.guard import REASONS, ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
# what each POST route can answer besides 200
ROUTE_STATUSES = {
    "/predict": (400, 404, 413, 415, 500, 503),
    "/explain": (400, 404, 413, 415, 500, 503),
    "/predict_range": (400, 404, 413, 415, 500, 503),
    "/predict_signals": (400, 404, 413, 415, 422, 500, 503),
    "/ping": (500,),
}
READINESS = {"type": "object", "properties": {"ready": {"type": "boolean"}, "asset": {"type": "string"},
                                              "reason": {"type": "string", "nullable": True}, "assets": {"type": "object"}},
             "required": ["ready", "assets"]}


def nullable(schema: Any) -> Any:
    """OpenAPI 3.0 spelling of pydantic's ``anyOf: [X, {type: null}]`` (recursively)."""
    if isinstance(schema, list):
        return [nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: nullable(v) for k, v in schema.items()}
    options = out.get("anyOf")
    if isinstance(options, list) and any(o == {"type": "null"} for o in options):
        rest = [o for o in options if o != {"type": "null"}]
        out.pop("anyOf")
        if len(rest) == 1 and "$ref" not in rest[0]:
            out.update(rest[0])
        else:
            out["anyOf" if len(rest) > 1 else "allOf"] = rest
        out["nullable"] = True
    return out


def complete_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in error.pop("$defs", {}).items():
        schemas[name] = definition
    schemas["ErrorBody"] = error
    for legacy in ("InvalidArgument", "NotFound", "InternalServerError"):  # BentoML's own, kept for any reference to them
        schemas[legacy] = dict(ERROR_REF)
    for path, statuses in ROUTE_STATUSES.items():
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if operation is None:
            continue
        responses = {"200": operation["responses"]["200"]}
        for status in statuses:
            responses[str(status)] = {"description": REASONS[status], "content": {"application/json": {"schema": ERROR_REF}}}
        operation["responses"] = responses
    ready = spec.get("paths", {}).get("/v1/ready", {}).get("get")
    if ready is not None:
        ready["responses"] = {str(s): {"description": "every coin's readiness" + (" (no coin ready)" if s == 503 else ""),
                                       "content": {"application/json": {"schema": READINESS}}} for s in (200, 503)}
    readyz = spec.get("paths", {}).get("/readyz", {}).get("get")
    if readyz is not None:
        readyz.setdefault("responses", {})["503"] = {"description": "no coin ready (GET /v1/ready says why)"}
    return nullable(spec)
