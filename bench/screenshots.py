"""`make screenshots`: the dashboard on the reference history as a desk sees it, written to reports/dashboard/.

Not a benchmark, but the same harness as `bench/bench_dashboard.py`: the champion `make train` would make (seven coins
pooled on the reference history, in a scratch store), a real `bentoml serve`, Debian's headless Chromium. It writes the
overview, the BTC page (with its signals drawn), a day explained, a replay (2025-10-10, else the latest notable event) at
1500 px, the same at 400 px and in dark mode, and the explanation picture of the replay's first alert (the PNG `cascade-radar
explain` draws), and fails on any console error or a page wider than a 400 px viewport. The browser test's screenshots
(synthetic history) are in reports/dashboard/browser-test/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support: the real server and browser harness
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from common import served_champion  # noqa: E402

from cascade_radar.config import PROJECT_ROOT  # noqa: E402
from tests.support.browser import Console, chromium, unavailable  # noqa: E402

SHOTS = PROJECT_ROOT / "reports" / "dashboard"
WANTED_REPLAY = "2025-10-10"
WIDE, NARROW = {"width": 1500, "height": 1000}, {"width": 400, "height": 900}


def drawn(page, path: str) -> None:  # noqa: ANN001 - a playwright Page
    """Open ``path`` and wait until it and (on a coin page) its signals are drawn."""
    page.goto(path)
    page.wait_for_selector("body[data-loaded='true']", timeout=120_000)
    if page.locator("#signals").count():
        page.locator("#signals").scroll_into_view_if_needed()
        page.wait_for_selector("#signals[data-rendered='true']", timeout=60_000)
        day = page.get_attribute("#explanation", "data-day")
        page.locator("#explanation").scroll_into_view_if_needed()  # its bars, too, are drawn as it comes into view
        page.wait_for_selector(f"#explanation[data-drawn='{day}']", timeout=60_000)
        page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_timeout(300)  # Plotly's transitions


def main() -> int:
    why = unavailable()
    if why:
        print(f"screenshots skipped: {why}")
        return 0
    import httpx

    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # this run's pictures only
        old.unlink()
    written: list[str] = []
    with served_champion() as (url, _, what, result):
        events = httpx.get(f"{url}/v1/events", params={"asset": "BTC"}, timeout=60).json()["events"]
        notable = [e for e in events if e["notable"]]
        event = next((e for e in events if e["start"] == WANTED_REPLAY), notable[-1] if notable else events[-1])
        console = Console()
        with chromium() as browser:
            wide = console.watch(browser.new_page(viewport=WIDE))
            shots = [(wide, "/dashboard/", "overview.png"), (wide, "/dashboard/coin/BTC", "coin_BTC.png")]
            for page, path, name in shots:
                drawn(page, f"{url}{path}")
                page.screenshot(path=str(SHOTS / name), full_page=True)
                written.append(name)
            day = event["first_alert"] or event["start"]
            drawn(wide, f"{url}/dashboard/coin/BTC#day={day}")
            wide.wait_for_selector(f"#explanation[data-day='{day}']", timeout=60_000)
            wide.locator("#explanation").screenshot(path=str(SHOTS / "coin_BTC_day.png"))
            drawn(wide, f"{url}/dashboard/coin/BTC#replay={event['start']}")
            wide.wait_for_selector(f"#replay[data-rendered='{event['start']}']", timeout=120_000)
            wide.locator("#replay").screenshot(path=str(SHOTS / "replay_BTC.png"))
            written += ["coin_BTC_day.png", "replay_BTC.png"]

            narrow = console.watch(browser.new_page(viewport=NARROW))
            for path, name in (("/dashboard/", "overview_400px.png"), ("/dashboard/coin/BTC", "coin_BTC_400px.png")):
                drawn(narrow, f"{url}{path}")
                width = narrow.evaluate("document.documentElement.scrollWidth")
                if width > NARROW["width"]:
                    raise SystemExit(f"{path} is {width} px wide in a {NARROW['width']} px viewport")
                narrow.screenshot(path=str(SHOTS / name), full_page=True)
                written.append(name)
            drawn(narrow, f"{url}/dashboard/coin/BTC#replay={event['start']}")
            narrow.wait_for_selector(f"#replay[data-rendered='{event['start']}']", timeout=120_000)
            narrow.locator("#replay").screenshot(path=str(SHOTS / "replay_BTC_400px.png"))
            written.append("replay_BTC_400px.png")

            dark = console.watch(browser.new_page(viewport=WIDE, color_scheme="dark"))
            for path, name in (("/dashboard/", "overview_dark.png"), ("/dashboard/coin/BTC", "coin_BTC_dark.png")):
                drawn(dark, f"{url}{path}")
                dark.screenshot(path=str(SHOTS / name), full_page=True)
                written.append(name)
        if console.errors:
            raise SystemExit(f"the dashboard logged errors: {console.errors}")
        # the report picture of the same day, from the same answer (/explain) the dashboard read
        from training.explain import plot_day

        explanation = httpx.post(f"{url}/explain", json={"asset": "BTC", "day": day}, timeout=60).json()
        plot_day(explanation, SHOTS / f"explain_BTC_{day}.png")
        written.append(f"explain_BTC_{day}.png")
    print(f"dashboard screenshots ({what}; champion v{result.champion}; replay {event['start']}, day explained {day}):")
    for name in written:
        print(f"  {(SHOTS / name).relative_to(PROJECT_ROOT)}  {(SHOTS / name).stat().st_size / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
