"""A local HTTP server that plays recorded-shape provider responses (tests only; loopback only), on the emulator's server."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from operations.emulator import serve_json

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

    def answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Reply:
        self.calls.append((path, query, headers))
        replies = self.routes.get(path)
        if not replies:
            return 404, {"error": f"no route {path}"}, {}
        route = replies.pop(0) if len(replies) > 1 else replies[0]
        return route(query)

    def __enter__(self) -> ProviderServer:
        self.httpd = serve_json(self.answer)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
