"""`cascade-radar` command line: one subcommand per stage; the Makefile targets call these."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import pandas as pd
from tabulate import tabulate

from cascade_radar.config import Settings, get_settings
from features.store import HistoryStore

Handler = Callable[[argparse.Namespace, Settings], int]


class UserError(Exception):
    """An error a user can act on; printed as one line, no traceback."""


def open_store(settings: Settings) -> HistoryStore:
    return HistoryStore(settings.data_path)


def ensure_history(settings: Settings, store: HistoryStore) -> None:
    """Load the reference history when the store is empty (the offline first run)."""
    if not store.is_empty():
        return
    from features.sources.reference import import_reference

    print(f"store {settings.data_path} is empty: loading the reference history from {settings.reference_path}")
    import_reference(store, settings.reference_path, settings.asset)


def _day(value: pd.Timestamp | None) -> str:
    return "-" if value is None else str(pd.Timestamp(value).date())


# ---------------------------------------------------------------- data
def cmd_data_status(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings)
    rows = []
    for st in store.status():
        gaps = "none" if not st.gaps else f"{len(st.gaps)} ({st.missing_days} days; first {_day(st.gaps[0][0])})"
        rows.append([st.series, ", ".join(s.split("+")[0].replace("reference:", "ref:") + ("+…" if "+" in s else "") for s in st.sources), _day(st.first_day), _day(st.last_day), st.rows, gaps])
    if not rows:
        print(f"{settings.asset}: store {settings.data_path} is empty — run `make data-reference` (offline) or `make data`")
        return 0
    print(f"{settings.asset} history in {settings.data_path}")
    print(tabulate(rows, headers=["series", "source", "first day", "last day", "rows", "gaps"]))
    return 0


def cmd_data_import_reference(args: argparse.Namespace, settings: Settings) -> int:
    from features.sources.reference import import_reference

    store = open_store(settings)
    started = time.perf_counter()
    loads = import_reference(store, settings.reference_path, settings.asset)
    rows = [[ld.series, "\n".join(p.name for p in ld.paths), len(ld.frame), ld.result.new_rows, ld.result.revised_rows, _day(ld.result.last_day)] for ld in loads]
    print(tabulate(rows, headers=["series", "reference files", "rows", "new rows", "revised", "last day"]))
    print(f"{settings.asset}: {sum(len(ld.paths) for ld in loads)} reference files into {len(loads)} series in {time.perf_counter() - started:.1f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade-radar", description="Early warning for crypto liquidation cascades.")
    parser.add_argument("--asset", help="asset to work on (BTC, ETH); default from CASCADE_RADAR_ASSET or BTC")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="local history store").add_subparsers(dest="data_command", required=True)
    data.add_parser("status", help="per series: source, first/last day, rows, gaps").set_defaults(handler=cmd_data_status)
    data.add_parser("import-reference", help="load the reference history (../shared/data)").set_defaults(handler=cmd_data_import_reference)

    for register in _EXTENSIONS:
        register(sub)
    return parser


# Later stages register their subcommands here (one function each, see bottom of file).
_EXTENSIONS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings(asset=args.asset)
        return args.handler(args, settings)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a person reads this: one line, unless --debug
        if args.debug or isinstance(exc, (AssertionError, NameError, AttributeError, TypeError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
