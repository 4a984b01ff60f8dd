"""The risk dashboard, mounted at /dashboard by the prediction service itself (no second server).

Static pages only: an overview of every coin, a page per coin and the glossary of the product's words. Their charts are drawn by Plotly, whose
JavaScript ships inside the ``plotly`` Python package and is served from here, so the page works without
internet. Every number on the page comes from the service's own JSON routes (/predict, /predict_range,
/explain, /v1/ready, /v1/events, /v1/episodes, /v1/forecasts, /v1/calibration, /v1/backtest) — the page adds no logic of its own: even an event's lead
(the first alert that warned of it) comes from /v1/events.
"""

from __future__ import annotations

import functools
import gzip
import html
import json
from pathlib import Path

import plotly
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles

from cascade_radar import glossary as words
from cascade_radar.config import settings_or_exit
from cascade_radar.rules import IN_SAMPLE, OUT_OF_FOLD, OUT_OF_SAMPLE, coin_key, shown
from features.families import load_families
from serving.package import served_assets

STATIC = Path(__file__).parent / "static"
PLOTLY_FULL = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# `make setup` fetches Plotly's basic bundle (scatter and bar, all the pages draw: 1.2 MB instead of 4.8 MB — parsing the
# script was most of a cold coin page's time); without it the full bundle inside the plotly package is served
PLOTLY_BASIC = Path(__file__).parent / "vendor" / "plotly-basic.min.js"
PLOTLY_JS = PLOTLY_BASIC if PLOTLY_BASIC.exists() else PLOTLY_FULL
CACHE = {"Cache-Control": "public, max-age=86400"}  # the scripts change only with a release

dashboard = FastAPI(title="cascade-radar dashboard", docs_url=None, redoc_url=None, openapi_url=None)
dashboard.add_middleware(GZipMiddleware, minimum_size=1024)  # the pages and our script (Plotly's is compressed once, below)
dashboard.mount("/static", StaticFiles(directory=STATIC), name="static")


# matplotlib's Tableau names, which the families declare, in CSS (the service never imports matplotlib)
TABLEAU = {"tab:blue": "#1f77b4", "tab:orange": "#ff7f0e", "tab:green": "#2ca02c", "tab:red": "#d62728", "tab:purple": "#9467bd",
           "tab:brown": "#8c564b", "tab:pink": "#e377c2", "tab:gray": "#7f7f7f", "tab:grey": "#7f7f7f", "tab:olive": "#bcbd22",
           "tab:cyan": "#17becf"}


# the answer bases in the order the page draws them, with what each means
BASIS_LABELS = {OUT_OF_FOLD: "a model that never saw the day", OUT_OF_SAMPLE: "the champion, after its training data",
                IN_SAMPLE: "the champion saw the outcome: hindsight"}


def family_legend() -> dict[str, dict[str, str]]:
    """Title and colour of every signal family: the page names and colours them as the images do."""
    return {name: {"title": f.title, "colour": TABLEAU.get(f.colour, f.colour)} for name, f in load_families().items()}


def inline_json(value: object) -> str:
    """JSON safe inside an HTML element: ``<``, ``>`` and ``&`` as ``\\u003c`` … so no text from a URL (``<!--<script>``,
    ``</script>``) can change how the HTML parser reads the page; JSON.parse reads the escapes back as the characters."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# The security headers (CSP, nosniff, no framing) are sent with every answer of the service by its front door
# (serving.guard.SECURITY_HEADERS), the dashboard's included.


def page(name: str, title: str, request: Request, slots: dict[str, str] | None = None, **values: object) -> HTMLResponse:
    """static/layout.html around static/<name>.html, with the mount point and the page's data filled in (and ``slots``:
    more ``{{slot}}``: HTML pairs, filled as they are)."""
    base = request.scope.get("root_path", "").rstrip("/") or "/dashboard"
    config = {"base": base, "families": family_legend(), "bases": BASIS_LABELS, "hindsight": IN_SAMPLE, **values}
    fill = {"{{content}}": (STATIC / f"{name}.html").read_text(), "{{title}}": html.escape(title), "{{page}}": name,
            "{{config}}": inline_json(config), "{{base}}": base, **(slots or {})}
    text = (STATIC / "layout.html").read_text()
    for slot, value in fill.items():  # content first: its own {{base}} slots are filled after it
        text = text.replace(slot, value)
    return HTMLResponse(text, status_code=200 if "error" not in values else 404)


@dashboard.get("/", response_class=HTMLResponse, include_in_schema=False)
def overview(request: Request) -> HTMLResponse:
    """Every coin: today's P(cascade), side, alert state, freshness and a 90-day sparkline."""
    return page("overview", "cascade-radar — liquidation cascade risk, every coin", request)


@dashboard.get("/coin/{asset}", response_class=HTMLResponse, include_in_schema=False)
def coin(asset: str, request: Request) -> HTMLResponse:
    """One coin: the probability timeline with events and alert episodes, a day's explanation, the replays."""
    served = served_assets(settings_or_exit())  # the service's own coins (any tickers), read as the service reads them
    if coin_key(asset) not in served:
        return page("coin", "cascade-radar — unknown coin", request, asset=asset,
                    error=f"{shown(asset)} is not a coin cascade-radar knows (served here: {', '.join(served)})")
    if asset != asset.upper():
        return RedirectResponse(f"{request.scope.get('root_path', '')}/coin/{asset.upper()}")  # type: ignore[return-value]
    return page("coin", f"cascade-radar — {asset}", request, asset=asset)


@dashboard.get("/glossary", response_class=HTMLResponse, include_in_schema=False)
def glossary(request: Request) -> HTMLResponse:
    """The product's words (SOPR, funding, log-odds, out-of-fold, base rate, ...), from ``cascade_radar.glossary`` as
    docs/glossary.md is: linked from every page's header."""
    return page("glossary", "cascade-radar — glossary", request, slots={"{{glossary}}": words.html_list()},
                assets=served_assets(settings_or_exit()))


@functools.cache
def plotly_gzipped() -> bytes:
    """The chart bundle compressed once per process (compressing 4.8 MB on every request took ~0.2 s)."""
    return gzip.compress(PLOTLY_JS.read_bytes(), compresslevel=6, mtime=0)


# every page's head preloads this script (layout.html): the largest download starts with the page, not once our own
# script has run and asked for it
@dashboard.get("/vendor/plotly.min.js", include_in_schema=False)
def plotly_js(request: Request) -> Response:
    """Plotly's JavaScript: the basic bundle `make setup` fetched, else the full one of the ``plotly`` package (gzipped when
    the client accepts it)."""
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(plotly_gzipped(), media_type="text/javascript", headers={**CACHE, "Content-Encoding": "gzip", "Vary": "Accept-Encoding"})
    return FileResponse(PLOTLY_JS, media_type="text/javascript", headers=CACHE)
