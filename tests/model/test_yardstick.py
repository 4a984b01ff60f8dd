"""Every headline probability with its yardstick (issue 33): the coin's base rate over the champion's out-of-fold days, the
day's relative risk and its percentile among the out-of-fold answers — measured in training, carried by the champion, read
by every answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cascade_radar.rules import ordinal, yardstick_said
from training.yardstick import QUANTILES, percentile, reliability_bins, yardstick_of, yardstick_table


def oof_rows() -> pd.DataFrame:
    """Two coins' out-of-fold rows: BTC 10 days, 3 followed by a cascade; ETH 4 days, 1."""
    btc = pd.DataFrame({"asset": "BTC", "p_cascade": np.linspace(0.1, 0.55, 10),
                        "target": ["none", "long", "none", "short", "none", "none", "long", "none", "none", "none"]},
                       index=pd.date_range("2024-01-01", periods=10, name="date"))
    eth = pd.DataFrame({"asset": "ETH", "p_cascade": [0.2, 0.3, 0.4, 0.5], "target": ["none", "none", "short", "none"]},
                       index=pd.date_range("2024-03-01", periods=4, name="date"))
    return pd.concat([btc, eth])


def test_the_base_rate_is_the_share_of_cascade_ahead_days_in_the_out_of_fold_window() -> None:
    table = yardstick_table(oof_rows(), 14)
    btc, eth = table["coins"]["BTC"], table["coins"]["ETH"]
    assert (btc["days"], btc["event_days"], btc["base_rate"]) == (10, 3, 0.3)  # long, short, long of 10 days
    assert (eth["days"], eth["event_days"], eth["base_rate"]) == (4, 1, 0.25)
    assert (btc["first_day"], btc["last_day"]) == ("2024-01-01", "2024-01-10") and table["horizon_days"] == 14
    assert len(btc["quantiles"]) == QUANTILES and btc["quantiles"][0] == 0.1 and btc["quantiles"][-1] == 0.55
    assert eth["quantiles"][50] == pytest.approx(0.35)  # the median of 0.2, 0.3, 0.4, 0.5


def test_relative_risk_is_p_over_the_base_rate() -> None:
    coin = yardstick_table(oof_rows(), 14)["coins"]["BTC"]
    said = yardstick_of(coin, 0.45)
    assert said["base_rate"] == 0.3 and said["relative_risk"] == pytest.approx(1.5, abs=1e-12)
    assert yardstick_of(coin, 0.15)["relative_risk"] == pytest.approx(0.5, abs=1e-12)
    assert yardstick_of(None, 0.45) == {"base_rate": None, "relative_risk": None, "percentile": None}  # a champion without the table


def test_the_percentile_is_monotone_and_is_the_rank_among_the_out_of_fold_answers() -> None:
    rng = np.random.default_rng(3)
    # as many answers as quantiles: each answer's percentile is exactly its rank, 100 x (answers below) / (answers - 1)
    answers = rng.permutation(np.linspace(0.05, 0.85, QUANTILES))
    table = np.quantile(answers, np.linspace(0, 1, QUANTILES))
    for p in answers:
        assert percentile(table, p) == pytest.approx(100 * (answers < p).sum() / (len(answers) - 1), abs=1e-9)
    # many answers: within a point of the rank
    many = rng.beta(2, 5, size=2000)
    table = np.quantile(many, np.linspace(0, 1, QUANTILES))
    ranks = 100 * np.searchsorted(np.sort(many), many, side="left") / (len(many) - 1)
    assert np.abs([percentile(table, p) - r for p, r in zip(many, ranks, strict=True)]).max() <= 1.0
    grid = np.linspace(-0.1, 1.1, 500)
    read = [percentile(table, p) for p in grid]
    assert np.all(np.diff(read) >= 0) and read[0] == 0.0 and read[-1] == 100.0  # monotone, 0 below every answer, 100 above
    # ties: a value shared by half the answers is at or above all of them
    tied = np.quantile(np.r_[np.full(50, 0.2), np.linspace(0.3, 0.8, 50)], np.linspace(0, 1, QUANTILES))
    assert percentile(tied, 0.2) == pytest.approx(49.0, abs=1.0) and percentile(tied, 0.19) == 0.0


def test_the_calibration_bins_are_scikit_learns_quantile_bins() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 700)
    y = rng.uniform(0, 1, 700) < p
    bins = reliability_bins(y, p)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    assert len(bins) == 10 and sum(b["days"] for b in bins) == 700 and sum(b["event_days"] for b in bins) == y.sum()
    assert [b["observed"] for b in bins] == pytest.approx(list(observed), abs=1e-12)
    assert [b["mean_predicted"] for b in bins] == pytest.approx(list(predicted), abs=1e-12)


def test_the_yardstick_in_words() -> None:
    assert yardstick_said(0.46, 14, 0.405, 0.46 / 0.405, 62.3) == "P(cascade within 14 d) 0.46 — base rate 0.41, 1.1× normal, 62nd percentile"
    assert yardstick_said(0.46, 14, None, None, None) == "P(cascade within 14 d) 0.46 — base rate: not measured"
    assert [ordinal(n) for n in (0, 1, 2, 3, 4, 11, 12, 13, 21, 22, 100, 101, 111)] == [
        "0th", "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "100th", "101st", "111th"]


def test_the_champion_carries_its_walk_forwards_yardstick_and_answers_read_it(trained_synthetic) -> None:  # noqa: ANN001
    settings, ft, result = trained_synthetic
    coin = result.model.yardstick["coins"]["BTC"]
    # the window: the days of the walk-forward's test blocks; the base rate: the share of them a cascade followed within H
    tested = pd.DatetimeIndex(sorted({d for fold in result.evaluation.folds for d in fold.test_days}))
    labelled = ft.table.loc[ft.table.index.isin(tested) & ft.table["target"].notna(), "target"]
    assert coin["days"] == len(labelled) and coin["event_days"] == int((labelled != "none").sum())
    assert coin["base_rate"] == pytest.approx(float((labelled != "none").mean()), abs=1e-12)
    assert coin["base_rate"] == pytest.approx(float(result.evaluation.scores.loc[("BTC", "model"), "base_rate"]), abs=1e-12)  # the report's
    oof = result.evaluation.oof["model"]
    assert coin["quantiles"] == pytest.approx(list(np.quantile(oof["p_cascade"], np.linspace(0, 1, QUANTILES))), abs=1e-12)
    from forecast.predict import CoinForecaster

    forecaster = CoinForecaster.load(settings)  # the registered champion, as every interface loads it (its meta.json)
    assert forecaster.champion.model.yardstick == result.model.yardstick
    days = [d for d in oof.index[::37] if d in forecaster.answerable_days]
    answers = forecaster.forecast_many(days)
    ranks = np.sort(oof["p_cascade"].to_numpy())
    for answer, day in zip(answers, days, strict=True):
        assert answer["basis"] == "out-of-fold" and answer["p_cascade"] == pytest.approx(float(oof.loc[day, "p_cascade"]), abs=1e-9)
        assert answer["base_rate"] == coin["base_rate"] and answer["relative_risk"] == pytest.approx(answer["p_cascade"] / coin["base_rate"], rel=1e-12)
        rank = 100 * np.searchsorted(ranks, answer["p_cascade"] - 1e-12, side="left") / (len(ranks) - 1)  # its rank among the answers
        assert answer["percentile"] == pytest.approx(rank, abs=1.0)
        assert f"{answer['relative_risk']:.1f}× its base rate {coin['base_rate']:.2f}" in answer["sentence"]
    ordered = sorted(answers, key=lambda a: a["p_cascade"])
    assert all(a["percentile"] <= b["percentile"] for a, b in zip(ordered, ordered[1:], strict=False))  # monotone in P
    assert "out-of-fold days" in answers[0]["base_rate_basis"] and f"{coin['days']:,}" in answers[0]["base_rate_basis"]
    calibration = forecaster.calibration()
    assert calibration["bins"] == coin["calibration"] and calibration["base_rate"] == coin["base_rate"]
    assert sum(b["days"] for b in calibration["bins"]) == coin["days"]


def test_the_explanation_picture_states_the_yardstick(trained_synthetic, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    import training.explain as explain
    from forecast.predict import CoinForecaster

    settings, ft, _ = trained_synthetic
    x = CoinForecaster.load(settings).forecast(ft.table.index[800], detail=True)
    drawn = {}
    monkeypatch.setattr(explain, "save_figure", lambda fig, path, dpi=100: drawn.setdefault("title", fig.axes[0].get_title()))
    explain.plot_day(x, tmp_path / "day.png")
    assert yardstick_said(x["p_cascade"], x["horizon_days"], x["base_rate"], x["relative_risk"], x["percentile"]) in drawn["title"]


def test_every_answer_alerts_at_the_coins_chosen_line(trained_synthetic) -> None:  # noqa: ANN001
    """The champion's line is the one training.thresholds chooses from every out-of-fold day of the coin; every answer's
    ``alert`` is P(cascade) >= that line, and says it and how it was chosen; without a budget, the configured line."""
    from forecast.predict import CoinForecaster
    from training.thresholds import choose_threshold

    settings, _, result = trained_synthetic
    oof = result.evaluation.oof["model"]
    line = result.model.yardstick["coins"]["BTC"]["alert_line"]
    assert line == choose_threshold(oof[oof["asset"] == "BTC"], settings.false_alarm_budget_per_30d, settings.alert_threshold).as_dict()
    forecaster = CoinForecaster.load(settings)
    assert forecaster.alert_threshold == line["alert_threshold"]
    answers = forecaster.forecast_many([d for d in oof.index[::23] if d in forecaster.answerable_days])
    assert {a["alert_threshold"] for a in answers} == {line["alert_threshold"]}
    assert all(a["alert"] == (a["p_cascade"] >= line["alert_threshold"]) for a in answers)
    assert "false alarms per 30 days" in answers[0]["alert_threshold_basis"]
    fixed = CoinForecaster.load(settings.model_copy(update={"false_alarm_budget_per_30d": None}))
    assert fixed.alert_threshold == settings.alert_threshold
    assert fixed.alert_line()["alert_threshold_basis"].startswith(f"fixed at {settings.alert_threshold:g}")
