"""Connections that hold nothing: a header-read and idle timeout for the HTTP server BentoML runs (uvicorn).

uvicorn (0.54) closes a kept-alive connection only after a response, and never one that has not sent a whole request:
a socket that sends nothing, or half its headers, is held until the client leaves — 50 such sockets held for 30 s were
limited only by the process's file descriptors (a slowloris). BentoML does not expose uvicorn's protocol class, so the
service arms a timer on every connection of uvicorn's HTTP protocols (h11, and httptools where installed): when a
request's headers have not arrived within the timeout — from the connection's start, or from the end of the previous
response — the connection is closed. A request whose headers arrived is not cut (its body has the guard's read timeout).
"""

from __future__ import annotations

import contextlib
from typing import Any

_INSTALLED: dict[str, float] = {}


def _protocol_classes() -> list[type]:
    classes = []
    with contextlib.suppress(ImportError):
        from uvicorn.protocols.http.h11_impl import H11Protocol

        classes.append(H11Protocol)
    with contextlib.suppress(ImportError):
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        classes.append(HttpToolsProtocol)
    return classes


def _arm(protocol: Any) -> None:
    """(Re)start the connection's wait for its next request's headers."""
    timer = getattr(protocol, "cascade_radar_idle_timer", None)
    if timer is not None:
        timer.cancel()
    waiting_for = protocol.cycle  # a new request replaces the cycle: the timer then finds it moved on
    seconds = _INSTALLED["seconds"]

    def expire() -> None:
        transport = protocol.transport
        idle = protocol.cycle is waiting_for and (waiting_for is None or waiting_for.response_complete)  # never cut an answer
        if idle and transport is not None and not transport.is_closing():
            transport.close()  # no request in time: the socket and its slot are freed

    protocol.cascade_radar_idle_timer = protocol.loop.call_later(seconds, expire)


def _wrap(cls: type) -> None:
    made, complete, lost = cls.connection_made, cls.on_response_complete, cls.connection_lost

    def connection_made(self: Any, transport: Any) -> None:
        made(self, transport)
        _arm(self)

    def on_response_complete(self: Any) -> None:
        complete(self)
        if not self.transport.is_closing():
            _arm(self)

    def connection_lost(self: Any, exc: Exception | None) -> None:
        timer = getattr(self, "cascade_radar_idle_timer", None)
        if timer is not None:
            timer.cancel()
        lost(self, exc)

    cls.connection_made, cls.on_response_complete, cls.connection_lost = connection_made, on_response_complete, connection_lost


def limit_idle_connections(seconds: float) -> bool:
    """Close connections whose next request's headers do not arrive within ``seconds``; returns whether uvicorn's HTTP
    protocols were found. Installing again only changes the timeout (the protocols are wrapped once per process)."""
    first = not _INSTALLED
    _INSTALLED["seconds"] = float(seconds)
    classes = _protocol_classes()
    if first:
        for cls in classes:
            _wrap(cls)
    return bool(classes)
