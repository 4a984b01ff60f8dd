"""Issue 37: every coin's panel and features kept on disk per version of the stores, settings and feature code
(``features.cache``): read back equal to a fresh build, never stale, never half-written."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest

from cascade_radar.config import Settings
from features.build import coin_frames
from features.cache import cache_root, frames_key
from features.sources.synthetic import generate_history, load_into
from features.store import HistoryStore

COINS = ["BTC", "C002", "C003"]


@pytest.fixture()
def three(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", reports_dir=tmp_path / "reports", mlruns_dir=tmp_path / "mlruns",
                        reference_dir=tmp_path / "no-reference", assets=COINS)
    for i, coin in enumerate(COINS):
        load_into(HistoryStore(settings.for_asset(coin).data_path), generate_history(seed=20 + i, n_days=420, asset_scale=10.0 ** -i))
    return settings


def assert_same(a, b) -> None:  # noqa: ANN001 - two CoinFrames
    assert list(a.coins) == list(b.coins)
    for coin in a.coins:
        for x, y in zip(a.coins[coin], b.coins[coin], strict=True):
            pd.testing.assert_frame_equal(x, y, check_freq=False)
    pd.testing.assert_frame_equal(a.catalogue, b.catalogue)
    pd.testing.assert_frame_equal(a.context.panel, b.context.panel, check_freq=False)
    pd.testing.assert_frame_equal(a.context.features, b.context.features, check_freq=False)
    pd.testing.assert_frame_equal(a.context.market, b.context.market, check_freq=False)
    assert a.context.families == b.context.families


def test_frames_read_back_equal_a_fresh_build_and_a_changed_store_builds_them_again(three: Settings) -> None:
    built = coin_frames(three)
    assert not built.cached and not built.failed
    read = coin_frames(three)
    assert read.cached
    assert_same(built, read)
    # the daily job appends a day to one coin: another key, built again (the market-wide inputs read every coin)
    store = HistoryStore(three.for_asset("C003").data_path)
    ohlcv = store.read("ohlcv")
    nxt = ohlcv.iloc[[-1]].copy()
    nxt.index = nxt.index + pd.Timedelta(days=1)
    before = frames_key(three)
    store.append("ohlcv", nxt, "test")
    assert frames_key(three) != before
    again = coin_frames(three)
    assert not again.cached and again.coins["C003"][0].index[-1] == nxt.index[-1]
    assert coin_frames(three).cached
    assert len([p for p in cache_root(three).iterdir() if p.is_dir()]) == 2  # the two newest keys are kept


def test_settings_and_the_coin_list_are_part_of_the_key(three: Settings) -> None:
    key = frames_key(three)
    assert frames_key(three.model_copy(update={"labels": three.labels.model_copy(update={"horizon_days": 7})})) != key
    assert frames_key(three.model_copy(update={"assets": COINS[:2]})) != key
    assert frames_key(three.model_copy(update={"asset": "C002"})) == key  # the coin a command answers for is not


def test_a_folder_without_its_manifest_is_never_read(three: Settings) -> None:
    coin_frames(three)
    folder = cache_root(three) / frames_key(three)
    (folder / "manifest.json").unlink()  # a writer that died before the end
    assert not coin_frames(three).cached  # built again, and now complete
    assert json.loads((folder / "manifest.json").read_text())["coins"] == sorted(COINS)
    assert coin_frames(three).cached


def test_a_cache_that_cannot_be_written_leaves_the_frames_built(three: Settings, caplog: pytest.LogCaptureFixture) -> None:
    cache_root(three).parent.mkdir(parents=True)
    cache_root(three).write_text("not a folder")  # the cache's place taken: nothing can be written there
    with caplog.at_level(logging.WARNING, logger="features.cache"):
        frames = coin_frames(three)
    assert not frames.cached and set(frames.coins) == set(COINS)
    assert "feature frames not cached" in caplog.text


def test_an_empty_store_is_a_failed_coin_and_nothing_is_cached(three: Settings) -> None:
    settings = three.model_copy(update={"assets": [*COINS, "C004"]})
    frames = coin_frames(settings)
    assert set(frames.coins) == set(COINS) and "C004" in frames.failed and "no history" in str(frames.failed["C004"])
    assert not coin_frames(settings).cached  # a broken coin is said again, not remembered


def test_with_the_cache_off_frames_are_built_and_nothing_is_written(three: Settings) -> None:
    off = three.model_copy(update={"frame_cache": False})
    assert not coin_frames(off).cached and not coin_frames(off).cached
    assert not cache_root(three).exists()


def test_a_complete_folder_whose_file_went_missing_builds_the_frames_again(three: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """Another process pruned the folder while this one read it, or a file was damaged: the frames are built, not lost."""
    built = coin_frames(three)
    folder = cache_root(three) / frames_key(three)
    (folder / "c002.features.parquet").unlink()
    (folder / "c003.panel.parquet").write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING, logger="features.build"):
        again = coin_frames(three)
    assert not again.cached and "unreadable" in caplog.text
    assert_same(built, again)
    assert coin_frames(three).cached  # written whole again
