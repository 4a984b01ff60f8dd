"""The BentoML service: in-process through its ASGI app, and one real `bentoml serve` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd
import pytest
from bentoml.exceptions import BentoMLException
from starlette.testclient import TestClient

from cascade_radar.config import PROJECT_ROOT, Settings
from features.build import assemble_panel
from features.schemas import SERIES
from features.store import HistoryStore
from serving.schemas import SignalRow
from tests.support.answers import nan_feature_day
from tests.support.process import SIGNAL_FIELDS, free_port, settings_env, signals_payload, start_server, stop_server


@pytest.fixture(scope="module")
def client(trained_synthetic):  # noqa: ANN001, ANN201
    settings, _, _ = trained_synthetic
    from serving.service import CascadeRadar

    saved = dict(os.environ)
    os.environ.update(settings_env(settings))
    try:
        with TestClient(CascadeRadar.to_asgi()) as c:
            yield c
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def second_client(app) -> Iterator[TestClient]:  # noqa: ANN001
    """A client on a second instance of the service beside the module's ``client``. BentoML keeps one current service per
    process and a client's shutdown clears it, which would leave the module's client answering "service isn't
    instantiated yet" to every later test: the module's instance is put back."""
    from _bentoml_sdk.service import set_current_service

    try:
        outer = bentoml.get_current_service()
    except BentoMLException:  # no module client yet
        outer = None
    try:
        with TestClient(app) as c:
            yield c
    finally:
        set_current_service(outer)


def signals_for(settings: Settings, day: pd.Timestamp, rows: int = 365) -> list[dict[str, object]]:
    return signals_payload(assemble_panel(HistoryStore(settings.data_path).panel()), day, rows)["signals"]


def test_predict_equals_the_models_own_probability(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    day = ft.table.index[800]
    r = client.post("/predict", json={"day": str(day.date()), "basis": "champion"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = result.model.predict(ft.table.loc[[day], result.model.features]).iloc[0]
    assert body["p_cascade"] == pytest.approx(expected["p_cascade"], abs=1e-12)
    assert body["p_long"] == pytest.approx(expected["p_long"], abs=1e-12)
    assert body["p_short"] == pytest.approx(expected["p_short"], abs=1e-12)
    assert body["alert"] == (expected["p_cascade"] >= settings.alert_threshold)
    assert body["model"] == {"name": settings.registered_model_name, "version": "1", "alias": "champion"}
    assert body["basis"] == "in-sample" and body["hindsight"] is True and body["horizon_days"] == 14
    assert len(body["top_drivers"]) == 5 and {"feature", "family", "feature_value", "shap"} <= set(body["top_drivers"][0])


def test_a_past_day_defaults_to_out_of_fold_as_in_the_evaluation(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    day = ft.table.index[800]
    oof = result.evaluation.oof["model"].loc[day]
    body = client.post("/predict", json={"day": str(day.date())}).json()
    assert body["basis"] == "out-of-fold" and body["hindsight"] is False and body["model_used"].startswith("a model that never saw this day (walk-forward fold ")
    assert body["p_cascade"] == pytest.approx(float(oof["p_cascade"]), abs=1e-12)  # what the walk-forward said
    explained = client.post("/explain", json={"day": str(day.date())}).json()
    assert {k: v for k, v in explained.items() if k in body and k != "top_drivers"} == {k: v for k, v in body.items() if k != "top_drivers"}
    assert explained["top_drivers"][:5] == body["top_drivers"]  # the explanation is the same answer with every SHAP value
    rows = client.post("/predict_range", json={"start": str(day.date()), "end": str(day.date())}).json()["rows"]
    assert rows[0]["p_cascade"] == pytest.approx(float(oof["p_cascade"]), abs=1e-12) and rows[0]["basis"] == "out-of-fold"
    # the range row is the same answer under the same names, severity and term structure included
    assert {k: v for k, v in body.items() if k in rows[0]} == {**rows[0], "day": body["day"]}
    assert rows[0]["p_major"] is not None and set(rows[0]["p_cascade_by_horizon"]) == set(body["p_cascade_by_horizon"])


def test_predict_defaults_to_the_latest_day_with_core_data(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    body = client.post("/predict", json={}).json()
    assert body["day"] == str(ft.table.index[-1].date())
    assert body["basis"] == "out-of-sample"  # after the last labelled day: no hindsight


def test_predict_signals_agrees_with_predict_on_a_stored_day(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    day = ft.table.index[900]
    posted = client.post("/predict_signals", json={"signals": signals_for(settings, day)})
    stored = client.post("/predict", json={"day": str(day.date())})
    assert posted.status_code == 200, posted.text
    a, b = posted.json(), stored.json()
    assert a["day"] == b["day"]
    for key in ("p_cascade", "p_long", "p_short"):
        assert a[key] == pytest.approx(b[key], abs=1e-9)
    assert [d["feature"] for d in a["top_drivers"]] == [d["feature"] for d in b["top_drivers"]]


def test_explain_returns_the_full_explanation(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    body = client.post("/explain", json={"day": str(ft.table.index[700].date())}).json()
    assert body["sentence"].startswith("Cascade risk within 14 days")
    assert set(body["cascade"]["shap_by_family"]) == set(settings.model.families)  # the families the test model reads, no other
    total = body["cascade"]["base_value"] + sum(body["cascade"]["shap_by_feature"].values())
    assert total == pytest.approx(body["cascade"]["margin"], abs=1e-6)
    assert body["direction_model"]["meaning"].startswith("positive pushes towards a long squeeze")
    # the direction bars' base: the prior they push away from
    assert body["direction_model"]["base_probability"] == pytest.approx(1 / (1 + np.exp(-body["direction_model"]["base_value"])))
    # the warning checklist: all six families of the build-up, with the values behind each sign, read by the model or not
    build_up = {"price", "oi", "funding", "flows", "sopr", "nupl"}
    assert build_up <= {c["family"] for c in body["checklist"]} and all(c["values"] for c in body["checklist"])
    assert {c["family"] for c in body["checklist"] if not c["read_by_model"]} == {c["family"] for c in body["checklist"]} - set(settings.model.families)
    # features shown by their label with the value in its unit, as the families declare them (drivers and checklist)
    from features.build import feature_display, feature_label

    vol = next(c for c in body["checklist"] if c["warning"] == "volatility compressed")
    assert vol["values_text"] == feature_label("price_vol_compression", vol["values"]["price_vol_compression"])
    assert vol["values_text"] == f"volatility compression {vol['values']['price_vol_compression']:.3g}×"
    for d in body["top_drivers"]:
        assert {k: d[k] for k in ("label", "unit", "value_text")} == feature_display(d["feature"], d["feature_value"])
    assert body["side_uncertain"] == (body["side_skill"] is None or body["side_skill"] <= 0
                                      or abs(body["p_long_given_cascade"] - body["long_prior"]) <= settings.alerts.side_band)


def test_predict_range_rows(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    start, end = ft.table.index[500], ft.table.index[509]
    body = client.post("/predict_range", json={"start": str(start.date()), "end": str(end.date())}).json()
    assert len(body["rows"]) == 10 and body["rows"][0]["day"] == str(start.date())
    single = client.post("/predict", json={"day": str(ft.table.index[505].date())}).json()
    assert body["rows"][5]["p_cascade"] == pytest.approx(single["p_cascade"])


@pytest.mark.parametrize(
    ("route", "payload", "status", "names", "field"),
    [
        ("/predict", {"day": "1999-01-01"}, 404, "1999-01-01 is outside the history", "day"),
        ("/predict", {"day": "2023-02-30"}, 400, "day", "day"),
        ("/predict", {"day": "yesterday"}, 400, "day", "day"),
        ("/predict", {"asof": "2023-01-01"}, 400, "asof", "asof"),
        ("/explain", {"day": "2099-01-01"}, 404, "2099-01-01 is outside the history", "day"),
        ("/predict_range", {"start": "2023-01-10", "end": "2023-01-01"}, 422, "end 2023-01-01 is before start", "end"),
        ("/predict_range", {"start": "2023-01-10"}, 400, "end", "end"),
        ("/predict_signals", {"signals": []}, 400, "signals", "signals"),
        ("/predict_signals", {"signals": [{"date": "2023-01-01", "price_usd": "abc"}]}, 400, "price_usd", "signals.0.price_usd"),
        ("/predict_signals", {"signals": [{"date": "2023-01-01", "price_usd": 1.0}]}, 400, "oi_close_usd", "signals.0.oi_close_usd"),
        ("/predict_signals", {"signals": [{"date": "2023-01-01", **dict.fromkeys(SIGNAL_FIELDS), "funding_rate_frac8h": 1.5}]}, 400,
         "funding_rate_frac8h", "signals.0.funding_rate_frac8h"),  # every other key present: the out-of-bounds funding is the fault
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(client: TestClient, route: str, payload: dict, status: int, names: str, field: str) -> None:
    r = client.post(route, json=payload)
    assert r.status_code == status, r.text
    assert names in r.text
    body = r.json()
    assert set(body) == {"status", "error", "detail", "field", "errors"} and body["status"] == status  # the one error shape
    assert body["field"] == field  # exactly the field at fault


def test_attacks_and_odd_clients_get_small_clear_4xx(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    huge = b'{"signals": [' + b"1, " * 7_000_000 + b"1]}"  # ~21 MB, well-formed
    started = time.perf_counter()
    with caplog.at_level("WARNING", logger="cascade_radar.api"):
        r = client.post("/predict_signals", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and time.perf_counter() - started < 1.0 and len(r.content) < 500
    assert len([rec for rec in caplog.records if rec.name == "cascade_radar.api"]) == 1  # one log line, no traceback
    many = client.post("/predict_signals", json={"signals": [1] * 3000})  # under the size limit: errors are capped
    assert many.status_code == 400 and len(many.json()["errors"]) == 5 and "3000 validation error(s)" in many.json()["detail"]
    assert len(many.content) < 2000
    rows = client.post("/predict_signals", json={"signals": [{}] * 4001})
    assert rows.status_code == 400 and rows.json()["field"] == "signals" and "at most 4,000" in rows.json()["detail"]
    for content_type, body in (("text/plain", b'{"day": "2023-01-01"}'), ("application/x-www-form-urlencoded", b"day=2023-01-01"),
                               ("multipart/form-data", b"--x\r\nbroken"), ("multipart/form-data; boundary=x", b"--x\r\nbroken")):
        r = client.post("/predict", content=body, headers={"content-type": content_type})
        assert r.status_code == 415 and r.json()["field"] == "content-type", (content_type, r.text)
    assert client.get("/nope").json()["status"] == 404
    # hostile nesting: refused at once, in the one error body (was: no answer for 60 s, then a bare 500)
    for deep in (b"[" * 100_000, b'{"a":' * 50_000, b'{"signals": ' + b"[" * 17 + b"]" * 17 + b"}"):
        started = time.perf_counter()
        r = client.post("/predict_signals", content=deep, headers={"content-type": "application/json"})
        assert time.perf_counter() - started < 0.1 and r.status_code == 400, r.text
        assert r.json() == {"status": 400, "error": "bad request", "detail": "body is nested too deeply; at most 16 levels of arrays and objects",
                            "field": "body", "errors": []}
    with caplog.at_level("WARNING", logger="cascade_radar.api"):
        caplog.clear()
        utf16 = client.post("/predict", content='{"day": "2023-01-01"}'.encode("utf-16"), headers={"content-type": "application/json"})
    assert utf16.status_code == 400 and utf16.json()["field"] == "body" and utf16.json()["detail"].startswith("body is not UTF-8 (byte 0:")
    assert [rec.getMessage().count("\n") for rec in caplog.records] == [0] and not any(rec.exc_info for rec in caplog.records)
    # an empty and a whitespace-only body are the same request ({}: every field at its default), whatever the content type
    empty = client.post("/predict", content=b"").json()
    for blank, content_type in ((b"  \n\t ", "application/json"), (b" \r\n", "text/plain"), (b"", "application/json")):
        assert client.post("/predict", content=blank, headers={"content-type": content_type}).json() == empty
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method not allowed"


def test_bad_signals_are_4xx(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    rows = signals_for(settings, ft.table.index[900])
    few = client.post("/predict_signals", json={"signals": rows[-30:]})
    assert few.status_code == 422 and "at least 365" in few.text
    gap = client.post("/predict_signals", json={"signals": rows[:10] + rows[11:]})
    assert gap.status_code == 422 and gap.json()["field"] == "signals.10.date" and "consecutive" in gap.text
    for bad in ("NaN", "Infinity", "-Infinity"):
        text = json.dumps({"signals": rows}).replace('"sth_sopr": ' + json.dumps(rows[3]["sth_sopr"]), f'"sth_sopr": {bad}', 1)
        r = client.post("/predict_signals", content=text, headers={"content-type": "application/json"})
        assert r.status_code == 400 and "sth_sopr" in r.text and "finite" in r.text, r.text
    assert client.post("/predict", content="{not json", headers={"content-type": "application/json"}).status_code == 400


def test_events_and_alert_episodes_agree_with_the_other_routes(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    """What the dashboard draws: the events are the labelled ones, and the episodes are exactly the runs of days that
    /predict_range flags ``alert``, each judged against those events."""
    settings, ft, _ = trained_synthetic
    events = client.get("/v1/events", params={"asset": "BTC"}).json()
    assert events["count"] == len(ft.labels.events) > 0
    assert [e["start"] for e in events["events"]] == [str(d.date()) for d in ft.labels.events["start"]]
    first = events["events"][0]
    assert first["total_usd"] == pytest.approx(first["long_usd"] + first["short_usd"])
    assert first["major"] == (first["peak_ratio"] >= settings.labels.major_multiple)
    assert any(e["notable"] for e in events["events"])
    ready = client.get("/v1/ready").json()
    start, end = ready["first_answerable_day"], ready["data_through"]
    rows = client.post("/predict_range", json={"start": start, "end": end}).json()["rows"]
    alert_days = [r["day"] for r in rows if r["alert"]]
    episodes = client.get("/v1/episodes", params={"asset": "BTC"}).json()
    covered = [str(d.date()) for e in episodes["episodes"] for d in pd.date_range(e["first"], e["last"])]
    assert covered == alert_days and episodes["episodes"]
    assert episodes["hits"] + episodes["false_alarms"] + episodes["pending"] + episodes["unjudged"] == len(episodes["episodes"])
    assert sum(sum(c.values()) for c in episodes["by_basis"].values()) == len(episodes["episodes"])
    fired = {r["day"]: r["basis"] for r in rows}
    for basis, counts in episodes["by_basis"].items():
        assert counts["hit"] == sum(e["outcome"] == "hit" and fired[e["first"]] == basis for e in episodes["episodes"])
    starts = pd.to_datetime([e["start"] for e in events["events"]])
    horizon = pd.Timedelta(days=episodes["horizon_days"])
    for e in episodes["episodes"]:
        warned = starts[(starts > pd.Timestamp(e["first"])) & (starts <= pd.Timestamp(e["last"]) + horizon)]
        assert (e["outcome"] == "hit") == (len(warned) > 0), e
        if e["outcome"] == "hit":
            assert e["event_start"] == str(warned[0].date()) and e["lead_days"] == (warned[0] - pd.Timestamp(e["first"])).days
    bad = client.get("/v1/episodes", params={"asset": "BTC", "basis": "oracle"})
    assert bad.status_code == 400 and bad.json()["field"] == "basis"
    unknown = client.get("/v1/events", params={"asset": "XYZ"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "asset"


def test_the_dashboard_pages_and_their_script_are_served_by_the_service(client: TestClient) -> None:
    page = client.get("/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/dashboard/static/dashboard.js" in page.text and '"price": {"title": "price \\u0026 momentum"' in page.text
    assert client.get("/dashboard", follow_redirects=False).status_code == 307
    coin = client.get("/dashboard/coin/BTC")
    assert coin.status_code == 200 and '"asset": "BTC"' in coin.text
    assert client.get("/dashboard/coin/btc", follow_redirects=False).headers["location"].endswith("/dashboard/coin/BTC")
    unknown = client.get("/dashboard/coin/XYZ")
    assert unknown.status_code == 404 and "'XYZ' is not a coin cascade-radar knows" in unknown.text
    hostile = client.get("/dashboard/coin/%3Cimg%20src=x%20onerror=alert(1)%3E")  # echoed only as escaped JSON in the data block
    assert hostile.status_code == 404 and hostile.text.count("</script>") == 2 and "<img" not in hostile.text
    assert "\\u003cimg src=x onerror=alert(1)\\u003e" in hostile.text
    # `<!--<script>` would put the HTML parser in its script-data-escaped state and the page's script would never run
    broken = client.get("/dashboard/coin/%3C!--%3Cscript%3E")
    assert broken.status_code == 404 and "<!--" not in broken.text and "\\u003c!--\\u003cscript\\u003e" in broken.text
    assert broken.text.count("<script") == 2 and broken.text.count("</script>") == 2  # the data block, dashboard.js
    for response in (page, coin, broken, client.get("/dashboard/static/dashboard.js")):
        assert response.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
        assert "'unsafe-inline'" not in response.headers["content-security-policy"].split("script-src")[1].split(";")[0]
        assert (response.headers["x-content-type-options"], response.headers["x-frame-options"]) == ("nosniff", "DENY")
    js = client.get("/dashboard/vendor/plotly.min.js")  # the chart library from the plotly package: no CDN, works offline
    from serving.dashboard import PLOTLY_BASIC, PLOTLY_JS

    # the basic bundle `make setup` fetched from npm (pinned, integrity-checked), else the plotly package's full one
    assert js.status_code == 200 and ("plotly.js (basic - minified) v4.1.1" if PLOTLY_BASIC.exists() else "plotly.js v") in js.text[:400]
    assert js.content == PLOTLY_JS.read_bytes() and len(js.content) > 1_000_000
    assert client.get("/dashboard/static/dashboard.js").status_code == 200
    spec = client.get("/docs.json").json()  # Swagger UI at / shows the document's description: the link to the dashboard
    assert "](/dashboard)" in spec["info"]["description"]
    assert not [p for p in spec["paths"] if p.startswith("/dashboard")]  # pages, not API operations


def test_the_glossary_page_is_the_glossary_and_every_page_links_it(client: TestClient) -> None:
    """/dashboard/glossary shows cascade_radar.glossary's words (docs/glossary.md's), under the same CSP; the overview,
    a coin's page and the glossary itself link it from their header."""
    import html

    from cascade_radar.glossary import TERMS

    glossary = client.get("/dashboard/glossary")
    assert glossary.status_code == 200 and glossary.headers["content-type"].startswith("text/html")
    assert glossary.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
    for term, meaning in TERMS:
        assert f">{html.escape(term)}</dt><dd>{html.escape(meaning)}</dd>" in glossary.text, term
    assert "{{" not in glossary.text and '"assets": ["BTC"' in glossary.text  # every slot filled; the coin links' list
    for path in ("/dashboard/", "/dashboard/coin/BTC", "/dashboard/glossary"):
        assert '<a class="glossary-link" href="/dashboard/glossary">Glossary</a>' in client.get(path).text, path


def test_health_routes(client: TestClient) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    ready = client.get("/v1/ready").json()
    assert ready["ready"] is True and ready["model"]["alias"] == "champion"
    spec = client.get("/docs.json").json()
    assert {"/predict", "/predict_signals", "/explain", "/predict_range"} <= set(spec["paths"])
    import importlib.metadata

    assert spec["info"]["version"] == "2.0.0" == importlib.metadata.version("cascade-radar")  # the one answer schema; the package's
    assert spec["info"]["title"] == "cascade-radar" and spec["info"]["contact"]["name"].startswith("cascade-radar")
    assert "/ping" not in spec["paths"] and {t["name"] for t in spec["tags"]} == {"forecast", "history", "health"}
    assert spec["paths"]["/predict"]["post"]["tags"] == ["forecast"] and spec["paths"]["/v1/signals"]["get"]["tags"] == ["history"]
    forecast = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]
    assert {"day", "p_cascade", "p_long", "p_short", "side", "basis", "age_days", "outdated", "data_through", "missing_families"} <= set(forecast)


def test_not_ready_without_a_champion_and_says_why(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from serving.service import CascadeRadar
    from serving.state import CoinStates, RequestError

    settings = Settings(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}", data_dir=tmp_path / "data", mlruns_dir=tmp_path / "mlruns",
                        assets=["BTC", "ETH"])
    coins = CoinStates.load(settings)
    assert not coins.ready
    assert not (tmp_path / "empty.db").exists() and not (tmp_path / "mlruns").exists()  # looked for, never created
    assert "no MLflow tracking store at" in coins.states["BTC"].reason and str(tmp_path / "empty.db") in coins.states["BTC"].reason
    for asset in ("BTC", "ETH"):
        assert "no champion model" in coins.states[asset].reason and "make train" in coins.states[asset].reason
    fake = SimpleNamespace(coins=coins)
    service = CascadeRadar.inner  # the class under the decorator: call its methods on a not-ready state
    response = service.ready(fake)
    body = json.loads(response.body)
    assert response.status_code == 503 and "no champion model" in body["assets"]["ETH"]["reason"]
    assert service.__is_ready__(fake) is False
    with pytest.raises(RequestError) as err:
        service._state(fake, "ETH")  # noqa: SLF001
    assert err.value.status == 503 and "ETH is not ready" in str(err.value)


def test_every_answer_names_its_coin_and_an_unserved_coin_is_refused(client: TestClient) -> None:
    body = client.post("/predict", json={"asset": "btc"}).json()
    assert body["asset"] == "BTC"
    assert client.post("/explain", json={"asset": "BTC"}).json()["asset"] == "BTC"
    ready = client.get("/v1/ready").json()
    assert ready["assets"]["BTC"]["ready"] is True
    refused = client.post("/predict", json={"asset": "ETH"})  # a known coin without a champion in this registry
    assert refused.status_code == 503 and "no champion model" in refused.json()["detail"] and refused.json()["field"] == "asset"
    assert "no champion model" in ready["assets"]["ETH"]["reason"]
    # any ticker is a coin (issue 37): one the service does not serve is a 404 naming the field and the served coins
    unknown = client.post("/predict", json={"asset": "PEPE"})
    assert unknown.status_code == 404 and unknown.json()["field"] == "asset"
    assert unknown.json()["detail"] == "'PEPE' is not served (served: BTC, ETH, SOL, XRP, DOGE, BNB, ADA)"
    malformed = client.post("/predict", json={"asset": "PE-PE"})  # not a coin name at all: the schema's 400, naming the field
    assert malformed.status_code == 400 and [e["field"] for e in malformed.json()["errors"]] == ["asset"]
    spec = client.get("/docs.json").json()  # the API documents the served coins, in a body and in a query
    assert spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["asset"]["enum"] == \
        ["BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA"]
    (query,) = [p for p in spec["paths"]["/v1/events"]["get"]["parameters"] if p["name"] == "asset"]
    assert query["schema"]["enum"] == ["BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA"]


def test_not_ready_without_history(trained_synthetic, tmp_path: Path) -> None:  # noqa: ANN001
    from serving.state import ServingState

    settings, _, _ = trained_synthetic
    empty = settings.model_copy(update={"data_dir": tmp_path / "nothing"})
    state = ServingState.load(empty)
    assert not state.ready and "no history" in state.reason


@pytest.mark.server
def test_real_bentoml_server_round_trip(trained_synthetic, tmp_path: Path) -> None:  # noqa: ANN001
    import bentoml

    settings, ft, result = trained_synthetic
    port = free_port()
    # only the coin trained here is served: the others are unknown (404), not "not ready" (a 5xx the fuzzer counts)
    proc = start_server({**settings_env(settings), "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true",
                         "CASCADE_RADAR_ASSETS": '["BTC"]'}, port)
    try:
        with bentoml.SyncHTTPClient(f"http://127.0.0.1:{port}", timeout=30) as client:
            assert client.is_ready()
            day = ft.table.index[800]
            body = client.predict({"day": str(day.date()), "basis": "champion"})
            explained = client.explain({"day": str(day.date())})
            ready = client.request("GET", "/v1/ready").json()
        # hostile bodies against the real server: one error body each, at once (deep nesting held a worker for 60 s before)
        import httpx

        base = f"http://127.0.0.1:{port}"
        for hostile in (b"[" * 100_000, b'{"a":' * 50_000, '{"day": "2023-01-01"}'.encode("utf-16")):
            started = time.perf_counter()
            r = httpx.post(f"{base}/predict", content=hostile, headers={"content-type": "application/json"}, timeout=10)
            assert r.status_code == 400 and r.json()["field"] == "body" and time.perf_counter() - started < 1.0, r.text
        blank = httpx.post(f"{base}/predict", content=b" \n ", headers={"content-type": "text/plain"}, timeout=30)
        assert blank.status_code == 200 and blank.json() == httpx.post(f"{base}/predict", content=b"", timeout=30).json()
        page = httpx.get(f"{base}/dashboard/coin/%3C!--%3Cscript%3E", timeout=10)
        assert "<!--" not in page.text and page.headers["x-content-type-options"] == "nosniff"
        # the served document against the served answers: every check schemathesis has, a bounded number of cases
        fuzz = subprocess.run([str(Path(sys.executable).parent / "schemathesis"), "run", f"http://127.0.0.1:{port}/docs.json", "--checks", "all",
                               "--max-examples", "8", "--seed", "7", "--no-color"], capture_output=True, text=True, timeout=300,
                              cwd=PROJECT_ROOT)  # reads schemathesis.toml
    finally:
        stop_server(proc)
    assert fuzz.returncode == 0, fuzz.stdout[-3000:]
    assert " passed" in fuzz.stdout and "failures" not in fuzz.stdout.split("SUMMARY")[-1]
    expected = result.model.predict(ft.table.loc[[day], result.model.features]).iloc[0]
    assert body["p_cascade"] == pytest.approx(expected["p_cascade"], abs=1e-12)
    assert ready["ready"] is True and ready["model"]["version"] == "1"
    explained = explained if isinstance(explained, dict) else explained.model_dump()
    # every field reaches a generated client (undeclared ones used to be dropped)
    assert {"alert", "side", "horizon_days", "model_used", "hindsight", "basis"} <= set(explained)


def test_the_service_follows_the_registry_and_a_failed_gate_says_what_failed(settings: Settings, synthetic_store: HistoryStore,
                                                                             tmp_path: Path) -> None:
    from cascade_radar.config import GateConfig
    from serving.state import CoinStates, RequestError
    from training.train import train

    settings = settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'own.db'}"})  # not the module's store
    strict = settings.model_copy(update={"gate": GateConfig(min_margin=10.0)})
    assert not train(strict, store=synthetic_store).passed_gate  # v1: registered, not champion
    coins = CoinStates.load(settings)
    reason = coins.states["BTC"].reason
    assert "v1 did not pass the champion gate" in reason and "does not beat base_rate" in reason and "will not fix it" in reason
    assert train(settings, store=synthetic_store).passed_gate  # v2 becomes champion while the service runs
    assert coins.refresh(wait=True) == ["BTC"]
    assert coins.states["BTC"].ready and coins.states["BTC"].identity["version"] == "2"
    assert coins.refresh(wait=True) == []  # nothing moved since
    # the champion withdrawn while serving (alias deleted): that coin is not ready at the next check, with why
    from mlflow import MlflowClient

    MlflowClient().delete_registered_model_alias(settings.registered_model_name, "champion")
    assert coins.refresh(force=False) == []  # within the check interval: not looked at yet
    assert coins.refresh(wait=True) == ["BTC"]
    state = coins.states["BTC"]
    assert not state.ready and not coins.ready and state.forecaster is None
    assert state.reason == ("no champion any more: the 'champion' alias of cascade-radar-btc was removed (was version 2); "
                            "answers resume when a champion is registered again")
    with pytest.raises(RequestError) as refused:
        coins.get("BTC")
    assert refused.value.status == 503 and "no champion any more" in refused.value.message
    MlflowClient().set_registered_model_alias(settings.registered_model_name, "champion", "2")  # back: served again
    assert coins.refresh(wait=True) == ["BTC"] and coins.states["BTC"].ready
    # the registry moved away (the database file gone): it says nothing about the alias, so version 2 keeps answering, degraded
    (tmp_path / "own.db").rename(tmp_path / "moved.db")
    assert coins.refresh(wait=True) == []
    assert coins.get("BTC").identity["version"] == "2"
    assert coins.states["BTC"].degraded == ("the MLflow store own.db is gone from its folder; serving version 2 as loaded until the "
                                            "registry reads again")


def test_an_unreadable_registry_keeps_the_loaded_champion_serving_degraded_and_a_removed_alias_does_not(
        trained_synthetic, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    """Issue 31: a locked or corrupt registry took every coin offline, as if each champion had been withdrawn."""
    import gc
    import shutil
    import weakref
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from forecast.predict import CoinForecaster, NotReady
    from serving.service import CascadeRadar
    from serving.state import CoinStates

    settings, _, _ = trained_synthetic
    db = tmp_path / "own.db"  # a copy of the session's registry: this test breaks and edits it
    shutil.copy(settings.tracking_uri.removeprefix("sqlite:///"), db)
    settings = settings.model_copy(update={"mlflow_tracking_uri": f"sqlite:///{db}"})
    coins = CoinStates.load(settings)
    service, fake = CascadeRadar.inner, SimpleNamespace(coins=coins)
    assert coins.states["BTC"].ready and json.loads(service.ready(fake).body)["assets"]["BTC"]["degraded"] is None
    good = db.read_bytes()
    db.write_bytes(b"not an sqlite database " * 200)  # the store corrupt in place
    assert coins.refresh(wait=True) == []
    state = coins.states["BTC"]
    assert state.ready and coins.get("BTC") is state and state.identity["version"] == "1"
    assert state.degraded.startswith("the registry cannot be read (MlflowException") and "DatabaseError" in state.degraded
    assert state.degraded.endswith("; serving version 1 as loaded until the registry reads again")
    response = service.ready(fake)
    body = json.loads(response.body)
    assert response.status_code == 200 and body["assets"]["BTC"]["ready"] is True and body["assets"]["BTC"]["reason"] is None
    assert body["assets"]["BTC"]["degraded"] == state.degraded and body["degraded"] == state.degraded
    assert state.prediction(None)["model"]["version"] == "1"  # it answers
    db.write_bytes(good)  # readable again: the flag clears at the next check
    assert coins.refresh(wait=True) == [] and coins.states["BTC"] is state and state.degraded == ""

    # a new champion whose load fails (the store unreadable between the look and the load): version 1 answers on, saying so
    client = MlflowClient()
    name = settings.registered_model_name
    first = client.get_model_version(name, "1")
    client.create_model_version(name, first.source, first.run_id)
    client.set_registered_model_alias(name, "champion", "2")
    with monkeypatch.context() as patch:
        patch.setattr(CoinForecaster, "load", classmethod(lambda cls, *a, **k: (_ for _ in ()).throw(NotReady("no champion model: locked"))))
        assert coins.refresh(wait=True) == ["BTC"]
    assert coins.get("BTC").identity["version"] == "1"
    assert coins.states["BTC"].degraded == ("champion version 2 could not be loaded (no champion model: locked); serving version 1 "
                                            "until it loads (tried again at the next check)")
    del state
    replaced = weakref.ref(coins.states["BTC"])
    gc.disable()  # the replaced state is freed by reference counting alone, before the heap is trimmed (release_freed_memory)
    try:
        assert coins.refresh(wait=True) == ["BTC"]  # it loads now: swapped in, nothing degraded
    finally:
        gc.enable()
    assert replaced() is None
    assert coins.get("BTC").identity["version"] == "2" and coins.states["BTC"].degraded == ""

    # the alias removed on purpose is a withdrawal, read from a readable registry: not ready at the next check
    client.delete_registered_model_alias(name, "champion")
    assert coins.refresh(wait=True) == ["BTC"]
    assert not coins.states["BTC"].ready and coins.states["BTC"].reason.startswith("no champion any more: the 'champion' alias of "
                                                                                   "cascade-radar-btc was removed (was version 2)")


@pytest.mark.server
def test_a_built_bento_serves_on_its_own_from_another_directory(trained_synthetic, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    from serving.package import package

    settings, ft, result = trained_synthetic
    src = tmp_path / "src"  # a copy of the code: packaging writes beside it, never into the working tree
    for name in ("cascade_radar", "features", "training", "forecast", "serving", "operations"):
        shutil.copytree(PROJECT_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "packaged"))
    manifest = package(settings.model_copy(update={"assets": ["BTC"]}), src / "serving" / "packaged")
    assert manifest["assets"] == ["BTC"] and (src / "serving" / "packaged" / "btc" / "fold_models" / "folds.json").exists()
    env = {"BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "true"}
    env_clean = {k: v for k, v in os.environ.items() if not k.startswith("CASCADE_RADAR_")}  # nothing points at the test stores
    build = subprocess.run([str(Path(sys.executable).parent / "bentoml"), "build", "-f", "serving/bentofile.yaml", ".", "--output", "tag"],
                           cwd=src, env={**env_clean, **env}, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    # this venv has the project installed in editable mode, which would shadow the Bento's own code: put the Bento's
    # src first, as in a container where only the Bento exists
    (bento_src,) = (tmp_path / "bentoml" / "bentos" / "cascade_radar").glob("*/src")
    env["PYTHONPATH"] = str(bento_src)
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env_clean)
    try:
        proc = start_server(env, port, target="cascade_radar:latest", cwd=elsewhere)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        import httpx

        day = ft.table.index[800]
        body = httpx.post(f"http://127.0.0.1:{port}/predict", json={"day": str(day.date()), "basis": "champion"}, timeout=30).json()
        page = httpx.get(f"http://127.0.0.1:{port}/dashboard/coin/BTC", timeout=30)  # the dashboard's files travel in the Bento
        script = httpx.get(f"http://127.0.0.1:{port}/dashboard/static/dashboard.js", timeout=30)
        events = httpx.get(f"http://127.0.0.1:{port}/v1/events", params={"asset": "BTC"}, timeout=30).json()
    finally:
        stop_server(proc)
    assert page.status_code == 200 and script.status_code == 200 and "plotlyReady" in script.text
    assert (bento_src / "serving" / "dashboard" / "static" / "coin.html").exists()
    assert events["count"] == len(ft.labels.events)
    expected = result.model.predict(ft.table.loc[[day], result.model.features]).iloc[0]
    assert body["p_cascade"] == pytest.approx(expected["p_cascade"], abs=1e-12)
    assert body["model"]["version"] == "1"
    requirements = next((tmp_path / "bentoml" / "bentos" / "cascade_radar").glob("*/env/python/requirements.txt")).read_text()
    assert "lightgbm==" in requirements and "pytest" not in requirements and "schemathesis" not in requirements and "locust" not in requirements


def test_one_answer_from_every_interface(client: TestClient, trained_synthetic, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    """`cascade-radar today` and `explain`, /predict, /explain, the dashboard's /predict_range and /v1/events, the ledger row
    and the alert payload give the same P(cascade), side and basis for a coin and day — in-sample, out-of-fold and the
    last answerable day — and a day the API refuses, the CLI refuses too, with the same reason."""
    from cli.main import main as cli
    from operations.alerts import payload
    from operations.daily import daily

    settings, ft, result = trained_synthetic
    ready = client.get("/v1/ready").json()["assets"]["BTC"]
    folds = result.evaluation.folds
    days = [str(folds[0].test_start.date() - pd.Timedelta(days=30)), str(ft.table.index[800].date()), ready["data_through"]]
    ops = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"ledger_file": tmp_path / "ledger.jsonl", "update_store": False}),
                                      "reports_dir": tmp_path / "reports"})
    ledger = {r["day"]: r for r in daily(ops, days=[pd.Timestamp(d) for d in days], log=lambda m: None).appended}
    os.environ["CASCADE_RADAR_REPORTS_DIR"] = str(tmp_path / "reports")
    assert cli(["today", "--json", "--asset", "BTC"]) == 3  # the synthetic history is old: exit 3, and the answer all the same
    (today,) = json.loads(capsys.readouterr().out)
    same = ("asset", "day", "p_cascade", "p_long", "p_short", "side", "side_uncertain", "p_long_given_cascade", "long_prior", "alert", "basis",
            "model", "model_used", "missing_families", "checklist")
    bases = set()
    for day in days:
        api = client.post("/predict", json={"day": day}).json()
        explained = client.post("/explain", json={"day": day}).json()
        (row,) = client.post("/predict_range", json={"start": day, "end": day}).json()["rows"]
        assert cli(["explain", "--date", day, "--asset", "BTC"]) == 0
        capsys.readouterr()
        written = json.loads((tmp_path / "reports" / "explanations" / f"{day}.json").read_text())
        alert = payload(ledger[day], "test")
        answers = [api, explained, written, ledger[day], alert] + ([today] if day == ready["data_through"] else [])
        for other in answers:
            assert {k: other[k] for k in same} == {k: api[k] for k in same}, day
        assert {k: row[k] for k in ("p_cascade", "p_long", "p_short", "side", "alert", "basis")} == {k: api[k] for k in ("p_cascade", "p_long", "p_short", "side", "alert", "basis")}
        assert written["sentence"] == api["sentence"] == ledger[day]["sentence"]
        bases.add(api["basis"])
    assert bases == {"in-sample", "out-of-fold", "out-of-sample"}  # each basis met once
    # the event leads the dashboard shows are the API's, from the same daily numbers
    events = client.get("/v1/events", params={"asset": "BTC"}).json()["events"]
    warned = [e for e in events if e["first_alert"]]
    assert warned
    for e in warned:
        first = client.post("/predict", json={"day": e["first_alert"]}).json()
        assert first["alert"] and first["side"] == e["side_at_first_alert"] and first["basis"] == e["basis_at_first_alert"]
        assert 1 <= e["lead_days"] <= settings.labels.horizon_days
    # a refused day: the same reason from the API and the CLI
    outside = "1999-01-01"
    refused = client.post("/predict", json={"day": outside})
    assert refused.status_code == 404
    assert cli(["explain", "--date", outside, "--asset", "BTC"]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith(refused.json()["detail"]) and err.startswith("error: --date 1999-01-01: ")


def test_an_api_token_guards_every_route_but_the_probes_and_the_dashboard_carries_it() -> None:
    """With `serving_api_token` set: no token, a wrong one -> 401 in the one error body; the Bearer header, or the dashboard
    opened once with ?token= (an HttpOnly cookie carries it to the pages and their API calls), pass; /readyz, /livez stay open."""
    from fastapi import FastAPI

    from serving.guard import ApiGuard
    from serving.openapi import REQUEST_MODELS

    app = FastAPI()
    for path in ("/readyz", "/livez", "/metrics", "/v1/forecasts", "/dashboard/", "/dashboard/static/dashboard.js"):
        app.add_api_route(path, lambda: {"ok": True}, methods=["GET"])
    app.add_api_route("/predict", lambda: {"ok": True}, methods=["POST"])
    guarded = ApiGuard(app, routes=REQUEST_MODELS, max_body_bytes=10_000, max_rows=10, token="s3cret-token")
    with TestClient(guarded) as c:
        for path in ("/v1/forecasts", "/dashboard/", "/dashboard/static/dashboard.js"):
            refused = c.get(path)
            assert refused.status_code == 401 and refused.json()["field"] == "authorization" and "s3cret" not in refused.text
            assert refused.headers["www-authenticate"] == 'Bearer realm="cascade-radar"'
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get(path, headers={"Authorization": "Bearer s3cret-token"}).json() == {"ok": True}
        assert c.post("/predict", json={}).status_code == 401
        assert c.post("/predict", json={}, headers={"Authorization": "Bearer s3cret-token"}).json() == {"ok": True}
        assert c.get("/metrics").status_code == 401  # the front door's own metrics need the token too
        assert c.get("/metrics", headers={"Authorization": "Bearer s3cret-token"}).text.startswith("# HELP cascade_radar_http_requests")
        assert c.get("/v1/forecasts?token=s3cret-token").status_code == 401  # a token in a query string only opens the dashboard
        assert [c.get(p).status_code for p in ("/readyz", "/livez")] == [200, 200]
        opened = c.get("/dashboard/?token=s3cret-token")
        assert opened.status_code == 200 and "HttpOnly; SameSite=Strict" in opened.headers["set-cookie"]
        assert c.get("/dashboard/static/dashboard.js").status_code == 200 and c.get("/v1/forecasts").json() == {"ok": True}  # the cookie
    with TestClient(ApiGuard(app, routes=REQUEST_MODELS, max_body_bytes=10_000, max_rows=10)) as open_client:  # off by default
        assert open_client.get("/v1/forecasts").json() == {"ok": True}


def test_a_body_that_trickles_in_is_cut_off_with_a_408() -> None:
    """A client that sends its headers and then holds the socket is answered 408 after the read timeout, not served forever."""
    import asyncio

    from serving.guard import ApiGuard
    from serving.openapi import REQUEST_MODELS

    async def never_called(scope, receive, send) -> None:  # noqa: ANN001
        raise AssertionError("the app must not see a request whose body never arrived")

    async def trickle() -> dict:
        await asyncio.sleep(3600)
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/predict", "method": "POST", "headers": [(b"content-type", b"application/json"), (b"content-length", b"20")],
             "query_string": b""}
    started = time.perf_counter()
    asyncio.run(ApiGuard(never_called, routes=REQUEST_MODELS, max_body_bytes=10_000, max_rows=10, read_timeout=0.2)(scope, trickle, send))
    assert 0.2 <= time.perf_counter() - started < 1.0
    assert sent[0]["status"] == 408 and json.loads(sent[1]["body"])["detail"] == "the body did not arrive within 0.2 s"


def test_the_signals_route_serves_the_numbers_the_features_are_built_from(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    """/v1/signals: per day, the assembled panel's own values, each column in its own unit (funding a fraction per 8 h, its
    pane drawn in % per 8 h), JSON or CSV."""
    settings, ft, _ = trained_synthetic
    panel = assemble_panel(HistoryStore(settings.data_path).panel())
    day = ft.table.index[-100]
    got = client.get("/v1/signals", params={"asset": "BTC", "start": str(day.date()), "end": str((day + pd.Timedelta(days=9)).date())})
    assert got.status_code == 200
    body = got.json()
    assert [p["name"] for p in body["panes"]][:4] == ["price", "liquidations", "open_interest", "funding"]
    assert {p["name"]: (p["unit"], p["scale"]) for p in body["panes"]}["funding"] == ("% per 8 h", 100.0)  # how the chart draws it
    assert len(body["rows"]) == 10 and body["rows"][0]["day"] == str(day.date())
    row = body["rows"][0]
    assert row["price_usd"] == pytest.approx(panel.loc[day, "price_usd"], rel=1e-12)
    assert row["liq_long_usd"] == pytest.approx(panel.loc[day, "liq_long_usd"], rel=1e-12)
    assert row["oi_close_usd"] == pytest.approx(panel.loc[day, "oi_close_usd"], rel=1e-12)
    assert row["funding_rate_frac8h"] == pytest.approx(panel.loc[day, "funding_rate_frac8h"], rel=1e-12)  # a fraction, as named
    csv = client.get("/v1/signals", params={"asset": "BTC", "start": str(day.date()), "end": str(day.date()), "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and 'filename="cascade-radar-signals-BTC.csv"' in csv.headers["content-disposition"]
    header, first = csv.text.splitlines()[1:3]
    assert header.startswith("day,price_usd [USD],liq_long_usd [USD]") and first.startswith(f"{day.date()},")
    assert "funding_rate_frac8h [fraction per 8 h]" in header
    assert float(first.split(",")[1]) == pytest.approx(panel.loc[day, "price_usd"], rel=1e-9)
    assert client.get("/v1/signals", params={"asset": "BTC", "start": "1990-01-01"}).json()["field"] == "start"
    assert client.get("/v1/signals", params={"asset": "BTC", "format": "xml"}).json()["field"] == "format"
    assert client.get("/v1/signals", params={"asset": "BTC", "start": "2021-02-01", "end": "2021-01-01"}).status_code == 422


# a column's name states its unit (features.schemas): every column that says one holds it
SUFFIX_UNITS = {"_usd": "USD", "_frac8h": "fraction per 8 h", "_frac": "fraction", "_coin": "coin"}


def test_signals_rows_post_back_to_predict_signals_and_get_predicts_answer(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    """One name, one unit: every /v1/signals column holds the store's unit (its name's), so its numbers go back in as they
    came out — `format=signals` gives a /predict_signals body of every input, answered like /predict answers the day."""
    from features.build import input_spec
    from features.schemas import column_spec

    settings, ft, _ = trained_synthetic
    panel = assemble_panel(HistoryStore(settings.data_path).panel())
    day = ft.table.index[900]
    start = day - pd.Timedelta(days=29)

    def same_as_the_store(column: str, values: list[float | None], days: list[str]) -> None:
        """``column``'s values are the assembled panel's, unscaled, in the unit its name and the store declare."""
        unit = input_spec(column).unit
        for suffix, said in SUFFIX_UNITS.items():
            if column.endswith(suffix):
                assert unit == said, f"{column} is named {suffix} but holds {unit}"
                break
        if column in {c for schema in SERIES.values() for c in schema.columns}:
            assert column_spec(column).unit == unit, column
        want = panel.reindex(index=pd.DatetimeIndex(days), columns=[column])[column].to_numpy(dtype=float)  # a column not stored: null
        got = np.array([np.nan if v is None else v for v in values], dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=column)

    shown = client.get("/v1/signals", params={"asset": "BTC", "start": str(start.date()), "end": str(day.date())}).json()
    days = [r["day"] for r in shown["rows"]]
    columns = {s["column"]: s["unit"] for p in shown["panes"] for s in p["series"]}
    assert set(shown["rows"][0]) == {"day", *columns} and "funding_rate_frac8h" in columns
    for column, unit in columns.items():
        assert unit == input_spec(column).unit, column  # the unit the answer states is the store's
        same_as_the_store(column, [r[column] for r in shown["rows"]], days)

    body = client.get("/v1/signals", params={"asset": "BTC", "end": str(day.date()), "format": "signals"}).json()
    assert set(body) == {"asset", "signals"} and body["asset"] == "BTC"
    rows = body["signals"]
    assert set(rows[0]) == set(SignalRow.model_fields)  # every field /predict_signals reads, no other
    assert rows[0]["date"] == str(panel.index[0].date()) and rows[-1]["date"] == str(day.date())  # default: as many days as one body holds
    for column in SIGNAL_FIELDS:
        same_as_the_store(column, [r[column] for r in rows], [r["date"] for r in rows])
    posted = client.post("/predict_signals", json=body)
    assert posted.status_code == 200, posted.text
    stored = client.post("/predict", json={"asset": "BTC", "day": str(day.date())}).json()
    assert posted.json()["day"] == stored["day"]
    for key in ("p_cascade", "p_long", "p_short"):
        assert posted.json()[key] == pytest.approx(stored[key], abs=1e-9), key
    shorter = client.get("/v1/signals", params={"asset": "BTC", "start": str((day - pd.Timedelta(days=399)).date()), "end": str(day.date()),
                                                "format": "signals"}).json()
    assert len(shorter["signals"]) == 400 and shorter["signals"] == rows[-400:]
    assert client.get("/v1/signals", params={"asset": "BTC", "format": "predict"}).json()["field"] == "format"


def test_every_event_says_the_scope_of_the_series_that_sized_it(client: TestClient) -> None:
    """An event's dollars come from one liquidation series: each event names its scope, as the stored series declares it."""
    from features.labels import LIQUIDATION_SERIES

    scopes = {SERIES[s].scope for s in ("liquidations", "liquidations_binance", "liquidations_coinalyze")}
    assert {name for _, _, name in LIQUIDATION_SERIES} == scopes and "" not in scopes
    events = client.get("/v1/events", params={"asset": "BTC"}).json()["events"]
    assert {e["series"] for e in events} == {"Binance+OKX+Bybit", "Binance only"}  # the synthetic history: both scopes


def test_the_reconstruction_route_tells_an_events_build_up_and_the_models_path(client: TestClient) -> None:
    events = client.get("/v1/events", params={"asset": "BTC"}).json()["events"]
    event = [e for e in events if e["notable"]][-1]
    built = client.get("/v1/reconstruction", params={"asset": "BTC", "event": event["start"]}).json()
    assert built["text"].startswith(f"In the 30 days before {event['start']}: price ") and built["text"].endswith("→ cascade.")
    assert built["event"]["start"] == event["start"] and built["model"]["first_alert"] == event["first_alert"]
    assert {"price", "oi", "funding"} <= {m["family"] for m in built["families"]} and built["sequence"]
    assert built["window"]["last"] == str((pd.Timestamp(event["start"]) - pd.Timedelta(days=1)).date())
    refused = client.get("/v1/reconstruction", params={"asset": "BTC", "event": "1990-01-01"})
    assert refused.status_code == 404 and refused.json()["field"] == "event"
    assert client.get("/v1/reconstruction", params={"asset": "BTC", "event": "soon"}).json()["field"] == "event"


def test_every_charts_numbers_download_from_a_route(client: TestClient) -> None:
    """/v1/timeline is /predict_range's rows with each family's push as /explain says it; it, the events and the episodes
    download as CSV with the same numbers."""
    import io

    ready = client.get("/v1/ready").json()
    start, end = ready["first_answerable_day"], ready["data_through"]
    ranged = client.post("/predict_range", json={"start": start, "end": end}).json()
    timeline = client.get("/v1/timeline", params={"asset": "BTC"}).json()  # default: every answerable day
    assert (timeline["start"], timeline["end"]) == (start, end) and timeline["refused"] == ranged["refused"]
    assert [{k: v for k, v in r.items() if k != "shap_by_family"} for r in timeline["rows"]] == ranged["rows"]
    day = timeline["rows"][-7]
    explained = client.post("/explain", json={"asset": "BTC", "day": day["day"]}).json()
    assert day["shap_by_family"] == pytest.approx(explained["cascade"]["shap_by_family"], abs=1e-12)
    csv = client.get("/v1/timeline", params={"asset": "BTC", "start": day["day"], "end": end, "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv") and 'filename="cascade-radar-timeline-BTC.csv"' in csv.headers["content-disposition"]
    assert csv.text.startswith(f"# cascade-radar timeline of BTC, {day['day']}..{end}, basis auto")
    table = pd.read_csv(io.StringIO(csv.text), comment="#")
    assert list(table["day"]) == [r["day"] for r in timeline["rows"][-7:]]
    assert table["p_cascade"].iloc[0] == pytest.approx(day["p_cascade"], rel=1e-9)
    assert table[f"shap_by_family.{next(iter(day['shap_by_family']))}"].iloc[0] == pytest.approx(next(iter(day["shap_by_family"].values())), rel=1e-9)
    events = client.get("/v1/events", params={"asset": "BTC"}).json()["events"]
    events_csv = pd.read_csv(io.StringIO(client.get("/v1/events", params={"asset": "BTC", "format": "csv"}).text), comment="#")
    assert list(events_csv["start"]) == [e["start"] for e in events] and events_csv["total_usd"].iloc[0] == pytest.approx(events[0]["total_usd"])
    episodes = client.get("/v1/episodes", params={"asset": "BTC"}).json()["episodes"]
    episodes_csv = pd.read_csv(io.StringIO(client.get("/v1/episodes", params={"asset": "BTC", "format": "csv"}).text), comment="#")
    assert list(episodes_csv["first"]) == [e["first"] for e in episodes]
    assert list(episodes_csv["basis"]) == ["+".join(e["basis"]) for e in episodes]
    for route in ("/v1/timeline", "/v1/events", "/v1/episodes"):
        bad = client.get(route, params={"asset": "BTC", "format": "xml"})
        assert bad.status_code == 400 and bad.json()["field"] == "format", route
    assert client.get("/v1/timeline", params={"asset": "BTC", "start": "2021-13-01"}).json()["field"] == "start"
    assert client.get("/v1/timeline", params={"asset": "BTC", "basis": "oracle"}).json()["field"] == "basis"
    assert client.get("/v1/timeline", params={"asset": "BTC", "start": end, "end": start}).status_code == 422


def test_the_backtest_route_serves_what_make_backtest_wrote(client: TestClient, trained_synthetic) -> None:  # noqa: ANN001
    """/v1/backtest: a 404 that says to run `make backtest` before one exists; then the numbers ``read_backtest`` reads —
    the table, every rule's curve for one book and leverage, the forecast's cut days as the alert shading — the same as CSV,
    a 304 for a client that has them (until the files change), and a 4xx naming the field for every bad parameter."""
    import io
    import shutil

    from tests.support.backtest import write_synthetic_backtest
    from training.backtest import BACKTEST_DIR, read_backtest

    settings, _, _ = trained_synthetic
    directory = settings.reports_root / BACKTEST_DIR
    assert not directory.exists()
    before = client.get("/v1/backtest", params={"asset": "BTC"})
    assert before.status_code == 404 and "run `make backtest`" in before.json()["detail"] and before.json()["field"] is None
    try:
        write_synthetic_backtest(settings, settings.reports_root)
        table, curves = read_backtest(settings, "BTC")
        r = client.get("/v1/backtest", params={"asset": "btc"})
        assert r.status_code == 200, r.text
        body = r.json()
        first = settings.backtest.leverages[0]
        assert (body["asset"], body["book"], body["leverage"]) == ("BTC", "long", first)  # the defaults: long, the first leverage
        assert body["settings"]["leverages"] == sorted(set(table["leverage"])) == sorted(settings.backtest.leverages)
        assert (body["settings"]["cut_leverage"], body["settings"]["fee"]) == (settings.backtest.cut_leverage, settings.backtest.fee)
        assert "out of fold" in body["about"] and body["caveat"].startswith("Daily bars")
        assert body["rules"]["volatility"] == "cut when volatility is high" and "always_on" not in " ".join(body["rules"].values())
        # the table: every (book, leverage, rule), each number as read_backtest reads it (NaN: null)
        assert [{k: row[k] for k in table.columns} for row in body["rows"]] == [
            {k: None if pd.isna(v) else v for k, v in want.items()} for want in table.to_dict(orient="records")]
        # the curves: every day of one book and leverage, every rule; chance with its daily band
        chosen = curves[(curves["book"] == "long") & (curves["leverage"] == first)]
        forecast = chosen[chosen["rule"] == "forecast"]
        assert body["dates"] == [str(d.date()) for d in forecast["date"]] and len(body["dates"]) > 300
        drawn = {c["rule"]: c for c in body["curves"]}
        assert list(drawn) == ["forecast", "always_on", "volatility", "placebo", "relative_risk"]
        for rule, c in drawn.items():
            assert c["equity"] == list(chosen.loc[chosen["rule"] == rule, "equity"]), rule
        placebo = chosen[chosen["rule"] == "placebo"]
        assert drawn["placebo"]["equity_p5"] == list(placebo["equity_p5"]) and drawn["placebo"]["equity_p95"] == list(placebo["equity_p95"])
        assert drawn["placebo"]["cut"] is None and drawn["forecast"]["equity_p5"] is None
        assert drawn["forecast"]["exposure"] == list(forecast["exposure"])
        # the alert shading: the forecast's cut days, as runs of days
        cut = [str(d.date()) for d, on in zip(forecast["date"], forecast["cut"], strict=True) if str(on) == "True"]
        runs = [str(d.date()) for run in drawn["forecast"]["cut_runs"] for d in pd.date_range(run["first"], run["last"])]
        assert runs == cut and cut and drawn["forecast"]["cut"] == [d in set(cut) for d in body["dates"]]
        assert sum(drawn["forecast"]["cut"]) == next(row["days_cut"] for row in body["rows"]
                                                     if (row["book"], row["leverage"], row["rule"]) == ("long", first, "forecast"))
        # another book and leverage
        side = client.get("/v1/backtest", params={"asset": "BTC", "book": "side", "leverage": "10"}).json()
        other = curves[(curves["book"] == "side") & (curves["leverage"] == 10) & (curves["rule"] == "always_on")]
        assert (side["book"], side["leverage"]) == ("side", 10) and side["curves"][1]["equity"] == list(other["equity"])
        assert side["rows"] == body["rows"]
        # CSV: the table, and the curves of the selection, with the same numbers
        csv = client.get("/v1/backtest", params={"asset": "BTC", "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv") and 'filename="cascade-radar-backtest-BTC.csv"' in csv.headers["content-disposition"]
        pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(csv.text), comment="#"), table, check_dtype=False)
        lines = client.get("/v1/backtest", params={"asset": "BTC", "format": "csv", "what": "curves", "book": "side", "leverage": "10"})
        assert 'filename="cascade-radar-backtest-BTC-curves-side-10x.csv"' in lines.headers["content-disposition"]
        read = pd.read_csv(io.StringIO(lines.text), comment="#", parse_dates=["date"])
        want = curves[(curves["book"] == "side") & (curves["leverage"] == 10)].reset_index(drop=True)
        pd.testing.assert_frame_equal(read[["date", "rule", "equity"]], want[["date", "rule", "equity"]], check_dtype=False)
        # HEAD, and a client that has the answer: 304 until the files change
        head = client.head("/v1/backtest", params={"asset": "BTC"})
        assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == r.headers["etag"]
        assert client.get("/v1/backtest", params={"asset": "BTC"}, headers={"if-none-match": r.headers["etag"]}).status_code == 304
        later = (directory / "backtest.csv").stat().st_mtime + 60
        os.utime(directory / "backtest.csv", (later, later))  # `make backtest` ran again
        again = client.get("/v1/backtest", params={"asset": "BTC"}, headers={"if-none-match": r.headers["etag"]})
        assert again.status_code == 200 and again.json()["written_at"] != body["written_at"]
        # bad parameters: a 4xx naming the field
        for params, status, field in (({"format": "xml"}, 400, "format"), ({"book": "flat"}, 400, "book"), ({"what": "chart"}, 400, "what"),
                                      ({"leverage": "three"}, 400, "leverage"), ({"leverage": "nan"}, 400, "leverage"),
                                      ({"leverage": "7"}, 404, "leverage"), ({"asset": "XYZ"}, 404, "asset"),
                                      ({"asset": "pooled"}, 404, "asset")):  # one coin backtested: no pooled book
            bad = client.get("/v1/backtest", params={"asset": "BTC", **params})
            assert (bad.status_code, bad.json()["field"]) == (status, field), (params, bad.text)
        assert "backtested: 3, 10" in client.get("/v1/backtest", params={"leverage": "7"}).json()["detail"]
        twice = client.get("/v1/backtest?asset=BTC&book=long&book=side")
        assert twice.status_code == 400 and twice.json()["field"] == "book"
        # listed where the routes are: the OpenAPI document, the metrics' route labels
        spec = client.get("/docs.json").json()["paths"]["/v1/backtest"]["get"]
        assert set(spec["responses"]) == {"200", "400", "401", "404"} and spec["tags"] == ["history"]
        assert spec["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/BacktestAnswer"}
        assert {p["name"]: p["schema"].get("enum") for p in spec["parameters"]}["book"] == ["long", "short", "side"]
        assert 'route="/v1/backtest"' in client.get("/metrics").text
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    assert client.get("/v1/backtest", params={"asset": "BTC"}).status_code == 404


def test_every_headline_probability_comes_with_the_same_yardstick(client: TestClient, trained_synthetic, tmp_path: Path,  # noqa: ANN001
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """base_rate, relative_risk and percentile: the same three numbers from /predict, /explain, `cascade-radar today --json`,
    the ledger row and the alert payload (whose text says them), printed by `today`; /v1/calibration serves the bins the
    champion carries."""
    from cascade_radar.rules import ordinal, yardstick_said
    from cli.main import main as cli
    from operations.alerts import payload
    from operations.daily import daily

    settings, _, result = trained_synthetic
    coin = result.model.yardstick["coins"]["BTC"]
    day = client.get("/v1/ready").json()["assets"]["BTC"]["data_through"]
    ops = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"ledger_file": tmp_path / "ledger.jsonl", "update_store": False})})
    (row,) = daily(ops, days=[pd.Timestamp(day)], log=lambda m: None).appended
    alert = payload(row, "test")
    api = client.post("/predict", json={"asset": "BTC"}).json()
    explained = client.post("/explain", json={"asset": "BTC", "day": day}).json()
    assert cli(["today", "--json", "--asset", "BTC"]) == 3  # the synthetic history is old: exit 3, and the answer all the same
    (today,) = json.loads(capsys.readouterr().out)
    three = ("base_rate", "relative_risk", "percentile", "base_rate_basis")
    assert api["base_rate"] == coin["base_rate"] and api["relative_risk"] == pytest.approx(api["p_cascade"] / coin["base_rate"], rel=1e-12)
    assert 0 <= api["percentile"] <= 100
    for other in (explained, today, row, alert):
        assert {k: other[k] for k in three} == {k: api[k] for k in three}
    said = yardstick_said(api["p_cascade"], api["horizon_days"], api["base_rate"], api["relative_risk"], api["percentile"])
    assert said in alert["text"] and said == (f"P(cascade within 14 d) {api['p_cascade']:.2f} — base rate {coin['base_rate']:.2f}, "
                                              f"{api['relative_risk']:.1f}× normal, {ordinal(round(api['percentile']))} percentile")
    assert cli(["today", "--asset", "BTC"]) == 3
    assert f"  {said}\n" in capsys.readouterr().out
    calibration = client.get("/v1/calibration", params={"asset": "BTC"})
    assert calibration.status_code == 200
    body = calibration.json()
    assert body["bins"] == coin["calibration"] and body["base_rate"] == api["base_rate"] and body["base_rate_basis"] == api["base_rate_basis"]
    assert client.get("/v1/calibration", params={"asset": "XYZ"}).status_code == 404
    spec = client.get("/docs.json").json()["paths"]["/v1/calibration"]["get"]
    assert spec["tags"] == ["history"] and set(spec["responses"]) == {"200", "400", "401", "404", "503"}
    from serving.schemas import Forecast

    fields = Forecast.model_json_schema()["properties"]  # declared, with what each number is
    assert {"base_rate", "relative_risk", "percentile", "base_rate_basis"} <= set(fields) and "out-of-fold" in fields["base_rate"]["description"]


def test_missing_data_is_never_a_driver_anywhere(trained_with_a_gap: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A day with a family missing (open interest, stale) and a day with a present family's feature missing: no interface —
    /predict, /explain, /v1/timeline, `cascade-radar explain`, the PNG — names a missing value a driver or gives it a share
    of its family's push; a missing family's push is null, said "missing (scored as missing)"; the arithmetic stays whole
    (base + every SHAP value = margin; base + shap_of_missing + every family's push = margin)."""
    from cli.main import main as cli
    from features.build import feature_display
    from features.families import family_of, title_of
    from forecast.predict import CoinForecaster
    from serving.service import CascadeRadar
    from training.explain import plot_day, waterfall_rows

    gappy = trained_with_a_gap
    for key, value in {**settings_env(gappy), "CASCADE_RADAR_REPORTS_DIR": str(tmp_path / "reports")}.items():
        monkeypatch.setenv(key, value)
    forecaster = CoinForecaster.load(gappy)
    last = str(forecaster.last_day.date())
    nan_day, nan_feature = nan_feature_day(forecaster)
    with second_client(CascadeRadar.to_asgi()) as client:
        for day in (last, nan_day):
            predicted = client.post("/predict", json={"day": day}).json()
            x = client.post("/explain", json={"day": day}).json()
            cascade, absent = x["cascade"], set(x["missing_features"])
            if day == last:
                assert x["missing_families"] == ["oi"] == predicted["missing_families"]
                assert {f for f in cascade["shap_by_feature"] if family_of(f) == "oi"} <= absent
                assert abs(sum(cascade["shap_by_feature"][f] for f in absent if family_of(f) == "oi")) > 1e-6  # the model did push on it
                assert cascade["shap_by_family"]["oi"] is None and cascade["probability_effect_by_family"]["oi"] is None
                assert x["direction_model"]["shap_by_family"]["oi"] is None
                said = " No data that day: open interest (scored as missing)."
                assert x["sentence"].endswith(said) and "open interest" not in x["sentence"].removesuffix(said)  # never a driver
            else:
                assert x["missing_families"] == [] and nan_feature in absent and x["feature_values"][nan_feature] is None
            # drivers: never a missing value (the API's five and the explanation's ten)
            for drivers in (predicted["top_drivers"], x["top_drivers"]):
                assert drivers and not {d["feature"] for d in drivers} & absent
                assert all(d["feature_value"] is not None and d["value_text"] != "no data" for d in drivers)
            # each family's push counts its features with a value; the whole still adds up
            for model in (cascade, x["direction_model"]):
                shap = model["shap_by_feature"]
                for family, push in model["shap_by_family"].items():
                    if family not in x["missing_families"]:
                        assert push == pytest.approx(sum(v for f, v in shap.items() if family_of(f) == family and f not in absent), abs=1e-12)
                assert model["shap_of_missing"] == pytest.approx(sum(shap[f] for f in absent), abs=1e-12)
                pushes = sum(v for v in model["shap_by_family"].values() if v is not None)
                assert model["base_value"] + model["shap_of_missing"] + pushes == pytest.approx(model["margin"], abs=1e-9)
                assert model["base_value"] + sum(shap.values()) == pytest.approx(model["margin"], abs=1e-9)  # raw SHAP: additive
            if day == nan_day:  # the family of the missing feature: its push leaves that feature's value (and its kin's) out
                family = family_of(nan_feature)
                raw = sum(v for f, v in cascade["shap_by_feature"].items() if family_of(f) == family)
                gaps = sum(v for f, v in cascade["shap_by_feature"].items() if family_of(f) == family and f in absent)
                assert abs(cascade["shap_by_feature"][nan_feature]) > 0 and cascade["shap_by_family"][family] == pytest.approx(raw - gaps, abs=1e-12)
            # /v1/timeline: the same pushes, null for a missing family
            (row,) = client.get("/v1/timeline", params={"asset": "BTC", "start": day, "end": day}).json()["rows"]
            assert row["shap_by_family"] == pytest.approx(cascade["shap_by_family"], abs=1e-12)
            # the CLI: the missing family said missing, no missing value among the top features
            assert cli(["explain", "--date", day, "--asset", "BTC"]) == 0
            out = capsys.readouterr().out
            assert out.splitlines()[1] == x["sentence"]
            top = out.split("top feature (with a value that day)")[1].split("the warning checklist")[0]
            assert "no data" not in top and all(d["label"] in top for d in x["top_drivers"])
            if day == last:
                assert "no data that day (scored as missing, not 0, never a driver): open interest" in out
                assert any(line.split()[:5] == ["open", "interest", "missing", "(scored", "as"] for line in out.splitlines())
            else:
                assert feature_display(nan_feature, None)["label"] not in top
            # the PNG: the labels the waterfall and the family panels draw, read back from the figure
            drawn = plot_day(x, tmp_path / f"{day}.png")
            assert (tmp_path / f"{day}.png").stat().st_size > 10_000
            assert not any("no data" in label for label in drawn["waterfall"])
            rows = waterfall_rows(x)
            assert [label for label, _ in rows["rows"]] == drawn["waterfall"][::-1]
            assert rows["start"] + sum(v for _, v in rows["rows"]) == pytest.approx(cascade["margin"], abs=1e-9)
            written = json.loads((tmp_path / "reports" / "explanations" / f"{day}.json").read_text())
            assert written["top_drivers"] == x["top_drivers"] and written["cascade"]["shap_by_family"] == x["cascade"]["shap_by_family"]
            for panel in (drawn["families 0"], drawn["families 1"]):
                if day == last:
                    assert panel[0] == f"{title_of('oi')}: missing (scored as missing)" and title_of("oi") not in panel[1:]
                else:
                    assert not any("missing" in label for label in panel)


def test_a_get_route_without_asset_answers_the_default_coin(client) -> None:  # noqa: ANN001
    """Issue 37: a GET route's coin, not given, is the settings' default coin (BTC here; the first served coin when BTC is
    not one of them), as for POST bodies — not a literal BTC a list of other coins would not serve."""
    for route in ("/v1/events", "/v1/calibration", "/v1/episodes"):
        got = client.get(route)
        assert got.status_code == 200 and got.json()["asset"] == "BTC", route
