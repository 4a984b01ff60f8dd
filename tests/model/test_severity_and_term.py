"""Severity and the term structure (issue 34): P(a major cascade) beside P(cascade), and P(cascade within 3, 7 and 14 days)
from one model — never falling with the horizon, P(major) never above P(cascade), the 14-day number p_cascade as it was,
and a champion trained before the heads still answering (their numbers null, said "not measured")."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import Settings
from cascade_radar.rules import term_said
from features.build import FeatureTable, load_feature_tables
from features.labels import cascade_within
from features.store import HistoryStore
from training.evaluate import Evaluation, Pool, walk_forward
from training.model import MAJOR, CascadeModel, capped_major, model_features, term_column, term_structure


def test_the_term_structure_is_capped_from_the_horizon_down_and_the_horizon_is_left_alone() -> None:
    p14 = np.array([0.40, 0.30, 0.20])
    raw = {3: np.array([0.50, 0.10, np.nan]), 7: np.array([0.30, 0.35, 0.15])}
    out = term_structure(p14, raw)
    assert list(out) == [3, 7]
    np.testing.assert_allclose(out[7], [0.30, 0.30, 0.15])  # 0.35 > P14 0.30: capped at it
    np.testing.assert_allclose(out[3], [0.30, 0.10, np.nan])  # 0.50 > P7 0.30: capped; not measured stays NaN
    np.testing.assert_array_equal(p14, [0.40, 0.30, 0.20])  # p_cascade untouched
    # a horizon not measured caps nothing below it
    np.testing.assert_allclose(term_structure(p14, {3: np.array([0.5, 0.1, 0.1]), 7: np.full(3, np.nan)})[3], [0.40, 0.10, 0.10])
    np.testing.assert_allclose(capped_major(p14, np.array([0.05, 0.45, 0.20])), [0.05, 0.30, 0.20])


def test_a_short_horizons_target_is_known_before_the_long_ones() -> None:
    """Ten days, all judged but the last; an event starts on day 5 (index 5). days_to_event as make_targets gives it (H = 5)."""
    days = pd.date_range("2024-01-01", periods=10)
    cascade_day = pd.Series([0, 0, 0, 0, 0, 1, 0, 0, 0, np.nan], index=days, dtype=float)
    days_to_event = pd.Series([5, 4, 3, 2, 1, np.nan, np.nan, np.nan, np.nan, np.nan], index=days, dtype=float)
    within = cascade_within(days_to_event, cascade_day, 2)
    # days 3, 4 see the event within 2 days; days 0-2 do not; days 5-6 have (t, t+2] judged and no event; day 7's window
    # reaches the unjudged day 9; days 8, 9 reach past it — unknown, never "calm"
    expected = [0, 0, 0, 1, 1, 0, 0, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(within.to_numpy(), np.array(expected, dtype=float))


@pytest.fixture(scope="module")
def synthetic_tables(tmp_path_factory: pytest.TempPathFactory, synthetic) -> tuple[Settings, dict[str, FeatureTable]]:  # noqa: ANN001
    from features.sources.synthetic import load_into
    from tests.conftest import TEST_MODEL

    root = tmp_path_factory.mktemp("heads")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=root / "none",
                        assets=["BTC"], model=TEST_MODEL.model_copy(update={"major_from": "head"}))  # the head, tested as a booster
    load_into(HistoryStore(settings.data_path), synthetic)
    return settings, load_feature_tables(settings)


@pytest.fixture(scope="module")
def fitted(synthetic_tables) -> tuple[Pool, CascadeModel]:  # noqa: ANN001
    settings, tables = synthetic_tables
    pool = Pool.of(tables, model_features(tables["BTC"].features, settings.model), settings.model.term_horizons)
    everything = np.ones(len(pool.X), dtype=bool)
    return pool, CascadeModel(settings.model).fit(pool.X, pool.target, **pool.head_labels(everything))


def test_the_heads_answer_consistently_and_leave_p_cascade_as_it_was(synthetic_tables, fitted) -> None:  # noqa: ANN001
    settings, _ = synthetic_tables
    pool, model = fitted
    assert model.major is not None and model.term_horizons == [3, 7]
    pred = model.predict(pool.X)
    without = CascadeModel(settings.model).fit(pool.X, pool.target).predict(pool.X)  # no heads: the model as it was
    assert MAJOR not in without.columns and term_column(3) not in without.columns
    pd.testing.assert_frame_equal(pred[without.columns], without)  # p_cascade, p_long, p_short, margin: the same to the bit
    p14, p7, p3, major = (pred[c].to_numpy() for c in ("p_cascade", term_column(7), term_column(3), MAJOR))
    assert np.all(p3 <= p7) and np.all(p7 <= p14) and np.all(major <= p14)
    assert np.all((major >= 0) & (p3 >= 0))
    # each head reads its own target: on the training days it ranks them better than p_cascade read as that score
    from sklearn.metrics import roc_auc_score

    y3 = pool.within[3].to_numpy()
    known = np.isfinite(y3)
    assert roc_auc_score(y3[known], p3[known]) > roc_auc_score(y3[known], p14[known])


def test_p_major_read_as_a_share_of_p_cascade_ranks_like_it_and_round_trips(synthetic_tables, fitted, tmp_path: Path) -> None:  # noqa: ANN001
    settings, _ = synthetic_tables
    pool, _ = fitted
    config = settings.model.model_copy(update={"major_from": "share"})
    model = CascadeModel(config).fit(pool.X, pool.target, **pool.head_labels(np.ones(len(pool.X), dtype=bool)))
    assert model.major is None and model.has_major
    # the share by hand: of the cascade days whose severity is known, those with a major event ahead
    cascade = (pool.target != "none").to_numpy() & pool.major.notna().to_numpy()
    assert model.major_share == pytest.approx(float((pool.major.to_numpy()[cascade] > 0).mean()))
    pred = model.predict(pool.X)
    np.testing.assert_allclose(pred[MAJOR].to_numpy(), pred["p_cascade"].to_numpy() * model.major_share, rtol=1e-15)
    model.save(tmp_path / "share")
    pd.testing.assert_frame_equal(CascadeModel.load(tmp_path / "share").predict(pool.X), pred)


def test_the_heads_round_trip_and_a_model_saved_before_them_loads_without(fitted, tmp_path: Path) -> None:  # noqa: ANN001
    pool, model = fitted
    model.save(tmp_path / "new")
    loaded = CascadeModel.load(tmp_path / "new")
    assert loaded.term_horizons == [3, 7] and loaded.major is not None
    pd.testing.assert_frame_equal(loaded.predict(pool.X), model.predict(pool.X))
    # a model saved before the heads existed: no files, no meta entries
    old = tmp_path / "old"
    shutil.copytree(tmp_path / "new", old)
    for name in ("major.txt", "term_3d.txt", "term_7d.txt"):
        (old / name).unlink()
    import json

    meta = json.loads((old / "meta.json").read_text())
    meta = {k: v for k, v in meta.items() if k not in ("major_calibrator", "term_calibrators")}
    meta["config"] = {k: v for k, v in meta["config"].items() if k not in ("major_head", "term_horizons")}
    (old / "meta.json").write_text(json.dumps(meta))
    before = CascadeModel.load(old)
    assert before.major is None and before.term == {}
    assert before.probability_columns() == ["p_cascade", "p_long", "p_short"]
    pd.testing.assert_frame_equal(before.predict(pool.X), model.predict(pool.X)[before.predict(pool.X).columns])


def _forecaster(settings: Settings, model: CascadeModel):  # noqa: ANN202
    from forecast.predict import Champion, CoinForecaster

    identity = {"name": "cascade-radar-btc", "version": "1", "alias": "champion", "run_id": "", "direction_brier_skill": ""}
    return CoinForecaster.build(settings, Champion(model, identity, []), HistoryStore(settings.data_path).panel())


def test_every_answer_carries_both_and_an_old_champion_says_not_measured(synthetic_tables, fitted,  # noqa: ANN001
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from serving.schemas import Forecast

    settings, _ = synthetic_tables
    _, model = fitted
    forecaster = _forecaster(settings, model)
    answers = forecaster.forecast_many(forecaster.answerable_days[::25])
    for a in answers:
        by = a["p_cascade_by_horizon"]
        assert list(by) == ["3", "7", "14"] and by["14"] == a["p_cascade"]
        assert by["3"] <= by["7"] <= by["14"] and 0 <= a["p_major"] <= a["p_cascade"]
        Forecast(**a)  # the API's schema takes it
    a = answers[-1]
    assert term_said(a["p_cascade_by_horizon"], a["p_major"]) == (f"within 3 d {a['p_cascade_by_horizon']['3']:.2f} · 7 d "
                                                                  f"{a['p_cascade_by_horizon']['7']:.2f} · 14 d {a['p_cascade']:.2f} · "
                                                                  f"major {a['p_major']:.2f}")
    old = copy.copy(model)
    old.major, old.term, old.term_calibrators = None, {}, {}
    before = _forecaster(settings, old).forecast(a["day"])
    assert before["p_cascade"] == a["p_cascade"]  # the 14-day number does not depend on the heads
    assert before["p_major"] is None and before["p_cascade_by_horizon"] == {"3": None, "7": None, "14": a["p_cascade"]}
    Forecast(**before)
    assert term_said(before["p_cascade_by_horizon"], before["p_major"]) == (f"within 3 d not measured · 7 d not measured · 14 d "
                                                                            f"{a['p_cascade']:.2f} · major not measured")
    assert term_said(None, None) == "within shorter horizons: not measured · major not measured"  # a ledger row from before
    # the alert text and `cascade-radar today` say the same line, for the new champion and the old
    from cli.main import _print_forecast
    from operations.alerts import payload

    for answer in (a, before):
        said = term_said(answer["p_cascade_by_horizon"], answer["p_major"])
        assert f"({said})" in payload(answer, "test")["text"]
        _print_forecast(answer)
        assert f"  {said}\n" in capsys.readouterr().out


def test_a_ledger_row_from_before_the_heads_still_reads(tmp_path: Path) -> None:
    from operations.ledger import Ledger, checksum

    old = {"asset": "BTC", "day": "2024-01-01", "model": {"name": "m", "version": "1", "alias": "champion"}, "p_cascade": 0.3,
           "alert": False, "side": "long", "basis": "out-of-sample"}
    new = {**old, "day": "2024-01-02", "p_major": 0.05, "p_cascade_by_horizon": {"3": 0.1, "7": 0.2, "14": 0.3}}
    path = tmp_path / "ledger.jsonl"
    path.write_text("".join(__import__("json").dumps({**r, "checksum": checksum(r)}) + "\n" for r in (old, new)))
    frame = Ledger(path).frame()
    assert len(frame) == 2 and pd.isna(frame["p_major"].iloc[0]) and frame["p_major"].iloc[1] == 0.05


@pytest.fixture(scope="module")
def evaluation(synthetic_tables) -> Evaluation:  # noqa: ANN001
    settings, tables = synthetic_tables
    return walk_forward(tables, settings)


def test_the_walk_forward_scores_each_head_against_its_own_target(evaluation: Evaluation) -> None:
    scores = evaluation.scores.loc["BTC"]
    model = scores.loc["model"]
    for column in ("major_head_roc_auc", "major_head_pr_auc", "within_3d_roc_auc", "within_7d_roc_auc", "within_3d_p_cascade_roc_auc"):
        assert 0 < model[column] < 1, column
    assert scores["major_head_roc_auc"].drop("model").isna().all()  # the baselines have no major head: their p_cascade is scored as major
    # a baseline has no term head: its P within H is its ranking of the shorter horizon's days
    assert scores.loc["volatility", "within_3d_roc_auc"] == scores.loc["volatility", "within_3d_p_cascade_roc_auc"]
    oof = evaluation.oof["model"]
    assert (oof[MAJOR] <= oof["p_cascade"]).all() and (oof[term_column(3)] <= oof[term_column(7)]).all()
    # scored on the days whose 3-day target is known, against that target, by hand
    from sklearn.metrics import roc_auc_score

    known = oof["within_3d"].notna()
    assert model["within_3d_roc_auc"] == pytest.approx(roc_auc_score(oof.loc[known, "within_3d"] > 0, oof.loc[known, term_column(3)]))
    table = evaluation.heads_table("BTC")
    assert list(table.columns[:2]) == ["major_head_roc_auc", "major_roc_auc"] and "within_7d_base_rate" in table.columns
    assert all(m.major is not None and m.term_horizons == [3, 7] for m in evaluation.fold_models.values())


def test_the_report_and_the_coin_table_show_the_heads_beside_the_baselines(evaluation: Evaluation, synthetic_tables) -> None:  # noqa: ANN001
    from training.report import coin_table, heads_section

    settings, _ = synthetic_tables
    text = "\n".join(heads_section(evaluation, "BTC", settings))
    assert text.startswith("## Severity and term structure")
    for said in ("major ROC-AUC, P(major)", "major ROC-AUC, P(cascade)", "3 d ROC-AUC", "7 d ROC-AUC, P(cascade)", "| volatility", "| model"):
        assert said in text, said
    row, scores = coin_table(evaluation).loc["BTC"], evaluation.scores
    assert row["major ROC-AUC, P(major)"] == scores.loc[("BTC", "model"), "major_head_roc_auc"]
    assert row["vol major ROC-AUC"] == scores.loc[("BTC", "volatility"), "major_roc_auc"]
    assert row["3 d ROC-AUC"] == scores.loc[("BTC", "model"), "within_3d_roc_auc"]
    assert row["major ROC-AUC"] == scores.loc[("BTC", "model"), "major_roc_auc"]  # the existing column, as it was


def test_the_heads_round_trip_through_the_registry_with_the_fold_models(trained_synthetic) -> None:  # noqa: ANN001
    """The champion loaded from MLflow (and its pyfunc face, and its run's fold models) answers the heads as trained."""
    import mlflow

    from training.explain import champion_fold_sources
    from training.register import CHAMPION, load_champion

    settings, ft, result = trained_synthetic
    model, identity = load_champion(settings)
    X = ft.table.loc[ft.table["target"].notna(), result.model.features].tail(60)
    heads = [MAJOR, term_column(3), term_column(7)]
    assert model.probability_columns() == ["p_cascade", "p_long", "p_short", *heads]
    np.testing.assert_allclose(model.predict(X)[heads].to_numpy(), result.model.predict(X)[heads].to_numpy(), rtol=1e-12)
    served = mlflow.pyfunc.load_model(f"models:/{settings.registered_model_name}@{CHAMPION}").predict(X)
    assert list(served.columns) == model.probability_columns()
    folds = champion_fold_sources(settings, identity)
    assert folds and all(f.model.has_major and f.model.term_horizons == [3, 7] for f in folds)
