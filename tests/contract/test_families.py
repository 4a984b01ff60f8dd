"""One contract for every registered signal family: shape, names, finiteness, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cascade_radar.config import FeatureConfig, Settings
from features.build import assemble_panel, build_feature_table
from features.families import REGISTRY, Family, FeatureSet, load_families
from features.market import market_inputs
from features.sources.synthetic import SyntheticHistory, generate_history

FAMILIES = load_families()
CUTOFFS = 6


@pytest.fixture(scope="module")
def panel(synthetic: SyntheticHistory) -> pd.DataFrame:
    """One coin's assembled panel with the market-wide inputs of it and two more seeded coins joined, as every coin reads them."""
    own = assemble_panel(pd.concat(synthetic.series.values(), axis=1))
    others = {f"coin{seed}": assemble_panel(pd.concat(generate_history(seed=seed).series.values(), axis=1)) for seed in (21, 31)}
    return own.join(market_inputs({"own": own, **others}, FeatureConfig().trailing_norm_days, min_coins=3))


def lookahead_violations(fam: Family, panel: pd.DataFrame, cfg: FeatureConfig, seed: int = 3) -> list[str]:
    """Features whose value at a cut-off day changes when the history after that day is removed."""
    full = fam.compute(panel, cfg).frame()
    rng = np.random.default_rng(seed)
    cutoffs = rng.choice(np.arange(250, len(panel) - 1), size=CUTOFFS, replace=False)
    bad = []
    for pos in sorted(cutoffs):
        day = panel.index[pos]
        truncated = fam.compute(panel.loc[:day], cfg).frame().loc[day]
        expected = full.loc[day]
        same = (truncated == expected) | (truncated.isna() & expected.isna())
        bad += [f"{name} at {day.date()}" for name in same.index[~same]]
    return bad


def test_every_family_module_registers_one_family_with_its_identity() -> None:
    import pkgutil

    import features.families as package

    modules = [m.name for m in pkgutil.iter_modules(package.__path__)]
    assert len(FAMILIES) == len(modules) >= 6
    for fam in FAMILIES.values():
        assert fam.title and fam.colour and (fam.inputs or fam.optional_inputs) and fam.summary is not None, fam.name


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_contract(name: str, panel: pd.DataFrame) -> None:
    fam, cfg = FAMILIES[name], FeatureConfig()
    assert all(col in panel.columns for col in fam.inputs), "declared inputs exist in the panel"
    assert any(col in panel.columns for col in fam.inputs + fam.optional_inputs)
    result = fam.compute(panel, cfg)
    frame = result.frame()
    assert frame.index.equals(panel.index)
    assert frame.columns.is_unique and len(frame.columns) >= 5
    assert all(col.startswith(f"{name}_") for col in frame.columns)
    assert set(result.meanings) == set(frame.columns) and all(result.meanings.values())
    # every feature declares its label and unit; the unit is checked against the values it claims to describe
    assert set(result.labels) == set(result.units) == set(frame.columns)
    for col, unit in result.units.items():
        values = frame[col].dropna().to_numpy()
        if unit == "percentile":
            assert ((values >= 0) & (values <= 1)).all(), f"{col}: a percentile outside 0..1"
        if unit in ("days", "count"):
            assert (values == np.round(values)).all(), f"{col}: {unit} that are not whole"
    assert not np.isinf(frame.to_numpy()).any()
    assert frame.iloc[250:].notna().any().all(), "every feature is defined somewhere after warm-up"
    assert lookahead_violations(fam, panel, cfg) == []


def test_every_feature_has_its_own_label_and_a_known_unit() -> None:
    from features.build import feature_catalogue
    from features.families import UNITS

    catalogue = feature_catalogue()
    assert catalogue["label"].is_unique, catalogue.loc[catalogue["label"].duplicated(keep=False), ["name", "label"]].to_string()
    assert set(catalogue["unit"]) <= set(UNITS)
    with pytest.raises(ValueError, match="unknown unit 'percent per day'"):
        FeatureSet("x", pd.DatetimeIndex([])).add("y", np.array([]), "a test", label="y", unit="percent per day")


def test_the_contract_catches_a_family_that_peeks(panel: pd.DataFrame) -> None:
    def peeking(inputs: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
        out.add("tomorrow", inputs["price_usd"].shift(-1), "tomorrow's price", label="tomorrow's price", unit="index")

    def centred(inputs: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
        out.add("centred_mean", inputs["price_usd"].rolling(5, center=True).mean(), "centred mean", label="centred mean", unit="index")

    def global_norm(inputs: pd.DataFrame, cfg: FeatureConfig, out: FeatureSet) -> None:
        out.add("zscore_all", (inputs["price_usd"] - inputs["price_usd"].mean()) / inputs["price_usd"].std(), "full-sample z", label="full-sample z", unit="sigma")

    for fn in (peeking, centred, global_norm):
        fam = Family("leaky", "leaky", "black", ("price_usd",), fn)
        assert lookahead_violations(fam, panel, FeatureConfig()), f"{fn.__name__} should be caught"
    assert "leaky" not in REGISTRY


def test_the_whole_feature_table_has_no_lookahead(synthetic: SyntheticHistory) -> None:
    raw = pd.concat(synthetic.series.values(), axis=1)
    settings = Settings()
    full = build_feature_table(raw, settings)
    for day in raw.index[[300, 555, 801, len(raw) - 2]]:
        cut = build_feature_table(raw, settings, until=day)
        a, b = cut.X.loc[day], full.X.loc[day]
        assert ((a == b) | (a.isna() & b.isna())).all(), f"feature row of {day.date()} changed with later data"
    assert len(full.features) == len(set(full.features)) == len(full.catalogue)


def test_missing_input_days_stay_missing(synthetic: SyntheticHistory) -> None:
    raw = pd.concat(synthetic.series.values(), axis=1)
    raw.loc["2022-03-01":"2022-03-20", "funding_rate_binance_frac8h"] = np.nan
    raw.loc["2022-03-01":"2022-03-20", "funding_rate_oiw_frac8h"] = np.nan
    table = build_feature_table(raw, Settings()).table
    assert table.loc["2022-03-01":"2022-03-20", "funding_rate"].isna().all()  # no forward fill across the outage
    assert table.loc["2022-03-10":"2022-03-20", "funding_rate_mean_7d"].isna().all()
