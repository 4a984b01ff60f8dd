"""The command line speaks to people: tables, and one-line errors instead of tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import main as cli


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CASCADE_RADAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CASCADE_RADAR_REFERENCE_DIR", str(tmp_path / "missing"))
    return tmp_path


def test_status_of_an_empty_store_says_what_to_do(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "status"]) == 0
    assert "is empty" in capsys.readouterr().out


def test_missing_reference_dir_is_one_line_not_a_traceback(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "import-reference"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "reference-data directory not found" in err
    assert "Traceback" not in err


@pytest.mark.reference
def test_import_then_status_lists_every_series(env: Path, reference_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CASCADE_RADAR_REFERENCE_DIR", str(reference_dir))
    assert cli.main(["--asset", "ETH", "data", "import-reference"]) == 0
    capsys.readouterr()  # the import's own table names the series too: read each command's output on its own
    assert cli.main(["--asset", "ETH", "data", "status"]) == 0
    out = capsys.readouterr().out
    for series in ("open_interest", "funding_binance", "onchain_cohorts", "liquidations", "liquidations_binance"):
        assert series in out


def test_bad_settings_are_one_line_naming_the_setting(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "status", "--asset", "PE/PE"]) == 2  # any ticker is a coin (issue 37); this is not one
    err = capsys.readouterr().err
    assert err.startswith("error: setting 'asset'") and "2 to 15 letters A-Z or digits 0-9" in err and "Traceback" not in err


def test_bad_until_date_names_the_flag(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["features", "build", "--until", "2025-13-01"]) == 2
    assert "--until '2025-13-01': expected a date YYYY-MM-DD" in capsys.readouterr().err


def test_a_refused_setting_never_prints_a_secret(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Under cron or systemd stderr is mail or the journal: a webhook URL (its path is the token) is never echoed."""
    from cli.main import main

    for value in ('{"a":"https://hooks.example.com/T0KEN"}', '["hooks.example.com/T0KEN"]', '["ftp://hooks.example.com/T0KEN"]'):
        monkeypatch.setenv("CASCADE_RADAR_ALERTS__WEBHOOK_URLS", value)
        assert main(["today"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: setting 'alerts.webhook_urls': ") and "value hidden: a secret" in err and "T0KEN" not in err
    monkeypatch.delenv("CASCADE_RADAR_ALERTS__WEBHOOK_URLS")
    monkeypatch.setenv("CASCADE_RADAR_ALERT_THRESHOLD", "https://x.example/T0KEN")  # any URL's path is masked, whatever the setting
    assert main(["today"]) == 2
    assert "got 'https://x.example/***'" in capsys.readouterr().err
