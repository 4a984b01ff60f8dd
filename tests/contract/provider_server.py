"""A local HTTP server that plays recorded-shape provider responses (tests only; loopback only)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

Reply = tuple[int, Any, dict[str, str]]  # status, body (JSON-able or str), headers
Route = Callable[[dict[str, str]], Reply]


@dataclass
class ProviderServer:
    routes: dict[str, list[Route]] = field(default_factory=dict)  # path -> replies, the last one repeats
    calls: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)

    def add(self, path: str, *replies: Route | Reply) -> None:
        self.routes.setdefault(path, []).extend(r if callable(r) else (lambda q, r=r: r) for r in replies)

    def queries(self, path: str) -> list[dict[str, str]]:
        return [q for p, q, _ in self.calls if p == path]

    def __enter__(self) -> ProviderServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                parsed = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                server.calls.append((parsed.path, query, dict(self.headers)))
                replies = server.routes.get(parsed.path)
                if not replies:
                    status, body, headers = 404, {"error": f"no route {parsed.path}"}, {}
                else:
                    route = replies.pop(0) if len(replies) > 1 else replies[0]
                    status, body, headers = route(query)
                payload = body if isinstance(body, str) else json.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in headers.items():
                    self.send_header(k, v)
                data = payload.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
