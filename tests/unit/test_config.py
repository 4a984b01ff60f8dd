from __future__ import annotations

import pytest

from cascade_radar.config import PROJECT_ROOT, Settings


def test_defaults() -> None:
    s = Settings()
    assert s.asset == "BTC"
    assert s.data_path == PROJECT_ROOT / "data" / "btc"
    assert s.tracking_uri == f"sqlite:///{PROJECT_ROOT / 'mlruns' / 'mlflow.db'}"
    assert s.labels.horizon_days == 14
    assert s.purge_days == 14


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CASCADE_RADAR_ASSET", "eth")
    monkeypatch.setenv("CASCADE_RADAR_LABELS__HORIZON_DAYS", "10")
    monkeypatch.setenv("CASCADE_RADAR_COINGLASS_API_KEY", "secret")
    s = Settings()
    assert s.asset == "ETH"
    assert s.data_path.name == "eth"
    assert s.labels.horizon_days == 10
    assert "secret" not in str(s.loggable())  # provider keys stay in the environment: never in the logged config


def test_assets_keep_separate_stores_reports_and_models() -> None:
    btc, eth = Settings(asset="BTC"), Settings(asset="ETH")
    assert btc.data_path != eth.data_path
    assert btc.reports_path == PROJECT_ROOT / "reports" and eth.reports_path == PROJECT_ROOT / "reports" / "eth"
    assert (btc.registered_model_name, eth.registered_model_name) == ("cascade-radar-btc", "cascade-radar-eth")


def test_a_malformed_coin_name_is_refused_naming_the_field() -> None:
    """Issue 37: a coin is any ticker of 2-15 ASCII letters or digits; anything else is refused, the error naming the setting
    at fault (the list position too) and the rule. Unicode case folding never turns a string into a coin ('ſol' is not SOL)."""
    from pydantic import ValidationError

    from cascade_radar.config import settings_problems

    for kwargs, field in ((dict(asset="PE-PE"), "asset"), (dict(asset="ſol"), "asset"), (dict(asset="B"), "asset"),
                          (dict(assets=["BTC", "ETH", "b!tc"]), "assets.2"), (dict(assets=["BTC", "X" * 16]), "assets.1"),
                          (dict(features={"context_asset": "bt c"}), "features.context_asset")):
        with pytest.raises(ValidationError) as refused:
            Settings(**kwargs)
        (error,) = refused.value.errors()
        assert ".".join(map(str, error["loc"])) == field and "2 to 15 letters A-Z or digits 0-9" in error["msg"], kwargs
        assert settings_problems(refused.value).startswith(f"setting '{field}' (environment CASCADE_RADAR_")
    with pytest.raises(ValidationError, match="BTC listed more than once"):
        Settings(assets=["BTC", "eth", "btc"])
    with pytest.raises(ValidationError, match="assets"):
        Settings(assets=[])


def test_any_list_of_coins_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 37: twelve synthetic tickers are a coin list like the seven: upper-cased, kept in order, each with its own store
    and model name; the coin answered for by default is the first of them when BTC is not one."""
    coins = [f"c{i:03d}" for i in range(1, 13)]
    s = Settings(assets=coins)
    assert s.assets == [c.upper() for c in coins] and s.asset == "C001"
    assert s.for_asset("c012").data_path == PROJECT_ROOT / "data" / "c012"
    assert s.for_asset("C012").registered_model_name == "cascade-radar-c012"
    monkeypatch.setenv("CASCADE_RADAR_ASSETS", '["BTC", "eth", "1000PEPE", "C001"]')
    from_env = Settings()
    assert from_env.assets == ["BTC", "ETH", "1000PEPE", "C001"] and from_env.asset == "BTC"
    assert Settings(asset="avax").asset == "AVAX"  # a command may answer for a coin outside the pool (`--asset X` trains it alone)


def test_a_purge_shorter_than_the_label_horizon_is_refused() -> None:
    from pydantic import ValidationError

    from cascade_radar.config import FoldConfig, LabelConfig

    assert Settings(folds=FoldConfig(purge_days=20)).purge_days == 20
    with pytest.raises(ValidationError, match="purge_days 10 is shorter than labels.horizon_days 14"):
        Settings(folds=FoldConfig(purge_days=10))
    with pytest.raises(ValidationError, match="shorter than labels.horizon_days 21"):
        Settings(folds=FoldConfig(purge_days=14), labels=LabelConfig(horizon_days=21))


def test_liquidation_memory_counts_cascade_days_with_the_configured_multiple() -> None:
    """A label override reaches the families: days since a cascade day move with labels.cascade_multiple."""
    import numpy as np
    import pandas as pd

    from cascade_radar.config import LabelConfig
    from features.build import feature_frame

    days = pd.date_range("2024-01-01", periods=200, freq="D")
    long = np.full(200, 10.0)
    long[150] = 90.0  # total 100 = 5x the median total (20) of the days before: a cascade day at multiple 4, not at 6
    raw = pd.DataFrame({"liq_long_usd": long, "liq_short_usd": np.full(200, 10.0), "close_usd": 100.0}, index=days)
    at = {}
    for multiple in (4.0, 6.0):
        _, features, _ = feature_frame(raw, Settings(labels=LabelConfig(cascade_multiple=multiple)))
        at[multiple] = features["liqmem_days_since_cascade_day"].iloc[-1]
    assert at[4.0] == 49 and np.isnan(at[6.0])  # 49 days after the spike at 4x; at 6x no cascade day yet (unknown, not a number)


def test_answers_never_carry_an_absolute_path() -> None:
    from pathlib import Path

    from cascade_radar.config import PROJECT_ROOT, project_relative
    from serving.guard import error_body

    assert project_relative(f"no history in {PROJECT_ROOT}/data/btc: run `make data`") == "no history in data/btc: run `make data`"
    assert project_relative(f"store at {Path.home()}/mlruns/mlflow.db") == "store at ~/mlruns/mlflow.db"
    body = error_body(503, f"BTC is not ready: no MLflow tracking store at {PROJECT_ROOT}/mlruns/mlflow.db")
    assert body["detail"] == "BTC is not ready: no MLflow tracking store at mlruns/mlflow.db"


def test_a_webhook_must_be_an_http_url_and_a_refused_one_is_never_echoed() -> None:
    import pydantic

    from cascade_radar.config import OperationsConfig

    assert OperationsConfig(webhook_urls=[" https://hooks.example.com/T0KEN "]).webhook_urls == ["https://hooks.example.com/T0KEN"]
    for bad, why in (("hooks.example.com/T0KEN", "(scheme '')"), ("ftp://hooks.example.com/T0KEN", "(scheme 'ftp')"), ("https:///T0KEN", "(not a URL)")):
        with pytest.raises(pydantic.ValidationError) as refused:
            OperationsConfig(webhook_urls=["https://ok.example.com/a", bad])
        assert f"webhook #2 is not an http(s) URL with a host {why}" in str(refused.value) and "T0KEN" not in str(refused.value)


def test_an_api_token_must_survive_a_header_and_a_cookie_and_is_never_echoed() -> None:
    import pydantic

    from cascade_radar.config import Settings

    assert Settings(serving_api_token="").serving_api_token is None and Settings(serving_api_token="  ").serving_api_token is None
    assert Settings(serving_api_token="A1b2C3d4E5f6G7h8-x").serving_api_token == "A1b2C3d4E5f6G7h8-x"
    for bad in ("abc;defghijklmnopq", "with space in it 1234", "short"):
        with pytest.raises(pydantic.ValidationError) as refused:
            Settings(serving_api_token=bad)
        assert "the API token must be at least 16 characters" in str(refused.value) and bad not in str(refused.value)


def test_a_settings_error_masks_userinfo_and_everything_after_a_host() -> None:
    from cli.main import shown_input

    assert shown_input("alert_threshold", "https://user:pa55@hooks.example.com/x?y=1") == "got 'https://hooks.example.com/***'"
    assert shown_input("alert_threshold", "https://h.example?sig=abc") == "got 'https://h.example/***'"


def test_an_outbox_record_after_a_torn_line_is_kept(tmp_path) -> None:  # noqa: ANN001
    from operations.ledger import Outbox

    outbox = Outbox(tmp_path / "forecasts.outbox.jsonl")
    outbox.path.write_text('{"key": ["BTC", "2024-01-0')  # a record torn by a kill
    outbox.record({"asset": "ETH", "day": "2024-01-02", "model": {"version": "3"}}, "entered the alert state")
    assert outbox.keys() == {("ETH", "2024-01-02", "3")}
