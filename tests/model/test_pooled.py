"""Seven coins, one model: two synthetic coins pooled — market context, shared folds, per-coin baselines and scores,
and the nested selection that never lets an outer test block take part in a choice."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from cascade_radar import config as config_module
from cascade_radar.config import ModelConfig, Settings, TuneConfig
from features.build import FeatureTable, load_feature_tables
from features.families import family_of
from features.sources.synthetic import SyntheticHistory, generate_history, load_into
from features.store import HistoryStore
from tests.conftest import TEST_MODEL
from training.evaluate import POOLED, Evaluation, walk_forward
from training.tune import inner_folds, nested_walk_forward, tune


@pytest.fixture(scope="module")
def two_coins(tmp_path_factory: pytest.TempPathFactory, synthetic: SyntheticHistory) -> tuple[Settings, dict[str, FeatureTable]]:
    root = tmp_path_factory.mktemp("pooled")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=root / "none",
                        assets=["BTC", "ETH"], model=TEST_MODEL)
    load_into(HistoryStore(settings.for_asset("BTC").data_path), synthetic)
    load_into(HistoryStore(settings.for_asset("ETH").data_path), generate_history(seed=12, asset_scale=0.3))
    return settings, load_feature_tables(settings)


@pytest.fixture(scope="module")
def evaluation(two_coins: tuple[Settings, dict[str, FeatureTable]]) -> Evaluation:
    settings, tables = two_coins
    return walk_forward(tables, settings)


def test_every_coin_reads_the_context_coins_on_chain_families(two_coins: tuple[Settings, dict[str, FeatureTable]]) -> None:
    settings, tables = two_coins
    btc, eth = tables["BTC"].table, tables["ETH"].table
    days = btc.index.intersection(eth.index)
    context = [f for f in tables["ETH"].features if family_of(f) in settings.features.context_families]
    assert context and any(f.startswith("flows_") for f in context)
    pd.testing.assert_frame_equal(eth.loc[days, context], btc.loc[days, context])
    # the coin's own families stay its own
    assert not np.allclose(eth.loc[days, "price_return_7d"].fillna(0), btc.loc[days, "price_return_7d"].fillna(0))


def test_scores_exist_per_coin_and_pooled_with_the_events_of_each(evaluation: Evaluation, two_coins) -> None:  # noqa: ANN001
    _, tables = two_coins
    assert set(evaluation.scores.index.get_level_values("asset")) == {"BTC", "ETH", POOLED}
    events = evaluation.scores.xs("model", level="predictor")["events"]
    assert events[POOLED] == events["BTC"] + events["ETH"] > 0
    for name, pred in evaluation.oof.items():
        assert set(pred["asset"]) == {"BTC", "ETH"}, name
    view = evaluation.for_asset("ETH")
    assert set(view.oof["model"]["asset"]) == {"ETH"} and view.assets == ["ETH"]
    # the model wins on each synthetic coin (planted build-ups), and the gate is per coin
    assert evaluation.scores.loc[("BTC", "model"), "roc_auc"] > 0.6 and evaluation.scores.loc[("ETH", "model"), "roc_auc"] > 0.6


def test_folds_are_calendar_blocks_shared_by_every_coin(evaluation: Evaluation, two_coins) -> None:  # noqa: ANN001
    settings, _ = two_coins
    oof = evaluation.oof["model"]
    for fold in evaluation.folds:
        rows = oof[oof["fold"] == fold.number]
        assert set(rows["asset"]) == {"BTC", "ETH"}
        assert rows.index.min() >= fold.test_start and rows.index.max() <= fold.test_end
        assert fold.train_end + pd.Timedelta(days=settings.purge_days) < fold.test_start


def test_baselines_are_fitted_per_coin(evaluation: Evaluation, two_coins) -> None:  # noqa: ANN001
    _, tables = two_coins
    base = evaluation.oof["base_rate"]
    for fold in evaluation.folds:
        for asset, ft in tables.items():
            target = ft.table["target"].dropna()
            prevalence = float((target.loc[target.index.isin(fold.train_days)] != "none").mean())
            predicted = base[(base["fold"] == fold.number) & (base["asset"] == asset)]["p_cascade"]
            np.testing.assert_allclose(predicted.to_numpy(), prevalence)


def test_a_committed_selection_sets_the_model_defaults_and_the_environment_still_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "selection.json"
    path.write_text(json.dumps({"choice": {"families": ["price", "funding"], "num_leaves": 6, "direction_families": ["funding"]}}))
    monkeypatch.setattr(config_module, "SELECTION_FILE", path)
    chosen = ModelConfig()
    assert chosen.families == ["price", "funding"] and chosen.num_leaves == 6 and chosen.direction_families == ["funding"]
    assert ModelConfig(num_leaves=3).num_leaves == 3
    monkeypatch.setenv("CASCADE_RADAR_MODEL__NUM_LEAVES", "5")
    assert Settings().model.num_leaves == 5


def small_search(settings: Settings) -> Settings:
    space = TuneConfig(family_sets={"price": ["price"], "six": ["price", "oi", "funding", "flows", "sopr", "nupl"]},
                       param_sets={"shallow": {"num_leaves": 4, "max_depth": 2, "n_estimators": 60}},
                       direction_sets={"same": None, "funding": ["funding"]},
                       direction_scores={"funding_score": {"kind": "score", "inputs": {"funding_rate_mean_30d_xrank": 1}}},
                       inner_folds=2, inner_min_train_days=120, preferred_family_set=None, free_sign_directions=True)
    return settings.model_copy(update={"tune": space})


def test_nested_selection_chooses_inside_each_outer_training_window(two_coins) -> None:  # noqa: ANN001
    settings, tables = two_coins
    settings = small_search(settings)
    evaluation, per_fold, final = nested_walk_forward(tables, settings)
    first = next(iter(tables.values()))
    from training.evaluate import Pool
    from training.model import model_features

    pool = Pool.of(tables, model_features(first.features, settings.model.model_copy(update={"families": None})))
    for fold in evaluation.folds:
        selection = per_fold[fold.number]
        # the folds `select` really scored on (recorded by it): none of their days — training or test — reaches into the
        # outer test block, or even its purge gap
        assert selection.folds and max(f.test_end for f in selection.folds) <= fold.train_end < fold.test_start
        assert max(max(f.train_days) for f in selection.folds) <= fold.train_end
        assert [f.test_end for f in selection.folds] == [f.test_end for f in inner_folds(pool, fold.train_days, settings)]
        assert set(selection.cascade_scores) == {"price / shallow", "six / shallow"}
        assert set(selection.direction_scores) == {"same", "funding", "funding_score"}
        chosen = max(selection.cascade_scores, key=selection.cascade_scores.get)
        assert selection.chosen.name.startswith(chosen)
    assert set(evaluation.scores.index.get_level_values("predictor")) >= {"model", "volatility", "base_rate"}
    best = max(final.cascade_scores, key=final.cascade_scores.get)  # the committed choice is the all-days inner winner
    assert final.chosen.name.startswith(best) and final.chosen.direction == max(final.direction_scores, key=final.direction_scores.get)


def test_tune_logs_every_candidate_as_a_child_run_and_writes_the_choice_only_when_asked(two_coins, tmp_path: Path,  # noqa: ANN001
                                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings, _ = two_coins
    settings = small_search(settings.model_copy(update={"mlruns_dir": tmp_path / "mlruns", "reports_dir": tmp_path / "reports"}))
    target = tmp_path / "selection.local.json"  # where a tune writes its choice unless asked to commit it
    monkeypatch.setattr("training.tune.LOCAL_SELECTION_FILE", target)
    monkeypatch.setattr("training.tune.SELECTION_FILE", tmp_path / "selection.json")
    result = tune(settings, write_selection=False)
    assert not target.exists() and result.written is None
    children = mlflow.search_runs(experiment_names=[settings.experiment_name], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'")
    assert len(children) == 2 + 3  # two cascade candidates, three direction candidates (two LightGBM, one signed score)
    assert (settings.reports_root / "tune" / "nested.md").exists()
    # the parent run says what it is and what it chose (its description in the UI), with the headline metrics only
    parent = mlflow.get_run(result.run_id)
    said = parent.data.tags["mlflow.note.content"]
    assert said.startswith("Nested walk-forward model selection (`make tune`) over BTC, ETH: 2 cascade candidates")
    assert f"**Chosen over all days: {result.final.chosen.name}** -> not written (`--dry-run`)" in said and "| pooled |" in said
    assert parent.info.run_name.startswith(f"tune BTC+ETH · chose {result.final.chosen.name} · ")
    assert parent.data.metrics and not [k for k in parent.data.metrics if "_fold" in k]  # every number: evaluation/metrics_all.csv
    assert tune(settings, write_selection=True).written == target and not (tmp_path / "selection.json").exists()
    record = json.loads(target.read_text())
    space = settings.tune
    assert record["choice"]["families"] == space.family_sets[record["candidate"]["families"]]  # what was chosen is what is written
    direction = record["candidate"]["direction"]
    if direction in space.direction_scores:
        assert record["choice"]["direction_inputs"] == space.direction_scores[direction]["inputs"] and record["choice"]["direction_families"] is None
    else:
        assert record["choice"]["direction_families"] == space.direction_sets[direction] and record["choice"]["direction_inputs"] is None
    assert set(record["nested_out_of_fold"]) == {"BTC", "ETH", POOLED}


def test_each_coin_has_its_own_yardstick_and_its_report_links_its_reliability_diagram(evaluation: Evaluation, two_coins,  # noqa: ANN001
                                                                                       tmp_path: Path) -> None:
    from training.evaluate import gate
    from training.report import write_report, write_summary

    settings, tables = two_coins
    coins = evaluation.yardstick["coins"]
    oof = evaluation.oof["model"]
    for asset in ("BTC", "ETH"):  # the share of the coin's own out-of-fold days a cascade followed: the report's prevalence
        rows = oof[oof["asset"] == asset]
        assert coins[asset]["base_rate"] == pytest.approx(float((rows["target"] != "none").mean()), abs=1e-12)
        assert coins[asset]["base_rate"] == pytest.approx(float(evaluation.scores.loc[(asset, "model"), "base_rate"]), abs=1e-12)
    assert coins["BTC"]["base_rate"] != coins["ETH"]["base_rate"] and coins["BTC"]["quantiles"] != coins["ETH"]["quantiles"]
    model = evaluation.fold_models[max(evaluation.fold_models)]
    folders, verdicts = {}, {}
    for asset, ft in tables.items():
        each = settings.for_asset(asset)
        folders[asset] = tmp_path / each.reports_path.relative_to(each.reports_root)
        verdicts[asset] = gate(evaluation, settings, asset)
        files = write_report(evaluation.for_asset(asset), verdicts[asset], ft, model, each, folders[asset])
        text = (folders[asset] / "evaluation.md").read_text()
        assert {folders[asset] / "reliability.png", folders[asset] / "calibration.csv"} <= set(files)
        assert "![reliability](reliability.png)" in text and "[reliability diagram](reliability.png)" in text
        assert f"Base rate: **{coins[asset]['base_rate']:.3f}**" in text
        calibration = pd.read_csv(folders[asset] / "calibration.csv")  # the coin's bins, those the champion carries
        assert calibration["days"].sum() == coins[asset]["days"] and len(calibration) == len(coins[asset]["calibration"])
    summary = write_summary(evaluation, verdicts, tmp_path, folders)[0].read_text()
    assert "[reliability diagram](reliability.png)" in summary and "[reliability diagram](eth/reliability.png)" in summary
