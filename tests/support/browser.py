"""The dashboard in a real browser: Debian's Chromium driven by Playwright (the browser test and `make bench`).

Playwright never downloads a browser here: it launches the system's ``chromium`` (``make browser`` installs
it). Everything a page logs as an error, every uncaught exception and every failed request is recorded, so a
caller can assert the page ran clean.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

# headless as root, and quiet on a closed network: no background calls to Google's services
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def unavailable() -> str | None:
    """Why a browser cannot be driven here (None: it can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make setup installs it)"
    if chromium_path() is None:
        return "Debian's chromium is not installed (make browser installs it with apt-get; it needs root or sudo)"
    return None


@dataclass
class Console:
    """What a page reported: console errors, uncaught exceptions, failed requests."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Any) -> Any:  # noqa: ANN401 - a playwright Page
        page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text} ({m.location.get('url', '')})") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.method} {r.url} ({r.failure})"))
        return page


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (a playwright Browser), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def paint_ms(page: Any) -> dict[str, float | None]:  # noqa: ANN401
    """First paint and first contentful paint of the page's last navigation, in ms from its start."""
    marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))")
    return {"first_paint": marks.get("first-paint"), "first_contentful_paint": marks.get("first-contentful-paint")}


def point_on_timeline(page: Any, day: str, probability: float) -> tuple[float, float]:  # noqa: ANN401
    """The viewport pixel of (day, probability) on the coin page's timeline, from the plot's own axes."""
    return tuple(page.evaluate(
        """([day, p]) => {
            const gd = document.getElementById('timeline');
            const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            return [box.left + xa.d2p(day), box.top + ya.d2p(p)];
        }""", [day, probability]))
