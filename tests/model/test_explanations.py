"""SHAP explanations: additivity, family sums, the sentence, no look-ahead, honest basis, replays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import shap

from cascade_radar.rules import AUTO, IN_SAMPLE, OUT_OF_FOLD, OUT_OF_SAMPLE
from features.build import build_feature_table
from features.families import REGISTRY, family_of
from features.store import HistoryStore
from forecast.predict import CoinForecaster, load_champion
from training.explain import contributions
from training.replay import replay_event
from training.report import read_oof


@pytest.fixture(scope="module")
def explained(trained_synthetic):  # noqa: ANN001, ANN201
    settings, ft, _ = trained_synthetic
    explainer = load_champion(settings).explainer(settings, AUTO)
    return explainer, explainer.explain(ft.table)


def test_contributions_plus_base_equal_the_raw_margin_for_both_models(trained_synthetic, explained) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    model = result.model
    rng = np.random.default_rng(0)
    X = ft.table[model.features].iloc[rng.choice(np.arange(300, len(ft.table)), 40, replace=False)]
    for booster in (model.cascade, model.direction):
        c = contributions(booster, X)
        np.testing.assert_allclose(c.margin, booster.predict(X, raw_score=True), atol=1e-6)
        reference = shap.TreeExplainer(booster).shap_values(X)  # the shap package agrees with LightGBM's TreeSHAP
        np.testing.assert_allclose(c.values.to_numpy(), reference, atol=1e-6)


def test_a_small_batch_predicted_on_one_thread_as_an_array_gives_lightgbms_numbers(trained_synthetic, explained) -> None:  # noqa: ANN001
    """Issue 37: ``booster_predict`` (one thread and a plain array up to ``SMALL_BATCH_ROWS`` rows) returns exactly what
    LightGBM returns for the DataFrame; the explanation's per-feature columns are ``contributions``' (pandas) values."""
    from training.model import SMALL_BATCH_ROWS, booster_predict

    settings, ft, result = trained_synthetic
    model = result.model
    X = ft.table[model.cascade_features]
    for rows in (X.iloc[-1:], X.iloc[-SMALL_BATCH_ROWS:], X):  # one day, the largest small batch, the whole history
        for kwargs in ({}, {"raw_score": True}, {"pred_contrib": True}):
            np.testing.assert_array_equal(booster_predict(model.cascade, rows, **kwargs), model.cascade.predict(rows, **kwargs))
    _, table = explained
    days = ft.table.index[-5:]
    expected = contributions(model.cascade, ft.table.loc[days, model.cascade_features]).values
    np.testing.assert_allclose(table.loc[days, [f"cascade_shap__{f}" for f in expected.columns]].to_numpy(dtype=float), expected.to_numpy(),
                               atol=1e-12)


def test_family_sums_equal_the_sum_of_their_features(explained) -> None:  # noqa: ANN001
    _, table = explained
    for model in ("cascade", "direction"):
        shap_cols = [c for c in table.columns if c.startswith(f"{model}_shap__")]
        for fam in [c.removeprefix(f"{model}_family__") for c in table.columns if c.startswith(f"{model}_family__")]:
            members = [c for c in shap_cols if family_of(c.removeprefix(f"{model}_shap__")) == fam]
            np.testing.assert_allclose(table[members].sum(axis=1), table[f"{model}_family__{fam}"], atol=1e-9)
        np.testing.assert_allclose(table[f"{model}_base"] + table[shap_cols].sum(axis=1), table[f"{model}_margin"], atol=1e-6)


def test_the_sentence_names_the_family_with_the_largest_contribution(trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    forecaster = CoinForecaster.load(settings)
    titles = {name: fam.title for name, fam in REGISTRY.items()}
    days = forecaster.answerable_days[300::97]
    assert len(days) >= 5
    for e in forecaster.forecast_many(days, detail=True):
        fams = {k: v for k, v in e["cascade"]["shap_by_family"].items() if v is not None}  # None: missing that day, never a driver
        largest = max(fams, key=lambda k: abs(fams[k]))
        assert titles[largest] in e["sentence"], e["sentence"]
        assert e["sentence"].startswith(f"Cascade risk within 14 days {e['p_cascade']:.2f}")
        assert e["p_cascade"] == pytest.approx(e["p_long"] + e["p_short"])
        margin = e["cascade"]["base_value"] + sum(e["cascade"]["shap_by_feature"].values())  # SHAP additivity, in the answer itself
        assert margin == pytest.approx(e["cascade"]["margin"], abs=1e-9)
        # the families' pushes count their features with a value that day; the rest is what the model made of the gaps
        assert sum(fams.values()) + e["cascade"]["shap_of_missing"] == pytest.approx(sum(e["cascade"]["shap_by_feature"].values()), abs=1e-9)


def test_explaining_day_t_reads_no_data_after_t(trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, _ = trained_synthetic
    explainer = load_champion(settings).explainer(settings, AUTO)
    raw = HistoryStore(settings.data_path).panel()
    day = ft.table.index[700]
    truncated = build_feature_table(raw, settings, until=day).table
    a = explainer.explain(truncated.loc[[day]]).iloc[0]
    b = explainer.explain(ft.table.loc[[day]]).iloc[0]
    numeric = [c for c in a.index if c not in ("basis", "model_used")]
    np.testing.assert_allclose(a[numeric].astype(float), b[numeric].astype(float), rtol=0, atol=0)


def test_each_day_says_which_model_explains_it(trained_synthetic, explained) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    _, table = explained
    folds = result.evaluation.folds
    assert (table.loc[folds[0].test_start : folds[-1].test_end, "basis"] == OUT_OF_FOLD).all()
    assert (table.loc[: folds[0].test_start - pd.Timedelta(days=1), "basis"] == IN_SAMPLE).all()
    after = table.index > pd.Timestamp(result.model.trained_through)
    assert after.any() and (table.loc[after, "basis"] == OUT_OF_SAMPLE).all()
    # out-of-fold explanations reproduce the out-of-fold probabilities of the evaluation
    oof = read_oof(settings.reports_path)
    common = oof.index.intersection(table.index)
    np.testing.assert_allclose(table.loc[common, "p_cascade"], oof.loc[common, "p_cascade"], atol=1e-6)


def test_replay_of_a_planted_event_shows_the_alert_before_it(trained_synthetic, synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    explainer = load_champion(settings).explainer(settings, AUTO)
    oof = read_oof(settings.reports_path)
    events = ft.labels.events
    in_oof = events[events["start"] - pd.Timedelta(days=30) >= oof.index.min()]
    replays = [replay_event(e, oof, ft, explainer, settings) for _, e in in_oof.iterrows()]
    assert len(replays) >= 3  # the planted events inside the out-of-fold period: an empty list proves nothing
    caught = [r for r in replays if r.first_alert is not None]
    assert len(caught) >= len(replays) // 2
    for r in caught:
        assert 1 <= r.lead_days <= settings.labels.horizon_days
        assert r.first_alert < r.event["start"]
    assert all(set(r.days.columns) >= set(settings.model.families or REGISTRY) for r in replays)


def test_the_signed_side_score_is_explained_exactly_and_keeps_its_declared_signs(trained_synthetic, tmp_path) -> None:  # noqa: ANN001
    """The weightless direction model: SHAP values add up to its margin, each input pushes the way its sign says, a
    calibration that would reverse the signs is refused, and it survives save and load."""
    from tests.conftest import TEST_MODEL
    from training.model import CascadeModel, SideScore

    settings, ft, _ = trained_synthetic
    signs = {"funding_rate_mean_30d_xrank": 1, "positioning_taker_buy_share_mean_7d_xrank": -1}
    config = TEST_MODEL.model_copy(update={"direction_inputs": signs, "direction_kind": "score"})
    labelled = ft.table[ft.table["target"].notna()]
    model = CascadeModel(config).fit(labelled[ft.features], labelled["target"])
    assert isinstance(model.direction, SideScore) and model.direction_features == list(signs)
    X = labelled[model.direction_features].iloc[-300:]
    raw = model.direction.predict(X, pred_contrib=True)
    np.testing.assert_allclose(raw.sum(axis=1), model.direction.predict(X, raw_score=True), atol=1e-12)  # additivity
    if model.direction.a > 0:  # each input pushes towards its declared side
        high = X.assign(funding_rate_mean_30d_xrank=1.0, positioning_taker_buy_share_mean_7d_xrank=0.0)
        low = X.assign(funding_rate_mean_30d_xrank=0.0, positioning_taker_buy_share_mean_7d_xrank=1.0)
        assert (model.direction.predict(high) > model.direction.predict(low)).all()
    reversed_ = SideScore(signs).fit(X, (X["funding_rate_mean_30d_xrank"] < 0.5).to_numpy())  # the data say the opposite of the signs
    assert reversed_.a == 0.0  # refused: the prior alone
    model.save(tmp_path / "m")
    again = CascadeModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.p_long_given_cascade(labelled.iloc[-50:]), model.p_long_given_cascade(labelled.iloc[-50:]), atol=0)


def test_explanations_are_computed_when_asked_kept_within_the_budget_and_equal_the_whole_table(trained_synthetic, explained) -> None:  # noqa: ANN001
    """Issue 37: at start a coin scores and explains only its latest answerable day (kept beside the shared cache); a past
    day is scored and explained with its block on first request — the same numbers as scoring and explaining the whole
    history at once — and the cache holds no more than its budget."""
    from forecast.predict import EXPLANATIONS, SHAP_BLOCK_DAYS

    settings, ft, _ = trained_synthetic
    _, table = explained
    forecaster = CoinForecaster.load(settings)
    before = EXPLANATIONS.stats()
    forecaster.warm()
    assert EXPLANATIONS.stats()["misses"] == before["misses"] and not forecaster.scored_whole_history()  # one day, no block, no whole history
    latest = forecaster.forecast(detail=True)
    row = table.loc[pd.Timestamp(latest["day"])]
    assert latest["day"] == str(forecaster.data_through.date()) and latest["p_cascade"] == pytest.approx(row["p_cascade"], abs=1e-12)
    np.testing.assert_allclose([latest["cascade"]["shap_by_feature"][f] for f in forecaster.model_features],
                               row[[f"cascade_shap__{f}" for f in forecaster.model_features]].astype(float), atol=1e-12)
    assert EXPLANATIONS.stats()["misses"] == before["misses"] and not forecaster.scored_whole_history()  # the latest answer was a lookup
    budget = EXPLANATIONS.budget_bytes
    try:
        block = forecaster.contributions(AUTO, [0]).cascade_shap.nbytes * SHAP_BLOCK_DAYS * 2  # one block's bytes, both models
        EXPLANATIONS.budget_bytes = 3 * block  # room for about three blocks
        days = forecaster.answerable_days[::150]
        answers = forecaster.forecast_many(days, detail=True)
        assert EXPLANATIONS.stats()["bytes"] <= EXPLANATIONS.budget_bytes and EXPLANATIONS.stats()["evictions"] > before["evictions"]
        for day, answer in zip(days, answers, strict=True):
            row = table.loc[day]
            assert answer["cascade"]["base_value"] == pytest.approx(row["cascade_base"], abs=1e-12)
            by_feature = answer["cascade"]["shap_by_feature"]
            np.testing.assert_allclose([by_feature[f] for f in forecaster.model_features],
                                       row[[f"cascade_shap__{f}" for f in forecaster.model_features]].astype(float), atol=1e-12)
            assert answer["p_cascade"] == pytest.approx(row["p_cascade"], abs=1e-12)
        # asked again after eviction: explained again, the same answer
        again = forecaster.forecast_many(days, detail=True)
        assert [a["cascade"]["shap_by_feature"] for a in again] == [a["cascade"]["shap_by_feature"] for a in answers]
        # a timeline's pushes per family are the explanation's, day by day
        start, end = days[1].date(), (days[1] + pd.Timedelta(days=99)).date()
        rows = forecaster.forecast_range(start, end, families=True)["rows"]
        some = [r for r in rows][::33]
        for r, e in zip(some, forecaster.forecast_many([pd.Timestamp(r["day"]) for r in some], detail=True), strict=True):
            assert r["shap_by_family"] == e["cascade"]["shap_by_family"]
    finally:
        EXPLANATIONS.budget_bytes = budget
