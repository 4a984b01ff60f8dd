"""The forecast ledger's index: pages newest first, only new bytes verified, a file rewritten behind it indexed again,
appends in place, an append killed midway rolled back, and /v1/forecasts' limit and cursor refused by name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import operations.ledger as ledger_module
from cascade_radar.config import PROJECT_ROOT, OperationsConfig, Settings
from operations.alerts import trigger
from operations.ledger import Ledger, checksum, key_of

COINS = ("BTC", "ETH", "SOL")


def forecast_row(asset: str, day: str, version: str = "1", p: float = 0.1, alert: bool = False, reason: str | None = None) -> dict:
    """A ledger row shaped like the forecast path's answer: the fields the ledger's key, its pages and the alerts read."""
    return {"asset": asset, "day": day, "horizon_days": 7, "p_cascade": p, "p_long": p / 2, "p_short": p / 2, "side": "long",
            "alert": alert, "basis": "out-of-sample", "model": {"name": f"cascade-radar-{asset.lower()}", "version": version, "alias": "champion"},
            "made_at": "2025-01-01T00:00:00+00:00", "trigger": reason, "sent": []}


def line_of(row: dict) -> bytes:
    """The row as the ledger writes it: stamped with its checksum, one sorted JSON line."""
    stamped = {**row, "checksum": ""}
    stamped["checksum"] = checksum(stamped)
    return json.dumps(stamped, sort_keys=True).encode() + b"\n"


@pytest.fixture()
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The day of every row the ledger computes a checksum of, from here on."""
    days: list[str] = []
    real = ledger_module.checksum
    monkeypatch.setattr(ledger_module, "checksum", lambda row: days.append(str(row.get("day"))) or real(row))
    return days


def test_pages_run_newest_first_and_cover_every_row_exactly_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    days = [f"2024-03-{d:02d}" for d in range(1, 11)]
    # written out of order in three appends; BTC's 03-05 has a second model version, written last
    batches = [[forecast_row(a, d) for d in days[5:] for a in ("ETH", "BTC", "SOL")],
               [forecast_row(a, d) for d in days[:5] for a in ("SOL", "BTC", "ETH")],
               [forecast_row("BTC", "2024-03-05", version="2")]]
    for batch in batches:
        assert len(ledger.append(batch)) == len(batch)
    seen, cursor, pages = [], None, 0
    while True:
        page = ledger.page(limit=7, cursor=cursor)
        seen += [key_of(r) for r in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5 and len(seen) == 31 and len(set(seen)) == 31  # ceil(31 / 7) pages, every row once
    assert seen[:4] == [("BTC", "2024-03-10", "1"), ("ETH", "2024-03-10", "1"), ("SOL", "2024-03-10", "1"), ("BTC", "2024-03-09", "1")]
    assert seen[15:19] == [("BTC", "2024-03-05", "1"), ("BTC", "2024-03-05", "2"), ("ETH", "2024-03-05", "1"), ("SOL", "2024-03-05", "1")]
    # newest day first, then coin, then the order written (the second version after the first)
    order = {k: n for n, k in enumerate(key_of(r) for b in batches for r in b)}
    assert seen == sorted(seen, key=lambda k: (-pd.Timestamp(k[1]).toordinal(), k[0], order[k]))
    # a coin and a day range, two rows a page
    first = ledger.page(asset="BTC", start="2024-03-04", end="2024-03-06", limit=2)
    second = ledger.page(asset="BTC", start="2024-03-04", end="2024-03-06", limit=2, cursor=first.next_cursor)
    assert [key_of(r) for r in first.rows] == [("BTC", "2024-03-06", "1"), ("BTC", "2024-03-05", "1")]
    assert [key_of(r) for r in second.rows] == [("BTC", "2024-03-05", "2"), ("BTC", "2024-03-04", "1")]
    assert second.next_cursor is None and first.bad_lines == second.bad_lines == 0


def test_an_opening_checks_only_the_rows_added_since(tmp_path: Path, checked: list[str]) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger(path).append([forecast_row("BTC", f"2024-01-{d:02d}") for d in range(1, 29)])
    checked.clear()
    added = Ledger(path).append([forecast_row("BTC", "2024-02-01"), forecast_row("ETH", "2024-02-01")])
    assert len(added) == 2 and checked == ["2024-02-01"] * 4  # each new row stamped, then verified as indexed; no old row
    checked.clear()
    assert Ledger(path).bad_lines() == [] and checked == []  # nothing added: nothing read, nothing checked
    sol = line_of(forecast_row("SOL", "2024-02-02"))
    checked.clear()
    with open(path, "ab") as fh:  # grown by another writer
        fh.write(sol)
    (row,) = Ledger(path).page(asset="SOL").rows
    assert row["day"] == "2024-02-02" and checked == ["2024-02-02", "2024-02-02"]  # indexed once, verified again as served
    checked.clear()
    Ledger(path).index_path.unlink()  # the index is derived: without it, the first opening reads every row once
    assert len(Ledger(path).page(limit=1).rows) == 1 and len(checked) == 31 + 1


def test_a_ledger_rewritten_behind_the_index_is_indexed_again_and_an_altered_row_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    days = [f"2024-05-{d:02d}" for d in range(1, 11)]
    Ledger(path).append([forecast_row("BTC", d) for d in days])
    assert Ledger(path).page().bad_lines == 0  # indexed
    lines = path.read_bytes().splitlines(keepends=True)
    # a copy with line 4 altered, saved over it (a new file, as an editor saves)
    replaced = tmp_path / "copy.jsonl"
    replaced.write_bytes(b"".join([*lines[:3], lines[3].replace(b'"p_cascade": 0.1', b'"p_cascade": 0.9'), *lines[4:]]))
    os.replace(replaced, path)
    (bad,) = Ledger(path).bad_lines()
    assert (bad.line, bad.reason, bad.asset) == (4, "checksum mismatch: the row was altered", "BTC")
    page = Ledger(path).page()
    assert page.bad_lines == 1 and [r["day"] for r in page.rows] == days[::-1][:6] + days[::-1][7:]  # 05-04 is not served
    # shrunk to its first two lines, in place
    os.truncate(path, len(lines[0]) + len(lines[1]))
    page = Ledger(path).page()
    assert [r["day"] for r in page.rows] == ["2024-05-02", "2024-05-01"] and page.bad_lines == 0
    # edited in place, same length (the last line untouched); saved a moment later, as a person edits
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.write(lines[0].replace(b'"p_cascade": 0.1', b'"p_cascade": 0.7'))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    (bad,) = Ledger(path).bad_lines()
    assert (bad.line, bad.reason) == (1, "checksum mismatch: the row was altered") and [r["day"] for r in Ledger(path).page().rows] == ["2024-05-02"]


def _killed_append(path: Path, rows: list[dict], written: str) -> None:
    """``Ledger.append(rows)`` in another process that is SIGKILLed in the middle of the write (``written`` = "half"), or
    right after every byte is written and fsynced, before the lines are indexed ("all")."""
    script = f"""
import os, signal, sys
sys.path.insert(0, {str(PROJECT_ROOT)!r})
from pathlib import Path
import operations.ledger as ledger_module

def dies(fd, data):
    os.write(fd, data[: len(data) // 2] if {written == "half"} else data)
    os.fsync(fd)
    os.kill(os.getpid(), signal.SIGKILL)

ledger_module._write_all = dies
ledger_module.Ledger(Path({str(path)!r})).append({rows!r})
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]


def test_an_append_killed_midway_is_rolled_back_and_one_killed_after_its_bytes_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    old = [forecast_row("BTC", f"2024-06-{d:02d}") for d in range(1, 6)]
    Ledger(path).append(old)
    before = path.read_bytes()
    new = [forecast_row("ETH", "2024-06-05", p=0.3), forecast_row("SOL", "2024-06-05", p=0.4)]
    _killed_append(path, new, written="half")
    assert len(path.read_bytes()) > len(before)  # half of the lines are on disk ...
    ledger = Ledger(path)
    assert [key_of(r) for r in ledger.read()] == [key_of(r) for r in old]  # ... but readers see the ledger as it was
    assert ledger.bad_lines() == [] and ledger.scan()[1] == [] and len(ledger.page().rows) == 5
    assert ledger.append(old[:1]) == []  # the next append (here of a row already there) rolls the half-written lines back
    assert path.read_bytes() == before
    assert len(ledger.append(new)) == 2 and len(ledger.read()) == 7  # and the same rows go in whole
    # killed after every byte was written and fsynced, before its lines were indexed: they are the ledger's
    more = [forecast_row("BTC", "2024-06-06", p=0.5)]
    _killed_append(path, more, written="all")
    assert [key_of(r) for r in Ledger(path).page(limit=1).rows] == [key_of(more[0])]
    assert Ledger(path).append(more) == [] and len(Ledger(path).read()) == 8 and path.read_bytes().endswith(line_of(more[0]))


def test_an_append_writes_only_its_lines_and_a_no_op_append_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    rows = [forecast_row("BTC", f"2024-07-{d:02d}") for d in range(1, 7)]
    Ledger(path).append(rows[:5])
    before, old = path.stat(), path.read_bytes()
    assert Ledger(path).append(rows[:5]) == []  # every row already there
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)
    assert len(Ledger(path).append(rows)) == 1
    grown = path.stat()
    assert grown.st_ino == before.st_ino and path.read_bytes() == old + line_of(rows[5])  # the same file, the old bytes as they were


def test_a_coins_recent_rows_give_the_alert_rule_the_answer_its_whole_history_gives(tmp_path: Path) -> None:
    cfg = OperationsConfig(rise_step=0.2, rise_window_days=3)
    rng = np.random.default_rng(7)
    rows = []
    for i, day in enumerate(pd.date_range("2024-01-01", periods=70)):
        if i % 7 == 3 or 40 <= i < 52:  # days without a forecast, and a gap longer than the rise window
            continue
        for version in ("1", "2") if i % 11 == 0 else ("1",):
            p = float(rng.uniform())
            rows.append(forecast_row("BTC", str(day.date()), version, p, alert=p >= 0.7, reason="risk rose +0.30 within 3 days" if p < 0.2 else None))
            rows.append(forecast_row("ETH", str(day.date()), version, 1 - p, alert=p < 0.3))
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(rows)
    # 01-11 has no forecast (i % 7 == 3), 01-12 two model versions (i % 11 == 0)
    assert [(r["day"], key_of(r)[2]) for r in ledger.recent("BTC", "2024-01-13", 3)] == [("2024-01-10", "1"), ("2024-01-12", "1"), ("2024-01-12", "2")]
    assert [r["day"] for r in ledger.recent("BTC", "2024-02-21", 3)] == ["2024-02-09"]  # after the gap: only the last row
    for day in pd.date_range("2024-01-01", periods=75):
        day = str(day.date())
        whole = sorted((r for r in rows if r["asset"] == "BTC" and r["day"] < day), key=lambda r: r["day"])
        recent = ledger.recent("BTC", day, cfg.rise_window_days)
        for p, alert in ((0.95, True), (0.5, False), (0.05, False)):
            new = forecast_row("BTC", day, "3", p, alert)
            assert trigger(new, recent, cfg) == trigger(new, whole, cfg), day


def test_a_bad_limit_or_cursor_is_a_400_naming_it_and_pages_follow_the_cursor(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from serving.service import CascadeRadar

    settings = Settings(data_dir=tmp_path, assets=["BTC", "ETH"])
    Ledger(settings.ledger_path).append([forecast_row(a, f"2024-08-0{d}") for d in range(1, 4) for a in ("BTC", "ETH")])
    # the route's own method on a stand-in service (a second ASGI app in one process would re-register BentoML's metrics)
    fake = SimpleNamespace(coins=SimpleNamespace(settings=settings, states={"BTC": None, "ETH": None}))

    def get(**params: str | None) -> tuple[int, dict]:
        answer = CascadeRadar.inner.forecasts(fake, **{"asset": None, "start": None, "end": None, "limit": None, "cursor": None, **params})
        return answer.status_code, json.loads(answer.body)

    for limit in ("abc", "0", "-1", "2.5", "1001", ""):
        status, body = get(limit=limit)
        assert (status, body["field"]) == (400, "limit") and "is not a whole number from 1 to 1000" in body["detail"], limit
    for cursor in ("nonsense", "", "2024-08-01.BTC", "2024-08-01.BTC.0", "2024-08-01.BTC.1.2", "2024-08-01.B/C.3"):
        status, body = get(cursor=cursor)
        assert (status, body["field"]) == (400, "cursor") and "is not one this API gave" in body["detail"], cursor
    status, first = get(limit="4")
    assert status == 200 and first["count"] == 4 and "checksum" not in first["rows"][0] and first["bad_lines"] == 0
    status, rest = get(limit="4", cursor=first["next_cursor"])
    assert [(r["day"], r["asset"]) for r in first["rows"] + rest["rows"]] == [("2024-08-03", "BTC"), ("2024-08-03", "ETH"), ("2024-08-02", "BTC"),
                                                                               ("2024-08-02", "ETH"), ("2024-08-01", "BTC"), ("2024-08-01", "ETH")]
    assert rest["count"] == 2 and rest["next_cursor"] is None and first["next_cursor"] == "2024-08-02.ETH.4"  # day, coin, line of the last row
    assert get()[1]["count"] == 6  # the default page (100 rows) holds them all


def test_the_documented_limit_is_the_limit_the_route_accepts() -> None:
    """The OpenAPI pattern of ``limit`` and ``page_limit`` are one rule: a fuzzer's schema-valid limit is answered, any
    other refused."""
    import re

    from operations.ledger import PageError, page_limit
    from serving.openapi import whole_numbers_up_to

    assert whole_numbers_up_to(1000) == "^(?:[1-9][0-9]{0,2}|1000)$"
    for most in (1, 7, 99, 500, 1000, 1234):
        pattern = whole_numbers_up_to(most)
        for text in [*map(str, range(0, most + 30)), "007", " 5", "+5", "5 ", "1e2", "", "٣"]:
            try:
                accepted = page_limit(text, 100, most) == int(text)
            except PageError:
                accepted = False
            assert accepted == bool(re.fullmatch(pattern, text)) == (text.isascii() and text.isdigit() and text[0] != "0" and int(text) <= most), (most, text)
