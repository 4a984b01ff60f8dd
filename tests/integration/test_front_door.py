"""Hardening, third round (issue 31): what an anonymous client could grow, hold or confuse at the front door.

Each test fails on the defect it names: /metrics that grew with every distinct path, connections held with half their
headers, heavy downloads rebuilt on every request, error shapes that differed by route, echoed input, last-one-wins
parsing, Unicode case folding, a day given as a number, signal values of 1e308, a third-party script on the docs page,
a cookie without Secure over HTTPS, a redirect built from the Host header, a settings error as a traceback.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from cascade_radar.config import PROJECT_ROOT
from serving.downloads import Downloads
from serving.guard import ApiGuard
from serving.metrics import RequestMetrics
from serving.openapi import REQUEST_MODELS
from tests.support.process import SIGNAL_FIELDS, free_port, settings_env, start_server, stop_server

TOKEN = "s3cret-token-0123456789"


def small_app() -> FastAPI:
    app = FastAPI()
    app.add_api_route("/v1/events", lambda: {"ok": True}, methods=["GET"])
    app.add_api_route("/predict", lambda: {"ok": True}, methods=["POST"])
    return app


def guarded(token: str | None = None, secure_cookie: bool = False) -> ApiGuard:
    return ApiGuard(small_app(), routes=REQUEST_MODELS, max_body_bytes=100_000, max_rows=10, token=token,
                    metrics=RequestMetrics([*REQUEST_MODELS, "/v1/events", "/metrics"]), secure_cookie=secure_cookie)


def series_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


# ------------------------------------------------------------------ 1. /metrics stays flat
def test_metrics_are_labelled_by_route_so_thousands_of_paths_add_no_series() -> None:
    with TestClient(guarded()) as c:
        for i in range(20):
            c.get(f"/warm-up-{i}")
        c.get("/v1/events")
        c.get("/metrics")
        before = series_lines(c.get("/metrics").text)
        for i in range(3000):
            c.get(f"/x{i}")
        after = series_lines(c.get("/metrics").text)
    assert len(after) == len(before)  # the same series: only their counts moved
    assert 'cascade_radar_http_requests_total{method="GET",route="other",status="4xx"} 3020.0' in after
    assert any('route="/v1/events"' in line for line in after) and not any("/x1" in line for line in after)


def test_rejected_requests_add_no_series_either() -> None:
    with TestClient(guarded(token=TOKEN)) as c:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        c.get("/nope-0")
        c.request("M0", "/v1/events")
        c.get("/metrics", headers=auth)
        before = series_lines(c.get("/metrics", headers=auth).text)
        for i in range(1, 1000):
            assert c.get(f"/nope-{i}").status_code == 401
            c.request(f"M{i}", "/v1/events")  # invented methods: one label, OTHER
        after = series_lines(c.get("/metrics", headers=auth).text)
    assert len(after) == len(before)
    assert 'cascade_radar_http_requests_total{method="OTHER",route="/v1/events",status="4xx"} 1000.0' in after


# ------------------------------------------------------------------ 5. heavy downloads: once per data version, a few at a time
def test_a_download_is_built_once_per_key_and_revalidated_by_etag() -> None:
    downloads = Downloads(max_bytes=10_000, concurrency=2)
    built = []

    def make() -> Response:
        built.append(1)
        time.sleep(0.05)
        return Response("day,p\n2025-10-10,0.5\n", media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="x.csv"'})

    answers: list[Response] = []
    threads = [threading.Thread(target=lambda: answers.append(downloads.answer(("BTC", "1", "2025-11-15", "csv"), make))) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and {a.body for a in answers} == {b"day,p\n2025-10-10,0.5\n"}
    etag = answers[0].headers["etag"]
    assert answers[0].headers["content-disposition"] == 'attachment; filename="x.csv"'
    assert downloads.answer(("BTC", "1", "2025-11-15", "csv"), make, if_none_match=etag).status_code == 304
    assert downloads.answer(("BTC", "2", "2025-11-15", "csv"), make).status_code == 200 and len(built) == 2  # a new champion: rebuilt


def test_downloads_are_built_a_few_at_a_time_and_kept_within_their_budget() -> None:
    downloads = Downloads(max_bytes=2_500, concurrency=2)
    running, most = [0], [0]
    lock = threading.Lock()

    def make() -> Response:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return Response(b"x" * 1000)

    threads = [threading.Thread(target=downloads.answer, args=(("key", i), make)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2  # twelve distinct downloads, never more than two built at once
    assert downloads.size == 2000 and len(downloads.items) == 2  # least recently used evicted beyond 2,500 bytes
    refused = downloads.answer(("bad",), lambda: JSONResponse({"status": 404}, status_code=404))
    assert refused.status_code == 404 and ("bad",) not in downloads.items  # an error is never kept


# ------------------------------------------------------------------ 6. one error body, HEAD, no echo
def test_every_status_leaves_in_the_one_error_body() -> None:
    with TestClient(guarded()) as c:
        for method, path, status in (("DELETE", "/v1/events", 405), ("GET", "/v1/nope", 404), ("PUT", "/predict", 405), ("GET", "/nope", 404)):
            r = c.request(method, path)
            assert r.status_code == status and set(r.json()) == {"status", "error", "detail", "field", "errors"}, (method, path, r.text)
            assert r.json()["status"] == status
        head = c.head("/v1/events")
        assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(c.get("/v1/events").content))
        huge = c.get("/v1/nope" + "a" * 60_000)
        assert huge.status_code == 404 and len(huge.content) < 1_000 and "(60,010 characters)" in huge.json()["detail"]
        digits = c.post("/predict", content='{"day": ' + "9" * 5000 + "}", headers={"content-type": "application/json"})
        assert digits.status_code == 400 and digits.json()["detail"] == "a number of 5,000 digits; at most 30" and len(digits.content) < 500


# ------------------------------------------------------------------ 7. no last-one-wins, exact coin names, dates as text
def test_a_key_or_parameter_given_twice_is_refused_naming_it() -> None:
    with TestClient(guarded()) as c:
        r = c.post("/predict", content='{"asset": "BTC", "asset": "ETH"}', headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["field"] == "asset" and "twice" in r.json()["detail"]
        q = c.get("/v1/events?asset=BTC&asset=ETH")
        assert q.status_code == 400 and q.json()["field"] == "asset" and "more than once" in q.json()["detail"]
        assert c.get("/v1/events?asset=BTC&format=json").status_code == 200


@pytest.mark.parametrize(("payload", "field"), [({"asset": "ſol"}, "asset"), ({"asset": "ＢＴＣ"}, "asset"), ({"day": 0}, "day"),
                                                ({"day": 20251010}, "day"), ({"day": "2025-W41-5"}, "day"), ({"day": True}, "day")])
def test_coin_names_are_ascii_and_days_are_strings(payload: dict, field: str) -> None:
    with TestClient(guarded()) as c:
        r = c.post("/predict", json=payload)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_lower_case_coins_and_iso_days_are_still_read() -> None:
    from serving.schemas import PredictRequest

    assert PredictRequest.model_validate({"asset": "sol", "day": "2025-10-10"}).asset == "SOL"


# ------------------------------------------------------------------ 8. plausible signals
def test_posted_signals_are_bounded_by_each_columns_declared_schema() -> None:
    from features.build import input_spec
    from serving.schemas import SignalsRequest

    row = {"date": "2024-01-01", **dict.fromkeys(SIGNAL_FIELDS)}
    assert SignalsRequest.model_validate({"signals": [row]})
    for name in ("price_usd", "oi_close_usd", "taker_buy_share", "sth_sopr"):
        spec = input_spec(name)
        with pytest.raises(ValueError, match=name):
            SignalsRequest.model_validate({"signals": [{**row, name: 1.7e308}]})
        assert SignalsRequest.model_validate({"signals": [{**row, name: spec.upper}]})
    from cascade_radar.config import Settings
    from serving.state import RequestError, ServingState

    state = ServingState(Settings())
    for day in ("0001-01-01", "2008-12-31", "9998-01-01"):  # well-formed, but no market has signals then: 422 naming the row
        posted = SignalsRequest.model_validate({"signals": [row, {**row, "date": day}]}).signals
        with pytest.raises(RequestError, match="signals are dated from 2009-01-03") as refused:
            state.signals_panel(posted)
        assert (refused.value.field, refused.value.status) == ("signals.1.date", 422)


def test_the_store_refuses_what_the_api_refuses() -> None:
    import pandas as pd

    from features.schemas import SchemaError, validate

    frame = pd.DataFrame({"oi_close_usd": [1.7e308]}, index=pd.DatetimeIndex(["2024-01-01"], name="date"))
    with pytest.raises(SchemaError, match="oi_close_usd.*must be <= 1e\\+13 USD"):
        validate("open_interest", frame)


# ------------------------------------------------------------------ 10. cookie, redirect, settings
def test_the_token_cookie_is_secure_over_https_and_the_redirect_is_relative() -> None:
    with TestClient(guarded(token=TOKEN), base_url="https://radar.example") as c:
        assert "; Secure" in c.get(f"/dashboard/?token={TOKEN}").headers["set-cookie"]
    with TestClient(guarded(token=TOKEN)) as c:
        assert "Secure" not in c.get(f"/dashboard/?token={TOKEN}").headers["set-cookie"]
    with TestClient(guarded(token=TOKEN, secure_cookie=True)) as c:  # behind a TLS proxy that speaks plain HTTP to us
        assert "; Secure" in c.get(f"/dashboard/?token={TOKEN}").headers["set-cookie"]
    with TestClient(guarded()) as c:
        r = c.get("/dashboard?x=1", headers={"host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/dashboard/?x=1"


def test_a_setting_the_service_cannot_use_ends_it_in_one_line() -> None:
    env = {**os.environ, "CASCADE_RADAR_SERVING_API_TOKEN": "short"}
    done = subprocess.run([sys.executable, "-c", "import serving.service"], capture_output=True, text=True, env=env, cwd=PROJECT_ROOT, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr and "short" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "setting 'serving_api_token'" in done.stderr


# ------------------------------------------------------------------ 3. the API docs page
def test_the_docs_page_is_ours_with_no_third_party_script_and_the_csp() -> None:
    with TestClient(guarded()) as c:
        page = c.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "googletagmanager" not in page.text and "<script>" not in page.text  # no inline script: the CSP would refuse it anyway
    assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
    sources = [part.split('"')[1] for part in page.text.split("src=")[1:]]
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources)  # every script from the service itself


# ------------------------------------------------------------------ the real server: idle sockets, docs, metrics
@pytest.mark.server
def test_the_real_server_closes_idle_sockets_and_serves_its_own_docs_and_metrics(trained_synthetic, tmp_path: Path) -> None:  # noqa: ANN001
    import httpx

    settings, _, _ = trained_synthetic
    port = free_port()
    proc = start_server({**settings_env(settings), "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
                         "CASCADE_RADAR_ASSETS": '["BTC"]', "CASCADE_RADAR_SERVING_IDLE_TIMEOUT_SECONDS": "1.5"}, port)
    try:
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
        partial = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
        for s in partial:
            s.sendall(b"GET /v1/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.get("/v1/ready").status_code == 200  # a whole request is answered meanwhile
            docs = client.get("/")
            assert "googletagmanager" not in docs.text and "content-security-policy" in docs.headers
            assert client.get("/static_content/swagger-ui-bundle.js").status_code == 200
            assert client.get("/dashboard/static/api-docs.js").status_code == 200
            for i in range(300):
                client.get(f"/x{i}")
            client.get("/metrics")  # the scrape itself is counted once it has answered
            before = series_lines(client.get("/metrics").text)
            for i in range(300, 1300):
                client.get(f"/x{i}")
            after = series_lines(client.get("/metrics").text)
            # the same series, only their counts moved (was ~20 new series, ~6 kB, per distinct path)
            assert [line.rsplit(" ", 1)[0] for line in after] == [line.rsplit(" ", 1)[0] for line in before], set(after) ^ set(before)
            assert 'cascade_radar_http_requests_total{method="GET",route="other",status="4xx"} 1300.0' in after
        time.sleep(3.0)
        for s in silent + partial:
            s.settimeout(2)
            try:
                closed = s.recv(1024) == b""
            except ConnectionResetError:
                closed = True
            assert closed, "a socket that sent no whole request within the idle timeout was kept open"
            s.close()
        kept = socket.create_connection(("127.0.0.1", port))  # a kept-alive connection, idle after its answer
        kept.sendall(b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        kept.settimeout(5)
        assert kept.recv(4096).startswith(b"HTTP/1.1 200")
        started = time.perf_counter()
        while kept.recv(4096):
            pass
        assert time.perf_counter() - started < 4.0
        kept.close()
    finally:
        stop_server(proc)


def test_the_routes_answer_repeat_downloads_from_memory_with_an_etag(trained_synthetic) -> None:  # noqa: ANN001
    settings, _, _ = trained_synthetic
    from serving.service import CascadeRadar

    saved = dict(os.environ)
    os.environ.update(settings_env(settings))
    try:
        with TestClient(CascadeRadar.to_asgi()) as c:
            first = c.get("/v1/signals?asset=BTC&format=csv")
            again = c.get("/v1/signals?asset=BTC&format=csv")
            assert first.status_code == 200 and first.content == again.content and first.headers["etag"] == again.headers["etag"]
            assert c.get("/v1/signals?asset=BTC&format=csv", headers={"if-none-match": first.headers["etag"]}).status_code == 304
            timeline = c.get("/v1/timeline?asset=BTC")
            assert timeline.status_code == 200 and json.loads(timeline.content)["asset"] == "BTC"
            assert c.get("/v1/events?asset=%C5%BFol").status_code == 404  # "ſol": not SOL
            assert c.get("/v1/events?asset=btc").status_code == 200
    finally:
        os.environ.clear()
        os.environ.update(saved)
