"""Signal families: each module registers one family with ``@family``.

A family owns its whole identity in its own module: the name (prefix of every feature it makes),
a title and a colour for people, the panel columns it reads, its warning signs on the warning
checklist (which the rule baseline counts), and a ``@summary`` that says one day in words. Explanations, replays, the serving
input schema and the baselines read all of it from ``REGISTRY``: adding a family is one new module
in this package, which ``load_families`` imports.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig

# How a feature's value is stored -> how a person reads it (scale, suffix). A feature declares one of these beside its
# definition (``FeatureSet.add``); every label, table and chart of a value goes through ``format_value``.
UNITS: dict[str, tuple[float, str]] = {
    "fraction": (100.0, " %"),  # 0.278 -> 27.8 %
    "percent": (1.0, " %"),  # already in percent
    "fraction points": (100.0, " pp"),  # a difference of two fractions
    "percentile": (100.0, " pctl"),  # a rank in 0..1
    "bp/8h": (1.0, " bp/8h"),  # funding, basis points per 8 hours
    "B$": (1.0, " B$"),  # billions of US dollars
    "k coins": (1.0, "k coins"),  # thousands of the coin
    "sigma": (1.0, " σ"),  # a z-score
    "ratio": (1.0, "×"),  # one quantity over another of the same unit
    "log ratio": (1.0, " log"),  # natural log of a ratio (0: balanced)
    "RSI points": (1.0, " pts"),  # RSI (0..100) or a difference of RSI values
    "days": (1.0, " d"),  # a count of days (signed for streaks: + one side, - the other)
    "count": (1.0, ""),
    "index": (1.0, ""),  # a dimensionless indicator such as SOPR (1 = break-even)
}


def format_value(value: float | None, unit: str) -> str:
    """``0.278`` in ``fraction`` -> ``27.8 %``: the value as a person reads it (three significant digits, whole from 100)."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit '{unit}'; one of {sorted(UNITS)}")
    if value is None or not np.isfinite(value):
        return "no data"
    scale, suffix = UNITS[unit]
    shown = value * scale
    return f"{shown:,.0f}{suffix}" if abs(shown) >= 100 else f"{shown:.3g}{suffix}"  # 1,234 not 1.23e+03


class FeatureSet:
    """Collects a family's features with their label, unit and one-line meaning; names get the family prefix."""

    def __init__(self, prefix: str, index: pd.DatetimeIndex) -> None:
        self.prefix = prefix
        self.index = index
        self.columns: dict[str, np.ndarray] = {}
        self.meanings: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.units: dict[str, str] = {}

    def add(self, name: str, values: pd.Series | np.ndarray, meaning: str, *, label: str, unit: str) -> None:
        """Feature ``<prefix>_<name>``: ``label`` is its short name for people (``30-day realized volatility``), ``unit``
        one of ``UNITS`` (how its stored value reads), ``meaning`` the one line that defines it."""
        full = f"{self.prefix}_{name}"
        if full in self.columns:
            raise ValueError(f"feature '{full}' defined twice")
        if unit not in UNITS:
            raise ValueError(f"feature '{full}': unknown unit '{unit}'; one of {sorted(UNITS)}")
        if not label or len(label) > 48:
            raise ValueError(f"feature '{full}': a label of 1..48 characters is needed, got {label!r}")
        if isinstance(values, pd.Series) and not values.index.equals(self.index):
            raise ValueError(f"feature '{full}' is not indexed like the family's input")
        arr = np.array(values, dtype="float64")  # a copy: the family's intermediate series stay untouched
        arr[~np.isfinite(arr)] = np.nan  # ±inf from a 0 denominator -> missing
        self.columns[full] = arr
        self.meanings[full] = meaning
        self.labels[full] = label
        self.units[full] = unit

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns, index=self.index)


FamilyFn = Callable[[pd.DataFrame, FeatureConfig, FeatureSet], None]
SummaryFn = Callable[[pd.Series], str]


@dataclass(frozen=True)
class Warning:  # noqa: A001 - a checklist warning, not the builtin category
    """One warning sign of the warning checklist: on when any of ``features`` satisfies ``op threshold``.

    ``op`` is ``>=``, ``<=``, ``>`` or ``abs>=``. Thresholds are round numbers an analyst would write
    down before looking at results, not fitted values.
    """

    label: str
    features: tuple[str, ...]
    op: str
    threshold: float

    def on(self, X: pd.DataFrame) -> pd.Series:  # noqa: N803
        """Per day: is the warning on? (a missing input counts as off)"""
        out = np.zeros(len(X), dtype=bool)
        for name in self.features:
            if name not in X.columns:
                continue
            v = X[name].to_numpy(dtype=float)
            with np.errstate(invalid="ignore"):  # a missing value compares False: off (on arrays: a service start reads
                hit = {">=": v >= self.threshold, "<=": v <= self.threshold, ">": v > self.threshold,  # every coin's warnings)
                       "abs>=": np.abs(v) >= self.threshold}[self.op]
            out |= hit
        return pd.Series(out, index=X.index)


@dataclass(frozen=True)
class SideHint:
    """A feature whose value above ``threshold`` means longs are crowded (the rule baseline's side)."""

    feature: str
    threshold: float


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    colour: str
    inputs: tuple[str, ...]
    fn: FamilyFn
    optional_inputs: tuple[str, ...] = field(default=())
    warnings: tuple[Warning, ...] = field(default=())
    side_hint: SideHint | None = None
    summary: SummaryFn | None = None
    candidate: bool = False  # a candidate: its features are built, but a model reads it only when its config names it
    market_wide: bool = False  # its inputs are the served coins' market-wide columns (features.market): joined, never posted

    def compute(self, panel: pd.DataFrame, config: FeatureConfig) -> FeatureSet:
        """This family's features for every day of ``panel`` (missing input columns count as all-missing)."""
        columns = {c: panel[c] if c in panel.columns else pd.Series(np.nan, index=panel.index) for c in self.inputs + self.optional_inputs}
        inputs = pd.DataFrame(columns, index=panel.index).astype("float64")
        out = FeatureSet(self.name, panel.index)
        self.fn(inputs, config, out)
        return out

    def describe(self, row: pd.Series) -> str:
        """This family's words for one day, or '' if it has none or its inputs are missing."""
        if self.summary is None:
            return ""
        try:
            text = self.summary(row)
        except (KeyError, TypeError, ValueError):
            return ""
        return "" if "nan" in text else text


REGISTRY: dict[str, Family] = {}


def family(name: str, title: str, colour: str, inputs: tuple[str, ...], optional_inputs: tuple[str, ...] = (),
           warnings: tuple[Warning, ...] = (), side_hint: SideHint | None = None, candidate: bool = False,
           market_wide: bool = False) -> Callable[[FamilyFn], FamilyFn]:
    """Register a signal family; ``name`` is the prefix of every feature it makes, ``colour`` a matplotlib colour.

    ``candidate``: a family on trial. Its features are in the table and the catalogue, but "every family" (a model config's
    ``families=None``) and the warning checklist leave it out until it is promoted; a model reads it when a family set
    names it (``tune.family_sets``), so the nested selection decides.

    ``market_wide``: its inputs are market-wide columns computed from every served coin's store (``features.market``) and
    joined to each coin's panel; they are not a coin's own signals, so ``/predict_signals`` neither asks for nor accepts them."""

    def register(fn: FamilyFn) -> FamilyFn:
        if name in REGISTRY and REGISTRY[name].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"family '{name}' registered twice")
        previous = REGISTRY.get(name)
        REGISTRY[name] = Family(name, title, colour, tuple(inputs), fn, tuple(optional_inputs), tuple(warnings), side_hint,
                                previous.summary if previous else None, candidate, market_wide)
        return fn

    return register


def summary(name: str) -> Callable[[SummaryFn], SummaryFn]:
    """Register how family ``name`` (declared above it in the same module) describes one day in words."""

    def register(fn: SummaryFn) -> SummaryFn:
        if name not in REGISTRY:
            raise ValueError(f"@summary('{name}'): no such family; declare the @family first")
        REGISTRY[name] = replace(REGISTRY[name], summary=fn)
        return fn

    return register


def load_families() -> dict[str, Family]:
    """Import every family module of this package and return the registry (in registration order: the modules' natural
    order, f9 before f10)."""
    natural = lambda m: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", m.name)]  # noqa: E731
    for module in sorted(pkgutil.iter_modules(__path__), key=natural):
        importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


def family_of(feature: str) -> str:
    """The family a feature belongs to (the longest registered name it is prefixed with), or 'other'."""
    owners = [name for name in REGISTRY if feature.startswith(f"{name}_")]
    return max(owners, key=len) if owners else "other"


def title_of(name: str) -> str:
    return REGISTRY[name].title if name in REGISTRY else name


def colour_of(name: str) -> str:
    return REGISTRY[name].colour if name in REGISTRY else "tab:gray"


def describe(name: str, row: pd.Series) -> str:
    """Family ``name``'s words for one day ('' if unknown)."""
    return REGISTRY[name].describe(row) if name in REGISTRY else ""


def required_inputs() -> list[str]:
    """Every panel column of a coin's own that some family needs, in registry order, without repeats (the market-wide
    columns are the service's, joined to every coin)."""
    return list(dict.fromkeys(c for fam in load_families().values() if not fam.market_wide for c in fam.inputs))


def optional_inputs() -> list[str]:
    required = set(required_inputs())
    return [c for c in dict.fromkeys(c for fam in REGISTRY.values() if not fam.market_wide for c in fam.optional_inputs) if c not in required]
