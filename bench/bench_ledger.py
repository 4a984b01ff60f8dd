"""`make bench` (ledger part): /v1/forecasts and the daily job's ledger work on ledgers of 10^3, 10^4 and 10^5 rows.

Each ledger is written in a scratch folder with rows shaped like the forecast path's answer (the fields of
``serving.schemas.Forecast`` plus ``made_at``, ``trigger``, ``sent`` and the checksum: about 5 kB a line, as in a real
ledger), seven coins a day. Measured per size, each step in a forked process (its time, and its peak resident memory
above the process it was forked from):

* the index built at the first opening (once per ledger: later openings read only the bytes added since);
* a first page of /v1/forecasts (``Ledger.page``, the function the route calls: 100 rows), and a page of one coin and
  a month;
* a daily run with nothing new (its bad lines and keys looked up in the index; no row read) and a daily append of a
  day's seven rows (written in place);
* baselines measured in the same run, as the code before the index did them: the route's full scan (``Ledger.scan``,
  the whole file read and every line checksummed, then filtered), the no-op daily run (``scan``, then the append's own
  check of the old bytes) and the append (read and check every line, rewrite the whole file).

``BENCH_LEDGER_SIZES`` (comma-separated row counts) overrides the sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tabulate import tabulate  # noqa: E402

from cascade_radar.files import atomic_write  # noqa: E402
from operations.ledger import Ledger, checksum, key_of  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_LEDGER_SIZES", "1000,10000,100000").split(",")]
COINS = ("BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA")
FAMILIES = ("price", "oi", "funding", "flows", "sopr", "nupl")
FIRST_DAY = dt.date(2000, 1, 1)


def forecast_row(asset: str, day: str, n: int) -> dict[str, object]:
    """A ledger row as the daily job writes it (the forecast path's answer, then when it was made, the trigger and the
    sends), with numbers that vary by row."""
    p = (n * 7919 % 1000) / 1000
    return {
        "asset": asset, "day": day, "horizon_days": 7, "p_cascade": p, "p_long": p * 0.6, "p_short": p * 0.4, "side": "long",
        "side_uncertain": False, "p_long_given_cascade": 0.6, "long_prior": 0.55, "side_skill": 0.04, "alert": p >= 0.5,
        "basis": "out-of-sample", "hindsight": False,
        "model": {"name": f"cascade-radar-{asset.lower()}", "version": "12", "alias": "champion"}, "model_used": "champion v12",
        "data_through": day, "age_days": 0, "outdated": False,
        "freshness": [{"family": f, "read_by_model": True, "data_through": day, "days_behind": 0, "stale": False} for f in FAMILIES],
        "stale": [], "missing_families": [],
        "top_drivers": [{"feature": f"{f}_zscore_30d_lag1", "label": f"{f} z-score over 30 days (yesterday)", "family": f,
                         "feature_value": round(p * 3 - 1.5, 4), "unit": "σ", "value_text": f"{p * 3 - 1.5:.2f} σ", "shap": round(0.3 - p / 3, 4)}
                        for f in FAMILIES[:5]],
        "checklist": [{"family": f, "warning": f"{f}: the warning sign an analyst writes down for this family, in words", "on": p > 0.4,
                       "rule": "above its 90th percentile of the last year (a round threshold, not fitted)",
                       "values": {f"{f}_level": round(p, 4), f"{f}_change_7d": round(p - 0.5, 4)},
                       "values_text": f"{f} level {p:.3f}, {f} change over 7 days {p - 0.5:+.3f}", "read_by_model": True} for f in FAMILIES],
        "sentence": (f"{asset} {day}: P(a liquidation cascade within 7 days) {p:.2f} against a base rate of 0.12, long side; open interest "
                     "and funding push it up, exchange flows down. Out-of-sample: the champion did not see this day."),
        "made_at": f"{day}T00:05:00+00:00", "trigger": "entered the alert state" if p >= 0.5 else None,
        "sent": [{"webhook": "#1 https://hooks.slack.com/***", "status": 200, "attempts": 1, "delivered": True, "error": None}] if p >= 0.5 else [],
    }


def day_of(n: int) -> str:
    return (FIRST_DAY + dt.timedelta(days=n // len(COINS))).isoformat()


def line_of(row: dict[str, object]) -> bytes:
    stamped = {**row, "checksum": ""}
    stamped["checksum"] = checksum(stamped)
    return json.dumps(stamped, sort_keys=True).encode() + b"\n"


def write_ledger(path: Path, rows: int) -> None:
    """A ledger of ``rows`` lines, seven coins a day, written as the daily job would have (one line per row, checksummed)."""
    with open(path, "wb") as fh:
        for n in range(rows):
            fh.write(line_of(forecast_row(COINS[n % len(COINS)], day_of(n), n)))


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


def measured(fn: Callable[[], object], repeat: int = 1) -> tuple[float, float]:
    """Median seconds of ``repeat`` calls of ``fn`` in a forked process, and that process's peak resident memory above what
    it started with (MB): each step pays for its own memory, and leaves none behind."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report, exit without running the parent's cleanup
        os.close(read)
        base = rss_kb()
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux
        os.write(write, json.dumps([statistics.median(times), max(peak - base, 0) / 1024]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        answer = fh.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not answer:
        raise SystemExit(f"a measured step failed (status {status})")
    seconds, megabytes = json.loads(answer)
    return seconds, megabytes


def old_route(path: Path, asset: str | None, start: str | None, end: str | None) -> list[dict[str, object]]:
    """/v1/forecasts before the index: every line read and checksummed, then filtered (the JSON encoding of the answer,
    which it also paid for, is left out)."""
    rows, _ = Ledger(path).scan()
    return [{k: v for k, v in r.items() if k != "checksum"} for r in rows
            if (asset is None or r["asset"] == asset) and (start is None or r["day"] >= start) and (end is None or r["day"] <= end)]


def old_daily_noop(path: Path, keys: list[tuple[object, ...]]) -> set[tuple[object, ...]]:
    """The daily job's ledger work on a day already written, before the index: ``scan`` for its history and bad lines, then
    ``append``'s check of the old bytes (read and parse them all) before it found nothing new to write."""
    history, _ = Ledger(path).scan()
    known = {key_of(r) for r in Ledger(path).scan(path.read_bytes())[0]}
    return {k for k in keys if k in known and k in {key_of(r) for r in history}}


def old_append(path: Path, rows: list[dict[str, object]]) -> None:
    """An append before the index: read and check every line, then rewrite the whole file (old bytes plus the new lines)."""
    old = path.read_bytes()
    known = {key_of(r) for r in Ledger(path).scan(old)[0]}
    lines = b"".join(line_of(r) for r in rows if key_of(r) not in known)
    atomic_write(path, lambda tmp: tmp.write_bytes(old + lines))


def new_daily_noop(path: Path, keys: list[tuple[object, ...]]) -> set[tuple[object, ...]]:
    """The daily job's ledger work on a day already written: its bad lines and its keys from the index (``_daily``); no row
    to append, so no append."""
    ledger = Ledger(path)
    ledger.bad_lines()
    return ledger.present(keys)


def bench_size(workdir: Path, rows: int) -> dict[str, tuple[float, float]]:
    path = workdir / f"ledger-{rows}.jsonl"
    written, _ = measured(lambda: write_ledger(path, rows))  # forked too: this process stays lean, so a child's growth is its own
    size_mb = path.stat().st_size / 1e6
    print(f"\n{rows:,} rows: {size_mb:,.1f} MB ({path.stat().st_size / rows / 1000:.1f} kB a row), written in {written:.1f} s")
    last = day_of(rows - 1)
    month = (dt.date.fromisoformat(last) - dt.timedelta(days=30)).isoformat()
    today = [forecast_row(c, last, rows) for c in COINS]  # the last day's rows: already in the ledger
    tomorrow_day = (dt.date.fromisoformat(last) + dt.timedelta(days=1)).isoformat()
    tomorrow = [forecast_row(c, tomorrow_day, rows + i) for i, c in enumerate(COINS)]
    out = {
        "index built (first opening, once)": measured(lambda: Ledger(path).bad_lines()),
    }
    Ledger(path).bad_lines()  # the child's index is on disk: this opening reads nothing new
    out.update({
        "first page (100 rows), indexed": measured(lambda: Ledger(path).page(limit=100), repeat=5),
        "first page, full scan (before)": measured(lambda: old_route(path, None, None, None)),
        "ETH, last 30 days (31 rows), indexed": measured(lambda: Ledger(path).page("ETH", month, last, limit=100), repeat=5),
        "ETH, last 30 days, full scan (before)": measured(lambda: old_route(path, "ETH", month, last)),
        "daily with nothing new, indexed": measured(lambda: new_daily_noop(path, [key_of(r) for r in today]), repeat=5),
        "daily with nothing new, 2 full scans (before)": measured(lambda: old_daily_noop(path, [key_of(r) for r in today])),
    })
    copy = workdir / f"copy-{rows}.jsonl"  # the old append rewrites its file: a copy, so both append the same day to the same ledger
    shutil.copyfile(path, copy)
    out["append a day (7 rows), in place"] = measured(lambda: Ledger(path).append(tomorrow))
    out["append a day, read + check + rewrite (before)"] = measured(lambda: old_append(copy, tomorrow))
    return out


def main() -> None:
    print(f"ledger bench: {', '.join(f'{n:,}' for n in SIZES)} rows; 7 coins a day; each step in a forked process")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rows in SIZES:
            got = bench_size(Path(tmp), rows)
            results[rows] = got
            pairs = [("first page (100 rows), indexed", "first page, full scan (before)"),
                     ("ETH, last 30 days (31 rows), indexed", "ETH, last 30 days, full scan (before)"),
                     ("daily with nothing new, indexed", "daily with nothing new, 2 full scans (before)"),
                     ("append a day (7 rows), in place", "append a day, read + check + rewrite (before)")]
            table = [["index built (first opening, once)", f"{got['index built (first opening, once)'][0]:.3f}", "",
                      f"{got['index built (first opening, once)'][1]:.1f}", ""]]
            for new, old in pairs:
                (t_new, m_new), (t_old, m_old) = got[new], got[old]
                table.append([new, f"{t_new:.4f}", f"{t_old:.3f}", f"{m_new:.1f}", f"{m_old:,.0f}", f"{t_old / t_new:,.0f}x"])
            print(tabulate(table, headers=["step", "s (after)", "s (before)", "peak MB (after)", "peak MB (before)", "faster"]))
    largest = max(SIZES)
    page_new, page_old = results[largest]["first page (100 rows), indexed"], results[largest]["first page, full scan (before)"]
    noop_new, noop_old = results[largest]["daily with nothing new, indexed"], results[largest]["daily with nothing new, 2 full scans (before)"]
    print(f"\nat {largest:,} rows: a first page {page_new[0] * 1000:.1f} ms and {page_new[1]:.1f} MB vs {page_old[0]:.1f} s and "
          f"{page_old[1]:,.0f} MB by full scan ({page_old[0] / page_new[0]:,.0f}x); a daily run with nothing new {noop_new[0] * 1000:.1f} ms vs "
          f"{noop_old[0]:.1f} s ({noop_old[0] / noop_new[0]:,.0f}x)")


if __name__ == "__main__":
    main()
