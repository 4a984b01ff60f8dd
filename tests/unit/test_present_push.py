"""A family's push counts only the features that had a value that day; a family with none reads missing (NaN)."""

import numpy as np
import pandas as pd

from features.families import load_families
from training.explain import present_by_family


def test_missing_features_get_no_share_of_their_family_push() -> None:
    load_families()  # the registry that names each feature's family
    days = pd.date_range("2025-01-01", periods=3, freq="D")
    shap = pd.DataFrame({"funding_rate_z": [0.1, 0.2, 0.3], "funding_rate_mean_7d": [0.05, -0.4, 0.2],
                         "oi_change_7d": [0.3, 0.3, -0.1]}, index=days)
    values = pd.DataFrame({"funding_rate_z": [1.0, np.nan, np.nan], "funding_rate_mean_7d": [2.0, 1.0, np.nan],
                           "oi_change_7d": [0.1, 0.2, 0.3]}, index=days)
    pushes = present_by_family(shap, values)
    assert pushes.loc[days[0], "funding"] == 0.1 + 0.05
    assert pushes.loc[days[1], "funding"] == -0.4  # the z-score had no value: its +0.2 is no part of the push
    assert np.isnan(pushes.loc[days[2], "funding"])  # no funding feature had a value: missing, not 0 and not 0.5
    assert pushes["oi"].tolist() == [0.3, 0.3, -0.1]
