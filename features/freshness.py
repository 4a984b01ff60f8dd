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
    """The freshness table of ``panel``; with ``context``, the context families are judged on the context coin's panel.

    On arrays (each panel's missing-value mask taken once): per family through pandas it cost ~1.5 ms, a service start
    of 200 coins ~3 s (issue 37). The rule is ``family_present``'s, the forward fill a running maximum of the present days."""
    own = _Mask(panel)
    theirs = _Mask(context.panel.reindex(panel.index)) if context is not None else None
    days = panel.index.to_numpy(dtype="datetime64[ns]")
    never = np.iinfo(np.int64).min  # NaT's integer: below every day, so a running maximum carries the last present day
    columns = []
    for fam in load_families().values():
        mask = theirs if theirs is not None and fam.name in context.families else own
        present = mask.present(fam.inputs, fam.optional_inputs)
        columns.append(np.maximum.accumulate(np.where(present, days.view(np.int64), never)))
    last = np.column_stack(columns).view("datetime64[ns]") if columns else np.empty((len(days), 0), dtype="datetime64[ns]")
    return FreshnessTable(panel.index, list(load_families()), last)


class _Mask:
    """A panel's has-a-value mask by column, for ``family_present``'s rule on arrays."""

    def __init__(self, panel: pd.DataFrame) -> None:
        self.has = panel.notna().to_numpy()
        self.column = {c: j for j, c in enumerate(panel.columns)}

    def present(self, inputs: tuple[str, ...], optional: tuple[str, ...]) -> np.ndarray:
        if inputs:
            if not all(c in self.column for c in inputs):
                return np.zeros(len(self.has), dtype=bool)
            return self.has[:, [self.column[c] for c in inputs]].all(axis=1)
        held = [self.column[c] for c in optional if c in self.column]
        return self.has[:, held].any(axis=1) if held else np.zeros(len(self.has), dtype=bool)
