"""Days to test answers on, found in the forecast path's own answers."""

from __future__ import annotations


def nan_feature_day(forecaster) -> tuple[str, str]:  # noqa: ANN001 - CoinForecaster
    """An answerable day with every family present on which a feature has no value yet weighs among the day's ten largest
    SHAP values (the old code named such a feature a driver, "no data"), and that feature."""
    best: tuple[float, str, str] | None = None
    for answer in forecaster.forecast_many(forecaster.answerable_days[::7], top=5, detail=True):
        shap = answer["cascade"]["shap_by_feature"]
        tenth = sorted(map(abs, shap.values()), reverse=True)[9]
        for feature in answer["missing_features"] if not answer["missing_families"] else ():
            if abs(shap[feature]) >= tenth > 0:
                if best is None or abs(shap[feature]) > best[0]:
                    best = (abs(shap[feature]), answer["day"], feature)
    assert best is not None, "no day with a weighty feature missing in a present family: the test would prove nothing"
    return best[1], best[2]
