"""Missing is missing: a day without a family's inputs must not be scored as if those features were 0."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cascade_radar.config import ModelConfig, Settings
from features.build import build_feature_table
from features.families import family_of
from features.sources.synthetic import SyntheticHistory
from tests.conftest import TEST_MODEL
from training.model import CascadeModel, model_features


def fitted(synthetic: SyntheticHistory, config: ModelConfig) -> tuple[CascadeModel, pd.DataFrame]:
    ft = build_feature_table(pd.concat(synthetic.series.values(), axis=1), Settings())
    labelled = ft.table[ft.table["target"].notna()]
    X = labelled[model_features(ft.features, config)]
    return CascadeModel(config).fit(X, labelled["target"].astype(str)), X


def split_nodes(tree: dict) -> list[dict]:
    if "split_feature" not in tree:
        return []
    return [tree, *split_nodes(tree["left_child"]), *split_nodes(tree["right_child"])]


def scores_without_family(model: CascadeModel, X: pd.DataFrame, family: str, fill: float) -> np.ndarray:  # noqa: N803
    cols = [c for c in X.columns if family_of(c) == family]
    blank = X.copy()
    blank[cols] = fill
    return model.predict(blank)["p_cascade"].to_numpy()


def test_a_day_without_open_interest_does_not_score_like_oi_zero(synthetic: SyntheticHistory) -> None:
    model, X = fitted(synthetic, TEST_MODEL)
    assert X.filter(like="oi_change").iloc[100:].notna().all().all()  # the training data itself has no missing OI
    days = X.iloc[-200:]
    missing, zero = scores_without_family(model, days, "oi", np.nan), scores_without_family(model, days, "oi", 0.0)
    assert np.mean(np.abs(missing - zero) > 1e-9) > 0.5
    # every split of both models knows where a missing value goes
    for booster in (model.cascade, model.direction):
        nodes = [n for t in booster.dump_model()["tree_info"] for n in split_nodes(t["tree_structure"])]
        assert nodes and all(n["missing_type"] == "NaN" for n in nodes)


def test_without_blanked_examples_lightgbm_reads_missing_as_zero(synthetic: SyntheticHistory) -> None:
    """The failure the blanked copies prevent: proof that the test above can fail."""
    model, X = fitted(synthetic, TEST_MODEL.model_copy(update={"missing_example_share": 0.0}))
    days = X.iloc[-200:]
    np.testing.assert_allclose(scores_without_family(model, days, "oi", np.nan), scores_without_family(model, days, "oi", 0.0))
