"""The forecast ledger: what the model said each day, kept for good — the only evaluation nobody can tune.

One JSON line per (coin, day, model version) — the forecast path's answer as it was given that day, each carrying a
checksum of its own content. Rows are never changed. A row that fails its checksum, or a file that is not the ledger, is
an error naming the file and the line — never repaired or replaced silently.

The JSONL file is the truth. Beside it, ``<stem>.index.sqlite`` is derived from it and may be deleted at any time (it is
rebuilt): per line its number, byte offset, length, coin, day, model version, checksum and alert flag; the bad lines and
why; and what was indexed (the file's identity, size and times, the last line's bytes). Opening the ledger reads,
checksums and indexes only the bytes added since; a file rewritten, shrunk, replaced or edited in place (`ledger --repair`,
an editor, a restored copy) is indexed again from its first byte. A page of rows is read by seeking to their offsets, and
each row's checksum is verified again as it is served.

An append writes the new lines at the end of the file in place (O_APPEND, fsynced), all or nothing: the index first
records "an append of these bytes begins at byte X" (committed), and after the fsync the new lines are indexed and the
marker cleared in one transaction. A writer killed in between leaves the marker: readers see the ledger as it was before
X, and the next append rolls the file back to X — unless every byte it meant to write is there, then the lines are kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pandas as pd

from cascade_radar.files import atomic_write, exclusive
from cascade_radar.rules import TWO_SIDED, side_right, span_warns, stated_side, warns


class LedgerError(ValueError):
    pass


class PageError(LedgerError):
    """A page asked for wrongly (a limit out of range, a cursor this ledger did not give); ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


ASSET_FIELD = re.compile(r'"asset":\s*"([A-Z0-9]{2,10})"')
NOT_JSON = "not JSON"
ALTERED = "checksum mismatch: the row was altered"
INCOMPLETE = "the last line is incomplete (a write that was not atomic?)"
PAGE_ORDER = "newest day first, then coin (A-Z), then the order the rows were written"
CURSOR_PATTERN = r"[A-Za-z0-9%_~-]*\.[A-Za-z0-9%_~-]*\.[1-9][0-9]{0,11}"  # <day>.<coin>.<line>, percent-escaped (the OpenAPI pattern too)
INDEX_SCHEMA = 1  # the index's tables: an index of another version is rebuilt from the ledger
READ_CHUNK = 8 << 20  # bytes read at a time when indexing: a ledger of any length is indexed in bounded memory
APPEND_WAIT_SECONDS = 60.0  # an append waits this long for another append to the same ledger to finish
INDEX_WAIT_SECONDS = 60.0  # an opening waits this long for another process indexing the same ledger


@dataclass(frozen=True)
class BadLine:
    """A ledger line that cannot be trusted: its number (from 1), why, its coin if it can be read, and its bytes."""

    line: int
    reason: str
    asset: str | None
    raw: bytes


@dataclass(frozen=True)
class Page:
    """One page of the ledger (``PAGE_ORDER``): its rows, each verified as it was read; the cursor of the next page (None:
    this page is the last); and the bad lines of the whole ledger, counted and never served."""

    rows: list[dict[str, object]]
    next_cursor: str | None
    bad_lines: int


class Outbox:
    """The alerts whose sending began (``<ledger>.outbox.jsonl`` beside the ledger: one outbox per ledger), written and fsynced *before* the send:
    a run killed between the send and the ledger row, or a retry, sees the episode here and never sends it twice."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def keys(self) -> set[tuple[object, ...]]:
        if not self.path.exists():
            return set()
        out = set()
        for line in self.path.read_text().splitlines():
            try:
                out.add(tuple(json.loads(line)["key"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line (killed mid-write) holds no key: the alert it began is not recorded as sent
        return out

    def record(self, row: dict[str, object], reason: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"key": list(key_of(row)), "trigger": reason, "at": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")})
        torn = self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n")
        with open(self.path, "a") as fh:
            fh.write(("\n" if torn else "") + line + "\n")  # a line torn by a kill stays its own line: this record is never lost in it
            fh.flush()
            os.fsync(fh.fileno())


def checksum(row: dict[str, object]) -> str:
    body = {k: v for k, v in row.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def key_of(row: dict[str, object]) -> tuple[object, ...]:
    """(asset, day, model version): one row per coin, day and champion. Rows written before the one answer schema keep
    the version in ``model_version``; they stay readable, as every row of the ledger does."""
    model = row.get("model")
    version = model["version"] if isinstance(model, dict) else row.get("model_version")
    return (row["asset"], row["day"], version)


def judge(line: bytes) -> tuple[dict[str, object] | None, str | None, str | None]:
    """One ledger line (without its newline): ``(row, None, asset)`` when intact, else ``(None, why, asset)`` with the coin
    where it can still be read. The one rule for every reader: ``scan``, the index, a page."""
    text = line.decode("utf-8", "replace")
    match = ASSET_FIELD.search(text)
    asset = match.group(1) if match else None
    try:
        row = json.loads(text)
    except ValueError:
        return None, NOT_JSON, asset
    if not isinstance(row, dict) or row.get("checksum") != checksum(row):
        return None, ALTERED, asset
    return row, None, asset


def _cursor_part(text: str) -> str:
    return quote(text, safe="").replace(".", "%2E")  # the separator escaped too: any day or coin text survives the round trip


def encode_cursor(day: str, asset: str, line: int) -> str:
    """The cursor of the page after the row at (day, coin, line): ``<day>.<coin>.<line>``, percent-escaped. Clients pass it
    back as given; ``CURSOR_PATTERN`` describes every cursor, and every string it matches is a cursor (a page after that
    place, perhaps empty) — so a schema-valid request is always answered."""
    return f"{_cursor_part(day)}.{_cursor_part(asset)}.{line}"


def decode_cursor(cursor: str) -> tuple[str, str, int]:
    """(day, coin, line) of a cursor (``encode_cursor``), or a PageError naming ``cursor``."""
    if not re.fullmatch(CURSOR_PATTERN, cursor):
        raise PageError("cursor", f"cursor {cursor[:40]!r} is not one this API gave: pass a page's next_cursor as it is, or leave "
                                  "cursor out for the first page")
    day, asset, line = cursor.split(".")
    return unquote(day), unquote(asset), int(line)


def page_limit(value: str | None, default: int, most: int) -> int:
    """The rows per page asked for as text (a query parameter): ``default`` when absent, else a whole number from 1 to
    ``most`` written plainly (the OpenAPI pattern of ``limit`` says the same), or a PageError naming ``limit``."""
    if value is None:
        return min(default, most)
    if not re.fullmatch(r"[1-9][0-9]{0,8}", value) or int(value) > most:  # written plainly: no sign, space or leading zero
        raise PageError("limit", f"limit {value[:20]!r} is not a whole number from 1 to {most} (rows per page; default {min(default, most)})")
    return int(value)


def _text(value: object) -> str:
    """An indexed key part as text: a string as it is, anything else as JSON (so 1 and "1" stay two model versions)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _columns(row: dict[str, object]) -> tuple[str, str, str, str, int]:
    """What the index keeps of an intact row: coin, day, model version (JSON), checksum, alert flag."""
    try:
        asset, day, version = key_of(row)
    except (KeyError, TypeError):  # an intact line that is not a forecast row: indexed, never matched by a key
        asset, day, version = row.get("asset", ""), row.get("day", ""), None
    return _text(asset), _text(day), json.dumps(version, sort_keys=True, default=str), str(row["checksum"]), int(bool(row.get("alert")))


def _refusal(path: Path, bad: list[BadLine]) -> LedgerError:
    """The error for a ledger with bad lines where every line must be intact, naming the file and the first bad line (a
    torn last line first)."""
    repair = "`cascade-radar ledger --repair` moves the bad lines to a quarantine file beside it"
    if any(b.reason == INCOMPLETE for b in bad):
        return LedgerError(f"{path}: the last line is incomplete (a write that was not atomic?); the ledger is never rewritten "
                           "automatically — `cascade-radar ledger --repair` moves it to a quarantine file beside it")
    first = bad[0]
    what = "not JSON — the ledger is corrupt" if first.reason == NOT_JSON else "checksum mismatch — the row was altered"
    return LedgerError(f"{path}, line {first.line}: {what}; {repair}")


@dataclass(frozen=True)
class _Indexed:
    """What the index says it holds: the file it describes (device, inode, times), how far (``size``: the end of the last
    complete line; ``lines`` counted), the last line's place and bytes (sha256), and an append begun and not finished
    (``append_from`` >= 0: its first byte, its end and the sha256 of the bytes it meant to write)."""

    dev: int = -1
    ino: int = -1
    size: int = 0
    mtime_ns: int = -1
    ctime_ns: int = -1
    lines: int = 0
    last_offset: int = -1
    last_length: int = 0
    last_sha: str = ""
    append_from: int = -1
    append_to: int = -1
    append_sha: str = ""


@dataclass(frozen=True)
class _Plan:
    """What an opening must do to the index (and, for a writer, to a killed append's bytes) before it is answered from."""

    indexed: _Indexed
    rebuild: bool  # not the file indexed (replaced, shrunk, edited, or a new index): index it from its first byte
    truncate_to: int | None  # a killed append's partial bytes, rolled back (writers only)
    clear_marker: bool  # the begun append is settled: kept whole, rolled back, or was into another file
    stop: int  # the bytes readers see: before a begun append that is not whole
    grow: bool  # complete lines below ``stop`` are not indexed yet

    @property
    def work(self) -> bool:
        return self.rebuild or self.truncate_to is not None or self.clear_marker or self.grow


@dataclass(frozen=True)
class _Open:
    """An opened ledger: its index (up to date), its bytes (``fd``) and where readers' view of them ends."""

    conn: sqlite3.Connection
    fd: int
    indexed: _Indexed
    visible: int

    @property
    def torn(self) -> bool:
        """An incomplete last line (no newline yet) within the visible bytes."""
        return self.visible > self.indexed.size


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_indexed(conn: sqlite3.Connection) -> _Indexed:
    known = {f.name for f in fields(_Indexed)}
    return _Indexed(**{k: v for k, v in conn.execute("SELECT key, value FROM meta") if k in known})


def _write_indexed(conn: sqlite3.Connection, indexed: _Indexed) -> None:
    conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", asdict(indexed).items())


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    """``length`` bytes at ``offset`` (fewer only at the end of the file)."""
    parts, got = [], 0
    while got < length:
        part = os.pread(fd, length - got, offset + got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def _has_newline(fd: int, start: int, stop: int) -> bool:
    """Whether bytes [start, stop) hold a newline: a complete line not indexed yet (read only up to the first one)."""
    pos = start
    while pos < stop:
        chunk = os.pread(fd, min(1 << 16, stop - pos), pos)
        if not chunk:
            return False
        if b"\n" in chunk:
            return True
        pos += len(chunk)
    return False


def _last_line_changed(fd: int, indexed: _Indexed) -> bool:
    """Whether the last indexed line's bytes (and its newline) are no longer where the index says."""
    if indexed.last_offset < 0:
        return False
    got = _pread_all(fd, indexed.last_length + 1, indexed.last_offset)
    return not got.endswith(b"\n") or _sha(got[:-1]) != indexed.last_sha or len(got) != indexed.last_length + 1


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` at the end of the file (the descriptor is O_APPEND)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _index_lines(conn: sqlite3.Connection, fd: int, start: int, stop: int, first: int) -> tuple[int, int, tuple[int, bytes] | None]:
    """Index the complete lines of bytes [start, stop), each judged as ``scan`` judges it, ``READ_CHUNK`` bytes at a time.
    Returns the end of the last complete line, the number the next line will have, and the last line (offset, bytes)."""
    number, offset, pos, carry, last = first, start, start, b"", None
    while pos < stop:
        chunk = os.pread(fd, min(READ_CHUNK, stop - pos), pos)
        if not chunk:
            break  # the file ended early (truncated under us): the next opening sees it shrank and indexes it again
        pos += len(chunk)
        *complete, carry = (carry + chunk).split(b"\n")
        intact, bad = [], []
        for line in complete:
            row, reason, asset = judge(line)
            if row is None:
                bad.append((number, offset, len(line), reason, asset))
            else:
                intact.append((number, offset, len(line), *_columns(row)))
            last = (offset, line)
            offset += len(line) + 1
            number += 1
        conn.executemany("INSERT INTO lines VALUES (?, ?, ?, ?, ?, ?, ?, ?)", intact)
        conn.executemany("INSERT INTO bad VALUES (?, ?, ?, ?, ?)", bad)
    return offset, number, last


INDEX_TABLES = (
    "CREATE TABLE lines (line INTEGER PRIMARY KEY, offset INTEGER NOT NULL, length INTEGER NOT NULL, asset TEXT NOT NULL, "
    "day TEXT NOT NULL, version TEXT NOT NULL, checksum TEXT NOT NULL, alert INTEGER NOT NULL)",
    "CREATE INDEX lines_by_day ON lines (day DESC, asset, line)",  # a page of every coin
    "CREATE INDEX lines_by_asset ON lines (asset, day DESC, line)",  # a page of one coin, a key, a coin's recent rows
    "CREATE TABLE bad (line INTEGER PRIMARY KEY, offset INTEGER NOT NULL, length INTEGER NOT NULL, reason TEXT NOT NULL, asset TEXT)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
)


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction of the index, taken at once (BEGIN IMMEDIATE: one writer at a time), committed or rolled back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@dataclass
class Ledger:
    """The ledger at ``path``: whole-file readers (``read``, ``scan``: `ledger --check` and the track record), indexed
    readers (``page``: /v1/forecasts; ``bad_lines``, ``present``, ``recent``: the daily job) and the writers (``append``,
    ``repair``). Every call opens the file and its index afresh: an instance holds nothing open."""

    path: Path

    @property
    def index_path(self) -> Path:
        """``<stem>.index.sqlite`` beside the ledger: derived from it, rebuilt when deleted."""
        return self.path.with_name(self.path.stem + ".index.sqlite")

    @property
    def lock_path(self) -> Path:
        """``<stem>.append.lock`` beside the ledger: one append (or repair) at a time."""
        return self.path.with_name(self.path.stem + ".append.lock")

    # ------------------------------------------------------------------ whole-file readers: `ledger --check`, the track record

    def read(self) -> list[dict[str, object]]:
        """Every row, checked (the whole file is read); raises LedgerError naming the file and line of the first bad one."""
        return self._parse(self._committed())

    def scan(self, raw: bytes | None = None) -> tuple[list[dict[str, object]], list[BadLine]]:
        """Every intact row, and every bad line (not JSON, a checksum that fails, an incomplete last line) with its number,
        reason and coin where it can be told — without stopping at the first. Reads the whole file (``ledger --check``,
        ``--repair``); the bytes of an append under way, or cut short and not rolled back yet, are not the ledger's."""
        if raw is None:
            raw = self._committed()
        rows, bad = [], []
        lines = raw.split(b"\n")
        complete = raw.endswith(b"\n") or not raw
        for number, line in enumerate(lines[:-1] if complete else lines, start=1):
            if not complete and number == len(lines):
                match = ASSET_FIELD.search(line.decode("utf-8", "replace"))
                bad.append(BadLine(number, INCOMPLETE, match.group(1) if match else None, line))
                continue
            row, reason, asset = judge(line)
            if row is None:
                bad.append(BadLine(number, str(reason), asset, line))
            else:
                rows.append(row)
        return rows, bad

    def frame(self) -> pd.DataFrame:
        rows = self.read()
        if not rows:
            return pd.DataFrame(columns=["asset", "day", "model_version", "p_cascade", "alert", "side", "basis"])
        return pd.DataFrame(rows).assign(model_version=[key_of(r)[2] for r in rows])

    def keys(self) -> set[tuple[object, ...]]:
        return {key_of(r) for r in self.read()}

    # ------------------------------------------------------------------ indexed readers: a page, the daily job

    def page(self, asset: str | None = None, start: str | None = None, end: str | None = None, limit: int = 100,
             cursor: str | None = None) -> Page:
        """The rows of ``asset`` (None: every coin) with ``start`` <= day <= ``end`` (ISO days, inclusive; None: open), a
        page of at most ``limit`` in ``PAGE_ORDER``, from the page after ``cursor`` (None: the first). Found by the index,
        read at their offsets, each checksum verified again: a row that fails now is counted with the bad lines, not served."""
        after = decode_cursor(cursor) if cursor is not None else None
        if limit < 1:
            raise PageError("limit", f"limit {limit} is not a whole number from 1 up")
        with self._open() as led:
            if led is None:
                return Page([], None, 0)
            where, args = [], []
            for sql, value in (("asset = ?", asset), ("day >= ?", start), ("day <= ?", end)):
                if value is not None:
                    where.append(sql)
                    args.append(value)
            if after is not None:  # keyset: the rows after the cursor's in PAGE_ORDER
                where.append("day <= ? AND (day < ? OR (asset, line) > (?, ?))")
                args += [after[0], after[0], after[1], after[2]]
            found = led.conn.execute(f"SELECT day, asset, line, offset, length, checksum FROM lines {'WHERE ' + ' AND '.join(where) if where else ''} "
                                     "ORDER BY day DESC, asset, line LIMIT ?", [*args, limit + 1]).fetchall()
            rows, failed = self._rows_at(led, [f[3:] for f in found[:limit]])
            following = encode_cursor(*found[limit - 1][:3]) if len(found) > limit else None
            return Page(rows, following, self._bad_count(led) + failed)

    def bad_lines(self) -> list[BadLine]:
        """Every bad line of the ledger, from the index (what the daily job names and skips): number, why, coin, bytes."""
        with self._open() as led:
            return self._bad(led) if led is not None else []

    def present(self, keys: list[tuple[object, ...]]) -> set[tuple[object, ...]]:
        """Those of ``keys`` (``key_of``) that an intact row of the ledger has — looked up in the index, no row read."""
        with self._open() as led:
            return self._present(led, keys) if led is not None else set()

    def recent(self, asset: str, day: str, days: int) -> list[dict[str, object]]:
        """The coin's intact rows of the ``days`` days before ``day``, and its last row before ``day`` however old, oldest
        first (by day, then as written): all ``alerts.trigger`` reads of a coin's past (the day before, and a rise window)."""
        day = str(day)
        since = (dt.date.fromisoformat(day) - dt.timedelta(days=days)).isoformat()
        with self._open() as led:
            if led is None:
                return []
            window = led.conn.execute("SELECT day, line, offset, length, checksum FROM lines WHERE asset = ? AND day < ? AND day >= ?",
                                      (asset, day, since)).fetchall()
            last = led.conn.execute("SELECT day, line, offset, length, checksum FROM lines WHERE asset = ? AND day < ? "
                                    "ORDER BY day DESC, line DESC LIMIT 1", (asset, day)).fetchall()
            found = sorted(set(window) | set(last))
            return self._rows_at(led, [f[2:] for f in found])[0]

    # ------------------------------------------------------------------ writers

    def append(self, rows: list[dict[str, object]], tolerate_bad: bool = False) -> list[dict[str, object]]:
        """Append the rows whose (asset, day, model version) is not in the ledger yet, at its end, in place; returns those
        appended. All or nothing (see the module's docstring); one append at a time (``lock_path``), an append a killed
        writer left settled first. With ``tolerate_bad`` the bad lines are kept as they are (never rewritten, never
        counted) and the rows go after them; without, a bad line is a LedgerError naming it, and nothing is written."""
        if not rows:
            return []
        with exclusive(self.lock_path, f"an append to {self.path.name}", APPEND_WAIT_SECONDS):
            self._create()
            with self._open(writer=True) as led:
                if led is None:
                    raise LedgerError(f"{self.path} vanished while appending: nothing written")
                bad = self._bad(led)
                if bad and not tolerate_bad:
                    raise _refusal(self.path, bad)
                known = self._present(led, [key_of(r) for r in rows])
                fresh = []
                for row in rows:
                    if key_of(row) in known:
                        continue
                    known.add(key_of(row))
                    row = {**row, "checksum": ""}
                    row["checksum"] = checksum(row)
                    fresh.append(row)
                if fresh:
                    self._write(led, b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in fresh))
                return fresh

    def repair(self) -> tuple[list[BadLine], Path | None]:
        """Move every bad line to a quarantine file beside the ledger (``<name>.quarantine.jsonl``, appended: nothing is
        deleted) and rewrite the ledger atomically with the intact lines, bytes unchanged. Returns the lines moved. The
        rewritten file is a new file: the index is built again from it."""
        with exclusive(self.lock_path, f"a repair of {self.path.name}", APPEND_WAIT_SECONDS):
            with self._open(writer=True):
                pass  # an append a killed writer left is rolled back (or kept whole) first: its bytes are not bad lines
            raw = self.path.read_bytes() if self.path.exists() else b""
            _, bad = self.scan(raw)
            if not bad:
                return [], None
            quarantine = self.path.with_name(self.path.stem + ".quarantine.jsonl")
            numbers = {b.line for b in bad}
            kept = b"".join(line + b"\n" for n, line in enumerate(raw.split(b"\n"), start=1) if line and n not in numbers)
            stamp = pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds")
            with open(quarantine, "ab") as fh:  # first the copy, then the rewrite: a crash between them loses nothing
                for b in bad:
                    fh.write(json.dumps({"quarantined_at": stamp, "ledger": self.path.name, "line": b.line, "reason": b.reason,
                                         "raw": b.raw.decode("utf-8", "replace")}).encode() + b"\n")
                fh.flush()
                os.fsync(fh.fileno())

            def write(tmp: Path) -> None:
                if (self.path.read_bytes() if self.path.exists() else b"") != raw:
                    raise LedgerError(f"{self.path} changed while repairing: nothing rewritten (the quarantine file holds copies only)")
                tmp.write_bytes(kept)

            atomic_write(self.path, write)
            with self._open(writer=True):
                pass  # a new file (another inode): indexed from its first byte now, not by the next reader
            return bad, quarantine

    # ------------------------------------------------------------------ internals

    def _parse(self, raw: bytes) -> list[dict[str, object]]:
        """Every row of ``raw``, or a LedgerError naming the file and the line of the first bad one (a torn last line first)."""
        rows, bad = self.scan(raw)
        if bad:
            raise _refusal(self.path, bad)
        return rows

    def _committed(self) -> bytes:
        """The ledger's bytes as readers see them: all of them, but those of an append under way or cut short (its marker
        is in the index: the next append rolls it back) — read without touching the index."""
        if not self.path.exists():
            return b""
        with open(self.path, "rb") as fh:
            raw = fh.read()
            st = os.fstat(fh.fileno())
        begun = self._begun_append(st)
        if begun is None:
            return raw
        start, stop, digest = begun
        return raw if len(raw) >= stop and _sha(raw[start:stop]) == digest else raw[:start]

    def _begun_append(self, st: os.stat_result) -> tuple[int, int, str] | None:
        """The append begun and not finished in this file, as the index records it (read only), or None."""
        if not self.index_path.exists():
            return None
        try:
            conn = sqlite3.connect(self.index_path, timeout=INDEX_WAIT_SECONDS)
            try:
                indexed = _read_indexed(conn)
            finally:
                conn.close()
        except sqlite3.Error:
            return None  # no usable index: no append was begun through it
        if indexed.append_from < 0 or (indexed.dev, indexed.ino) != (st.st_dev, st.st_ino):
            return None
        return indexed.append_from, indexed.append_to, indexed.append_sha

    def _create(self) -> None:
        """An empty ledger, durably (its folder entry fsynced), if there is none."""
        if self.path.exists():
            return
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)  # as atomic_write made it (mkstemp), and repair still does
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    def _write(self, led: _Open, data: bytes) -> None:
        """``data`` (whole lines) at the end of the ledger, all or nothing: the index records the append as begun (committed)
        before the first byte; after the fsync the lines are indexed and the marker cleared in one transaction. Anything
        raised in between rolls the file back to where it ended."""
        if led.torn:
            data = b"\n" + data  # an incomplete last line stays a line of its own, for `ledger --repair`
        start = os.fstat(led.fd).st_size
        if start != led.visible:
            raise LedgerError(f"{self.path} changed while appending (written by something else than the ledger?): nothing written")
        with _transaction(led.conn):
            indexed = _read_indexed(led.conn)
            _write_indexed(led.conn, replace(indexed, append_from=start, append_to=start + len(data), append_sha=_sha(data)))
        try:
            _write_all(led.fd, data)
            os.fsync(led.fd)
        finally:
            indexed, _ = self._sync(led.conn, led.fd, writer=True)  # whole: indexed, marker cleared; else rolled back to ``start``
        if indexed.size != start + len(data) or indexed.append_from >= 0:
            raise LedgerError(f"{self.path}: the lines appended at byte {start} were not indexed whole (changed while appending?)")

    @contextmanager
    def _open(self, writer: bool = False) -> Iterator[_Open | None]:
        """The ledger opened with its index brought up to date, or None when there is no ledger yet. A writer (holding
        ``lock_path``) also settles an append a killed writer left. An index error is a LedgerError naming the index."""
        fd = self._descriptor(writer)
        if fd is None:
            yield None
            return
        conn = None
        try:
            conn = self._connect()
            indexed, visible = self._sync(conn, fd, writer)
            yield _Open(conn, fd, indexed, visible)
        except sqlite3.Error as exc:
            raise LedgerError(f"{self.index_path}: {exc} (the ledger's index, derived from it: deleting it makes it be built again)") from exc
        finally:
            if conn is not None:
                conn.close()
            os.close(fd)

    def _descriptor(self, writer: bool) -> int | None:
        """A descriptor of the file at the ledger's path now (reopened if the file was replaced while it was opened), or None."""
        for _ in range(3):
            try:
                fd = os.open(self.path, (os.O_RDWR | os.O_APPEND if writer else os.O_RDONLY) | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            opened, now = os.fstat(fd), (os.stat(self.path) if self.path.exists() else None)
            if now is not None and (opened.st_dev, opened.st_ino) == (now.st_dev, now.st_ino):
                return fd
            os.close(fd)
        raise LedgerError(f"{self.path} was replaced three times while it was being opened: try again")

    def _connect(self) -> sqlite3.Connection:
        """The index, made (or made again, empty, when of another schema or not a database) as needed; in memory — built
        again at every opening — where the ledger's folder cannot hold it (a read-only volume)."""
        usable = os.access(self.path.parent, os.W_OK) and (not self.index_path.exists() or os.access(self.index_path, os.W_OK))
        target = str(self.index_path) if usable else ":memory:"
        try:
            return _connect_index(target)
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise  # locked, full disk: not the file's fault
            for suffix in ("", "-wal", "-shm", "-journal"):  # not a database (torn, or another file): it is derived, so made again
                Path(f"{self.index_path}{suffix}").unlink(missing_ok=True)
            return _connect_index(target)

    def _sync(self, conn: sqlite3.Connection, fd: int, writer: bool) -> tuple[_Indexed, int]:
        """Bring the index up to the file: nothing when it is (the usual opening reads a few bytes), else the work of
        ``_plan`` in one transaction. Returns the index's state and where readers' view of the file ends."""
        plan = self._plan(conn, fd, writer)
        if plan.work:
            with _transaction(conn):
                plan = self._plan(conn, fd, writer)  # again, holding the index: another opening may have done it meanwhile
                if plan.work:
                    self._carry_out(conn, fd, plan)
        return _read_indexed(conn), plan.stop

    def _plan(self, conn: sqlite3.Connection, fd: int, writer: bool) -> _Plan:
        """What the index needs: compare the file (identity, size, times, the last indexed line's bytes) with what was
        indexed, and settle an append begun and not finished."""
        indexed = _read_indexed(conn)
        st = os.fstat(fd)
        same = (indexed.dev, indexed.ino) == (st.st_dev, st.st_ino)
        truncate_to, clear, stop = None, False, st.st_size
        if indexed.append_from >= 0:
            whole = same and st.st_size >= indexed.append_to and \
                _sha(_pread_all(fd, indexed.append_to - indexed.append_from, indexed.append_from)) == indexed.append_sha
            if whole or not same:
                clear = True  # every byte it meant to write is there (kept), or it was into a file since replaced
            elif writer:
                truncate_to, clear, stop = indexed.append_from, True, indexed.append_from  # killed midway: rolled back
            else:
                stop = indexed.append_from  # under way, or killed: not the ledger's until whole (the next append settles it)
        # edited in place: same length, other times (an append in progress changes them too: not while one is begun)
        touched = st.st_size == indexed.size and (st.st_mtime_ns, st.st_ctime_ns) != (indexed.mtime_ns, indexed.ctime_ns) and indexed.append_from < 0
        rebuild = not same or st.st_size < indexed.size or touched or _last_line_changed(fd, indexed)
        return _Plan(indexed, rebuild, truncate_to, clear, stop, _has_newline(fd, 0 if rebuild else indexed.size, stop))

    def _carry_out(self, conn: sqlite3.Connection, fd: int, plan: _Plan) -> None:
        """Do ``plan`` (inside the index's write transaction): roll a killed append back, forget a replaced file's lines,
        and index the complete lines not indexed yet, reading only those bytes."""
        if plan.truncate_to is not None:
            os.ftruncate(fd, plan.truncate_to)
            os.fsync(fd)
        indexed = plan.indexed
        if plan.rebuild:
            conn.execute("DELETE FROM lines")
            conn.execute("DELETE FROM bad")
            indexed = replace(_Indexed(), append_from=indexed.append_from, append_to=indexed.append_to, append_sha=indexed.append_sha)
        end, following, last = _index_lines(conn, fd, indexed.size, plan.stop, indexed.lines + 1)
        st = os.fstat(fd)
        indexed = replace(indexed, dev=st.st_dev, ino=st.st_ino, size=end, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, lines=following - 1)
        if last is not None:
            indexed = replace(indexed, last_offset=last[0], last_length=len(last[1]), last_sha=_sha(last[1]))
        if plan.clear_marker:
            indexed = replace(indexed, append_from=-1, append_to=-1, append_sha="")
        _write_indexed(conn, indexed)

    def _rows_at(self, led: _Open, entries: list[tuple[int, int, str]]) -> tuple[list[dict[str, object]], int]:
        """The rows at the index's (offset, length, checksum) entries, each read and verified now; and how many failed."""
        rows, failed = [], 0
        for offset, length, expected in entries:
            row, _, _ = judge(_pread_all(led.fd, length, offset))
            if row is None or row["checksum"] != expected:
                failed += 1  # altered since it was indexed (in place, same length): counted bad, never served
            else:
                rows.append(row)
        return rows, failed

    def _bad(self, led: _Open) -> list[BadLine]:
        out = [BadLine(line, reason, asset, _pread_all(led.fd, length, offset))
               for line, offset, length, reason, asset in led.conn.execute("SELECT line, offset, length, reason, asset FROM bad ORDER BY line")]
        if led.torn:
            raw = _pread_all(led.fd, led.visible - led.indexed.size, led.indexed.size)
            match = ASSET_FIELD.search(raw.decode("utf-8", "replace"))
            out.append(BadLine(led.indexed.lines + 1, INCOMPLETE, match.group(1) if match else None, raw))
        return out

    def _bad_count(self, led: _Open) -> int:
        return led.conn.execute("SELECT COUNT(*) FROM bad").fetchone()[0] + int(led.torn)

    def _present(self, led: _Open, keys: list[tuple[object, ...]]) -> set[tuple[object, ...]]:
        return {key for key in keys if led.conn.execute("SELECT 1 FROM lines WHERE asset = ? AND day = ? AND version = ? LIMIT 1",
                                                        (_text(key[0]), _text(key[1]), json.dumps(key[2], sort_keys=True, default=str))).fetchone()}


def _connect_index(target: str) -> sqlite3.Connection:
    """A connection to the index at ``target`` (a path, or ``:memory:``) with its tables, made when new or of another schema."""
    conn = sqlite3.connect(target, timeout=INDEX_WAIT_SECONDS, isolation_level=None, check_same_thread=False)
    try:
        if target != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")  # readers (the service) read while the daily job writes
            conn.execute("PRAGMA synchronous=FULL")  # a committed "append begun" survives a power cut
        if conn.execute("PRAGMA user_version").fetchone()[0] != INDEX_SCHEMA:
            with _transaction(conn):
                if conn.execute("PRAGMA user_version").fetchone()[0] != INDEX_SCHEMA:  # another opening may have made it
                    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                        conn.execute(f'DROP TABLE "{name}"')
                    for statement in INDEX_TABLES:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {INDEX_SCHEMA}")
    except BaseException:
        conn.close()
        raise
    return conn


def score(rows: pd.DataFrame, events: pd.DataFrame, last_judged: pd.Timestamp, horizon: int) -> dict[str, int | float | None]:
    """The live track record of one coin's ledger rows whose horizon has passed (day + H <= ``last_judged``).

    * rows, alerts, events: counts (int);
    * precision: share of alert rows with an event starting in (day, day + H];
    * recall: share of events (start within the scored window) with an alert row in [start - H, start - 1];
    * lead: days from the first such alert to the event (median);
    * direction: on caught events whose first alert stated a side, that side versus the event's direction; a first alert
      that said "side uncertain" stated none and is not scored as one — ``side_uncertain`` counts those events; a caught
      two-sided event has no side to be right or wrong about — ``two_sided`` counts those, whatever the alert said.

    A rate with nothing to measure yet is None (not NaN): the CLI prints it as "–".
    """
    if rows.empty:
        return {"rows": 0, "alerts": 0, "precision": None, "events": 0, "recall": None, "median_lead_days": None,
                "side_uncertain": 0, "two_sided": 0, "direction_accuracy": None}
    rows = rows.assign(day=pd.to_datetime(rows["day"])).sort_values("day")
    rows = rows[rows["day"] + pd.Timedelta(days=horizon) <= last_judged]
    starts = pd.to_datetime(events["start"]) if len(events) else pd.Series(dtype="datetime64[ns]")
    alerts = rows[rows["alert"].astype(bool)]
    hits = [any(warns(d, s, horizon) for s in starts) for d in alerts["day"]]
    first, last = (rows["day"].min(), rows["day"].max()) if len(rows) else (None, None)
    scored = events[span_warns(first, last, starts, horizon)] if first is not None and len(events) else events.iloc[0:0]
    leads, stated, correct, two_sided = [], 0, 0, 0
    for event in scored.itertuples():
        start = pd.Timestamp(event.start)
        window = alerts[np.asarray(warns(alerts["day"], start, horizon), dtype=bool)]
        if len(window):
            leads.append((start - window["day"].iloc[0]).days)
            said = stated_side(window.iloc[0])
            right = side_right(said, event.direction)
            if event.direction == TWO_SIDED:
                two_sided += 1
            elif right is not None:
                stated += 1
                correct += right
    return {"rows": len(rows), "alerts": len(alerts), "precision": float(np.mean(hits)) if hits else None,
            "events": len(scored), "recall": len(leads) / len(scored) if len(scored) else None,
            "median_lead_days": float(np.median(leads)) if leads else None,
            "side_uncertain": len(leads) - stated - two_sided, "two_sided": two_sided,
            "direction_accuracy": correct / stated if stated else None}
