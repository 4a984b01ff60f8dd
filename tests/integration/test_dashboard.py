"""The dashboard in a real browser: headless Debian Chromium against a real `bentoml serve`.

It loads the overview and a coin page, finds the charts drawn, clicks a day on the timeline and reads that
day's explanation, opens a replay, and records no JavaScript error. Screenshots go to reports/dashboard/browser-test/.
Skips, saying why, where Chromium or Playwright is missing (`make browser` installs Chromium).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from cascade_radar.config import PROJECT_ROOT, OperationsConfig
from cascade_radar.rules import ordinal, term_said
from operations.daily import daily
from tests.support.backtest import write_synthetic_backtest
from tests.support.browser import Console, chromium, paint_ms, point_on_timeline, unavailable
from tests.support.process import free_port, settings_env, start_server, stop_server

WHY_NOT = unavailable()
pytestmark = [pytest.mark.server, pytest.mark.browser, pytest.mark.skipif(WHY_NOT is not None, reason=f"no browser to drive: {WHY_NOT}")]
SHOTS = PROJECT_ROOT / "reports" / "dashboard" / "browser-test"  # the synthetic history's; `make screenshots`: the reference's


@pytest.fixture(scope="module")
def served(trained_synthetic, trained_with_a_gap, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    # the synthetic champion over the history whose open interest stops a few days before its end: the last days are
    # answered with a family missing, as a live desk meets them
    settings = trained_with_a_gap
    # a live ledger of this module's own: the daily job run as of five past days (no store update, no webhook)
    ledger = tmp_path_factory.mktemp("ledger") / "forecasts.jsonl"
    ops = settings.model_copy(update={"alerts": OperationsConfig(ledger_file=ledger, update_store=False)})
    for day in ft.table.index[-60:-55]:
        daily(ops, days=[day], update=False, log=lambda message: None)
    # the champion's de-risking backtest, as `make backtest` writes it, in the reports the service reads
    backtested = write_synthetic_backtest(trained_synthetic[0], tmp_path_factory.mktemp("reports"))
    port = free_port()
    proc = start_server({**settings_env(settings), "BENTOML_HOME": str(tmp_path_factory.mktemp("bentoml")), "CASCADE_RADAR_ASSETS": '["BTC", "ETH"]',
                         "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ledger), "CASCADE_RADAR_REPORTS_DIR": str(backtested.reports_root)}, port)
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
        # every ready card: today's P with its yardstick as /predict says it — base rate, relative risk, percentile — the cards
        # sorted by relative risk (highest first, coins without one last) and coloured by it, not by the raw P
        answers = {a: api.post("/predict", json={"asset": a}).json() for a, info in ready["assets"].items() if info["ready"]}
        for asset, answer in answers.items():
            each = page.locator(f"article[data-asset='{asset}']")
            assert each.locator(".relative-risk").inner_text() == f"{answer['relative_risk']:.1f}× normal", asset
            assert each.locator(".base-rate").inner_text() == f"base rate {100 * answer['base_rate']:.1f}%", asset
            assert each.locator(".percentile").inner_text() == f"{ordinal(round(answer['percentile']))} percentile", asset
            # the term structure and the severity, the line the CLI and the alert text print
            assert each.locator(".term").inner_text() == term_said(answer["p_cascade_by_horizon"], answer["p_major"]), asset
            band = next(name for name, at in (("high", 2), ("above", 1.25), ("normal", 0.8), ("below", 0)) if answer["relative_risk"] >= at)
            assert f"risk-{band}" in each.get_attribute("class").split() and "alert" not in each.get_attribute("class").split()
        order = page.eval_on_selector_all("#coins article", "cards => cards.map((c) => c.dataset.asset)")
        assert order == sorted(ready["assets"], key=lambda a: -answers[a]["relative_risk"] if a in answers else float("inf"))
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
        # it opens on the last 12 months (the whole history is the "all" button), and says so in its address
        end = pd.Timestamp(ready["data_through"])
        year = [str(max(pd.Timestamp(ready["first_answerable_day"]) - pd.Timedelta(days=5), end - pd.DateOffset(months=12)).date()),
                str((end + pd.Timedelta(days=10)).date())]
        assert page.evaluate("() => document.getElementById('timeline').layout.xaxis.range.map((d) => String(d).slice(0, 10))") == year
        assert f"from={year[0]}&to={year[1]}" in page.evaluate("location.hash")
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
        scales = {s["column"]: p["scale"] for p in signals["panes"] for s in p["series"]}  # each column in its own unit, drawn in its pane's
        assert scales["funding_rate_frac8h"] == 100.0 and scales["price_usd"] == 1.0
        for column in ("price_usd", "liq_long_usd", "liq_short_usd", "oi_close_usd", "funding_rate_frac8h"):
            want = [r[column] for r in signals["rows"]]
            sign = -1 if "short" in column else 1
            assert drawn_signals[column]["x"] == [r["day"] for r in signals["rows"]], column
            assert drawn_signals[column]["y"] == [None if v is None else sign * scales[column] * v for v in want], column
        assert page.get_attribute("#signals-csv", "href").endswith("&format=csv")
        # the yardstick beside the headline, and the coin's calibration out of fold drawn from /v1/calibration's bins
        assert page.inner_text("#today .relative-risk") == f"{today['relative_risk']:.1f}× normal"
        assert page.inner_text("#today .base-rate") == f"base rate {100 * today['base_rate']:.1f}%"
        assert page.inner_text("#today .term") == term_said(today["p_cascade_by_horizon"], today["p_major"])
        calibration = api.get("/v1/calibration", params={"asset": "BTC"}).json()
        page.locator("#calibration").scroll_into_view_if_needed()
        page.wait_for_selector("#calibration[data-rendered='true']", timeout=30_000)
        drawn_bins = page.evaluate("() => document.getElementById('calibration').data.find((t) => t.name === 'the model, out of fold')")
        assert drawn_bins["x"] == [b["mean_predicted"] for b in calibration["bins"]] and drawn_bins["y"] == [b["observed"] for b in calibration["bins"]]
        assert len(calibration["bins"]) >= 5 and calibration["base_rate"] == today["base_rate"]
        # what acting on it was worth: /v1/backtest's equity curves on a log axis — the forecast, always on, the volatility rule
        # and chance's median with its 5–95 % band shaded — the forecast's cut days shaded, the four rules' figures beside them
        page.locator("#backtest-panel").scroll_into_view_if_needed()  # fetched only as it comes into view
        backtest = api.get("/v1/backtest", params={"asset": "BTC"}).json()
        page.wait_for_selector(f"#backtest-chart[data-rendered='long/{backtest['leverage']:g}']", timeout=30_000)
        drawn_bt = page.evaluate("""() => { const gd = document.getElementById('backtest-chart');
            return {traces: gd.data.filter((t) => t.meta).map((t) => ({rule: t.meta.rule, band: t.meta.band || null, fill: t.fill || null,
                                                                      x: t.x, y: t.y, name: t.name})),
                    log: gd.layout.yaxis.type, shaded: gd.layout.shapes.map((s) => [s.x0, s.x1])}; }""")
        curves = {c["rule"]: c for c in backtest["curves"]}
        lines = [t for t in drawn_bt["traces"] if t["band"] is None]
        assert [t["rule"] for t in lines] == ["placebo", "volatility", "always_on", "forecast"] and drawn_bt["log"] == "log"
        for t in lines:
            assert t["x"] == backtest["dates"] and t["y"] == [v if v and v > 0 else None for v in curves[t["rule"]]["equity"]], t["rule"]
            assert t["name"] == curves[t["rule"]]["label"] + (", median" if t["rule"] == "placebo" else "")
        band = {t["band"]: t for t in drawn_bt["traces"] if t["band"]}
        assert band["p95"]["fill"] == "tonexty" and band["p5"]["y"] == [v if v and v > 0 else None for v in curves["placebo"]["equity_p5"]]
        assert band["p95"]["y"] == [v if v and v > 0 else None for v in curves["placebo"]["equity_p95"]]
        runs = curves["forecast"]["cut_runs"]
        assert drawn_bt["shaded"] == [[r["first"], str((pd.Timestamp(r["last"]) + pd.Timedelta(days=1)).date())] for r in runs] and runs
        assert "always_on" not in page.inner_text("#backtest-panel") and "placebo" not in page.inner_text("#backtest-panel")
        figures = page.eval_on_selector_all("#backtest-figures tbody tr", "rows => rows.map((r) => [...r.cells].map((c) => c.textContent))")
        row = {r["rule"]: r for r in backtest["rows"] if (r["book"], r["leverage"]) == ("long", backtest["leverage"])}
        assert [f[0] for f in figures] == [backtest["rules"][r] for r in ("forecast", "always_on", "volatility", "placebo")]
        assert float(figures[0][1].removesuffix("×")) == pytest.approx(row["forecast"]["final_equity"], rel=5e-3)  # 3 digits
        assert figures[0][4] == f"{row['forecast']['days_cut']} of {row['forecast']['days']}"
        assert page.inner_text("#backtest-caveat") == backtest["caveat"]
        # another leverage: drawn from its own answer
        page.select_option("#backtest-leverage", "10")
        page.wait_for_selector("#backtest-chart[data-rendered='long/10']", timeout=30_000)
        ten = api.get("/v1/backtest", params={"asset": "BTC", "leverage": "10"}).json()
        drawn_ten = page.evaluate("() => document.getElementById('backtest-chart').data.find((t) => t.meta && t.meta.rule === 'forecast' && !t.meta.band).y")
        assert drawn_ten == [v if v and v > 0 else None for v in next(c for c in ten["curves"] if c["rule"] == "forecast")["equity"]]
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
        page.locator("#timeline").scroll_into_view_if_needed()  # the today panel above it may push it below the first screen
        x, y = point_on_timeline(page, target["day"], target["p_cascade"])
        page.mouse.click(x, y)
        page.wait_for_selector(f"#explanation[data-day='{target['day']}']", timeout=30_000)
        explained = api.post("/explain", json={"asset": "BTC", "day": target["day"]}).json()
        assert page.inner_text("#sentence") == explained["sentence"]
        assert page.locator("#explanation .big").inner_text() == f"{round(100 * explained['p_cascade'])}%"
        assert page.locator("#bars-cascade .main-svg").count() >= 1 and page.locator("#drivers tbody tr").count() == len(explained["top_drivers"])
        assert explained["basis"] in page.inner_text("#explanation")
        assert page.inner_text("#explanation .relative-risk") == f"{explained['relative_risk']:.1f}× normal"
        assert page.inner_text("#explanation .term") == term_said(explained["p_cascade_by_horizon"], explained["p_major"])
        assert page.evaluate("location.hash").startswith(f"#day={target['day']}&from=")  # the day, and the range zoomed to
        # the direction bars start from the model's average day; the one prior is the answer's long_prior, as the sentence says it
        direction = page.evaluate("() => document.getElementById('bars-direction').layout.title.text")
        assert f"prior (training long share) {explained['long_prior']:.2f}" in direction and "from the prior" not in direction
        assert f"from the model's average day {explained['direction_model']['base_probability']:.2f}" in direction
        page.screenshot(path=str(SHOTS / "coin_BTC_day.png"), full_page=True)

        # a replay of a notable event; every event's dollars shown with the scope of the series that measured them
        notable = [e for e in events["events"] if e["notable"]]
        buttons = page.locator("#replay-list button").all_inner_texts()
        assert len(buttons) == len(notable) and all(f" ({e['series']}) · " in b for b, e in zip(buttons, notable, strict=True))
        page.locator("#replay-list button").first.click()
        page.wait_for_selector(f"#replay[data-rendered='{notable[0]['start']}']", timeout=60_000)
        assert page.locator("#replay-chart .main-svg").count() >= 1
        built = api.get("/v1/reconstruction", params={"asset": "BTC", "event": notable[0]["start"]}).json()
        assert page.inner_text("#replay-reconstruction") == built["text"]  # the build-up in a desk analyst's words, as the API tells it
        assert f"({notable[0]['series']}) liquidated" in page.inner_text("#replay h3")
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
        linked.get_by_text("all", exact=True).click()  # the whole history, one click away, and its address says so
        linked.wait_for_function(f"() => /from=\\d{{4}}-\\d{{2}}-\\d{{2}}/.test(location.hash) && location.hash.split('from=')[1].slice(0, 10) <= '{start}'",
                                 timeout=10_000)
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

        # before any `make backtest` the route answers 404 (its body as the service words it): the panel says what to run
        missing_console = Console()
        missing = missing_console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
        body = {"status": 404, "error": "not found", "detail": "no backtest yet: run `make backtest` (it writes reports/backtest/)",
                "field": None, "errors": []}
        missing.route("**/v1/backtest?*", lambda route: route.fulfill(status=404, json=body))
        missing.goto(f"{served}/dashboard/coin/BTC")
        missing.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        missing.locator("#backtest-panel").scroll_into_view_if_needed()
        missing.wait_for_selector("#backtest-chart[data-rendered='missing']", timeout=30_000)
        assert missing.inner_text("#backtest-missing") == "no backtest yet: run make backtest" and not missing.is_visible("#backtest-leverage")
        assert all("404" in e for e in missing_console.errors), missing_console.errors  # the browser logs the 404 itself, nothing else

        # an unknown coin's page says so (the browser logs the page's own 404, nothing else)
        page.goto(f"{served}/dashboard/coin/XYZ")
        assert "'XYZ' is not a coin cascade-radar knows" in page.inner_text("#status")
        assert len(console.errors) == 1 and "status of 404" in console.errors[0] and console.errors[0].endswith("/dashboard/coin/XYZ)")
    assert sorted(p.name for p in SHOTS.glob("*.png")) == ["coin_BTC.png", "coin_BTC_400px.png", "coin_BTC_dark.png", "coin_BTC_day.png",
                                                           "overview.png", "overview_400px.png", "replay_BTC.png"]


def test_the_dashboard_never_draws_missing_data_as_a_cause(served: str, trained_with_a_gap) -> None:  # noqa: ANN001
    """The last day (open interest missing) and a day with a present family's feature missing: the day's sentence, top
    features and family bars as /explain says them — no feature with no value among the top features, the missing family's
    bar absent and its row written "missing (scored as missing)"; the glossary is one click away from the page."""
    from cascade_radar.glossary import TERMS
    from forecast.predict import CoinForecaster
    from tests.support.answers import nan_feature_day

    api = httpx.Client(base_url=served, timeout=30)
    last = api.get("/v1/ready").json()["assets"]["BTC"]["data_through"]
    nan_day, _ = nan_feature_day(CoinForecaster.load(trained_with_a_gap))
    console = Console()
    with chromium() as browser:
        page = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
        for day in (last, nan_day):
            x = api.post("/explain", json={"asset": "BTC", "day": day}).json()
            absent = set(x["missing_features"])
            assert (x["missing_families"] == ["oi"]) == (day == last) and absent
            page.goto(f"{served}/dashboard/coin/BTC#day={day}")
            page.wait_for_selector(f"#explanation[data-day='{day}']", timeout=60_000)
            page.locator("#explanation").scroll_into_view_if_needed()  # its bars are drawn as it comes into view
            page.wait_for_selector(f"#explanation[data-drawn='{day}']", timeout=30_000)
            assert page.inner_text("#sentence") == x["sentence"]
            rows = page.eval_on_selector_all("#drivers tbody tr", "rows => rows.map((r) => [...r.cells].map((c) => c.textContent))")
            assert [r[0] for r in rows] == [d["label"] for d in x["top_drivers"]] and rows
            assert not any("no data" in cell for row in rows for cell in row)
            assert not {d["feature"] for d in x["top_drivers"]} & absent
            bars = page.evaluate("() => { const t = document.getElementById('bars-cascade').data[0]; return {x: t.x, y: t.y}; }")
            drawn = dict(zip(bars["y"], bars["x"], strict=True))
            ticks = page.eval_on_selector_all("#bars-cascade .ytick text", "ts => ts.map((t) => t.textContent)")
            missing = "open interest: missing (scored as missing)"
            if day == last:  # written missing, no bar; no bar named plainly "open interest"
                assert drawn[missing] is None and "open interest" not in drawn and missing in ticks
            else:
                assert not any("missing" in label for label in drawn)
            pushes = sorted(v for v in x["cascade"]["shap_by_family"].values() if v is not None)  # each family's, as /explain says it
            assert sorted(v for v in drawn.values() if v is not None) == pytest.approx(pushes, abs=1e-12)
        # the glossary, from the page's header
        page.locator("header.top a.glossary-link").click()
        page.wait_for_url(f"{served}/dashboard/glossary")
        page.wait_for_selector("body[data-loaded='true']", timeout=30_000)
        assert page.locator("dl.glossary dt").count() == len(TERMS) and page.locator("#coin-nav a").count() >= 1
        assert page.inner_text("#out-of-fold + dd") == dict(TERMS)["out-of-fold"]
    assert console.errors == []


def test_the_api_docs_page_renders_and_asks_nothing_of_another_origin(served: str) -> None:
    """The page the dashboard links as "API docs" (/): Swagger UI from the service's own files, under the CSP, no tag manager
    (BentoML's page asked googletagmanager.com). And the service works offline: on `/`, the overview `/dashboard/` and a coin
    page scrolled to its end (so that every panel loaded when scrolled to has fetched what it draws), every request the
    browser makes goes to the served 127.0.0.1 origin — no font, script, chart bundle or beacon from another host."""
    console = Console()
    asked: list[str] = []
    with chromium() as browser:
        page = console.watch(browser.new_page(viewport={"width": 1400, "height": 1000}))
        page.on("request", lambda r: asked.append(r.url))
        page.goto(f"{served}/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
        assert page.locator(".swagger-ui .info .title").inner_text().startswith("cascade-radar")
        assert page.locator(".opblock-summary-path[data-path='/predict']").count() == 1  # the operations are listed
        for path in ("/dashboard/", "/dashboard/coin/BTC"):
            page.goto(f"{served}{path}")
            page.wait_for_selector("body[data-loaded='true']", timeout=60_000)
        # the coin page's panels that fetch their data only as they come into view, each brought into view and drawn
        for panel, drawn in (("#signals", "#signals[data-rendered='true']"), ("#calibration", "#calibration[data-rendered='true']"),
                             ("#backtest-panel", "#backtest-chart[data-rendered]")):
            page.locator(panel).scroll_into_view_if_needed()
            page.wait_for_selector(drawn, timeout=30_000)
        page.wait_for_load_state("networkidle", timeout=30_000)
    assert {f"{served}{path}" for path in ("/", "/dashboard/", "/dashboard/coin/BTC")} <= set(asked)  # the three pages were seen
    assert len(asked) >= 10, asked  # and their files and data: the listener did listen
    elsewhere = [url for url in asked if not url.startswith(f"{served}/")]
    assert not elsewhere, f"requests that left {served}: {elsewhere}"
    assert console.errors == []  # a CSP violation is a console error
