"""The history store: schema checks, incremental idempotent appends, atomic writes, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from features.schemas import SchemaError, validate
from features.store import HistoryStore, find_gaps


def liq(days: list[str], long: list[float], short: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"liq_long_usd": long, "liq_short_usd": short}, index=pd.DatetimeIndex(pd.to_datetime(days), name="date"))


def test_validate_fills_optional_columns_and_orders_them() -> None:
    frame = pd.DataFrame({"oi_close_usd": [1.0, 2.0]}, index=pd.to_datetime(["2024-01-01", "2024-01-02"]))
    out = validate("open_interest", frame)
    assert list(out.columns) == ["oi_close_usd", "oi_high_usd", "oi_low_usd", "oi_coin_margined_usd"]
    assert out["oi_high_usd"].isna().all()
    assert out.index.name == "date"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (liq(["2024-01-01", "2024-01-01"], [1, 2], [1, 2]), "series 'liquidations', date 2024-01-01: duplicate day"),
        (liq(["2024-01-02", "2024-01-01"], [1, 2], [1, 2]), "series 'liquidations', date 2024-01-01: dates are not increasing"),
        (liq(["2024-01-01", "2024-01-02"], [1, -5], [1, 2]), "series 'liquidations', column 'liq_long_usd', date 2024-01-02: impossible value -5"),
        (liq(["2024-01-01", "2024-01-02"], [1, np.inf], [1, 2]), "column 'liq_long_usd', date 2024-01-02: infinite value"),
        (liq(["2024-01-01", "2024-01-02"], [1, "abc"], [1, 2]), "column 'liq_long_usd', date 2024-01-02: non-numeric value 'abc'"),
        (liq(["2024-01-01", "2024-01-02"], [1, 2], [1, 2]).drop(columns="liq_short_usd"), "column 'liq_short_usd': required column missing"),
        (liq(["2024-01-01", "2024-01-02"], [1, 2], [1, 2]).assign(extra=1.0), "column 'extra': unexpected column"),
    ],
)
def test_validate_refuses_with_series_date_and_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        validate("liquidations", frame)
    assert message in str(err.value)


def test_price_must_be_positive() -> None:
    frame = pd.DataFrame({"open_usd": [1.0], "high_usd": [1.0], "low_usd": [0.0], "close_usd": [1.0], "volume_base": [1.0]},
                         index=pd.to_datetime(["2024-03-05"]))
    with pytest.raises(SchemaError, match=r"column 'low_usd', date 2024-03-05: impossible value 0 \(must be > 0"):
        validate("ohlcv", frame)


def test_intraday_timestamps_are_refused() -> None:
    frame = liq(["2024-01-01 08:00"], [1], [1])
    with pytest.raises(SchemaError, match="UTC day starts"):
        validate("liquidations", frame)


def test_append_is_incremental_and_idempotent(store: HistoryStore) -> None:
    first = store.append("liquidations", liq(["2024-01-01", "2024-01-02"], [1, 2], [3, 4]), source="t")
    assert (first.new_rows, first.revised_rows) == (2, 0)
    path = store.path("liquidations")
    before = path.read_bytes()
    again = store.append("liquidations", liq(["2024-01-01", "2024-01-02"], [1, 2], [3, 4]), source="t")
    assert not again.changed
    assert path.read_bytes() == before  # loading twice changes nothing, not even the file
    more = store.append("liquidations", liq(["2024-01-02", "2024-01-03"], [20, 5], [4, 6]), source="t")
    assert (more.new_rows, more.revised_rows) == (1, 1)  # 01-02 revised by the provider, 01-03 new
    stored = store.read("liquidations")
    assert stored["liq_long_usd"].tolist() == [1, 20, 5]
    assert stored.index.tolist() == list(pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"]))


def test_missing_values_never_erase_stored_ones(store: HistoryStore) -> None:
    store.append("liquidations", liq(["2024-01-01"], [1], [3]), source="t")
    store.append("liquidations", liq(["2024-01-01"], [np.nan], [7]), source="t")
    stored = store.read("liquidations")
    assert stored.loc["2024-01-01"].tolist() == [1.0, 7.0]


def test_failed_write_leaves_store_byte_identical(store: HistoryStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.append("liquidations", liq(["2024-01-01", "2024-01-02"], [1, 2], [3, 4]), source="t")
    path = store.path("liquidations")
    before = path.read_bytes()

    def half_write(table, where, **kwargs):  # noqa: ANN001, ANN003 - stands in for pyarrow's writer
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full (simulated mid-write)")

    monkeypatch.setattr(pq, "write_table", half_write)
    with pytest.raises(OSError, match="simulated"):
        store.append("liquidations", liq(["2024-01-03"], [9], [9]), source="t")
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_invalid_append_leaves_store_unchanged(store: HistoryStore) -> None:
    store.append("liquidations", liq(["2024-01-01"], [1], [3]), source="t")
    before = store.path("liquidations").read_bytes()
    with pytest.raises(SchemaError):
        store.append("liquidations", liq(["2024-01-02"], [-1], [3]), source="t")
    assert store.path("liquidations").read_bytes() == before


def test_gaps_are_recorded_not_filled(store: HistoryStore) -> None:
    store.append("liquidations", liq(["2024-01-01", "2024-01-02", "2024-01-05", "2024-01-07"], [1, 1, 1, 1], [1, 1, 1, 1]), source="t")
    (status,) = store.status()
    assert status.rows == 4
    assert [(a.day, b.day) for a, b in status.gaps] == [(3, 4), (6, 6)]
    assert status.missing_days == 3
    assert len(store.read("liquidations")) == 4
    assert find_gaps(pd.DatetimeIndex([])) == []


def test_panel_keeps_missing_days_missing(store: HistoryStore) -> None:
    store.append("liquidations", liq(["2024-01-01", "2024-01-03"], [1, 3], [1, 3]), source="t")
    panel = store.panel()
    assert len(panel) == 3
    assert np.isnan(panel.loc["2024-01-02", "liq_long_usd"])


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write_and_a_live_ones_kept(store: HistoryStore) -> None:
    import subprocess
    import sys

    store.append("liquidations", liq(["2024-01-01"], [1], [2]), source="t")
    path = store.path("liquidations")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    left_by_kill = path.parent / f".{path.name}.{dead.stdout.strip()}.abc123.tmp"  # as a kill mid-write leaves it
    left_by_kill.write_bytes(b"half a parquet file")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        in_progress = path.parent / f".{path.name}.{live.pid}.def456.tmp"  # another process writing right now
        in_progress.write_bytes(b"being written")
        store.append("liquidations", liq(["2024-01-02"], [3], [4]), source="t")
        assert not left_by_kill.exists()
        assert in_progress.exists()
    finally:
        live.kill()
        live.wait()
    assert store.read("liquidations")["liq_long_usd"].tolist() == [1, 3]


def test_a_file_of_another_series_is_named_with_the_repair(store: HistoryStore) -> None:
    import shutil

    from features.store import StoreError

    store.append("liquidations", liq(["2024-01-01"], [1], [2]), source="t")
    shutil.copy(store.path("liquidations"), store.path("liquidations_binance"))
    with pytest.raises(StoreError, match=r"'liquidations_binance'.*holds series 'liquidations'.*Repair: delete the file"):
        store.read("liquidations_binance")
    store.path("funding_binance").write_bytes(b"not parquet at all")
    with pytest.raises(StoreError, match=r"'funding_binance'.*not a readable Parquet file.*import-reference"):
        store.read("funding_binance")


def test_parallel_feature_table_writes_all_succeed(tmp_path) -> None:  # noqa: ANN001
    from concurrent.futures import ProcessPoolExecutor

    target = tmp_path / "feature_table.parquet"
    with ProcessPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_write_table, [(target, i) for i in range(12)]))
    assert results == list(range(12))
    final = pd.read_parquet(target)["x"].to_numpy()
    assert any(np.array_equal(final, np.arange(2000.0) + i) for i in range(12))  # exactly one writer's table, whole, not a mix
    assert not list(tmp_path.glob(".*.tmp"))


def _write_table(args: tuple) -> int:
    from cascade_radar.files import atomic_write

    target, i = args
    frame = pd.DataFrame({"x": np.arange(2000.0) + i})
    atomic_write(target, frame.to_parquet)
    return i


def test_a_3x_scaled_overlap_is_refused_naming_series_provider_and_ratio_and_the_store_is_unchanged(store: HistoryStore) -> None:
    """The splice check: new days whose level does not match the stored days they overlap are never appended."""
    from features.store import SpliceError

    days = pd.date_range("2024-01-01", periods=10)
    store.append("liquidations", pd.DataFrame({"liq_long_usd": np.arange(1.0, 11.0), "liq_short_usd": 5.0}, index=days), source="reference")
    before = store.path("liquidations").read_bytes()
    later = pd.date_range("2024-01-08", periods=6)  # 3 days of overlap, 3 new days
    scaled = pd.DataFrame({"liq_long_usd": 3.0 * np.arange(8.0, 14.0), "liq_short_usd": 15.0}, index=later)  # 3x: a wider exchange list
    with pytest.raises(SpliceError, match=r"series 'liquidations', column liq_long_usd: the new days from coinglass are 3.00x .* 3 overlapping"):
        store.append("liquidations", scaled, source="coinglass")
    assert store.path("liquidations").read_bytes() == before  # nothing appended
    revised = pd.DataFrame({"liq_long_usd": 1.02 * np.arange(8.0, 14.0), "liq_short_usd": 5.0}, index=later)  # a 2 % revision: accepted
    assert store.append("liquidations", revised, source="coinglass").new_rows == 3
