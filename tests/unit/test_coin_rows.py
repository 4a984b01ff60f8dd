"""Each coin's rows taken by position (found once) are the rows a mask over every coin's rows selects: the per-coin loops
of the walk-forward and the reports grow with rows, not coins x rows (issue 37)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.evaluate import Evaluation, Pool
from training.splits import Fold


def _pool(seed: int = 3) -> Pool:
    rng = np.random.default_rng(seed)
    parts = []
    for i, coin in enumerate(["BTC", "ETH", "SOL"]):
        days = pd.date_range("2024-01-01", periods=40 + 10 * i, freq="D") + pd.Timedelta(days=5 * i)
        parts.append(pd.DataFrame({"f": rng.random(len(days)), "asset": coin}, index=days))
    rows = pd.concat(parts).sample(frac=1.0, random_state=seed)  # coins interleaved: positions must not assume blocks
    target = pd.Series(rng.choice(["none", "long", "short"], len(rows)), index=rows.index)
    major = pd.Series(rng.integers(0, 2, len(rows)).astype(float), index=rows.index)
    return Pool(rows[["f"]], target, major, rows["asset"], {c: pd.DataFrame() for c in ["BTC", "ETH", "SOL", "XRP"]})


def test_coin_rows_are_the_rows_the_mask_marks() -> None:
    pool = _pool()
    rng = np.random.default_rng(5)
    every = pool.labelled_days()
    for _ in range(5):
        days = pd.DatetimeIndex(rng.choice(every, size=30, replace=False)).sort_values()
        for coin in pool.assets:
            np.testing.assert_array_equal(pool.coin_rows(days, coin), np.flatnonzero(pool.rows(days, coin)))
    assert len(pool.coin_rows(every, "XRP")) == 0  # a coin without labelled rows: nothing, no error


def test_an_out_of_fold_block_from_positions_equals_one_from_a_mask() -> None:
    pool = _pool()
    days = pool.labelled_days()
    fold = Fold(1, days[19], days[25], days[39], days[:20], days[25:40])
    mask = pool.rows(fold.test_days, "ETH")
    at = pool.coin_rows(fold.test_days, "ETH")
    frame = pd.DataFrame({"p_cascade": np.linspace(0, 1, len(at))}, index=pool.X.index[at])
    pd.testing.assert_frame_equal(pool.oof(frame.copy(), at, fold), pool.oof(frame.copy(), mask, fold))
    for key, value in pool.head_labels(at).items():
        want = pool.head_labels(mask)[key]
        if value is None:
            assert want is None
        else:
            pd.testing.assert_series_equal(value, want)


def _evaluation() -> Evaluation:
    rng = np.random.default_rng(11)
    coins = rng.choice(["BTC", "ETH", "SOL"], 90)
    days = pd.date_range("2024-01-01", periods=90, freq="D")
    oof = {name: pd.DataFrame({"asset": coins, "fold": np.repeat([1, 2, 3], 30), "p_cascade": rng.random(90)}, index=days)
           for name in ("model", "volatility")}
    scores = pd.DataFrame({"roc_auc": rng.random(8)},
                          index=pd.MultiIndex.from_product([["model", "volatility"], ["BTC", "ETH", "SOL", "pooled"]]).swaplevel()
                          .rename(["asset", "predictor"]))
    per_fold = pd.DataFrame({"roc_auc": rng.random(18)},
                            index=pd.MultiIndex.from_product([["model", "volatility"], ["SOL", "BTC", "ETH"], [1, 2, 3]])
                            .reorder_levels([1, 0, 2]).rename(["asset", "predictor", "fold"]))
    return Evaluation([], oof, scores, per_fold, {})


def test_for_asset_takes_the_coins_rows_of_every_frame() -> None:
    evaluation = _evaluation()
    for coin in ["BTC", "ETH", "SOL", "DOGE"]:
        view = evaluation.for_asset(coin)
        for name, pred in evaluation.oof.items():
            pd.testing.assert_frame_equal(view.oof[name], pred[pred["asset"] == coin])
        pd.testing.assert_frame_equal(view.scores, evaluation.scores[evaluation.scores.index.get_level_values("asset") == coin])
        pd.testing.assert_frame_equal(view.per_fold, evaluation.per_fold[evaluation.per_fold.index.get_level_values("asset") == coin])
    # a frame replaced after a first view: its rows are found again, not read from the first
    evaluation.oof["model"] = evaluation.oof["model"].iloc[::-1]
    pred = evaluation.oof["model"]
    pd.testing.assert_frame_equal(evaluation.for_asset("ETH").oof["model"], pred[pred["asset"] == "ETH"])
