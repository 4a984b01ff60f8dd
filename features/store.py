"""Local history store: one Parquet file per series under ``<data_dir>/<asset>/``.

Every write is validated against the series schema, merged incrementally with what is stored
(new values win on overlapping days, so provider revisions land; NaN never erases a stored value),
and replaced atomically (temporary file + ``os.replace``): a write that fails half-way leaves the
stored file byte-identical, and writing the same data twice changes nothing, not even the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cascade_radar.files import atomic_write
from features.schemas import SERIES, SchemaError, empty_frame, validate

_META_KEY = b"cascade_radar"


class StoreError(ValueError):
    """A stored file that cannot be used as it is: names the series, the file and the repair."""

    def __init__(self, series: str, path: Path, problem: str) -> None:
        super().__init__(f"stored series '{series}' ({path}): {problem}. Repair: delete the file and rebuild it with "
                         "`cascade-radar data import-reference` (reference history) or `cascade-radar data update` (live providers)")
        self.series, self.path = series, path


@dataclass(frozen=True)
class AppendResult:
    series: str
    new_rows: int
    revised_rows: int
    last_day: pd.Timestamp | None

    @property
    def changed(self) -> bool:
        return bool(self.new_rows or self.revised_rows)


@dataclass(frozen=True)
class SeriesStatus:
    series: str
    sources: list[str]
    first_day: pd.Timestamp | None
    last_day: pd.Timestamp | None
    rows: int
    gaps: list[tuple[pd.Timestamp, pd.Timestamp]]

    @property
    def missing_days(self) -> int:
        return sum((end - start).days + 1 for start, end in self.gaps)


SPLICE_UNITS = ("USD", "coin")  # dollar and flow series: levels a different scope or unit would shift
SPLICE_MIN_DAYS = 3  # overlapping days (both values present) that make a level
SPLICE_BAND = (0.8, 1.25)  # median new/old ratio on the overlap; a provider's revisions stay well inside it (Coin Metrics: ~1 %)


class SpliceError(ValueError):
    """New days of a series whose level does not match the stored days they overlap."""


def check_level(series: str, stored: pd.DataFrame, incoming: pd.DataFrame, source: str) -> None:
    """Refuse ``incoming`` when, on the days it shares with ``stored``, a dollar or coin column's median ratio new/old lies
    outside ``SPLICE_BAND``: a different exchange scope or unit would otherwise be spliced onto the history silently
    (and the label is a multiple of the trailing median, so a level jump makes false cascade days). The updater fetches a
    few days of overlap on purpose (``update.OVERLAP_DAYS``)."""
    common = stored.index.intersection(incoming.index)
    if not len(common):
        return
    for column, spec in SERIES[series].columns.items():
        if spec.unit not in SPLICE_UNITS or column not in stored.columns or column not in incoming.columns:
            continue
        old, new = stored.loc[common, column].astype(float), incoming.loc[common, column].astype(float)
        both = (old > 0) & (new > 0)
        if both.sum() < SPLICE_MIN_DAYS:  # one day is a revision, not a level; the updater overlaps OVERLAP_DAYS + 1 days
            continue
        ratio = float((new[both] / old[both]).median())
        if not SPLICE_BAND[0] <= ratio <= SPLICE_BAND[1]:
            raise SpliceError(f"series '{series}', column {column}: the new days from {source} are {ratio:.2f}x the stored level on the "
                              f"{int(both.sum())} overlapping day(s) {common[0].date()}..{common[-1].date()} (allowed "
                              f"{SPLICE_BAND[0]:g}-{SPLICE_BAND[1]:g}): a different scope or unit than the stored history — nothing "
                              "appended. Check the provider's exchange list and units against the stored series' source, or, if the "
                              "provider really changed the series, rebuild it: delete the file and run `cascade-radar data update`")


def find_gaps(index: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Runs of missing days between the first and last stored day, as (first missing, last missing)."""
    if len(index) < 2:
        return []
    steps = index.to_series().diff().dt.days.iloc[1:]
    gaps = []
    for day, step in steps[steps > 1].items():
        gaps.append((day - pd.Timedelta(days=int(step) - 1), day - pd.Timedelta(days=1)))
    return gaps


class HistoryStore:
    """Read and incrementally append the daily series of one asset."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, series: str) -> Path:
        if series not in SERIES:
            raise KeyError(f"unknown series '{series}'; known: {', '.join(SERIES)}")
        return self.root / f"{series}.parquet"

    def exists(self, series: str) -> bool:
        return self.path(series).exists()

    def is_empty(self) -> bool:
        return not any(self.exists(s) for s in SERIES)

    def read(self, series: str) -> pd.DataFrame:
        """The stored frame of ``series`` (empty, with schema columns, when nothing is stored).

        Checked on the way in: a file that is not Parquet, holds another series, or breaks the schema raises
        :class:`StoreError` naming the series, the file and the repair, instead of failing later in pandas.
        """
        path = self.path(series)
        if not path.exists():
            return empty_frame(series)
        try:
            table = pq.read_table(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the same problem for the user
            raise StoreError(series, path, f"not a readable Parquet file ({str(exc)[:120]})") from None
        stored_as = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}")).get("series")
        if stored_as is not None and stored_as != series:
            raise StoreError(series, path, f"the file holds series '{stored_as}', not '{series}'")
        frame = table.to_pandas()
        try:
            frame.index = pd.DatetimeIndex(frame.index.astype("datetime64[ns]"), name="date")
            return validate(series, frame)
        except (SchemaError, TypeError, ValueError) as exc:
            raise StoreError(series, path, f"does not match the schema ({exc})") from None

    def sources(self, series: str) -> list[str]:
        path = self.path(series)
        if not path.exists():
            return []
        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta.get(_META_KEY, b"{}")).get("sources", [])

    def last_day(self, series: str) -> pd.Timestamp | None:
        frame = self.read(series)
        return frame.index[-1] if len(frame) else None

    def append(self, series: str, frame: pd.DataFrame, source: str, check_splice: bool = True) -> AppendResult:
        """Validate ``frame`` and merge it into the stored series atomically.

        Overlapping days take the new non-missing values (provider revisions); days only in the
        store are kept. Nothing is written when the merge changes nothing. With ``check_splice``, new days whose
        level does not match the stored days they overlap are refused (``SpliceError``, see ``check_level``).
        """
        incoming = validate(series, frame)
        stored = self.read(series)
        if check_splice:
            check_level(series, stored, incoming, source)
        merged = incoming.combine_first(stored)[list(SERIES[series].columns)] if len(stored) else incoming
        merged = validate(series, merged)
        new_days = merged.index.difference(stored.index)
        common = stored.index.intersection(incoming.index)
        before, after = stored.loc[common], merged.loc[common]
        revised = int((~((before == after) | (before.isna() & after.isna()))).any(axis=1).sum())
        sources = self.sources(series)
        if source not in sources:
            sources = [*sources, source]
        elif not len(new_days) and not revised:
            return AppendResult(series, 0, 0, merged.index[-1] if len(merged) else None)
        self._write_atomic(series, merged, sources)
        return AppendResult(series, len(new_days), revised, merged.index[-1] if len(merged) else None)

    def _write_atomic(self, series: str, frame: pd.DataFrame, sources: list[str]) -> None:
        path = self.path(series)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pandas(frame, preserve_index=True)
        meta = dict(table.schema.metadata or {})
        units = {c: spec.unit for c, spec in SERIES[series].columns.items()}
        meta[_META_KEY] = json.dumps({"series": series, "sources": sources, "units": units}).encode()
        table = table.replace_schema_metadata(meta)
        atomic_write(path, lambda tmp: pq.write_table(table, tmp))

    def status(self) -> list[SeriesStatus]:
        """Per stored series: sources, first/last day, rows and the runs of missing days."""
        out = []
        for series in SERIES:
            if not self.exists(series):
                continue
            frame = self.read(series)
            out.append(
                SeriesStatus(
                    series,
                    self.sources(series),
                    frame.index[0] if len(frame) else None,
                    frame.index[-1] if len(frame) else None,
                    len(frame),
                    find_gaps(frame.index),
                )
            )
        return out

    def panel(self, series: list[str] | None = None) -> pd.DataFrame:
        """All stored series side by side on one continuous daily index (missing days stay NaN)."""
        frames = [self.read(s) for s in (series or list(SERIES)) if self.exists(s)]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(index=pd.DatetimeIndex([], name="date"))
        start = min(f.index[0] for f in frames)
        end = max(f.index[-1] for f in frames)
        days = pd.date_range(start, end, freq="D", name="date")
        return pd.concat([f.reindex(days) for f in frames], axis=1)
