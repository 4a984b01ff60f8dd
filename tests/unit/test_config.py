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


def test_unknown_asset_is_refused() -> None:
    with pytest.raises(ValueError, match="asset"):
        Settings(asset="PEPE")
