"""Event reconstruction in a desk analyst's words, pinned to the desk analysis's two hand-written reconstructions (2025-10-10,
2025-04-23) with tolerances about *our* data (other providers than the desk analysis's charts), and a hand-computed move on a small series."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import Settings
from features.build import assemble_panel, load_feature_table
from features.reconstruction import MEASURES, family_move, reconstruct
from features.sources.reference import import_reference
from features.store import HistoryStore


def test_a_move_is_start_low_high_end_and_the_swing_in_the_window_direction() -> None:
    days = pd.date_range("2024-01-01", periods=6, freq="D")
    panel = pd.DataFrame({"price_usd": [100.0, 90.0, 95.0, 120.0, 110.0, 115.0]}, index=days)
    price = next(m for m in MEASURES if m.family == "price")
    move = family_move(panel, price, days)
    assert move["low"] == {"day": "2024-01-02", "value": 0.09} and move["high"] == {"day": "2024-01-04", "value": 0.12}
    assert move["swing"]["change"] == pytest.approx(100 * (120 / 90 - 1))  # it ended higher: low -> high, +33.3 %
    assert move["text"] == "price 0.1 k$ (01-02) → 0.1 k$ (01-04), +33.3 %" and move["direction"] == "up"
    nupl = next(m for m in MEASURES if m.family == "nupl")
    signs = family_move(pd.DataFrame({"sth_nupl": [-0.2, -0.1, 0.05, 0.1, -0.02, 0.03]}, index=days), nupl, days)
    assert signs["flips"] == ["2024-01-03", "2024-01-05", "2024-01-06"] and signs["last_sign_days"] == 1
    assert signs["positive_share"] == pytest.approx(3 / 6)


@pytest.fixture(scope="module")
def btc(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[pd.DataFrame, pd.DataFrame]:
    from tests.conftest import REFERENCE_DIR

    if not (REFERENCE_DIR / "README.md").exists():
        pytest.skip(f"reference data not found at {REFERENCE_DIR} (clone without ../shared)")
    root: Path = tmp_path_factory.mktemp("reconstruction")
    settings = Settings(data_dir=root / "data", reports_dir=root / "reports", mlruns_dir=root / "mlruns", reference_dir=REFERENCE_DIR, assets=["BTC"])
    store = HistoryStore(settings.data_path)
    import_reference(store, REFERENCE_DIR, "BTC")
    return assemble_panel(store.panel()), load_feature_table(store, settings).table


def test_2025_10_10_reads_as_the_desk_analysis_wrote_it(btc: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The desk analysis: price 109k -> 122-126k in nine days, OI +22 %, STH-NUPL -> positive, STH-SOPR up, a months-long bearish divergence."""
    panel, features = btc
    built = reconstruct(panel, features, "2025-10-10")
    fam = {m["family"]: m for m in built["families"]}
    price = panel["price_usd"]
    run_up = price.loc["2025-10-05"] / price.loc["2025-09-27"] - 1
    assert 0.10 <= run_up <= 0.16  # 09-27 -> 10-05, on our Binance closes
    assert fam["price"]["swing"]["from"] == "2025-09-25" and 0.10 <= fam["price"]["swing"]["change"] / 100 <= 0.16
    assert 15 <= fam["oi"]["swing"]["change"] <= 30 and fam["oi"]["direction"] == "up"
    nupl = fam["nupl"]["values"]
    assert min(nupl.values()) < 0 < max(nupl.values()) and fam["nupl"]["flips"]  # from below zero to above within the window
    assert fam["sopr"]["high"]["value"] >= 1.01
    div = built["rsi_divergence"]
    assert div["kind"] == "bearish" and "2025-07-01" <= div["first"] <= "2025-10-09"
    assert built["sequence"][:2] == ["bearish RSI divergence", "price expansion"] and "STH-NUPL flip" in built["sequence"]
    assert "OI expansion" in built["sequence"] and built["text"].endswith("→ cascade.")


def test_2025_04_23_reads_as_the_desk_analysis_wrote_it(btc: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """The desk analysis: a bullish divergence from late February, the 76k low on 04-08, OI rising after it, SOPR pinned near 1, STH-NUPL
    negative until it turned positive on 04-22/23."""
    panel, features = btc
    built = reconstruct(panel, features, "2025-04-23")
    fam = {m["family"]: m for m in built["families"]}
    low = pd.Timestamp(fam["price"]["low"]["day"])
    assert abs((low - pd.Timestamp("2025-04-08")).days) <= 1 and 74 <= fam["price"]["low"]["value"] <= 78  # k$
    nupl = pd.Series(fam["nupl"]["values"])
    assert (nupl.loc["2025-04-08":"2025-04-17"] < 0).all() and nupl.loc["2025-04-22"] >= 0
    sopr = pd.Series(fam["sopr"]["values"]).loc[:"2025-04-15"]
    assert np.all(np.abs(sopr - 1.0) <= 0.02)
    assert fam["oi"]["swing"]["from"] == "2025-04-08" and fam["oi"]["direction"] == "up"  # OI rising after the low
    assert built["rsi_divergence"]["kind"] == "bullish"
