"""One splicing rule for an input that more than one provider measures — written once, used by every multi-source input.

Two providers may measure the same quantity at different scopes: open interest summed over every exchange is about
three times Binance's alone. Taking, per day, whichever one has a value would make the level jump where one stops and
the other goes on. So the sources are joined the way index makers join theirs, by *chain-linking*:

- the series' **level is set by the source it starts from** (the highest-priority one present on its first day);
- each day's value comes from the highest-priority source that has the day and is linked to the chain, so its
  changes are that source's own;
- when the source changes, the new one is **re-levelled onto the chain**: multiplied by the median ratio (``RATIO``,
  for positive levels: open interest, dollar volumes) or shifted by the median difference (``DIFFERENCE``, for rates
  and shares that can be <= 0: funding, a taker-buy share) of the chain to the new source over the days both have
  within the ``LINK_WINDOW_DAYS`` before the switch;
- with fewer overlapping days than the configured minimum the link is **refused and named** (``Refusal``): the series
  stops — missing until the source it was on returns — rather than jump to the other source's level. A source of
  higher priority that cannot be linked yet is simply not used until it can.

Causal: the value of day t reads the sources on days <= t only (the factor of a switch on day t, the days before t),
so a series built on data truncated at t has the same value on t as one built on the full history.

``FIRST_AVAILABLE`` is the degenerate case for sources that measure the *same* quantity at the same scope (a coin's
price): every source's level is the true level, so each day simply takes the first source that has it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Link = Literal["first available", "ratio", "difference"]
FIRST_AVAILABLE: Link = "first available"
RATIO: Link = "ratio"
DIFFERENCE: Link = "difference"
LINK_WINDOW_DAYS = 30  # the overlap a link is measured on: the days both sources have among the 30 before the switch


@dataclass(frozen=True)
class Refusal:
    """A link the rule refused: on ``day`` the series had to leave ``from_source`` for ``to_source``, which overlapped it on
    only ``overlap_days`` of the ``LINK_WINDOW_DAYS`` before (``needed`` required), so the series stopped there."""

    input: str
    day: pd.Timestamp
    from_source: str
    to_source: str
    overlap_days: int
    needed: int

    def __str__(self) -> str:
        return (f"{self.input}: stops on {self.day:%Y-%m-%d} — {self.from_source} has no value and {self.to_source} overlaps the "
                f"series on {self.overlap_days} of the {LINK_WINDOW_DAYS} days before (at least {self.needed} needed to link their "
                f"levels); missing until {self.from_source} returns, rather than jumping to {self.to_source}'s level")


@dataclass(frozen=True)
class Spliced:
    """A spliced series: its values, and per day the source that set its level and the one that supplied the day
    (missing where the value is), and the links refused."""

    values: pd.Series
    level_source: pd.Series  # dtype string
    change_source: pd.Series  # dtype string
    refusals: tuple[Refusal, ...]


def first_available(panel: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """Per day, the first non-missing value among ``columns`` (in priority order; absent columns are skipped)."""
    out = pd.Series(float("nan"), index=panel.index)
    for col in columns:
        if col in panel.columns:
            out = out.combine_first(panel[col])
    return out


def _named(index: pd.Index, names: list[str], which: np.ndarray) -> pd.Series:
    labels = np.array(names + [None], dtype=object)[np.where(which >= 0, which, len(names))]
    return pd.Series(labels, index=index, dtype="string")


def chain_link(sources: dict[str, pd.Series], link: Link, min_overlap: int, name: str = "series") -> Spliced:
    """The sources (name -> series on one daily index, highest priority first) joined into one series by ``link``.

    ``RATIO``/``DIFFERENCE``: chain-linked as the module says, each link needing ``min_overlap`` overlapping days within the
    ``LINK_WINDOW_DAYS`` before the switch; ``FIRST_AVAILABLE``: per day the first source that has a value. ``name`` is
    the input the refusals name.
    """
    if link not in (FIRST_AVAILABLE, RATIO, DIFFERENCE):
        raise ValueError(f"{name}: unknown link {link!r}; one of {FIRST_AVAILABLE!r}, {RATIO!r}, {DIFFERENCE!r}")
    if not 1 <= min_overlap <= LINK_WINDOW_DAYS:
        raise ValueError(f"{name}: a link needs 1..{LINK_WINDOW_DAYS} overlapping days (features.splice_min_overlap_days), got {min_overlap}")
    if not sources:
        raise ValueError(f"{name}: no source to splice")
    names = list(sources)
    index = next(iter(sources.values())).index
    x = np.vstack([sources[s].reindex(index).to_numpy(dtype="float64") for s in names])
    has = np.isfinite(x)
    n_days = len(index)
    values = np.full(n_days, np.nan)
    change = np.full(n_days, -1)
    if link == FIRST_AVAILABLE or len(names) == 1:
        for k in range(len(names) - 1, -1, -1):  # the highest priority written last wins
            values = np.where(has[k], x[k], values)
            change = np.where(has[k], k, change)
        return Spliced(pd.Series(values, index=index), _named(index, names, change), _named(index, names, change), ())

    ratio = link == RATIO
    linkable = has & (x > 0) if ratio else has  # a ratio is measured on positive levels only
    days = pd.DatetimeIndex(index)
    window_start = np.searchsorted(days.asi8, (days - pd.Timedelta(days=LINK_WINDOW_DAYS)).asi8, side="left")
    anchor, current, factor = -1, -1, np.nan
    refusals: list[Refusal] = []
    episode: tuple[int, int] | None = None  # (from, to) of the refusal the series is stopped by
    for t in range(n_days):
        present = np.flatnonzero(has[:, t])
        if not len(present):
            continue  # a day no source has: missing, not a refusal
        if anchor < 0:  # the first day: the chain starts on the best source present, whose level it keeps
            anchor = current = int(present[0])
            factor = 1.0 if ratio else 0.0
        chosen, refused = -1, None
        for k in present:
            if k == current:
                chosen = k
                break
            lo = window_start[t]
            chain = values[lo:t]
            both = np.isfinite(chain) & linkable[k, lo:t]
            if ratio:
                both &= chain > 0
            overlap = int(both.sum())
            if overlap >= min_overlap:
                gap = chain[both] / x[k, lo:t][both] if ratio else chain[both] - x[k, lo:t][both]
                current, factor, chosen = int(k), float(np.median(gap)), int(k)
                break
            if refused is None:
                refused = (int(k), overlap)
        if chosen < 0:
            if refused is not None and episode != (current, refused[0]):
                episode = (current, refused[0])
                refusals.append(Refusal(name, days[t], names[current], names[refused[0]], refused[1], min_overlap))
            continue
        episode = None
        values[t] = x[chosen, t] * factor if ratio else x[chosen, t] + factor
        change[t] = chosen
    level = np.where(change >= 0, anchor, -1)
    return Spliced(pd.Series(values, index=index), _named(index, names, level), _named(index, names, change), tuple(refusals))
