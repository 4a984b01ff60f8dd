"""The dashboard in a real browser: headless Debian Chromium against a real `bentoml serve`.

It loads the overview and a coin page, finds the charts drawn, clicks a day on the timeline and reads that
day's explanation, opens a replay, and records no JavaScript error. Screenshots go to reports/dashboard/browser-test/.
Skips, saying why, where Chromium or Playwright is missing (`make browser` installs Chromium).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cascade_radar.config import PROJECT_ROOT, OperationsConfig
from operations.daily import daily
from tests.support.browser import Console, chromium, paint_ms, point_on_timeline, unavailable
from tests.support.process import free_port, settings_env, start_server, stop_server

WHY_NOT = unavailable()
pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.skipif(WHY_NOT is not None, reason=f"no browser to drive: {WHY_NOT}")]
SHOTS = PROJECT_ROOT / "reports" / "dashboard" / "browser-test"  # the synthetic history's; `make screenshots`: the reference's


@pytest.fixture(scope="module")
def served(trained_synthetic, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    # a live ledger of this module's own: the daily job run as of five past days (no store update, no webhook)
    ledger = tmp_path_factory.mktemp("ledger") / "forecasts.jsonl"
    ops = settings.model_copy(update={"alerts": OperationsConfig(ledger_file=ledger, update_store=False)})
    for day in ft.table.index[-60:-55]:
        daily(ops, days=[day], update=False, log=lambda message: None)
    port = free_port()
    proc = start_server({**settings_env(settings), "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")), "CASCADE_RADAR_ASSETS": '["BTC", "ETH"]',
                         "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ledger)}, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(proc)


def test_the_dashboard_in_a_real_browser(served: str) -> None:
    api = httpx.Client(base_url=served, timeout=30)
    today = api.post("/predict", json={"asset": "BTC"}).json()
    ready = api.get("/v1/ready").json()
    events = api.get("/v1/events", params={"asset": "BTC"}).json()
    episodes = api.get("/v1/episodes", params={"asset": "BTC"}).json()
    import shutil

    shutil.rmtree(SHOTS, ignore_errors=True)  # this run's screenshots only: an earlier run's cannot count
    SHOTS.mkdir(parents=True)
    console = Console()
    with chromium() as browser:
        page = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))

        # the overview: a card per served coin, with today's numbers as /predict says them and a drawn sparkline
        page.goto(f"{served}/dashboard")
        page.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        card = page.locator("article[data-asset='BTC']")
        assert card.locator(".big").inner_text() == f"{round(100 * today['p_cascade'])}%"
        assert ("ALERT" if today["alert"] else "no alert") in card.inner_text()
        assert f"answer for {today['day']}" in card.inner_text()
        assert card.locator(".spark .main-svg").count() >= 1
        # a coin without a champion (none was trained for ETH here) is shown as not ready, with the service's reason
        eth = page.locator("article[data-asset='ETH']").inner_text()
        assert "not ready" in eth and ready["assets"]["ETH"]["reason"] in eth and not ready["assets"]["ETH"]["ready"]
        assert paint_ms(page)["first_contentful_paint"] is not None
        page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)

        # a coin page: the timeline with every labelled event and every judged alert episode
        card.locator("h2 a").click()
        page.wait_for_url(f"{served}/dashboard/coin/BTC")
        page.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        assert page.get_attribute("#timeline", "data-rendered") == "true"
        drawn = page.evaluate("""() => { const gd = document.getElementById('timeline');
            return {events: gd.data.filter(t => t.name.includes(' event (size: ')).reduce((n, t) => n + t.x.length, 0),
                    shapes: gd.layout.shapes.filter(s => s.type === 'rect').length}; }""")
        assert drawn == {"events": events["count"], "shapes": len(episodes["episodes"])}
        summary = page.inner_text("#episode-summary")
        assert f"{episodes['hits']} alert episode(s) followed by an event, {episodes['false_alarms']} false alarm(s)" in summary
        oof = episodes["by_basis"]["out-of-fold"]
        assert f"out-of-fold: {oof['hit']} followed by an event, {oof['false alarm']} false alarm(s)" in summary
        # the live ledger's forecasts, as /v1/forecasts serves them, drawn beside the history
        ledger = api.get("/v1/forecasts", params={"asset": "BTC"}).json()["rows"]
        live = page.evaluate("() => document.getElementById('timeline').data.find(t => t.name.startsWith('live forecast ledger'))")
        assert len(ledger) == 5 and live["x"] == [r["day"] for r in ledger] and live["y"] == [r["p_cascade"] for r in ledger]
        assert "5 live forecast(s) in the ledger" in summary
        # the signals under the timeline, drawn with /v1/signals' own numbers (shorts liquidated drawn below zero)
        signals = api.get("/v1/signals", params={"asset": "BTC", "start": ready["first_answerable_day"], "end": ready["data_through"]}).json()
        page.locator("#signals").scroll_into_view_if_needed()  # drawn as it comes into view
        page.wait_for_selector("#signals[data-rendered='true']", timeout=30_000)
        drawn_signals = page.evaluate("""() => Object.fromEntries(document.getElementById('signals').data.filter(t => t.meta)
            .map(t => [t.meta.column, {x: t.x, y: t.y}]))""")
        for column in ("price_usd", "liq_long_usd", "liq_short_usd", "oi_close_usd", "funding_rate_frac8h"):
            want = [r[column] for r in signals["rows"]]
            sign = -1 if "short" in column else 1
            assert drawn_signals[column]["x"] == [r["day"] for r in signals["rows"]], column
            assert drawn_signals[column]["y"] == [None if v is None else sign * v for v in want], column
        assert page.get_attribute("#signals-csv", "href").endswith("&format=csv")
        page.evaluate("window.scrollTo(0, 0)")
        hover = page.evaluate("() => document.getElementById('timeline').layout.xaxis.hoverformat")
        assert hover == "%Y-%m-%d"  # a hover names the day
        page.screenshot(path=str(SHOTS / "coin_BTC.png"), full_page=True)

        # click a day on the chart (zoomed to 3 months, days are wide apart) and read its explanation
        page.get_by_text("3 months", exact=True).click()
        start = ready["first_answerable_day"]
        rows = api.post("/predict_range", json={"start": start, "end": ready["data_through"]}).json()["rows"]
        target = rows[-20]
        page.wait_for_timeout(300)  # the zoom's transition
        x, y = point_on_timeline(page, target["day"], target["p_cascade"])
        page.mouse.click(x, y)
        page.wait_for_selector(f"#explanation[data-day='{target['day']}']", timeout=30_000)
        explained = api.post("/explain", json={"asset": "BTC", "day": target["day"]}).json()
        assert page.inner_text("#sentence") == explained["sentence"]
        assert page.locator("#explanation .big").inner_text() == f"{round(100 * explained['p_cascade'])}%"
        assert page.locator("#bars-cascade .main-svg").count() >= 1 and page.locator("#drivers tbody tr").count() == len(explained["top_drivers"])
        assert explained["basis"] in page.inner_text("#explanation")
        assert page.evaluate("location.hash").startswith(f"#day={target['day']}&from=")  # the day, and the range zoomed to
        page.screenshot(path=str(SHOTS / "coin_BTC_day.png"), full_page=True)

        # a replay of a notable event
        notable = [e for e in events["events"] if e["notable"]]
        page.locator("#replay-list button").first.click()
        page.wait_for_selector(f"#replay[data-rendered='{notable[0]['start']}']", timeout=60_000)
        assert page.locator("#replay-chart .main-svg").count() >= 1
        built = api.get("/v1/reconstruction", params={"asset": "BTC", "event": notable[0]["start"]}).json()
        assert page.inner_text("#replay-reconstruction") == built["text"]  # the build-up in the seed's words, as the API tells it
        page.locator("#replay").screenshot(path=str(SHOTS / "replay_BTC.png"))

        # a replay has a URL of its own
        shared = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))  # a link opened afresh
        shared.goto(f"{served}/dashboard/coin/BTC#replay={notable[-1]['start']}")
        shared.wait_for_selector(f"#replay[data-rendered='{notable[-1]['start']}']", timeout=60_000)
        assert shared.locator("#replay-list button[aria-pressed='true']").get_attribute("data-start") == notable[-1]["start"]
        assert shared.get_attribute("#replay-csv", "href").endswith("&format=csv")

        # a view has a URL of its own: coin, zoomed range and day, as the share link and the address bar say it
        view = f"day={target['day']}&from={rows[-60]['day']}&to={rows[-10]['day']}"
        linked = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
        linked.goto(f"{served}/dashboard/coin/BTC#{view}")
        linked.wait_for_selector(f"#explanation[data-day='{target['day']}']", timeout=60_000)
        linked.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        shown = linked.evaluate("() => document.getElementById('timeline').layout.xaxis.range.map((d) => String(d).slice(0, 10))")
        assert shown == [rows[-60]["day"], rows[-10]["day"]]
        assert linked.evaluate("location.hash") == f"#{view}" and linked.get_attribute("#share-link", "href").endswith(f"#{view}")
        linked.get_by_text("1 year", exact=True).click()  # a new zoom is the new view
        linked.wait_for_function(f"() => !location.hash.includes('from={rows[-60]['day']}')", timeout=10_000)
        assert "from=" in linked.evaluate("location.hash") and f"day={target['day']}" in linked.evaluate("location.hash")
        for link in ("#timeline-csv", "#events-csv", "#episodes-csv"):
            href = linked.get_attribute(link, "href")
            assert href.endswith("format=csv") and api.get(href).headers["content-type"].startswith("text/csv"), link

        assert console.errors == []

        # 400 px wide: nothing wider than the viewport, on the overview and the coin page
        narrow = console.watch(browser.new_page(viewport={"width": 400, "height": 900}))
        for path, shot in (("/dashboard/", "overview_400px.png"), ("/dashboard/coin/BTC", "coin_BTC_400px.png")):
            narrow.goto(f"{served}{path}")
            narrow.wait_for_selector("body[data-loaded='true']", timeout=60_000)
            assert narrow.evaluate("document.documentElement.scrollWidth") <= 400, path
            narrow.screenshot(path=str(SHOTS / shot), full_page=True)
        # dark mode: the system's preference changes the page's background
        light_bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
        dark = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}, color_scheme="dark"))
        dark.goto(f"{served}/dashboard/coin/BTC")
        dark.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        assert dark.evaluate("getComputedStyle(document.body).backgroundColor") not in (light_bg, "rgba(0, 0, 0, 0)")
        dark.screenshot(path=str(SHOTS / "coin_BTC_dark.png"), full_page=True)
        assert console.errors == []

        # an unknown coin's page says so (the browser logs the page's own 404, nothing else)
        page.goto(f"{served}/dashboard/coin/XYZ")
        assert "'XYZ' is not a coin cascade-radar knows" in page.inner_text("#status")
        assert len(console.errors) == 1 and "status of 404" in console.errors[0] and console.errors[0].endswith("/dashboard/coin/XYZ)")
    assert sorted(p.name for p in SHOTS.glob("*.png")) == ["coin_BTC.png", "coin_BTC_400px.png", "coin_BTC_dark.png", "coin_BTC_day.png",
                                                           "overview.png", "overview_400px.png", "replay_BTC.png"]


def test_the_api_docs_page_renders_and_asks_nothing_of_another_origin(served: str) -> None:
    """The page the dashboard links as "API docs" (/): Swagger UI from the service's own files, under the CSP, no tag manager
    (BentoML's page asked googletagmanager.com)."""
    console = Console()
    asked: list[str] = []
    with chromium() as browser:
        page = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{served}/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("cascade-radar")
        assert page.locator(".opblock-summary-path[data-path='/predict']").count() == 1  # the operations are listed
    assert asked and all(url.startswith(served) for url in asked), [u for u in asked if not u.startswith(served)]
    assert console.errors == []  # a CSP violation is a console error
