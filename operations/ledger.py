"""The forecast ledger: what the model said each day, kept for good — the only evaluation nobody can tune.

One JSON line per (coin, day, model version) — the forecast path's answer as it was given that day, each carrying a checksum of its own content. Rows are never
changed: an append rewrites the file atomically as the old bytes plus the new lines (a kill mid-write leaves
the previous file), after checking that the old bytes are intact. A row that fails its checksum, or a file
that is not the ledger, is an error naming the file and the line — never repaired or replaced silently.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cascade_radar.files import atomic_write
from cascade_radar.rules import span_warns, warns


class LedgerError(ValueError):
    pass


ASSET_FIELD = re.compile(r'"asset":\s*"([A-Z0-9]{2,10})"')


@dataclass(frozen=True)
class BadLine:
    """A ledger line that cannot be trusted: its number (from 1), why, its coin if it can be read, and its bytes."""

    line: int
    reason: str
    asset: str | None
    raw: bytes


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


@dataclass
class Ledger:
    path: Path

    def read(self) -> list[dict[str, object]]:
        """Every row, checked; raises LedgerError naming the file and line of the first bad one."""
        return self._parse(self.path.read_bytes()) if self.path.exists() else []

    def scan(self, raw: bytes | None = None) -> tuple[list[dict[str, object]], list[BadLine]]:
        """Every intact row, and every bad line (not JSON, a checksum that fails, an incomplete last line) with its number,
        reason and coin where it can be told — without stopping at the first (``ledger --check``, and ``daily`` going on
        for the coins whose rows are intact)."""
        if raw is None:
            raw = self.path.read_bytes() if self.path.exists() else b""
        rows, bad = [], []
        lines = raw.split(b"\n")
        complete = raw.endswith(b"\n") or not raw
        for number, line in enumerate(lines[:-1] if complete else lines, start=1):
            text = line.decode("utf-8", "replace")
            asset_match = ASSET_FIELD.search(text)
            asset = asset_match.group(1) if asset_match else None
            if not complete and number == len(lines):
                bad.append(BadLine(number, "the last line is incomplete (a write that was not atomic?)", asset, line))
                continue
            try:
                row = json.loads(text)
            except ValueError:
                bad.append(BadLine(number, "not JSON", asset, line))
                continue
            if not isinstance(row, dict) or row.get("checksum") != checksum(row):
                bad.append(BadLine(number, "checksum mismatch: the row was altered", asset, line))
                continue
            rows.append(row)
        return rows, bad

    def repair(self) -> tuple[list[BadLine], Path | None]:
        """Move every bad line to a quarantine file beside the ledger (``<name>.quarantine.jsonl``, appended: nothing is
        deleted) and rewrite the ledger atomically with the intact lines, bytes unchanged. Returns the lines moved."""
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
        return bad, quarantine

    def _parse(self, raw: bytes) -> list[dict[str, object]]:
        """Every row of ``raw``, or a LedgerError naming the file and the line of the first bad one (a torn last line first)."""
        rows, bad = self.scan(raw)
        if not bad:
            return rows
        repair = "`cascade-radar ledger --repair` moves the bad lines to a quarantine file beside it"
        torn = [b for b in bad if b.reason.startswith("the last line is incomplete")]
        if torn:
            raise LedgerError(f"{self.path}: the last line is incomplete (a write that was not atomic?); the ledger is never rewritten "
                              "automatically — `cascade-radar ledger --repair` moves it to a quarantine file beside it")
        first = bad[0]
        what = "not JSON — the ledger is corrupt" if first.reason == "not JSON" else "checksum mismatch — the row was altered"
        raise LedgerError(f"{self.path}, line {first.line}: {what}; {repair}")

    def keys(self) -> set[tuple[object, ...]]:
        return {key_of(r) for r in self.read()}

    def append(self, rows: list[dict[str, object]], tolerate_bad: bool = False) -> list[dict[str, object]]:
        """Append the rows whose (asset, day, model_version) is not in the ledger yet; returns those appended. With
        ``tolerate_bad`` the bad lines are kept as they are (never rewritten, never counted) and the rows go after them."""
        old = self.path.read_bytes() if self.path.exists() else b""
        if tolerate_bad:
            known = {key_of(r) for r in self.scan(old)[0]}  # the bytes kept are the bytes scanned
            expected = old
            if old and not old.endswith(b"\n"):
                old += b"\n"  # an incomplete last line stays a line of its own, for `ledger --repair`
        else:
            known = {key_of(r) for r in self._parse(old)}  # the bytes kept are the bytes checked
            expected = old
        fresh = []
        for row in rows:
            if key_of(row) in known:
                continue
            known.add(key_of(row))
            row = {**row, "checksum": ""}
            row["checksum"] = checksum(row)
            fresh.append(row)
        if not fresh:
            return []
        lines = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in fresh)

        def write(tmp: Path) -> None:
            if (self.path.read_bytes() if self.path.exists() else b"") != expected:
                raise LedgerError(f"{self.path} changed while appending (two daily runs at once?): nothing written")
            tmp.write_bytes(old + lines)

        atomic_write(self.path, write)
        return fresh

    def frame(self) -> pd.DataFrame:
        rows = self.read()
        if not rows:
            return pd.DataFrame(columns=["asset", "day", "model_version", "p_cascade", "alert", "side", "basis"])
        return pd.DataFrame(rows).assign(model_version=[key_of(r)[2] for r in rows])


def score(rows: pd.DataFrame, events: pd.DataFrame, last_judged: pd.Timestamp, horizon: int) -> dict[str, float]:
    """The live track record of one coin's ledger rows whose horizon has passed (day + H <= ``last_judged``).

    * precision: share of alert rows with an event starting in (day, day + H];
    * recall: share of events (start within the scored window) with an alert row in [start - H, start - 1];
    * lead: days from the first such alert to the event (median);
    * direction: on caught events, the side of that first alert row versus the event's direction.
    """
    if rows.empty:
        return {"rows": 0.0, "alerts": 0.0, "precision": float("nan"), "events": 0.0, "recall": float("nan"),
                "median_lead_days": float("nan"), "direction_accuracy": float("nan")}
    rows = rows.assign(day=pd.to_datetime(rows["day"])).sort_values("day")
    rows = rows[rows["day"] + pd.Timedelta(days=horizon) <= last_judged]
    starts = pd.to_datetime(events["start"]) if len(events) else pd.Series(dtype="datetime64[ns]")
    alerts = rows[rows["alert"].astype(bool)]
    hits = [any(warns(d, s, horizon) for s in starts) for d in alerts["day"]]
    first, last = (rows["day"].min(), rows["day"].max()) if len(rows) else (None, None)
    scored = events[span_warns(first, last, starts, horizon)] if first is not None and len(events) else events.iloc[0:0]
    leads, correct = [], 0
    for event in scored.itertuples():
        start = pd.Timestamp(event.start)
        window = alerts[np.asarray(warns(alerts["day"], start, horizon), dtype=bool)]
        if len(window):
            leads.append((start - window["day"].iloc[0]).days)
            correct += window["side"].iloc[0] == event.direction
    return {"rows": float(len(rows)), "alerts": float(len(alerts)), "precision": float(np.mean(hits)) if hits else float("nan"),
            "events": float(len(scored)), "recall": len(leads) / len(scored) if len(scored) else float("nan"),
            "median_lead_days": float(np.median(leads)) if leads else float("nan"),
            "direction_accuracy": correct / len(leads) if leads else float("nan")}
