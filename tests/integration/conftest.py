"""Fixtures shared by the integration tests that run on the real reference history."""

from __future__ import annotations

import pytest

from cascade_radar.config import ASSETS, Settings


@pytest.fixture(scope="session")
def seven(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The seven coins trained pooled on the reference history, as `make train` does (about a minute on 2 cores), in a
    temporary store; once per session (the every-coin test and the documentation's examples share it). Skipped without
    ../shared."""
    from features.sources.reference import import_missing_stores
    from tests.conftest import REFERENCE_DIR
    from training.train import train

    if not (REFERENCE_DIR / "README.md").exists():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (clone without ../shared)")
    root = tmp_path_factory.mktemp("seven")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=REFERENCE_DIR,
                        assets=list(ASSETS))
    said = import_missing_stores(settings, ASSETS)
    assert len(said) == len(ASSETS) and all("loaded" in line for line in said.values())
    assert import_missing_stores(settings, ASSETS) == {}  # said once: a store that holds data is left alone
    assert train(settings).passed_gate
    return settings
