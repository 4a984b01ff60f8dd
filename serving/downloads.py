"""Whole-history answers computed once per data version and served from memory, a few at a time.

Sixteen clients pulling whole-history CSVs made /predict ~200x slower (p50 627 ms against 3 ms): each download rebuilt
and serialised years of rows, and those threads took the interpreter from the answers that matter. Here a history
answer (signals, timeline, events, episodes) is computed at most ``concurrency`` at a time, kept as bytes under a key
that holds the coin's data version (its champion and last day: the state a reload replaces), reused until that
changes, and sent with an ``ETag`` so a client that already has it gets a 304 with no body.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from starlette.responses import Response


@dataclass(frozen=True)
class Stored:
    body: bytes
    media_type: str
    headers: dict[str, str]
    etag: str


class Downloads:
    """An LRU of answers by key, bounded in bytes, computed under a bounded semaphore."""

    def __init__(self, max_bytes: int, concurrency: int) -> None:
        self.max_bytes = max_bytes
        self.slots = threading.BoundedSemaphore(concurrency)
        self.lock = threading.Lock()
        self.items: OrderedDict[Hashable, Stored] = OrderedDict()
        self.building: dict[Hashable, threading.Lock] = {}
        self.size = 0
        self.computed = 0  # answers built (not served from memory): for tests and the bench

    def _get(self, key: Hashable) -> Stored | None:
        with self.lock:
            stored = self.items.get(key)
            if stored is not None:
                self.items.move_to_end(key)
            return stored

    def _put(self, key: Hashable, stored: Stored) -> None:
        if len(stored.body) > self.max_bytes:
            return  # larger than the whole budget: served, not kept
        with self.lock:
            if key in self.items:
                return
            self.items[key] = stored
            self.size += len(stored.body)
            while self.size > self.max_bytes and self.items:
                _, old = self.items.popitem(last=False)
                self.size -= len(old.body)

    def answer(self, key: Hashable, make: Callable[[], Response], if_none_match: str | None = None) -> Response:
        """The answer under ``key``: from memory, else ``make()`` (at most ``concurrency`` at once; an error answer is
        returned as it is and never kept); 304 when ``if_none_match`` names its ETag."""
        stored = self._get(key)
        if stored is None:
            with self.lock:
                building = self.building.setdefault(key, threading.Lock())
            with building, self.slots:  # one build per key; at most ``concurrency`` builds of any keys at once
                stored = self._get(key)  # built by the request this one waited for
                if stored is None:
                    response = make()
                    self.computed += 1
                    if response.status_code != 200:
                        return response
                    body = bytes(response.body)
                    headers = {k: v for k, v in response.headers.items() if k.lower() == "content-disposition"}
                    stored = Stored(body, response.media_type or response.headers.get("content-type", "application/json"), headers,
                                    '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
                    self._put(key, stored)
            with self.lock:
                self.building.pop(key, None)
        headers = {**stored.headers, "ETag": stored.etag, "Cache-Control": "no-cache"}  # revalidate: a new champion changes it
        if if_none_match is not None and stored.etag in [tag.strip() for tag in if_none_match.split(",")]:
            return Response(status_code=304, headers=headers)
        return Response(stored.body, media_type=stored.media_type, headers=headers)
