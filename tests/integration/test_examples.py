"""Every example of the README and the documentation site, run on the reference history: a drifted example fails here.

The examples are extracted as a reader meets them (tests/support/examples.py): each command of a fenced sh/bash/console
block, each command written as a code span in prose, each HTTP example. Each shell command runs against the seven coins
trained as `make train` trains them (the `seven` fixture), in a temporary copy of their store and reports — or is listed
in SKIPPED with the reason. Where the docs show what a command prints (a console block), the output must match: `…`
elides lines (or, inside a line, any text), and what changes on its own — an answer's age in days, a duration, the
registered version — is masked. The HTTP examples are sent as written by test_every_coin.py's
`test_every_documented_api_example_answers_on_the_reference_history` (one service start for both). `pytest -s` prints
the counts.

Numbers the docs quote from a generated file are checked against it: a table preceded by ``<!-- numbers: SOURCE -->``
(SOURCE: the committed `training/selection.json`, or `reports/coins.csv` / `reports/backtest/backtest.csv` as `make train`
and `make backtest` write them on the reference history), and the few prose figures in PROSE.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from cascade_radar.config import PROJECT_ROOT, SELECTION_FILE, Settings
from tests.support.examples import Example, documents, examples, http_examples
from tests.support.process import settings_env

pytestmark = pytest.mark.reference

# Commands the suite does not run, each with the reason; every pattern (a full match of the command as written) must still
# name a documented command, so the list cannot outlive what it excuses.
SKIPPED: dict[str, str] = {
    r"make (setup|browser)": "installs the virtualenv from the lock and Debian's chromium: CI's own first step (.ci/run)",
    r"make test": "the test suite, which this test is part of",
    r"make train": "the `seven` fixture runs it: train(settings), the function behind `make train`, on the reference history",
    r"make evaluate": "a second walk-forward of the seven coins (about a minute), the one the `seven` fixture has just run",
    r"cascade-radar train --asset \w+": "trains one coin again; the pooled training is the `seven` fixture's",
    r"([A-Z_]+=\S+ )*make tune|cascade-radar tune( .*)?": "the nested selection takes minutes (budget 15 min): tests/model/test_pooled.py runs tune() "
                                          "on a small search, tests/unit/test_choice.py checks where its choice goes",
    r"make (serve|ui|docs-serve)( PORT=\d+)?( &)?|bentoml serve( .*)?|mlflow server": "a server that runs until Ctrl-C: the HTTP examples "
        "are sent to the service by test_every_coin.py; test_service.py and test_dashboard.py start a real `bentoml serve`, "
        "test_training_mlflow.py a real `mlflow server`",
    r"(\.venv/bin/)?dask (scheduler|worker)( .*)?": "a Dask scheduler and its workers run until stopped: "
        "tests/model/test_distributed_search.py starts a local cluster and runs the search on it",
    r"make (data|daily)|cascade-radar daily": "fetches from the live providers (internet, keys): test_daily.py runs the daily job, and "
                                              "make rehearse against emulated providers",
    r"make rehearse": "the rehearsal takes minutes: test_rehearse.py runs it",
    r"make docs": "rewrites docs/features.md and docs/glossary.md in the work tree: test_docs.py builds the site strict elsewhere",
    r"make (bench|screenshots)": "benchmarks and screenshots take minutes",
    r"make bento|bentoml containerize( .*)?": "builds a Bento (minutes) or an OCI image (Docker): test_service.py builds a Bento and serves it",
}
# a documented pattern, not a runnable example: "…", "<project>", "[--option]" (test_docs.py checks that its command exists)
PLACEHOLDER = re.compile(r"…|<[^>]*>|\[-")
EXIT = {"make explain": 2, "cascade-radar today --asset BTC": 3}  # otherwise 0 (`make today` says exit 3 in a line: it exits 0)
# what changes on its own between the day the docs were written and today, masked on both sides
VOLATILE = [
    (r"\(\d+ day\(s\) old", "(N day(s) old"),  # an answer's age: days from its day to today
    (r"(\d{4}-\d{2}-\d{2}) +\d+( +STALE)?$", r"\1 N\2"),  # a family's days behind today, in the freshness table
    (r"\bin \d+(?:\.\d+)? s\b", "in … s"),  # how long it took
    (r" v\d+ \(@champion\)", " vN (@champion)"),  # the registered version: a store trained more often counts higher
]
MAKE_RUNS = re.compile(r"\.venv/bin/(cascade-radar(?: [^;&|\n]*)?)")


@dataclass
class Ran:
    """One process run for one or more documented commands."""

    command: str
    code: int
    stdout: str
    stderr: str
    seconds: float


@dataclass
class Examples:
    """What the examples run did: the workspace copy, every run, every documented command and its verdict."""

    settings: Settings
    runs: dict[str, Ran]  # by the command that ran
    covered: dict[str, str]  # a `cascade-radar …` command -> the `make …` command whose run ran it
    skipped: dict[str, str]  # command -> why
    documented: list[Example]


def skip_reason(command: str) -> str | None:
    """Why ``command`` is not run (None: it is)."""
    if PLACEHOLDER.search(command):
        return "a pattern with placeholders, not runnable as written (test_docs.py checks the command exists)"
    return next((why for pattern, why in SKIPPED.items() if re.fullmatch(pattern, command)), None)


def _argv(command: str) -> tuple[list[str], dict[str, str]]:
    """The process to start for a documented command, and the variables it sets (`ASSET=ETH make …`)."""
    words = shlex.split(command)
    assigned = {}
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        key, _, value = words.pop(0).partition("=")
        assigned[key] = value
    if words[0] == "make":  # setup's prerequisites (the venv, chromium, the chart bundle) are CI's first step: -o keeps make from redoing them
        return ["make", "--no-print-directory", "-o", "setup", *words[1:]], assigned
    if words[0] == "cascade-radar":
        return [str(PROJECT_ROOT / ".venv" / "bin" / "cascade-radar"), *words[1:]], assigned
    return words, assigned


def make_runs(command: str) -> list[str]:
    """The `cascade-radar …` commands a `make …` command runs (its recipe, as `make -n` prints it)."""
    argv, assigned = _argv(command)
    recipe = subprocess.run([*argv[:1], "-n", *argv[1:]], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=False,
                            env={**os.environ, **assigned})
    return [" ".join(m.group(1).split()) for m in MAKE_RUNS.finditer(recipe.stdout)]


def run(command: str, env: dict[str, str]) -> Ran:
    """Run a documented command from the project's root, as a reader would, in ``env``."""
    argv, assigned = _argv(command)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, check=False, env={**env, **assigned})
    return Ran(command, done.returncode, done.stdout, done.stderr, time.perf_counter() - started)


def masked(line: str) -> str:
    """A line with what changes on its own (VOLATILE) masked and its spacing (column alignment) collapsed."""
    for pattern, replacement in VOLATILE:
        line = re.sub(pattern, replacement, line)
    return " ".join(line.split())


def _line_matches(documented: str, printed: str) -> bool:
    """Whether a printed line is the documented one, `…` standing for any text."""
    return re.fullmatch(".*?".join(map(re.escape, documented.split("…"))), printed) is not None


def output_differs(documented: tuple[str, ...], printed: str) -> str | None:
    """None when ``printed`` is what the docs show: every run of documented lines between elisions (a line `…`) printed as
    consecutive lines, in order, the first at the start and the last at the end unless elided. Else where it differs."""
    doc = [masked(line) for line in documented]
    out = [masked(line) for line in printed.strip("\n").splitlines()]
    runs, current = [], []
    for line in doc:
        if line == "…":
            runs.append(current)
            current = []
        else:
            current.append(line)
    runs.append(current)
    position = 0
    for i, block in enumerate(runs):
        if not block:
            continue
        starts = [0] if i == 0 else range(position, len(out) - len(block) + 1)
        at = next((j for j in starts if j + len(block) <= len(out) and all(_line_matches(d, o) for d, o in zip(block, out[j:], strict=False))), None)
        if at is None:
            # the documented line that no printed line matches, with the printed line at the same place
            j = starts[0] if starts else position
            for k, d in enumerate(block):
                got = out[j + k] if j + k < len(out) else "(no more output)"
                if not _line_matches(d, got):
                    return f"documented: {d!r}\n    printed:    {got!r}"
            return f"documented lines not printed in order: {block[0]!r} …"
        position = at + len(block)
    if runs[-1] and position != len(out):
        return f"printed after the last documented line: {out[position]!r}"
    return None


@pytest.fixture(scope="module")
def ran(seven: Settings, tmp_path_factory: pytest.TempPathFactory) -> Examples:
    """Every documented command run (or skipped, with why) in a copy of the `seven` store and reports; the MLflow store is
    shared (the commands only add runs to it)."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(Path(seven.data_path).parent, root / "data")
    shutil.copytree(seven.reports_root, root / "reports")
    settings = seven.model_copy(update={"data_dir": root / "data", "reports_dir": root / "reports"})
    env = {**os.environ, **settings_env(settings), "MLFLOW_DISABLE_TELEMETRY": "true", "BENTOML_DO_NOT_TRACK": "true", "MPLBACKEND": "Agg"}
    env.pop("CASCADE_RADAR_ASSET", None)
    documented = examples()
    distinct = list(dict.fromkeys(e.command for e in documented if not e.is_http))
    skipped = {c: why for c in distinct if (why := skip_reason(c)) is not None}
    todo = [c for c in distinct if c not in skipped]
    runs, covered = {}, {}
    for command in sorted(todo, key=lambda c: not c.startswith("make")):  # make first: its run covers the cascade-radar command inside
        if command in covered:
            continue
        runs[command] = run(command, env)
        if command.startswith("make"):
            covered.update({inner: command for inner in make_runs(command) if inner not in covered})
    return Examples(settings, runs, covered, skipped, documented)


def test_every_documented_command_runs_on_the_reference_history(ran: Examples) -> None:
    failed = []
    for command, result in ran.runs.items():
        expected = EXIT.get(command, 0)
        if result.code != expected:
            failed.append(f"`{command}` exited {result.code} (expected {expected}):\n{(result.stderr or result.stdout)[-1500:]}")
    for example in ran.documented:
        if example.output is None or example.command in ran.skipped:
            continue
        result = ran.runs.get(example.command) or ran.runs[ran.covered[example.command]]
        if (why := output_differs(example.output, result.stdout)) is not None:
            failed.append(f"{example.where}: `{example.command}` does not print what the docs show:\n    {why}")
    http = http_examples()
    distinct = {e.command for e in ran.documented}
    run_or_covered = {c for c in distinct if c in ran.runs or c in ran.covered}
    print(f"\n{len(ran.documented)} documented examples ({len(distinct)} distinct): "
          f"{len(run_or_covered)} commands run in {len(ran.runs)} processes ({sum(r.seconds for r in ran.runs.values()):.0f} s), "
          f"{len(http)} HTTP examples (sent by test_every_coin.py), {len(ran.skipped)} skipped:")
    for command, result in ran.runs.items():
        print(f"  ran     {command}  [{result.code}, {result.seconds:.1f} s]")
    for command, why in ran.skipped.items():
        print(f"  skipped {command}: {why}")
    assert not failed, "\n\n".join(failed)
    assert len(ran.runs) >= 15 and len(http) >= 2 and len(ran.skipped) >= 10, "the extractor found too little: its patterns no longer match"
    outputs = [e for e in ran.documented if e.output is not None]
    assert len(outputs) >= 3 and {"make today", "make explain DATE=2025-04-15"} <= {e.command for e in outputs}
    unused = [p for p in SKIPPED if not any(re.fullmatch(p, c) for c in ran.skipped)]
    assert not unused, f"SKIPPED excuses commands no document names any more: {unused}"


def test_every_http_example_is_sent_by_the_every_coin_test() -> None:
    """The fenced HTTP examples are sent as written by the every-coin test's documented requests (one service start)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("every_coin", Path(__file__).with_name("test_every_coin.py"))
    every_coin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(every_coin)
    sent = every_coin.documented_requests()
    assert http_examples() and all(request in sent for request in http_examples())


# ---------------------------------------------------------------- numbers quoted from generated files
MARKER = re.compile(r"^<!-- numbers: (?P<source>[\w./-]+)(?:; rows: (?P<rows>.*?))? -->\n\n?(?P<table>(?:\|.*\n?)+)", re.M)
NUMBER = re.compile(r"[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
CELL = re.compile(r"(?<!\\)\|")


@dataclass
class QuotedTable:
    where: str
    source: str
    rows: list[str] | None
    header: list[str]
    body: list[list[str]]


def quoted_tables() -> list[QuotedTable]:
    """Every table of the README and the docs preceded by a ``<!-- numbers: SOURCE -->`` marker."""
    found = []
    for path in documents():
        for m in MARKER.finditer(path.read_text()):
            lines = [[c.strip() for c in CELL.split(line.strip().strip("|"))] for line in m.group("table").strip().splitlines()]
            rows = [r.strip() for r in m.group("rows").split("|")] if m.group("rows") else None
            found.append(QuotedTable(path.relative_to(PROJECT_ROOT).as_posix(), m.group("source"), rows, lines[0], lines[2:]))
    return found


def _numbers(cell: str) -> list[tuple[float, int]]:
    """The numbers of a cell, each with its decimals."""
    return [(float(n.replace("−", "-").replace(",", "")), len(n.partition(".")[2])) for n in NUMBER.findall(cell.replace("**", ""))]


def _differs(value: float, shown: float, decimals: int) -> bool:
    """Whether ``shown`` (written with ``decimals``) is neither ``value`` rounded nor ``value`` rounded as the report CSVs
    keep it (4 decimals: `make evaluate` prints its nested table from reports/tune/nested_coins.csv, so 0.72348 reads 0.724)."""
    return all(abs(v - shown) > 0.5 * 10 ** -decimals + 1e-9 for v in (value, round(value, 4)))


def check_coin_table(table: QuotedTable, source: pd.DataFrame) -> tuple[int, list[str]]:
    """A per-coin table against ``source`` (rows: coins and pooled, columns: the report's labels). Rows are coins and
    columns labels; or, with the marker's ``rows:``, columns are coins (the header's first word) and the i-th row is
    the i-th label (``a + b``: a cell of two numbers). Returns (numbers checked, what differs)."""
    checked, wrong = 0, []
    cells: list[tuple[str, list[str], str]] = []  # (coin, labels, cell)
    if table.rows is None:
        for row in table.body:
            cells += [(row[0], [label], cell) for label, cell in zip(table.header[1:], row[1:], strict=True)]
    else:
        assert len(table.rows) == len(table.body), f"{table.where}: the marker names {len(table.rows)} rows, the table has {len(table.body)}"
        for labels, row in zip(table.rows, table.body, strict=True):
            cells += [(head.split()[0], labels.split(" + "), cell) for head, cell in zip(table.header[1:], row[1:], strict=True)]
    for coin, labels, cell in cells:
        numbers = _numbers(cell)
        if len(numbers) != len(labels):
            wrong.append(f"{table.where}: {coin} {labels}: {len(numbers)} number(s) in {cell!r}")
            continue
        for label, (shown, decimals) in zip(labels, numbers, strict=True):
            if coin not in source.index or label not in source.columns:
                wrong.append(f"{table.where}: {coin} / {label!r} is not in {table.source}")
                continue
            checked += 1
            value = float(source.loc[coin, label])
            if _differs(value, shown, decimals):
                wrong.append(f"{table.where}: {coin} {label} is {value:.{max(decimals, 3)}f} in {table.source}, the doc says {cell}")
    return checked, wrong


BACKTEST_HEADER = ["coin", "lev", "days cut", "events caught fc / vol / chance", "liquidations fc / on / vol / chance",
                   "final equity: forecast", "always on", "volatility", "chance, median [5–95 %]"]


def check_backtest_table(table: QuotedTable, source: pd.DataFrame) -> tuple[int, list[str]]:
    """docs/backtest.md's table (the long book) rebuilt, cell for cell, from `make backtest`'s backtest.csv."""
    from training.backtest import _g

    assert table.header == BACKTEST_HEADER, f"{table.where}: the backtest table's columns changed: rebuild BACKTEST_HEADER and the row below"
    long = source[source["book"] == "long"].set_index(["asset", "leverage", "rule"])
    checked, wrong = 0, []
    for row in table.body:
        asset, lev = row[0], float(row[1].rstrip("x"))
        fc, on, vol, ch = (long.loc[(asset, lev, rule)] for rule in ("forecast", "always_on", "volatility", "placebo"))
        rebuilt = [asset, f"{lev:g}x", f"{fc.days_cut:.0f} of {fc.days:.0f}",
                   f"{fc.events_caught:.0f} / {vol.events_caught:.0f} / {ch.events_caught:.0f} of {fc.events:.0f}",
                   f"{fc.liquidations:.0f} / {on.liquidations:.0f} / {vol.liquidations:.0f} / {ch.liquidations:.0f}",
                   _g(fc.final_equity), _g(on.final_equity), _g(vol.final_equity),
                   f"{_g(ch.final_equity)} [{_g(ch.final_equity_p5)}–{_g(ch.final_equity_p95)}]"]
        checked += len(rebuilt) - 2
        wrong += [f"{table.where}: {asset} {row[1]} {h}: the doc says {d!r}, backtest.csv gives {r!r}"
                  for h, d, r in zip(BACKTEST_HEADER[2:], row[2:], rebuilt[2:], strict=True) if d != r]
    return checked, wrong


def committed_nested() -> pd.DataFrame:
    """The nested out-of-fold table of the committed choice's `make tune` (training/selection.json)."""
    return pd.DataFrame.from_dict(json.loads(SELECTION_FILE.read_text())["nested_out_of_fold"], orient="index")


# Prose figures and where they come from: (document, pattern whose groups are the figures, the source, the figures as the
# source gives them). Sources: "selection" the committed training/selection.json (a dict), "train" the metric counts of a
# `make train` run on the reference history (headline, every), "backtest" `make backtest`'s backtest.csv (a DataFrame).
PROSE: list[tuple[str, str, str, Callable[[object], tuple[str, ...]]]] = [
    ("docs/model.md", r"`make tune` took\s+(\d+) s", "selection", lambda record: (f"{record['tune_seconds']:.0f}",)),
    ("docs/mlflow.md", r"— ([\d,]+) metrics for the seven coins instead of all ([\d,]+)\)", "train",
     lambda counts: tuple(f"{n:,}" for n in counts)),
    ("README.md", r"\((\d+) against (\d+) pooled\)", "backtest",  # liquidations at 10x long, pooled: the forecast's cut, always on
     lambda table: tuple(f"{table.set_index(['asset', 'book', 'leverage', 'rule']).loc[('pooled', 'long', 10, rule), 'liquidations']:.0f}"
                         for rule in ("forecast", "always_on"))),
]


def check_prose(sources: dict[str, object]) -> tuple[int, list[str]]:
    """The PROSE figures whose source is in ``sources``: (figures checked, what differs)."""
    checked, wrong = 0, []
    for where, pattern, source, expected in PROSE:
        if source not in sources:
            continue
        found = re.search(pattern, (PROJECT_ROOT / where).read_text())
        if found is None:
            wrong.append(f"{where}: no quote matches {pattern!r} any more: update PROSE in {Path(__file__).name}")
            continue
        want = expected(sources[source])
        checked += len(want)
        if tuple(g.replace(",", "") for g in found.groups()) != tuple(w.replace(",", "") for w in want):
            wrong.append(f"{where}: {found.group(0)!r}, but {source} gives {', '.join(want)}")
    return checked, wrong


def test_numbers_quoted_from_the_committed_choice_match_it() -> None:
    """The README's headline table and the docs' nested table against the committed training/selection.json (what
    `cascade-radar tune --commit` wrote), and the tune's duration. Needs no training."""
    nested = committed_nested()
    checked, wrong = 0, []
    tables = [t for t in quoted_tables() if t.source == "training/selection.json"]
    for table in tables:
        n, w = check_coin_table(table, nested)
        checked, wrong = checked + n, wrong + w
    n, w = check_prose({"selection": json.loads(SELECTION_FILE.read_text())})
    print(f"\n{checked + n} numbers quoted from training/selection.json checked ({len(tables)} tables)")
    assert not wrong, "numbers the docs quote that the committed choice does not give:\n" + "\n".join(wrong)
    assert {t.where for t in tables} >= {"README.md", "docs/model.md"} and checked >= 100


def test_numbers_quoted_from_the_reports_match_the_reference_history(ran: Examples) -> None:
    """The docs' tables and figures from `make train`'s and `make backtest`'s reports against those reports, written on the
    reference history by the `seven` fixture (training) and the examples' own `make backtest` run; and the metric counts
    of the MLflow run `make train` made."""
    import mlflow

    reports = ran.settings.reports_root
    assert (reports / "backtest" / "backtest.csv").exists(), "the examples' `make backtest` wrote no backtest.csv"
    sources = {"reports/coins.csv": pd.read_csv(reports / "coins.csv", index_col="asset"),
               "reports/backtest/backtest.csv": pd.read_csv(reports / "backtest" / "backtest.csv")}
    checked, wrong = 0, []
    tables = [t for t in quoted_tables() if t.source in sources]
    for table in tables:
        check = check_backtest_table if table.source.startswith("reports/backtest/") else check_coin_table
        n, w = check(table, sources[table.source])
        checked, wrong = checked + n, wrong + w
    mlflow.set_tracking_uri(ran.settings.tracking_uri)
    train_run = mlflow.search_runs(experiment_names=[ran.settings.experiment_name], filter_string="tags.stage = 'train'",
                                   order_by=["attributes.start_time DESC"], max_results=1, output_format="list")[0]
    every = Path(train_run.info.artifact_uri.removeprefix("file://")) / "evaluation" / "metrics_all.csv"
    n, w = check_prose({"train": (len(train_run.data.metrics), len(pd.read_csv(every))),
                        "backtest": sources["reports/backtest/backtest.csv"]})
    print(f"\n{checked + n} numbers quoted from the reports and the MLflow run checked ({len(tables)} tables)")
    assert not wrong, "numbers the docs quote that the reports do not give:\n" + "\n".join(wrong)
    assert {t.source for t in tables} == set(sources) and checked >= 100
