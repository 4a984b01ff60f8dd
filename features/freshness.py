"""How fresh each signal family's inputs are on a forecast day: the last day with data, days behind, stale or not.

A family is *present* on a day when all its required inputs have a value (a family with optional inputs only:
when any of them has one). The context families of another coin (BTC's on-chain ones) are judged on the
context coin's panel, which is where their features come from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cascade_radar.rules import today_utc
from features.families import load_families

if TYPE_CHECKING:
    from features.build import MarketContext


@dataclass(frozen=True)
class Freshness:
    family: str
    read_by_model: bool  # the model answering reads this family's features
    data_through: str | None  # last day with the family's inputs, at or before the answered day (None: none yet)
    days_behind: int | None  # today (UTC) minus data_through: how old the family's newest value is
    stale: bool  # no value within ``stale_after_days`` before the answered day (or none at all)

    def as_dict(self) -> dict[str, object]:
        # flat fields: a plain dict (dataclasses.asdict deep-copies recursively, ~0.05 ms a family on the /predict path)
        return {"family": self.family, "read_by_model": self.read_by_model, "data_through": self.data_through,
                "days_behind": self.days_behind, "stale": self.stale}


def family_present(panel: pd.DataFrame, inputs: tuple[str, ...], optional: tuple[str, ...]) -> pd.Series:
    """Per day: does the family have its inputs?"""
    if inputs:
        if not all(c in panel.columns for c in inputs):
            return pd.Series(False, index=panel.index)
        return panel[list(inputs)].notna().all(axis=1)
    held = [c for c in optional if c in panel.columns]
    return panel[held].notna().any(axis=1) if held else pd.Series(False, index=panel.index)


@dataclass(frozen=True)
class FreshnessTable:
    """Per day and family, the last day up to it on which the family had its inputs, as arrays: a day's freshness is
    an index lookup (the service answers it per request)."""

    days: pd.DatetimeIndex
    families: list[str]
    last: np.ndarray  # (days, families) datetime64, NaT: never yet

    def on(self, day: pd.Timestamp, stale_after_days: int, read: frozenset[str] | set[str] = frozenset(),
           today: dt.date | None = None) -> list[Freshness]:
        """Freshness of every family on ``day``: ``read`` names the families the answering model reads; days behind
        are counted against ``today`` (UTC), staleness against ``day``."""
        today64 = np.datetime64(today or today_utc(), "D")
        out = []
        for family, last in zip(self.families, self.last[self.days.get_loc(day)], strict=True):
            if np.isnat(last):
                out.append(Freshness(family, family in read, None, None, True))
            else:
                behind_day = int((pd.Timestamp(day).to_datetime64() - last) // np.timedelta64(1, "D"))
                behind_today = int((today64 - last.astype("datetime64[D]")) // np.timedelta64(1, "D"))
                out.append(Freshness(family, family in read, str(last)[:10], behind_today, behind_day > stale_after_days))
        return out

    def fresh_days(self, families: list[str] | tuple[str, ...] | set[str], stale_after_days: int) -> np.ndarray:
        """Per day: does every family in ``families`` have a value within ``stale_after_days`` before it?"""
        ok = np.ones(len(self.days), dtype=bool)
        day64 = self.days.to_numpy(dtype="datetime64[ns]")
        for family in families:
            last = self.last[:, self.families.index(family)]
            seen = ~np.isnat(last)
            behind = np.zeros(len(last), dtype="int64")
            behind[seen] = (day64[seen] - last[seen]) // np.timedelta64(1, "D")
            ok &= seen & (behind <= stale_after_days)
        return ok


def last_present_days(panel: pd.DataFrame, context: MarketContext | None = None) -> FreshnessTable:
    """The freshness table of ``panel``; with ``context``, the context families are judged on the context coin's panel."""
    columns = {}
    for fam in load_families().values():
        source = context.panel.reindex(panel.index) if context is not None and fam.name in context.families else panel
        present = family_present(source, fam.inputs, fam.optional_inputs).to_numpy(dtype=bool)
        columns[fam.name] = pd.Series(panel.index.where(present), index=panel.index).ffill()
    frame = pd.DataFrame(columns, index=panel.index)
    return FreshnessTable(panel.index, list(columns), frame.to_numpy(dtype="datetime64[ns]"))
