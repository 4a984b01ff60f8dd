"""`make bench` (dashboard part): how fast the dashboard paints and draws in headless Chromium, on the full history.

A real `bentoml serve` of the champion trained here (seven coins on the reference history). Each page is loaded
``RUNS`` times in a fresh browser context (cold cache: the chart script — Plotly's 1.2 MB basic bundle `make setup`
fetches, else the full 4.8 MB one — is fetched every time). Baseline
measured in the same run: the same page shell with no data and no chart (the unknown-coin page).
The BTC page is also loaded again in the same context (warm: the browser's cache holds Plotly's script).
Target (issue 15): first paint of a coin page with the full history under 2 s.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # tests.support: the real server and browser harness
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

from common import served_champion  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tests.support.browser import Console, chromium, paint_ms, unavailable  # noqa: E402

RUNS = int(os.environ.get("BENCH_DASHBOARD_RUNS", "5"))
TARGET_MS = 2000.0
DRAWN_TARGET_MS = 1000.0


def load(browser, url: str, ready: str | None, context=None) -> dict[str, float]:  # noqa: ANN001
    """One load of ``url``: first paint, first contentful paint and (with ``ready``) the moment every chart is drawn, ms.
    Cold (a fresh browser context) unless a ``context`` that already visited the page is given (warm: cached script)."""
    own = context is None
    context = context or browser.new_context(viewport={"width": 1400, "height": 1000})
    console = Console()
    page = console.watch(context.new_page())
    started = time.perf_counter()
    page.goto(url)
    drawn = float("nan")
    if ready:
        page.wait_for_selector(ready, timeout=120_000)
        drawn = float(page.evaluate("performance.now()"))
    wall = (time.perf_counter() - started) * 1000
    paints = paint_ms(page)
    marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, m.startTime]))")
    if own:
        context.close()
    errors = [e for e in console.errors if "status of 404" not in e or not url.endswith("/XYZ")]
    if errors:
        raise SystemExit(f"{url}: the page logged errors: {errors}")
    return {"first_paint": paints["first_paint"] or float("nan"), "fcp": paints["first_contentful_paint"] or float("nan"),
            "drawn": drawn, "wall": wall, **marks}


def main() -> None:
    why = unavailable()
    if why:
        print(f"dashboard bench skipped: {why}")
        return
    import httpx

    with served_champion() as (url, _, what, result):
        ready = httpx.get(f"{url}/v1/ready", timeout=30).json()["assets"]
        btc = ready["BTC"]
        days = len(httpx.post(f"{url}/predict_range", json={"asset": "BTC", "start": btc["first_answerable_day"],
                                                             "end": btc["data_through"]}, timeout=60).json()["rows"])
        pages = [("page shell, no data (baseline)", f"{url}/dashboard/coin/XYZ", None),
                 (f"overview ({sum(c['ready'] for c in ready.values())} coins, 90-day sparklines)", f"{url}/dashboard/", "body[data-loaded='true']"),
                 (f"BTC page (full history: {days} days, events, episodes, a day explained)", f"{url}/dashboard/coin/BTC", "body[data-loaded='true']")]
        with chromium() as browser:
            load(browser, f"{url}/dashboard/", "body[data-loaded='true']")  # warm the server (first answers fill caches), not the browser
            measured = {name: [load(browser, page, ready_sel) for _ in range(RUNS)] for name, page, ready_sel in pages}
            warm = browser.new_context(viewport={"width": 1400, "height": 1000})
            name, page, ready_sel = pages[2]
            load(browser, page, ready_sel, warm)  # the first visit fills the cache
            measured[name.split(" (")[0] + " again (warm: Plotly cached)"] = [load(browser, page, ready_sel, warm) for _ in range(RUNS)]
            warm.close()
    print(f"\ndashboard in headless Chromium ({what}; champion v{result.champion}; {RUNS} cold loads per page, median ms)")
    base = statistics.median(m["fcp"] for m in measured[pages[0][0]])
    rows = []
    for name, samples in measured.items():
        fcp = statistics.median(s["fcp"] for s in samples)
        drawn = statistics.median(s["drawn"] for s in samples)
        rows.append([name, f"{statistics.median(s['first_paint'] for s in samples):.0f}", f"{fcp:.0f}", f"{fcp / base:.2f}x",
                     "-" if drawn != drawn else f"{drawn:.0f}", f"{max(s['fcp'] for s in samples):.0f}"])
    print(tabulate(rows, headers=["page", "first paint", "first contentful paint", "FCP / baseline", "charts drawn", "worst FCP"]))
    for name, samples in list(measured.items())[1:]:  # where the time to the drawn charts goes (the page's performance marks)
        steps = sorted({k for s in samples for k in s} - {"first_paint", "fcp", "drawn", "wall"}, key=lambda k: statistics.median(s[k] for s in samples))
        print(f"  {name.split(' (')[0]}: " + ", ".join(f"{k} {statistics.median(s[k] for s in samples):.0f} ms" for k in steps))
    coin_fcp = statistics.median(s["fcp"] for s in measured[pages[2][0]])
    print(f"\nBTC page first contentful paint {coin_fcp:.0f} ms with the full history (target < {TARGET_MS:.0f} ms: "
          f"{'met' if coin_fcp < TARGET_MS else 'NOT met'})")
    coin_drawn = statistics.median(s["drawn"] for s in measured[pages[2][0]])
    shell = statistics.median(s["first_paint"] for s in measured[pages[0][0]])
    print(f"BTC page fully drawn (its first screen: timeline and the day explained; the signals below draw as they scroll into "
          f"view) {coin_drawn:.0f} ms cold, {coin_drawn / shell:.1f}x the empty shell's first paint ({shell:.0f} ms, baseline); "
          f"target <= {DRAWN_TARGET_MS:.0f} ms (issue 24, from 1.85 s with Plotly's full 4.8 MB bundle): "
          f"{'met' if coin_drawn <= DRAWN_TARGET_MS else 'NOT met'}")


if __name__ == "__main__":
    main()
