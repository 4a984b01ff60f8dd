"""Signal families: each module registers one family with ``@family``.

A family declares the panel columns it reads and returns named features, every name prefixed by
the family's name. Adding a seventh family is one new module in this package: ``load_families``
imports every module here, and the decorator does the registration.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cascade_radar.config import FeatureConfig


class FeatureSet:
    """Collects a family's features with a one-line meaning each; names get the family prefix."""

    def __init__(self, prefix: str, index: pd.DatetimeIndex) -> None:
        self.prefix = prefix
        self.index = index
        self.columns: dict[str, np.ndarray] = {}
        self.meanings: dict[str, str] = {}

    def add(self, name: str, values: pd.Series | np.ndarray, meaning: str) -> None:
        full = f"{self.prefix}_{name}"
        if full in self.columns:
            raise ValueError(f"feature '{full}' defined twice")
        if isinstance(values, pd.Series) and not values.index.equals(self.index):
            raise ValueError(f"feature '{full}' is not indexed like the family's input")
        arr = np.array(values, dtype="float64")  # a copy: the family's intermediate series stay untouched
        arr[~np.isfinite(arr)] = np.nan  # ±inf from a 0 denominator -> missing
        self.columns[full] = arr
        self.meanings[full] = meaning

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.columns, index=self.index)


FamilyFn = Callable[[pd.DataFrame, FeatureConfig, FeatureSet], None]


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    inputs: tuple[str, ...]
    fn: FamilyFn
    optional_inputs: tuple[str, ...] = field(default=())

    def compute(self, panel: pd.DataFrame, config: FeatureConfig) -> FeatureSet:
        """This family's features for every day of ``panel`` (missing input columns count as all-missing)."""
        columns = {c: panel[c] if c in panel.columns else pd.Series(np.nan, index=panel.index) for c in self.inputs + self.optional_inputs}
        inputs = pd.DataFrame(columns, index=panel.index).astype("float64")
        out = FeatureSet(self.name, panel.index)
        self.fn(inputs, config, out)
        return out


REGISTRY: dict[str, Family] = {}
SummaryFn = Callable[[pd.Series], str]
SUMMARIES: dict[str, SummaryFn] = {}


def family(name: str, title: str, inputs: tuple[str, ...], optional_inputs: tuple[str, ...] = ()) -> Callable[[FamilyFn], FamilyFn]:
    """Register a signal family; ``name`` is the prefix of every feature it makes."""

    def register(fn: FamilyFn) -> FamilyFn:
        if name in REGISTRY and REGISTRY[name].fn is not fn:
            raise ValueError(f"family '{name}' registered twice")
        REGISTRY[name] = Family(name, title, tuple(inputs), fn, tuple(optional_inputs))
        return fn

    return register


def summary(name: str) -> Callable[[SummaryFn], SummaryFn]:
    """Register how a family describes one day's feature row in words (used by explanations)."""

    def register(fn: SummaryFn) -> SummaryFn:
        SUMMARIES[name] = fn
        return fn

    return register


def describe(name: str, row: pd.Series) -> str:
    """A family's words for one day, or '' if it has none or its inputs are missing."""
    fn = SUMMARIES.get(name)
    if fn is None:
        return ""
    try:
        text = fn(row)
    except (KeyError, TypeError, ValueError):
        return ""
    return "" if "nan" in text else text


def load_families() -> dict[str, Family]:
    """Import every family module of this package and return the registry (in registration order)."""
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY
