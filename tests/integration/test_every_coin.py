"""Every coin on the real reference history: the same answer from the CLI, the service's state and the daily job.

Trains the seven coins pooled, as `make train` does (about a minute), in a temporary store (the `seven` fixture of
tests/integration/conftest.py, shared with the documentation's examples); skipped without ../shared.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from cascade_radar.config import ASSETS, Settings
from tests.support.examples import http_examples
from tests.support.process import settings_env

pytestmark = pytest.mark.reference
SAME = ("asset", "day", "p_cascade", "p_long", "p_short", "side", "side_uncertain", "p_long_given_cascade", "long_prior", "side_skill", "alert",
        "basis", "model", "model_used", "data_through", "missing_families", "top_drivers", "checklist", "sentence")


def test_every_coin_answers_the_same_from_cli_state_and_daily_job(seven: Settings, capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main as cli
    from operations.daily import forecasts
    from serving.state import CoinStates, RequestError

    for key, value in settings_env(seven).items():
        monkeypatch.setenv(key, value)
    coins = CoinStates.load(seven)
    daily_rows = {fc.asset: fc.row for fc in forecasts(seven)}
    assert cli(["today", "--json"]) == 3  # the reference history ends in 2025-2026: every answer is old, and says so
    today = {row["asset"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(today) == set(daily_rows) == set(ASSETS)
    for asset in ASSETS:
        state = coins.states[asset]
        assert state.ready, state.reason
        api = state.prediction(None)
        assert api["outdated"] and api["day"] == api["data_through"]
        for other in (daily_rows[asset], today[asset]):
            assert {k: other[k] for k in SAME} == {k: api[k] for k in SAME}, asset
        # a past day (out-of-fold) answered the same by /predict's and /explain's path and the daily replay
        day = pd.Timestamp(state.forecaster.champion.model.trained_through) - pd.Timedelta(days=120)  # inside the last test block
        explained = state.explanation(day.date())
        (replayed,) = forecasts(seven, days=[day], assets=[asset])
        skip = ("top_drivers", "data_through")  # a replayed row's data run through its day: the store as it stood then
        assert {k: explained[k] for k in SAME if k not in skip} == {k: replayed.row[k] for k in SAME if k not in skip}
        assert replayed.row["data_through"] == replayed.row["day"] == str(day.date())
        assert explained["basis"] == "out-of-fold"
        # the side is stated only where it has out-of-fold skill (the champion's run measured it per coin)
        assert api["side_skill"] is not None
        if api["side_skill"] <= 0:
            assert api["side_uncertain"] and "side uncertain" in api["sentence"]
    # the day the reference data stop for BTC's derivatives: refused by the API and the CLI with the same reason
    with pytest.raises(RequestError) as refused:
        coins.states["BTC"].prediction(pd.Timestamp("2026-08-20").date())
    assert refused.value.status == 404 and "of the families the model reads are missing" in refused.value.message
    assert "more than 3 families missing" in refused.value.message  # beyond what the walk-forward measured: never guessed
    assert cli(["explain", "--date", "2026-08-20", "--asset", "BTC"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --date 2026-08-20: {refused.value.message}"
    assert os.environ["CASCADE_RADAR_DATA_DIR"] == str(Path(seven.data_path).parent)
    # BTC 2025-04-15, before the 2025-04-22 short squeeze: the explanation names all six families of the build-up in its warning checklist
    april = coins.states["BTC"].explanation(pd.Timestamp("2025-04-15").date())
    build_up = {"price", "oi", "funding", "flows", "sopr", "nupl"}
    assert build_up <= {c["family"] for c in april["checklist"]}
    assert all(v is not None for c in april["checklist"] if c["family"] in build_up for v in c["values"].values())


API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def documented_requests() -> list[tuple[str, str, dict[str, object] | None]]:
    """Every concrete request the docs show: the API page's routes table — `GET /path?query` and `POST /path` with a JSON body
    of concrete values — and the `curl` examples of every page and the README (tests/support/examples.py). A row whose
    example still holds a placeholder (…) is not a request."""
    text = API_DOC.read_text()
    found: list[tuple[str, str, dict[str, object] | None]] = []
    for line in text.splitlines():
        row = re.match(r"\| `(GET|POST) (/[^`\s]*)` \| (`(\{[^`]*\})`|–)", line)
        if row and "…" not in row.group(2) and "…" not in (row.group(4) or ""):
            found.append((row.group(1), row.group(2), json.loads(row.group(4)) if row.group(4) else None))
    return found + http_examples()


def test_every_documented_api_example_answers_on_the_reference_history(seven: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API page's examples, sent as written to the service over the reference history (after a backtest, which
    /v1/backtest serves): each answers 200, so an example that drifts from the product fails here."""
    from starlette.testclient import TestClient

    from serving.service import CascadeRadar
    from training.backtest import run_backtest

    for key, value in settings_env(seven).items():
        monkeypatch.setenv(key, value)
    run_backtest(seven)
    examples = documented_requests()
    paths = {path.split("?")[0] for _, path, _ in examples}
    assert {"/predict", "/v1/events", "/v1/timeline", "/v1/signals", "/v1/forecasts", "/v1/backtest", "/v1/reconstruction"} <= paths
    with TestClient(CascadeRadar.to_asgi()) as client:
        for method, path, body in examples:
            answer = client.post(path, json=body or {}) if method == "POST" else client.get(path)
            assert answer.status_code == 200, f"{method} {path} {body or ''}: {answer.status_code} {answer.text[:300]}"
