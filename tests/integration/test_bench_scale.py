"""`bench/bench_scale.py` (in `make bench`), small: it runs, prints a table per stage and the fitted growth exponents."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from cascade_radar.config import PROJECT_ROOT


def test_the_scale_bench_prints_its_table_with_growth_exponents(tmp_path: Path) -> None:
    """Two and three synthetic coins through the feature build, each in a fresh process (about 10 s: training a pooled
    model, at least a minute even this small, is left to `make bench`)."""
    out = subprocess.run([sys.executable, "bench/bench_scale.py", "--coins", "3,2", "--days", "400", "--stages", "features", "--no-anchor",
                          "--workdir", str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "1. feature build, every coin" in text and "2. pooled training" not in text  # only the stages asked for
    rows = {int(m.group(1)): (int(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"^\s+(\d+)\s+(\d+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+(\d+)\s", text, re.MULTILINE)}
    assert sorted(rows) == [2, 3]  # the Ns in order, whatever order they were given in
    assert rows[2][0] == 2 * 400 and rows[3][0] == 3 * 400  # rows: coins x days
    assert all(seconds > 0 and 100 < peak_mb < 4000 for _, seconds, peak_mb in rows.values())  # a real process's high-water mark
    exponents = re.search(r"growth exponent over N = 2, 3 \(1 = linear in rows\): time (-?[\d.]+), memory (-?[\d.]+)", text)
    assert exponents, text
    # each coin was its own store under the scratch folder, with a name the coin rule accepts
    assert sorted(p.name for p in (tmp_path / "synthetic").iterdir()) == ["c001", "c002", "c003"]


def test_a_stage_over_its_time_limit_is_stopped_and_said(tmp_path: Path) -> None:
    """A stage that runs over ``--timeout`` is stopped and reported as timed out instead of hanging the bench; a larger N
    is then not tried."""
    out = subprocess.run([sys.executable, "bench/bench_scale.py", "--coins", "2,3", "--days", "400", "--stages", "features", "--no-anchor",
                          "--timeout", "0.5", "--workdir", str(tmp_path)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "timed out after 0.5 s" in out.stdout
    assert "skipped: it did not finish at a smaller N" in out.stdout
    assert "growth exponent over N = - " in out.stdout


def test_a_stage_estimated_over_the_limit_is_skipped_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default `make bench` keeps 200 coins in its list and skips, with the estimate, a stage that would run over the
    limit: the estimate needs two smaller Ns (one is mostly fixed cost) and never assumes better than linear growth."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_scale", PROJECT_ROOT / "bench" / "bench_scale.py")
    bench_scale = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_scale", bench_scale)  # its dataclasses look their module up there
    spec.loader.exec_module(bench_scale)
    Bench, Measure = bench_scale.Bench, bench_scale.Measure  # noqa: N806 - the classes under test

    bench = Bench(timeout=900, stages=("train",), workdir=PROJECT_ROOT)
    bench.results["train"] = {"7": Measure(seconds=36.7, rows=7700)}
    assert bench.blocked("train", 55_000) is None  # one point: run it, the time limit bounds it
    bench.results["train"]["50"] = Measure(seconds=314.0, rows=55_000)  # 7 -> 50 coins measured here: exponent 1.09
    why = bench.blocked("train", 220_000)
    assert why is not None and why.startswith("skipped: estimated 14") and "growth exponent 1.09" in why and "900 s limit" in why
    bench.results["train"]["50"] = Measure(seconds=40.0, rows=55_000)  # nearly flat: still estimated as linear at worst
    assert bench.blocked("train", 220_000) is None  # 40 s x 4 = 160 s
    assert bench.blocked("train", 55_000 * 30) == "skipped: estimated 1200 s from the smaller Ns (growth exponent 1.00) exceeds the 900 s limit"
    bench.results["train"]["50"] = Measure("timed out", "timed out after 900 s")
    assert bench.blocked("train", 220_000) == "skipped: it did not finish at a smaller N"
