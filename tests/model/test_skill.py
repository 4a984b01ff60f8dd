"""Expected skill by the families a day has (issue 32): measured out of fold, carried by the champion, read by every answer,
and the answerable-day rule as a skill floor."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cascade_radar.rules import missing_key, skill_said
from training.model import with_missing_examples
from training.skill import expected_skill, floor_of, missing_sets


def test_missing_sets_are_every_set_up_to_the_size_sorted_and_named_once() -> None:
    sets = missing_sets(["price", "funding", "open_interest", "positioning"], 3)
    assert len(sets) == 1 + 4 + 6 + 4 and sets[0] == ()
    assert ("funding", "open_interest", "positioning") in sets and len({missing_key(s) for s in sets}) == len(sets)
    assert missing_key(["positioning", "funding"]) == missing_key(("funding", "positioning")) == "funding+positioning"


def test_family_dropout_blanks_sets_of_families_together() -> None:
    from features.families import family_of, load_families

    names = list(load_families())[:3]
    X = pd.DataFrame({f"{name}_x": np.arange(100.0) for name in names})

    families = {family_of(c) for c in X.columns}
    out, y, w = with_missing_examples(X, np.zeros(100), share=0.1, weight=0.2, seed=0, max_families=2)
    blanked = out.iloc[100:]
    blank_sets = {tuple(sorted(family_of(c) for c in X.columns if np.isnan(row[c]))) for _, row in blanked.iterrows()}
    assert {len(s) for s in blank_sets} == {1, 2}  # one family at a time, and pairs
    assert len(out) == 100 + 10 * (len(families) + len(families))  # one copy set per family, as many pairs
    assert (w[:100] == 1).all() and (w[100:] == 0.2).all()


def test_the_expected_skill_of_a_day_is_the_coins_measured_number_or_pooled() -> None:
    skill = {"families": ["funding", "price"], "max_missing": 1, "event_days": {"pooled": 80, "BTC": 40, "ADA": 3},
             "roc_auc": {"": {"pooled": 0.70, "BTC": 0.72, "ADA": 0.90}, "funding": {"pooled": 0.66, "BTC": 0.69, "ADA": 0.5}},
             "baseline_roc_auc": {"pooled": 0.65, "BTC": 0.68, "ADA": 0.99}}
    assert expected_skill(skill, "BTC", []) == (0.72, "BTC")
    assert expected_skill(skill, "BTC", ["funding"]) == (0.69, "BTC")
    assert expected_skill(skill, "ADA", ["funding"]) == (0.66, "pooled")  # 3 event days: its own number is noise
    value, why = expected_skill(skill, "BTC", ["funding", "price"])
    assert value is None and "more than 1 families missing" in why
    assert floor_of(skill, "BTC", None) == 0.68 and floor_of(skill, "ADA", None) == 0.65 and floor_of(skill, "BTC", 0.6) == 0.6
    assert floor_of(skill, "BTC", 0.75) == 0.72  # never above the champion's own skill with every family: its full days are answered
    below_chance = {**skill, "baseline_roc_auc": {"pooled": 0.45, "BTC": 0.40}}
    assert floor_of(below_chance, "BTC", None) == 0.5  # a baseline worse than chance is no floor
    assert skill_said(0.7234, 0.68) == "expected skill on days like this: ROC-AUC 0.72 (0.5 = chance; answered above 0.68)"


def test_the_champion_carries_its_walk_forwards_skill_and_answers_read_it(trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    skill = result.model.skill
    assert skill is not None and skill["max_missing"] == settings.model.missing_example_families
    # nothing missing: exactly the walk-forward's own out-of-fold ROC-AUC of the model
    assert skill["roc_auc"][""]["BTC"] == pytest.approx(float(result.evaluation.scores.loc[("BTC", "model"), "roc_auc"]), abs=1e-12)
    assert skill["baseline_roc_auc"]["BTC"] == pytest.approx(float(result.evaluation.scores.loc[("BTC", "volatility"), "roc_auc"]), abs=1e-12)
    families = skill["families"]
    assert len(skill["roc_auc"]) == len(missing_sets(families, skill["max_missing"]))
    from forecast.predict import CoinForecaster

    forecaster = CoinForecaster.load(settings)
    answer = forecaster.forecast(ft.table.index[800])
    assert answer["missing_families"] == [] and answer["expected_roc_auc"] == skill["roc_auc"][""]["BTC"]
    assert answer["skill_floor"] == skill["baseline_roc_auc"]["BTC"] and "BTC's days, with every family it reads" in answer["expected_roc_auc_basis"]


def test_a_day_is_answered_where_its_measured_skill_clears_the_floor(trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    from features.families import family_of
    from forecast.predict import CoinForecaster, Unanswerable

    skill = result.model.skill
    family = min(skill["families"], key=lambda f: skill["roc_auc"][f]["BTC"] or 1)  # the family whose loss costs most
    lost, full = skill["roc_auc"][family]["BTC"], skill["roc_auc"][""]["BTC"]
    assert lost < full  # without it the walk-forward ranked worse
    loaded = CoinForecaster.load(settings)
    day = ft.table.index[800]
    features = loaded.features.copy()
    features.loc[day, [c for c in features.columns if family_of(c) == family]] = np.nan  # the day has no value of that family

    def with_floor(floor: float) -> CoinForecaster:
        s = settings.model_copy(update={"alerts": settings.alerts.model_copy(update={"skill_floor": floor})})
        return CoinForecaster(s, loaded.champion, loaded.panel, features, loaded.fresh, loaded.catalogue)

    answered = with_floor(max(0.5, lost - 0.01)).forecast(day)
    assert answered["missing_families"] == [family] and answered["expected_roc_auc"] == lost
    assert f"without {family_title(family)}" in answered["expected_roc_auc_basis"]
    between = (lost + full) / 2  # above what the day has, below what a full day has: the floor that applies
    with pytest.raises(Unanswerable, match=rf"measured skill without them is {lost:.3f} ROC-AUC, below the floor {between:.3f}"):
        with_floor(between).forecast(day)
    assert with_floor(between).forecast(ft.table.index[801])["expected_roc_auc"] == full  # the next day has every family


def family_title(name: str) -> str:
    from features.families import title_of

    return title_of(name)
