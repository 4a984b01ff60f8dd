"""The service's front door: an ASGI middleware that answers before BentoML parses anything.

* body size (413) and content type (415) are checked first, on the raw request;
* a posted body is parsed and validated here, with the route's own request model: a bad one is a 400
  carrying the first few errors, logged in one line (BentoML would return and log every one of possibly
  millions of errors, with a traceback each);
* every 4xx/5xx answer — ours, the handlers', BentoML's, Starlette's 404 and 405 — leaves in one shape, ``ErrorBody``
  (pages for people stay pages), with any echo of the input cut short;
* a key twice in a JSON object, or a query parameter twice, is refused naming it (no "last one wins");
* HEAD is answered on every GET route; every answer carries the security headers (CSP, nosniff, no framing);
* the API docs page at / is the project's own (BentoML's embeds Google Tag Manager) and /metrics is the project's own,
  labelled by route (``serving.metrics``);
* the OpenAPI document is completed on the way out: every route declares every status it can return.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

from pydantic import BaseModel, Field, ValidationError
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from cascade_radar.config import project_relative
from cascade_radar.rules import shown
from serving.metrics import CONTENT_TYPE, RequestMetrics

log = logging.getLogger("cascade_radar.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

REASONS = {400: "bad request", 401: "unauthorized", 404: "not found", 405: "method not allowed", 408: "request timeout", 413: "request too large", 415: "unsupported media type",
           422: "request cannot be answered", 500: "internal error", 503: "not ready"}


class FieldError(BaseModel):
    field: str = Field(description="where in the request: dotted path, list positions as numbers")
    message: str


class ErrorBody(BaseModel):
    """Every 4xx and 5xx answer of the service."""

    status: int = Field(description="the HTTP status, repeated")
    error: str = Field(description="what went wrong, in a few words")
    detail: str | None = Field(default=None, description="why, and what to do about it")
    field: str | None = Field(default=None, description="the request field at fault, if one is")
    errors: list[FieldError] = Field(default_factory=list, description="validation errors (the first few only)")


MAX_TEXT = 400  # characters of any text in an error body: no input comes back whole (a 60 kB `asset`)


def _cut(text: str | None) -> str | None:
    return text if text is None or len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def error_body(status: int, detail: str | None = None, field: str | None = None, errors: list[dict[str, str]] | None = None,
               error: str | None = None) -> dict[str, Any]:
    detail = project_relative(detail) if detail else detail  # never an absolute path in an answer
    return ErrorBody(status=status, error=error or REASONS.get(status, "error"), detail=_cut(detail), field=_cut(field),
                     errors=[FieldError(field=_cut(e["field"]) or "", message=_cut(e["message"]) or "") for e in errors or []]).model_dump()


def error_response(status: int, detail: str | None = None, field: str | None = None, errors: list[dict[str, str]] | None = None) -> JSONResponse:
    """The one error answer: ``ErrorBody`` as JSON with ``status``."""
    return JSONResponse(error_body(status, detail, field, errors), status_code=status)


def field_errors(exc: ValidationError, limit: int) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False)[:limit]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        out.append({"field": where, "message": err["msg"]})
    return out


class PayloadTooLarge(Exception):
    pass


class Refused(ValueError):
    """A request refused while it is read: the field at fault and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


OPEN_PATHS = ("/readyz", "/livez")  # a load balancer's probes need no token
TOKEN_COOKIE = "cascade_radar_token"
MAX_DEPTH = 16  # the deepest request is 3 levels ({"signals": [{...}]}); far below the parser's recursion limit
MAX_DIGITS = 30  # the longest integer a request needs is far shorter (Python's own limit, 4,300 digits, answers in its words)
DOCS_PAGE = Path(__file__).parent / "dashboard" / "static" / "api-docs.html"
# Sent with every answer: scripts only from the service itself (no inline script, no eval, nothing third-party), nothing
# framed or framing it, no MIME sniffing. Plotly and Swagger UI style with inline style elements: style-src allows those.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                               "connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a key given twice (json.loads would keep the last one silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Refused(key, f"the key {shown(key)} appears twice in one JSON object; send each key once")
        out[key] = value
    return out


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:
        raise Refused("body", f"a number of {digits:,} digits; at most {MAX_DIGITS}")
    return int(text)


def parse_json(text: str) -> Any:
    """Decode a request body: duplicate keys and absurdly long integers refused (``Refused``), nesting checked by the caller."""
    return json.loads(text, object_pairs_hook=_unique_pairs, parse_int=_bounded_int)


def duplicate_parameter(query_string: bytes) -> str | None:
    """The first query parameter given more than once (``?asset=BTC&asset=ETH``), or None."""
    seen: set[str] = set()
    for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            return name
        seen.add(name)
    return None


def too_deep(data: Any, limit: int) -> bool:  # noqa: ANN401 - decoded JSON
    """Whether decoded JSON nests arrays and objects more than ``limit`` levels (iterative: no recursion of its own)."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))
    return False


class ApiGuard:
    """Limits, validation and the error shape in front of the BentoML app (see the module docstring)."""

    def __init__(self, app: App, routes: dict[str, type[BaseModel]], max_body_bytes: int, max_rows: int, max_errors: int = 5,
                 docs_patch: Callable[[dict[str, Any]], dict[str, Any]] | None = None, read_timeout: float = 10.0,
                 token: str | None = None, metrics: RequestMetrics | None = None, secure_cookie: bool = False,
                 heavy_paths: tuple[str, ...] = (), heavy_slots: int = 1, heavy_share: float = 1.0) -> None:
        self.app = app
        self.token = token or None
        self.read_timeout = read_timeout
        self.routes = routes
        self.max_body_bytes = max_body_bytes
        self.max_rows = max_rows
        self.max_errors = max_errors
        self.docs_patch = docs_patch
        self.metrics = metrics or RequestMetrics(routes)
        self.secure_cookie = secure_cookie
        self.heavy_paths = frozenset(heavy_paths)
        self.heavy_slots = heavy_slots
        self.heavy_share = heavy_share
        self._heavy: asyncio.Semaphore | None = None  # made in the server's event loop, on the first heavy request
        self._heavy_rests_until = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, started = self.metrics.started(scope["path"])
        status = [500]  # a request that ends without an answer (a disconnect, a crash) counts as a 500

        async def counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._answer(scope, receive, _with_security_headers(counted))
        finally:
            self.metrics.finished(route, scope["method"], status[0], started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        path, method = scope["path"], scope["method"]
        if self.token is not None and path not in OPEN_PATHS:
            granted = self._granted(scope)
            if granted is None:
                log.warning("refused %s %s: 401 no valid API token", method, shown(path))
                response = error_response(401, "this service needs its API token: send 'Authorization: Bearer <token>' "
                                               "(the dashboard: open /dashboard/?token=<token> once)", "authorization")
                response.headers["WWW-Authenticate"] = 'Bearer realm="cascade-radar"'
                await response(scope, receive, send)
                return
            if granted == "query":  # the dashboard opened with ?token=: a cookie carries it to the pages and the API calls
                secure = "; Secure" if self.secure_cookie or scope.get("scheme") == "https" else ""  # never sent back over plain HTTP
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict{secure}"
                send = _with_headers(send, [(b"set-cookie", cookie.encode())])
        if method == "HEAD":  # every GET route answers HEAD: the same status and headers, no body
            scope = {**scope, "method": "GET"}
            send = _without_body(send)
            method = "GET"
        twice = duplicate_parameter(scope.get("query_string", b""))
        if twice is not None:
            await error_response(400, f"the query parameter {shown(twice)} is given more than once; give it once", _cut(twice))(scope, receive, send)
            return
        own = self._own_page(path, method, scope)
        if own is not None:
            await own(scope, receive, send)
            return
        if path == "/docs.json" and self.docs_patch is not None:
            await self._patched_docs(scope, receive, send)
            return
        if method == "POST" and path in self.routes:
            answer = await self._admit(scope, receive, path)
            if isinstance(answer, JSONResponse):
                await answer(scope, receive, send)
                return
            receive = answer
        # /v1/ready answers 503 with its own body (each coin's reason): documented as such, not an error to reshape
        send = send if path == "/v1/ready" else _uniform_errors(send, path)
        if path not in self.heavy_paths:
            await self.app(scope, receive, send)
            return
        # whole-history answers, built *and sent*, a few at a time: the others wait their turn in the event loop (free),
        # so sixteen clients pulling years of rows cannot crowd /predict out of the interpreter
        if self._heavy is None:
            self._heavy = asyncio.Semaphore(self.heavy_slots)
        loop = asyncio.get_running_loop()
        async with self._heavy:
            rest = self._heavy_rests_until - loop.time()
            if rest > 0:  # the last heavy answer's rest: at most ``heavy_share`` of the time goes to them, queued or not
                await asyncio.sleep(rest)
            started = loop.time()
            try:
                await self.app(scope, receive, send)
            finally:
                took = loop.time() - started
                self._heavy_rests_until = loop.time() + took * (1 / self.heavy_share - 1)

    def _own_page(self, path: str, method: str, scope: Scope) -> Response | None:
        """The answers the front door gives itself: the API docs page, the metrics, the dashboard's bare address."""
        if path in ("/", "/metrics") and method != "GET":
            refused = error_response(405, f"{path} answers GET (and HEAD) only", "method")
            refused.headers["Allow"] = "GET, HEAD"  # RFC 9110: a 405 lists what the resource answers
            return refused
        if method != "GET":
            return None
        if path == "/":  # BentoML's Swagger page embeds Google Tag Manager: ours loads only the service's own files
            return HTMLResponse(DOCS_PAGE.read_text())
        if path == "/metrics":
            return Response(self.metrics.exposition(), media_type=CONTENT_TYPE)
        if path == "/dashboard":  # a relative redirect: the Host header a client sent never comes back in Location
            query = scope.get("query_string", b"").decode("latin-1")
            return RedirectResponse("/dashboard/" + (f"?{query}" if query else ""), status_code=307)
        return None

    def _granted(self, scope: Scope) -> str | None:
        """How the request shows the token ("header", "cookie", "query" on a dashboard page), or None."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        expected = self.token.encode()
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return "header"
        cookies = dict(part.strip().partition("=")[::2] for part in headers.get("cookie", "").split(";") if "=" in part)
        if hmac.compare_digest(cookies.get(TOKEN_COOKIE, "").encode(), expected):
            return "cookie"
        if scope["path"].startswith("/dashboard"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if hmac.compare_digest((query.get("token") or [""])[-1].encode(), expected):
                return "query"
        return None

    async def _admit(self, scope: Scope, receive: Receive, path: str) -> JSONResponse | Receive:
        """The request's body replayed for BentoML, or the answer that refuses it."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._refuse(path, 413, f"body of {int(declared):,} bytes; at most {self.max_body_bytes:,}", "body")
        try:
            body = await asyncio.wait_for(self._read(receive), timeout=self.read_timeout)
        except PayloadTooLarge:
            return self._refuse(path, 413, f"body over {self.max_body_bytes:,} bytes", "body")
        except TimeoutError:  # a client trickling its body holds a worker slot: cut it off
            return self._refuse(path, 408, f"the body did not arrive within {self.read_timeout:g} s", "body")
        # an empty or whitespace-only body is the same request: every field at its default, whatever the content type
        if body.strip(b" \t\r\n"):
            if media != "application/json":
                return self._refuse(path, 415, f"send the body as JSON with 'Content-Type: application/json' (got {media or 'none'!r})", "content-type")
            try:
                text = body.decode("utf-8")  # JSON on the wire is UTF-8 (RFC 8259 §8.1); json.loads would guess UTF-16/32 from bytes
            except UnicodeDecodeError as exc:
                return self._refuse(path, 400, f"body is not UTF-8 (byte {exc.start}: {exc.reason}); send JSON encoded as UTF-8", "body")
            try:
                data = parse_json(text)
            except Refused as exc:
                return self._refuse(path, 400, exc.message, exc.field)
            except RecursionError:
                return self._refuse(path, 400, f"body is nested too deeply; at most {MAX_DEPTH} levels of arrays and objects", "body")
            except ValueError as exc:
                return self._refuse(path, 400, f"body is not valid JSON ({exc})", "body")
            if too_deep(data, MAX_DEPTH):
                return self._refuse(path, 400, f"body is nested too deeply; at most {MAX_DEPTH} levels of arrays and objects", "body")
        else:
            data, body = {}, b"{}"
        rows = data.get("signals") if isinstance(data, dict) else None
        if isinstance(rows, list) and len(rows) > self.max_rows:  # before validation: never validate (or log) millions of rows
            return self._refuse(path, 400, f"{len(rows):,} signal rows; at most {self.max_rows:,} per request (the schema's maxItems)", "signals")
        try:
            self.routes[path].model_validate(data)
        except ValidationError as exc:
            errors = field_errors(exc, self.max_errors)
            more = exc.error_count() - len(errors)
            detail = f"{exc.error_count()} validation error(s)" + (f"; the first {len(errors)} are listed" if more > 0 else "")
            return self._refuse(path, 400, detail, errors[0]["field"] if errors else None, errors)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True  # an empty body reaches BentoML as {} (every field at its default), as JSON
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise PayloadTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    def _refuse(self, path: str, status: int, detail: str, field: str | None, errors: list[dict[str, str]] | None = None) -> JSONResponse:
        log.warning("refused POST %s: %s %s%s", path, status, _cut(detail), f" (field {_cut(field)})" if field else "")  # one line, no traceback
        return error_response(status, detail, field, errors)

    async def _patched_docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start.get("status") != 200:
            await send(start)
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return
        spec = self.docs_patch(json.loads(b"".join(chunks)))  # type: ignore[misc]
        await JSONResponse(spec)(scope, receive, send)


def _with_security_headers(send: Send) -> Send:
    """Add ``SECURITY_HEADERS`` to an answer that does not set them itself."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.encode() not in have]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _without_body(send: Send) -> Send:
    """An answer's status and headers (Content-Length of the GET answer included), its body left out: HEAD."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return wrapped


def _with_headers(send: Send, extra: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


def _uniform_errors(send: Send, path: str) -> Send:
    """Wrap ``send`` so that any 4xx/5xx answer not already an ``ErrorBody`` is rewritten into one."""
    state: dict[str, Any] = {"start": None, "chunks": []}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            media = dict(message.get("headers", [])).get(b"content-type", b"")
            if message["status"] < 400 or media.startswith(b"text/html"):  # a page for people (the dashboard's 404) stays a page
                await send(message)
                return
            state["start"] = message
            return
        if state["start"] is None:
            await send(message)
            return
        state["chunks"].append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = state["start"]["status"]
        raw = b"".join(state["chunks"])
        body = _as_error_body(status, raw, path)
        payload = json.dumps(body).encode()
        headers = [(k, v) for k, v in state["start"].get("headers", []) if k.lower() not in (b"content-length", b"content-type", b"content-encoding")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return wrapped


def _as_error_body(status: int, raw: bytes, path: str) -> dict[str, Any]:
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if isinstance(data, dict) and {"status", "error"} <= set(data) and "errors" in data:
        return data  # already ours
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # BentoML answers a 4xx BentoMLException as a one-element list
    errors: list[dict[str, str]] = []
    if isinstance(data, dict) and isinstance(data.get("detail"), list):  # FastAPI's validation errors (the /v1 routes)
        errors = [{"field": ".".join(str(p) for p in e.get("loc", [])[1:]) or "query", "message": str(e.get("msg", ""))}
                  for e in data["detail"][:5] if isinstance(e, dict)]
    message = (data.get("error") or data.get("detail")) if isinstance(data, dict) else raw.decode("utf-8", "replace") if raw else None
    if status == 404 and (not isinstance(data, dict) or message == "Not Found"):
        message = (f"no route {shown(path)}; the API: POST /predict, /predict_signals, /explain, /predict_range; GET /v1/ready, "
                   "/v1/signals, /v1/timeline, /v1/events, /v1/episodes, /v1/forecasts, /v1/reconstruction, /v1/calibration, /v1/backtest; "
                   "the documentation: "
                   "/ and /docs.json")
    if status == 405:
        message = f"{shown(path)} does not answer this method; / lists each route's methods"
    return error_body(status, message if isinstance(message, str) and message else None, errors[0]["field"] if errors else None, errors)
