"""A new signal family is one file: written into a temporary package, it flows through the feature table,
the explanation (JSON, sentence, PNG) and a replay without any other file being touched."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from cascade_radar.config import Settings
from features.families import REGISTRY
from features.sources.synthetic import SyntheticHistory, load_into
from features.store import HistoryStore
from tests.conftest import TEST_MODEL

FAMILY_MODULE = '''
"""Throw-away family: volume surge (reads a stored column no other family uses)."""
from features.families import FeatureSet, Warning, family, summary
from features.transforms import rolling_mean


@family("volsurge", "volume surge", "tab:olive", inputs=("volume_base",), warnings=(Warning("volume surging", ("volsurge_ratio_7d",), ">=", 1.5),))
def volume_surge(panel, cfg, out: FeatureSet) -> None:
    volume = panel["volume_base"]
    out.add("ratio_7d", rolling_mean(volume, 7) / rolling_mean(volume, 90), "7-day mean volume / 90-day mean", label="7-day volume vs norm", unit="ratio")
    out.add("ratio_3d", rolling_mean(volume, 3) / rolling_mean(volume, 90), "3-day mean volume / 90-day mean", label="3-day volume vs norm", unit="ratio")


@summary("volsurge")
def describe_volume(row) -> str:
    return f"volume {row['volsurge_ratio_7d']:.2f}x its 90-day norm"
'''


@pytest.fixture()
def extra_family(tmp_path: Path):  # noqa: ANN201
    package = tmp_path / "extra_families"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "volsurge.py").write_text(FAMILY_MODULE)
    sys.path.insert(0, str(tmp_path))
    saved = dict(REGISTRY)
    try:
        importlib.import_module("extra_families.volsurge")
        yield REGISTRY["volsurge"]
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("extra_families")]:
            del sys.modules[name]


def test_a_family_in_one_file_flows_through_features_explanations_and_replays(extra_family, tmp_path: Path,  # noqa: ANN001
                                                                                  synthetic: SyntheticHistory) -> None:
    from cascade_radar.rules import AUTO
    from forecast.predict import CoinForecaster, write_explanation
    from training.replay import replay_event, write_replay
    from training.report import read_oof
    from training.train import train

    settings = Settings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports", mlruns_dir=tmp_path / "mlruns", reference_dir=tmp_path / "none",
                        assets=["BTC"], model=TEST_MODEL.model_copy(update={"families": None}))  # every family, the new one included
    load_into(HistoryStore(settings.data_path), synthetic)
    result = train(settings)
    ft = result.feature_table
    assert {"volsurge_ratio_7d", "volsurge_ratio_3d"} <= set(ft.features)
    assert set(ft.catalogue.loc[ft.catalogue["family"] == "volsurge", "name"]) == {"volsurge_ratio_7d", "volsurge_ratio_3d"}
    assert "volsurge_ratio_7d" in result.model.features

    forecaster = CoinForecaster.load(settings)
    explainer = forecaster.champion.explainer(settings, AUTO)
    day = ft.table.index[-20]
    explanation = forecaster.forecast(day, detail=True)
    assert "volsurge" in explanation["cascade"]["shap_by_family"]
    # force the new family into the sentence: make it the largest push
    forced = forecaster.sentence(explanation, {**explanation["cascade"]["shap_by_family"], "volsurge": 50.0}, ft.table.loc[day])
    assert "volume surge (+50.00 log-odds; volume " in forced
    json_path, png_path = write_explanation(explanation, tmp_path / "explanations")
    assert "volsurge" in json.loads(json_path.read_text())["cascade"]["shap_by_family"]
    assert png_path.stat().st_size > 10_000

    oof = read_oof(settings.reports_path)
    event = ft.labels.events[ft.labels.events["start"] - pd.Timedelta(days=30) >= oof.index.min()].iloc[0]
    replay = replay_event(event, oof, ft, explainer, settings)
    assert "volsurge" in replay.days.columns and replay.days["volsurge"].notna().any()
    report = write_replay(replay, settings, tmp_path / "replays")
    assert "volume surge" in report.read_text()
    # the rule baseline counts the new family's warning, the serving schema accepts its input
    from training.model import warning_checklist

    assert "volume surging" in [w.label for w in warning_checklist()]
    from serving.schemas import signal_row_model

    assert "volume_base" in signal_row_model().model_fields
