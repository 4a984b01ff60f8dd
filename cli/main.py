"""`cascade-radar` command line: one subcommand per stage; the Makefile targets call these."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from cascade_radar.config import ASSETS, Settings, get_settings
from cascade_radar.rules import AUTO, BASES, BASIS_RULE, side_said, skill_said, term_said, times, yardstick_said
from features.families import family_of, load_families, title_of
from features.store import HistoryStore

# the help names the default list; any ticker configured in CASCADE_RADAR_ASSETS is a coin too
COINS = f"default list {' '.join(ASSETS)}; any other ticker listed in CASCADE_RADAR_ASSETS"


class UserError(Exception):
    """An error a user can act on; printed as one line, no traceback."""


SECRET_SETTING = ("webhook", "token", "key", "secret", "password")


def shown_input(where: str, value: object) -> str:
    """What a settings error may print of the value it refused: nothing of a secret (webhook URLs, tokens, keys — under
    cron or systemd stderr is mail or the journal), and no URL path anywhere (a webhook's path is its secret)."""
    from features.sources.http import redact

    if any(word in where.lower() for word in SECRET_SETTING):
        return "value hidden: a secret"
    text = redact(repr(value))
    # everything after a URL's host (path, query) and any user:password@ before it is masked
    return "got " + re.sub(r"(https?://)(?:[^@/\s'\"]*@)?([^/?#\s'\"@]+)[^\s'\"]*", r"\1\2/***", text)


def _relative(path: Path | None) -> str:
    """A path as a user reads it: relative to the project when inside it (the rule answers follow too)."""
    from cascade_radar.config import project_relative

    return "-" if path is None else project_relative(str(path))


def open_store(settings: Settings) -> HistoryStore:
    return HistoryStore(settings.data_path)


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


# ---------------------------------------------------------------- features & labels
def _parse_day(value: str | None, flag: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return pd.Timestamp(pd.to_datetime(value, format="%Y-%m-%d"))
    except ValueError:
        raise UserError(f"{flag} {value!r}: expected a date YYYY-MM-DD") from None


def build_features(settings: Settings, until: pd.Timestamp | None = None):  # noqa: ANN201 - FeatureTable, imported lazily
    from features.build import load_feature_table, load_history

    return load_feature_table(load_history(settings), settings, until)


def cmd_features_build(args: argparse.Namespace, settings: Settings) -> int:
    from features.build import feature_table_path, write_feature_table

    started = time.perf_counter()
    first_run_import(settings, [settings.asset])
    ft = build_features(settings, _parse_day(args.until, "--until"))
    write_feature_table(ft, settings)
    labelled = ft.table["target"].notna()
    per_family = ft.catalogue.groupby("family", sort=False).size()
    print(f"{settings.asset}: feature table {ft.table.shape[0]} days x {len(ft.features)} features, "
          f"{_day(ft.table.index[0])}..{_day(ft.table.index[-1])}; {int(labelled.sum())} labelled days; "
          f"built in {time.perf_counter() - started:.2f} s")
    print("features per family: " + ", ".join(f"{title_of(k)} {v}" for k, v in per_family.items()))
    print("targets: " + ", ".join(f"{k} {v}" for k, v in ft.table["target"].value_counts().items()))
    print(f"written to {feature_table_path(settings)}")
    return 0


def cmd_features_list(args: argparse.Namespace, settings: Settings) -> int:
    from features.build import feature_catalogue

    catalogue = feature_catalogue(settings.features)
    if args.markdown:
        print("| feature | family | label | unit | meaning |\n|---|---|---|---|---|")
        for row in catalogue.itertuples():
            print(f"| `{row.name}` | {row.family} | {row.label} | {row.unit} | {row.meaning} |")
    else:
        print(tabulate(catalogue.values.tolist(), headers=["feature", "family", "label", "unit", "meaning"]))
    return 0


def cmd_label_study(args: argparse.Namespace, settings: Settings) -> int:
    from features.build import assemble_panel, load_history
    from features.labels import label_study

    panels = {asset: assemble_panel(load_history(settings.for_asset(asset)).panel()) for asset in settings.assets}  # the configured coins
    table = label_study(panels, settings.labels)
    totals = table.groupby(level="asset").sum()
    fmt = "github" if args.markdown else "simple"
    print("Events per year: trailing-median window (days) x multiple; a cascade day has total liquidations >= multiple x the median")
    print(tabulate(table.reset_index().values.tolist(), headers=["asset", "year", *table.columns], tablefmt=fmt))
    print("\nTotals per asset")
    print(tabulate(totals.reset_index().values.tolist(), headers=["asset", *totals.columns], tablefmt=fmt))
    return 0


def cmd_events(args: argparse.Namespace, settings: Settings) -> int:
    if args.study:
        return cmd_label_study(args, settings)
    ft = build_features(settings)
    events = ft.labels.events
    cfg = settings.labels
    print(f"{settings.asset}: {len(events)} cascade events (total liquidations >= {cfg.cascade_multiple:g}x the trailing "
          f"{cfg.trailing_median_days}-day median of the same series); " + ", ".join(f"{k} {v}" for k, v in events["direction"].value_counts().items()))
    rows = [[_day(e.start), e.days, e.direction, e.side_basis, f"{e.long_usd / 1e6:,.0f}", f"{e.short_usd / 1e6:,.0f}", f"{e.long_share:.0%}",
             f"{e.price_move:+.1%}", f"{e.move_sigmas:+.1f}", f"{e.peak_ratio:.1f}x", e.series] for e in events.itertuples()]
    fmt = "github" if args.markdown else "simple"
    print(f"side: >= {cfg.side_share:.0%} of the dollars; else a price move >= {cfg.side_sigmas:g} daily volatilities (fall: long); "
          "else two-sided")
    print(tabulate(rows, headers=["start", "days", "direction", "decided by", "long $M", "short $M", "long share", "log move", "move (σ)",
                                  "size vs median", "series"], tablefmt=fmt))
    return 0


# ---------------------------------------------------------------- training
def first_run_import(settings: Settings, assets: list[str]) -> None:
    """The explicit first-run step of the main job: an empty store gets the reference history (said once per coin)."""
    from features.sources.reference import import_missing_stores

    for line in import_missing_stores(settings, assets).values():
        print(line, flush=True)


def choice_in_force() -> str:
    """Which model choice of `make tune` training follows, in one line: the local one (a tune run here, not committed), the
    committed one, or none (ModelConfig's own defaults). The environment's CASCADE_RADAR_MODEL__* still override it."""
    from cascade_radar.config import LOCAL_SELECTION_FILE, project_relative, selection_file

    path = selection_file()
    if path is None:
        return "model choice: none written by `make tune`; ModelConfig's defaults"
    made = json.loads(path.read_text()).get("made", "?")
    if path == LOCAL_SELECTION_FILE:
        return (f"model choice: {project_relative(str(path))} (local: `make tune` of {made}, not committed; "
                "`cascade-radar tune --commit` commits a choice, deleting this file restores the committed one)")
    return f"model choice: {project_relative(str(path))} (committed, made {made})"


def cmd_train(args: argparse.Namespace, settings: Settings, register: bool = True) -> int:
    from training.report import coin_table, format_table
    from training.train import train

    if args.asset:  # `--asset X` trains and evaluates on that coin alone
        settings = settings.model_copy(update={"assets": [settings.asset]})
    first_run_import(settings, settings.assets)
    coins = ", ".join(settings.assets)
    print(choice_in_force())
    print(f"{coins}: features -> pooled walk-forward over {settings.folds.n_folds} folds -> final fit -> MLflow ...", flush=True)
    from tqdm import tqdm

    stages = 4 + settings.folds.n_folds  # feature tables, each fold, final fit, reports, MLflow
    # on a terminal a bar names the stage; piped (cron, CI, a log) it stays quiet
    with tqdm(total=stages, unit="stage", desc="train" if register else "evaluate", leave=False, disable=not sys.stderr.isatty()) as bar:
        begun: list[str] = []

        def progress(stage: str) -> None:  # a stage begins: the one before it is done
            if begun:
                bar.update()
            begun.append(stage)
            bar.set_description_str(stage)

        result = train(settings, register=register, progress=progress)
    for asset, ft in result.tables.items():
        print(f"{asset}: {len(ft.table)} days, {int(ft.table['target'].notna().sum())} labelled, {len(ft.labels.events)} events")
    print(f"{len(result.model.features)} features ({len(result.model.cascade_features)} cascade, {len(result.model.direction_features)} direction)\n")
    print(format_table(coin_table(result.evaluation)))
    print(f"\n{result.asset} in detail (model vs baselines):")
    print(format_table(result.evaluation.table(result.asset)))
    print(f"\nreports: {result.report}" + (f", every coin: {settings.reports_root / 'coins.md'}" if len(result.tables) > 1 else ""))
    print(f"MLflow run {result.run_id} in {settings.tracking_uri}")
    for asset, verdict in result.verdicts.items():
        name = settings.for_asset(asset).registered_model_name
        version = result.versions.get(asset)
        if verdict.passed:
            print(f"{asset}: passed the gate" + (f" -> {name} v{version} is 'champion'" if register else ""))
        else:
            champion = result.champions.get(asset)
            stays = (f"; champion stays at v{champion}" if champion else "; no champion") if register else ""
            print(f"{asset}: did NOT pass the gate ({'; '.join(verdict.reasons)}){stays}")
    print(f"done in {result.seconds:.1f} s")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    code = cmd_train(args, settings, register=False)
    nested = settings.reports_root / "tune" / "nested_coins.csv"
    if nested.exists():  # the honest numbers: every choice made inside the outer training windows
        from cascade_radar.config import selection_file
        from training.report import format_table

        path = selection_file()
        made = json.loads(path.read_text()).get("made", "?") if path else "?"
        print(f"\nnested walk-forward (the last make tune; the choice in force made {made}; {nested.parent / 'nested.md'}):")
        print(format_table(pd.read_csv(nested, index_col="asset")))
        print("The table above the committed choice's own walk-forward is mildly optimistic (the choice saw every fold); the nested one is not.")
    else:
        print("\nno nested numbers yet: `make tune` computes them")
    return code


def cmd_tune(args: argparse.Namespace, settings: Settings) -> int:
    from training.report import coin_table, format_table
    from training.tune import candidate_count, shown, tune

    if args.asset:
        settings = settings.model_copy(update={"assets": [settings.asset]})
    first_run_import(settings, settings.assets)
    t = settings.tune
    n = candidate_count(settings)
    print(f"{', '.join(settings.assets)}: nested walk-forward — {n} candidates x {t.inner_folds} inner folds in each of "
          f"{settings.folds.n_folds} outer folds, then once on all days ...", flush=True)
    from tqdm import tqdm

    with tqdm(total=candidate_count(settings) * (settings.folds.n_folds + 1), unit="candidate", desc="tune", leave=False,
              disable=not sys.stderr.isatty()) as bar:  # quiet when piped (cron, CI, a log)
        result = tune(settings, write_selection=not args.dry_run, commit=args.commit,
                      progress=lambda name: (bar.set_postfix_str(name[:40]), bar.update()))
    for k, selection in result.per_fold.items():
        print(f"outer fold {k}: chose {selection.chosen.name}")
    print(f"\nnested out-of-fold, per coin:\n{format_table(coin_table(result.evaluation))}")
    if result.written is None:
        print(f"\nchoice over all days: {result.final.chosen.name} (a dry run: written nowhere)")
    elif args.commit:
        print(f"\nchoice over all days: {result.final.chosen.name} -> {shown(result.written)} (the committed choice: commit the file)")
    else:  # the tree stays clean: the choice is local until asked
        print(f"\nchoice over all days: {result.final.chosen.name} -> {shown(result.written)} (local, git-ignored; `make train` "
              "uses it while it exists; `cascade-radar tune --commit` writes training/selection.json instead)")
    print(f"report: {result.files[0]}; MLflow run {result.run_id} (one child run per candidate)")
    print(f"done in {result.seconds:.0f} s")
    return 0


# ---------------------------------------------------------------- daily operation
EXIT_BUSY = 5  # `daily`: another daily run holds the lock; this one did nothing
EXIT_LEDGER_DAMAGED = 6  # `ledger --check`: some line of the ledger is not intact
EXIT_NOT_REFRESHED = 4  # `data update`: a series the champion reads could not be refreshed by any of its providers
EXIT_OUTDATED = 3  # `today` / `daily`: a coin's answer is missing or older than alerts.max_age_days (cron and systemd notice)


def _print_forecast(row: dict) -> None:
    """One coin's answer as a desk reads it: the day and its age first, then the numbers, why, and every family's freshness."""
    age = f"{row['age_days']} day(s) old"
    if row["outdated"]:
        age += " — OUTDATED: update the store (`cascade-radar daily`)"
    print(f"\n{row['asset']} {row['day']} ({age})")
    print(f"  {_yardstick_text(row)}")
    print(f"  {term_said(row.get('p_cascade_by_horizon'), row.get('p_major'))}")
    line = f"alert line {row['alert_threshold']:.2f}" if row.get("alert_threshold") is not None else "alert line: fixed"
    print(f"  {_side_text(row)}{' · ** ALERT **' if row['alert'] else ''} ({line}) · {row['basis']} ({row['model_used']})")
    print(f"  {row['sentence']}")
    print(f"  {skill_said(row.get('expected_roc_auc'), row.get('skill_floor'))}")
    fresh = [[title_of(f["family"]), "yes" if f["read_by_model"] else "", f["data_through"] or "-", "-" if f["days_behind"] is None else f["days_behind"],
              "STALE" if f["stale"] else ""] for f in row["freshness"]]
    print("  " + tabulate(fresh, headers=["family", "model reads", "data through", "days behind today", ""], tablefmt="plain").replace("\n", "\n  "))


def _yardstick_text(row: dict) -> str:
    """'P(cascade within 14 d) 0.46 — base rate 0.41, 1.1× normal, 62nd percentile' (cascade_radar.rules.yardstick_said)."""
    return yardstick_said(row["p_cascade"], row["horizon_days"], row.get("base_rate"), row.get("relative_risk"), row.get("percentile"))


def _normal_text(row: dict) -> str:
    """' (1.1× normal)', or nothing when the champion has no base rate for the coin."""
    return f" ({times(row['relative_risk'])} normal)" if row.get("relative_risk") is not None else ""


def _side_text(row: dict) -> str:
    """'long squeeze 0.33', or 'side uncertain (P(long | cascade) 0.55, prior 0.58)'."""
    if row["side_uncertain"]:
        return f"side uncertain (P(long | cascade) {row['p_long_given_cascade']:.2f}, prior {row['long_prior']:.2f})"
    return f"{row['side']} squeeze {row['p_long'] if row['side'] == 'long' else row['p_short']:.2f}"


def _assets(args: argparse.Namespace, settings: Settings) -> list[str]:
    """`--asset X`: that coin alone; otherwise every configured coin."""
    return [settings.asset] if args.asset else list(settings.assets)


def cmd_today(args: argparse.Namespace, settings: Settings) -> int:
    from operations.daily import DailyReport, forecasts

    started = time.perf_counter()
    results = forecasts(settings, assets=_assets(args, settings))
    bad = DailyReport(results).outdated
    if args.json:  # the answers exactly as the API gives them, for scripts
        print(json.dumps([fc.row if fc.row is not None else {"asset": fc.asset, "error": fc.error} for fc in results], indent=1))
        return EXIT_OUTDATED if bad else 0
    for fc in results:
        if fc.row is None:
            print(f"\n{fc.asset}: no forecast — {fc.error}")
        else:
            _print_forecast(fc.row)
    print(f"\n{sum(fc.row is not None for fc in results)} of {len(results)} coins in {time.perf_counter() - started:.1f} s"
          + (f"; missing or older than {settings.alerts.max_age_days} day(s): {', '.join(bad)} (exit {EXIT_OUTDATED})" if bad else ""))
    return EXIT_OUTDATED if bad else 0


def _parse_days(value: str) -> list[pd.Timestamp]:
    """``DAY`` or ``FIRST..LAST`` (every day of it)."""
    first, _, last = value.partition("..")
    start = _parse_day(first, "--as-of")
    end = _parse_day(last, "--as-of") if last else start
    if end < start:
        raise UserError(f"--as-of {value!r}: the last day is before the first")
    return list(pd.date_range(start, end, freq="D"))


def cmd_daily(args: argparse.Namespace, settings: Settings) -> int:
    from operations.daily import daily

    days = _parse_days(args.as_of) if args.as_of else None
    started = time.perf_counter()
    from cascade_radar.files import Busy

    try:
        report = daily(settings, days=days, update=False if args.no_update else None, assets=_assets(args, settings))
    except Busy as exc:
        print(f"{exc} (exit {EXIT_BUSY})", file=sys.stderr)
        return EXIT_BUSY
    appended = {(r["asset"], r["day"]) for r in report.appended}
    for fc in report.forecasts:
        if fc.row is not None:
            r = fc.row
            side_word = side_said(r)
            print(f"{r['asset']} {r['day']} ({r['age_days']} d old{', OUTDATED' if r['outdated'] and not days else ''}): P {r['p_cascade']:.2f}{_normal_text(r)} "
                  f"{side_word}{' ALERT' if r['alert'] else ''} · {r['basis']}" + ("" if (r["asset"], r["day"]) in appended else " (already in the ledger)"))
    print(f"ledger {settings.ledger_path}: {len(report.appended)} row(s) appended, {len(report.sent)} alert(s) sent "
          f"in {time.perf_counter() - started:.1f} s")
    # a replay is old by design: there only a missing forecast counts
    bad = sorted({fc.asset for fc in report.forecasts if fc.row is None}) if days else report.outdated
    if bad:
        print(f"missing or older than {settings.alerts.max_age_days} day(s): {', '.join(bad)} (exit {EXIT_OUTDATED})")
    return EXIT_OUTDATED if bad else 0


def cmd_ledger(args: argparse.Namespace, settings: Settings) -> int:
    from cascade_radar.files import Busy, exclusive
    from operations.ledger import Ledger
    from operations.track import track_record

    ledger = Ledger(settings.ledger_path)
    if args.check or args.repair:
        rows, bad = ledger.scan()
        for b in bad:
            print(f"{_relative(settings.ledger_path)}, line {b.line}{f' ({b.asset})' if b.asset else ''}: {b.reason}")
        if not bad:
            print(f"{_relative(settings.ledger_path)}: {len(rows)} row(s), every one intact")
            return 0
        if not args.repair:
            print(f"{len(bad)} bad line(s) of {len(rows) + len(bad)}; `cascade-radar ledger --repair` moves them to a quarantine file "
                  f"(exit {EXIT_LEDGER_DAMAGED})")
            return EXIT_LEDGER_DAMAGED
        try:  # not while a daily run writes the ledger
            with exclusive(settings.ledger_path.with_name("daily.lock"), "the daily job"):
                moved, quarantine = ledger.repair()
        except Busy as exc:
            raise UserError(f"{exc}; repair the ledger when it has finished") from None
        print(f"moved {len(moved)} bad line(s) to {_relative(quarantine)} (nothing deleted); the ledger keeps {len(rows)} intact row(s)")
        return 0
    frame = ledger.frame()
    if frame.empty:
        print(f"the ledger {settings.ledger_path} is empty: `cascade-radar daily` writes it")
        return 0
    shown = frame[frame["asset"] == settings.asset] if args.asset else frame
    cols = ["asset", "day", "model_version", "p_cascade", "base_rate", "relative_risk", "side", "alert", "basis", "trigger"]
    said = [side_said(r) for r in shown.to_dict("records")]  # 'side uncertain' where the row said so, as `today` and `daily` do
    shown = shown.reindex(columns=cols).assign(side=said)
    print(tabulate(shown[cols].tail(args.tail).fillna("").values.tolist(), headers=cols, floatfmt=".2f"))
    record = track_record(frame, settings)
    print("\ntrack record (rows whose horizon has passed and whose labels are known; in-sample rows are the champion's hindsight; "
          "direction_accuracy over caught long/short events whose first alert stated a side, side_uncertain the caught events whose "
          "first alert said 'side uncertain', two_sided the caught two-sided events (no side: not scored for side); – not measured yet):")
    table = [[*key, *(_cell(v, 1 if c == "median_lead_days" else 2) for c, v in zip(record.columns, row, strict=True))]
             for key, row in zip(record.index, record.itertuples(index=False), strict=True)]
    print(tabulate(table, headers=["asset", "basis", *record.columns], disable_numparse=True,
                   colalign=("left", "left", *("right",) * len(record.columns))))
    return 0


def _cell(value: object, digits: int = 2) -> str:
    """A track-record cell: a count as an integer, a rate with ``digits`` decimals, a value not measured yet as '–'."""
    if value is None or (pd.api.types.is_float(value) and pd.isna(value)):
        return "–"
    if pd.api.types.is_integer(value):
        return str(int(value))
    return f"{value:.{digits}f}" if pd.api.types.is_float(value) else str(value)


def cmd_package(args: argparse.Namespace, settings: Settings) -> int:
    from serving.package import PACKAGE_DIR, package

    manifest = package(settings)
    if not manifest["assets"]:
        raise UserError("no coin has a champion to package: run `make train` first (" + "; ".join(f"{a}: {r}" for a, r in manifest["skipped"].items()) + ")")
    for asset, identity in manifest["identities"].items():
        print(f"{asset}: {identity['name']} v{identity['version']} packaged")
    for asset, reason in manifest["skipped"].items():
        print(f"{asset}: not packaged — {reason}")
    print(f"-> {PACKAGE_DIR} (champions, their fold models, the history): `bentoml build -f serving/bentofile.yaml .` puts it in the Bento")
    return 0


def cmd_ui(args: argparse.Namespace, settings: Settings) -> int:
    import os

    from training.ui import run_ui

    code = run_ui(settings, args.host, args.port)
    # the UI and its workers are gone; skip the ~3 s of MLflow's interpreter-exit hooks so Ctrl-C feels immediate
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if code in (0, -2, -15) else code)


# ---------------------------------------------------------------- explanations
def _forecaster(settings: Settings):  # noqa: ANN202 - CoinForecaster, imported lazily
    from forecast.predict import load_coins

    coins = load_coins(settings, [settings.asset])
    if settings.asset in coins.reasons:
        raise UserError(f"{settings.asset}: {coins.reasons[settings.asset]}")
    return coins.forecasters[settings.asset]


def cmd_explain(args: argparse.Namespace, settings: Settings) -> int:
    from forecast.predict import Unanswerable, write_explanation

    if not args.date and not args.all:
        raise UserError("give --date YYYY-MM-DD or --all")
    day = _parse_day(args.date, "--date") if args.date else None  # before seconds of loading, not after
    forecaster = _forecaster(settings)
    out_dir = settings.reports_path / "explanations"
    started = time.perf_counter()
    if args.all:
        from tqdm import tqdm

        from forecast.predict import write_all_explanations

        days = forecaster.answerable_days
        with tqdm(total=len(days), unit="day", desc="explain", leave=False) as bar:
            path, table = write_all_explanations(forecaster, out_dir, args.basis, progress=bar.update)
        refused = len(forecaster.features) - len(days)
        print(f"explained {len(days)} answerable days in {time.perf_counter() - started:.1f} s -> {path} and {out_dir / 'days'}/<date>.json")
        print("basis: " + ", ".join(f"{k} {v}" for k, v in table["basis"].value_counts().items()))
        if refused:
            print(f"{refused} day(s) of the history not answered: the families the model reads ({', '.join(title_of(f) for f in forecaster.read_families)}) "
                  f"that they lack leave it less skill than the floor (`cascade-radar explain --date DAY` says which); "
                  f"answerable days: {forecaster.answerable_span()}")
        return 0
    try:
        x = forecaster.forecast(day, args.basis, top=10, detail=True)
    except Unanswerable as exc:
        raise UserError(f"--date {args.date}: {exc.message}") from None
    json_path, png_path = write_explanation(x, out_dir)
    print(f"{x['asset']} {x['day']} ({x['age_days']} day(s) old)")
    print(x["sentence"])
    print(_yardstick_text(x))
    print(f"\nbasis: {x['basis']} — {x['model_used']}")
    if x["missing_families"]:
        print(f"no data that day (scored as missing, not 0, never a driver): {', '.join(title_of(f) for f in x['missing_families'])}")
    print(skill_said(x.get("expected_roc_auc"), x.get("skill_floor")))
    if x["hindsight"]:
        print("note: the model was trained on this day's outcome; this is hindsight, not what it would have said then")
    print(f"pushes in {x['scale']}; the model's average day {x['cascade']['base_value']:+.3f}, this day {x['cascade']['margin']:+.3f}")
    fams = x["cascade"]["shap_by_family"]
    effects = x["cascade"]["probability_effect_by_family"]
    # a missing family has no push (scored as missing, never a cause); a family's push counts its features with a value
    print(tabulate([[title_of(k), "missing (scored as missing)", "–"] if v is None else [title_of(k), f"{v:+.3f}", f"{effects[k]:+.3f}"]
                    for k, v in fams.items()], headers=["family", "push (log-odds)", "P(cascade) without it would fall by"]))
    print()
    print(tabulate([[d["label"], title_of(d["family"]), d["value_text"], f"{d['shap']:+.3f}"]
                    for d in x["top_drivers"]], headers=["top feature (with a value that day)", "family", "value that day", "push (log-odds)"]))
    print("\nthe warning checklist (the warning signs of a build-up, every family, read by the model or not):")
    print(tabulate([[title_of(c["family"]) + ("" if c["read_by_model"] else " (not read)"), c["warning"], "ON" if c["on"] else "off",
                     c["values_text"], c["rule"]] for c in x["checklist"]],
                   headers=["family", "warning sign", "", "values", "rule"]))
    print(f"\nwritten {json_path} and {png_path} in {time.perf_counter() - started:.2f} s")
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from forecast.predict import load_champion
    from training.replay import replay_event, select_events, write_index, write_replay
    from training.report import read_oof
    from training.thresholds import line_of

    ft = build_features(settings)
    oof = read_oof(settings.reports_path)
    champion = load_champion(settings)
    explainer = champion.explainer(settings, AUTO)
    # the replays judge alerts at the coin's line, as its answers do
    settings = settings.model_copy(update={"alert_threshold": line_of(champion.model.yardstick, settings.asset, settings.alert_threshold)[0]})
    events, notes = select_events(ft.labels.events, settings, oof)
    directory = settings.reports_path / "replays"
    replays = []
    from features.build import assemble_panel

    panel = assemble_panel(open_store(settings).panel())  # the reconstruction reads the signals themselves
    for _, event in events.iterrows():
        replay = replay_event(event, oof, ft, explainer, settings, champion.side_skill)
        write_replay(replay, settings, directory, panel, ft)
        replays.append(replay)
    index = write_index(replays, notes, directory)
    rows = [[_day(r.event["start"]), r.event["direction"], f"{r.event['peak_ratio']:.1f}x", _day(r.first_alert), r.lead_days if r.lead_days is not None else "-",
             r.side_at_first_alert or "-", _day(r.earliest_alert), r.covered_days] for r in replays]
    print(tabulate(rows, headers=["event", "direction", "size", "first alert within H", "lead days", "side then", "earliest alert in window",
                                  "days answered by a model that never saw them (out-of-fold)"]))
    for note in notes:
        print(f"not replayed: {note}")
    print(f"reports: {index}")
    return 0


BACKTEST_PRINTED = ["asset", "book", "leverage", "days cut", "events", "caught fc/vol/chance", "liquidations fc/on/vol/chance",
                    "equity forecast", "equity always on", "equity volatility", "equity chance", "chance 5-95%", "ret/risk fc",
                    "ret/risk vol", "beats volatility", "vs chance band"]


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    from training.backtest import POOLED, event_window, format_headline, format_window, headline, run_backtest, verdicts

    if args.asset:  # `--asset X`: that coin alone
        settings = settings.model_copy(update={"assets": [settings.asset]})
    cfg = settings.backtest
    print(f"{', '.join(settings.assets)}: out-of-fold answers -> leverage {', '.join(f'{v:g}x' for v in cfg.leverages)} cut to "
          f"{cfg.cut_leverage:g}x in alert, against always on, volatility and {cfg.placebo_draws} draws of chance ...", flush=True)
    result = run_backtest(settings)
    table = format_headline(headline(result.coins))[BACKTEST_PRINTED]
    print(tabulate(table.values.tolist(), headers=list(table.columns)))
    print("book 'side': the side the forecast names (the crowded side) held; caught: events whose first day was cut; "
          "equity: final, from 1; ret/risk: mean daily return / mean leverage held, annualised")
    for asset, said in verdicts(result.coins).items():
        print(f"{asset}: {said}")
    coin = result.coins.get(settings.asset) or next(c for a, c in result.coins.items() if a != POOLED)
    for day in settings.replay.events:
        window = event_window(coin, pd.Timestamp(day))
        if len(window):
            print(f"\n{coin.asset} around {day} (long; equity rebased to 1 the day before; LIQ: liquidated that day):")
            shown = format_window(window)
            print(tabulate(shown.reset_index().values.tolist(), headers=["day", *shown.columns]))
    for note in result.notes:
        print(f"not backtested: {note}")
    days = "; ".join(f"{a} {c.excluded['traded_days']}" for a, c in result.coins.items() if a != POOLED)
    print(f"\ndays traded (out of fold; in-sample days excluded): {days}")
    print(f"reports: {_relative(result.files[-1].parent)}  MLflow run {result.run_id}")
    return 0


EXIT_REHEARSAL_MISMATCH = 1  # `rehearse`: some value, forecast or alert differed from the reference's


def cmd_rehearse(args: argparse.Namespace, settings: Settings) -> int:
    from features.sources.reference import ReferenceDataError
    from operations.rehearse import rehearse

    if args.replay_days is not None and args.replay_days < 1:
        raise UserError(f"--replay-days {args.replay_days}: expected a number of days >= 1")
    workspace = settings.reports_root / "rehearsal"
    started = time.perf_counter()
    try:
        result = rehearse(settings.model_copy(update={"assets": _assets(args, settings)}), workspace, cut=_parse_day(args.cut, "--cut"),
                          faults=not args.no_faults, replay_days=args.replay_days)
    except ReferenceDataError as exc:
        raise UserError(f"the rehearsal reads the reference history: {exc}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"rehearsal in {workspace} took {time.perf_counter() - started:.0f} s")
    if result.mismatches:
        print(f"(exit {EXIT_REHEARSAL_MISMATCH}: {len(result.mismatches)} mismatch(es) with the reference)")
        return EXIT_REHEARSAL_MISMATCH
    return 0


def cmd_data_update(args: argparse.Namespace, settings: Settings) -> int:
    from features.sources.update import build_connectors, run_update

    store = open_store(settings)
    connectors = build_connectors(settings.asset, args.source or None, base_urls=settings.provider_urls)
    unavailable = {c.name: reason for c in connectors if (reason := c.unavailable())}

    from tqdm import tqdm

    bar = tqdm(total=sum(len(c.plans) for c in connectors), unit="series", desc="update", leave=False)

    def progress(o) -> None:  # noqa: ANN001 - SeriesOutcome
        bar.update()
        if o.network_down or o.source in unavailable:
            return  # said once, below
        state = f"skipped: {o.skipped}" if o.skipped else f"+{o.new_rows} new, {o.revised_rows} revised, through {_day(o.last_day)}"
        bar.write(f"  {o.source:<22} {o.series:<24} {state}")

    with bar:
        outcomes = run_update(store, connectors, progress=progress)
    tried = [o for o in outcomes if o.source not in unavailable]
    if tried and all(o.network_down for o in tried):
        print(f"no network: none of {len({o.source for o in tried})} providers could be reached; the store is unchanged")
        return 1
    for name, reason in unavailable.items():
        print(f"  {name}: skipped — {reason}")
    print()
    print(tabulate([[o.series, o.source, o.new_rows, _day(o.last_day), o.skipped or "-"] for o in outcomes],
                   headers=["series", "source", "new rows", "last day", "skipped (why)"]))
    from features.sources.update import not_refreshed, series_read_by
    from forecast.predict import load_champion

    try:  # the families the champion reads; without one, every family counts
        model = load_champion(settings).model
        families = sorted({family_of(f) for f in [*model.cascade_features, *model.direction_features]})
    except Exception:  # noqa: BLE001 - no champion yet: judge every series
        families = list(load_families())
    missed = not_refreshed(outcomes, series_read_by(families))
    if missed:
        for series, reasons in missed.items():
            print(f"NOT refreshed, and the model reads it: {series} — {'; '.join(reasons)}")
        print(f"(exit {EXIT_NOT_REFRESHED}: forecasts will go stale on these families)")
        return EXIT_NOT_REFRESHED
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascade-radar", description="Early warning for crypto liquidation cascades.")
    parser.add_argument("--asset", help=f"coin to work on ({COINS}); default from CASCADE_RADAR_ASSET or BTC; "
                        "for train / tune / evaluate: that coin alone instead of the pool")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    data = sub.add_parser("data", help="local history store").add_subparsers(dest="data_command", required=True)
    data.add_parser("status", help="per series: source, first/last day, rows, gaps").set_defaults(handler=cmd_data_status)
    data.add_parser("import-reference", help="load the reference history (../shared/data)").set_defaults(handler=cmd_data_import_reference)
    from features.sources.base import load_connectors

    providers = load_connectors()
    keys = "; ".join(f"{name}: {cls.key_env} ({'required' if cls.key_required else 'optional'})" for name, cls in providers.items() if cls.key_env)
    upd = data.add_parser("update", help="fetch new days from the live providers (incremental, atomic per series)",
                          epilog=f"API keys are read from the environment — {keys}. Exit 1: no provider reachable; exit "
                          f"{EXIT_NOT_REFRESHED}: a series the champion reads was refreshed by none of its providers (each one's reason printed)")
    upd.add_argument("--source", action="append", choices=list(providers), metavar="NAME",
                     help=f"only this provider (repeatable): {', '.join(providers)}")
    upd.set_defaults(handler=cmd_data_update)

    feats = sub.add_parser("features", help="feature table").add_subparsers(dest="features_command", required=True)
    fb = feats.add_parser("build", help="build the feature table (features + labels) and write it under the data dir")
    fb.add_argument("--until", help="build on history up to this day only (YYYY-MM-DD)")
    fb.set_defaults(handler=cmd_features_build)
    fl = feats.add_parser("list", help="catalogue of features: name, family, label, unit, meaning")
    fl.add_argument("--markdown", action="store_true")
    fl.set_defaults(handler=cmd_features_list)
    ev = sub.add_parser("events", help="list the labelled cascade events")
    ev.add_argument("--markdown", action="store_true")
    ev.add_argument("--study", action="store_true", help="label study: events per coin and year for 90/180/365-day medians x 4/6/8")
    ev.set_defaults(handler=cmd_events)

    sub.add_parser("train", help="walk-forward evaluation, final fit, MLflow run, registration and champion gate").set_defaults(handler=cmd_train)
    tu = sub.add_parser("tune", help="nested walk-forward selection of families, hyper-parameters and direction inputs (writes the "
                        "choice to data/selection.local.json, git-ignored, which training prefers while it exists)")
    choice = tu.add_mutually_exclusive_group()
    choice.add_argument("--commit", action="store_true", help="write the committed training/selection.json instead (and remove "
                        "the local choice, which would shadow it)")
    choice.add_argument("--dry-run", action="store_true", help="report and log, but write no choice")
    tu.set_defaults(handler=cmd_tune)
    sub.add_parser("evaluate", help="walk-forward evaluation: model vs baselines table and report (no registration)").set_defaults(handler=cmd_evaluate)
    exit_note = (f"exit {EXIT_OUTDATED} when a coin has no answer or its answer is older than alerts.max_age_days "
                 "(CASCADE_RADAR_ALERTS__MAX_AGE_DAYS) days before today (UTC), so cron and systemd notice")
    td = sub.add_parser("today", help="today's risk for every coin (--asset X: that coin alone): the day and its age, P(cascade), side, alert, "
                   "drivers, freshness of every family", epilog=exit_note)
    td.add_argument("--json", action="store_true", help="print the answers as JSON, field for field as /predict gives them")
    td.set_defaults(handler=cmd_today)
    dly = sub.add_parser("daily", help="the daily job: update the store, forecast every coin, append to the ledger, send alerts",
                         epilog=exit_note + f"; with --as-of only a missing answer counts. Exit {EXIT_BUSY} when another daily run holds the lock "
                         "(it did nothing; alerts.lock_wait_seconds makes it wait instead)")
    dly.add_argument("--as-of", help="replay past days instead: YYYY-MM-DD, or FIRST..LAST for every day of a range (one pass); each day "
                     "is answered as the forecast path answers it (basis 'auto': out-of-fold where the champion saw the day)")
    dly.add_argument("--no-update", action="store_true", help="skip fetching from the live providers")
    dly.set_defaults(handler=cmd_daily)
    reh = sub.add_parser("rehearse", help="rehearse the daily job end to end against emulated providers (loopback only): the store cut "
                         "at a past day, the providers serving the reference's later days, every value, forecast, ledger row and "
                         "alert checked against the reference; then once more with faults",
                         epilog=f"exit {EXIT_REHEARSAL_MISMATCH} on any mismatch; the workspace is reports/rehearsal/ (emptied first)")
    reh.add_argument("--cut", help="the day the store is cut at, YYYY-MM-DD (default: 60 days before the reference's liquidations end)")
    reh.add_argument("--no-faults", action="store_true", help="skip the second run with faults injected")
    reh.add_argument("--replay-days", type=int, help="replay only this many days after the cut (default: every answerable day)")
    reh.set_defaults(handler=cmd_rehearse)
    led = sub.add_parser("ledger", help="print the forecast ledger and score its rows whose horizon has passed")
    led.add_argument("--tail", type=int, default=20, help="rows shown (the track record uses all)")
    led.add_argument("--check", action="store_true", help=f"name every bad line (not JSON, altered, incomplete); exit {EXIT_LEDGER_DAMAGED} if any")
    led.add_argument("--repair", action="store_true", help="move the bad lines to <ledger>.quarantine.jsonl beside it (nothing "
                     "deleted) and keep the intact rows")
    led.set_defaults(handler=cmd_ledger)
    sub.add_parser("package", help="export each coin's champion and history into serving/packaged/ for `make bento`").set_defaults(handler=cmd_package)
    ui = sub.add_parser("ui", help="MLflow UI on the project's store (Ctrl-C stops it and its workers)")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=cmd_ui)

    ex = sub.add_parser("explain", help="SHAP explanation of a day (--date) or of every day (--all)")
    ex.add_argument("--date", help="day to explain, YYYY-MM-DD")
    ex.add_argument("--all", action="store_true", help="explain every day of the feature table")
    ex.add_argument("--basis", choices=list(BASES), default=AUTO, help=BASIS_RULE)
    ex.set_defaults(handler=cmd_explain)

    sub.add_parser("replay", help="replay configured and largest past events from out-of-fold predictions").set_defaults(handler=cmd_replay)
    sub.add_parser("backtest", help="what the forecast is worth in money: a leveraged position cut while in alert, out of fold, against "
                   "always on, the volatility rule and chance (reports/backtest/, an MLflow run)").set_defaults(handler=cmd_backtest)

    _asset_option_everywhere(parser)
    return parser


def _asset_option_everywhere(parser: argparse.ArgumentParser) -> None:
    """Accept --asset after any subcommand too (`cascade-radar features build --asset ETH`)."""
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no public walk of subparsers
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for child in action.choices.values():
                if not any(isinstance(a, argparse._SubParsersAction) for a in child._actions):  # noqa: SLF001
                    child.add_argument("--asset", default=argparse.SUPPRESS, help=f"coin ({COINS})")
                _asset_option_everywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = get_settings(asset=args.asset)
        return args.handler(args, settings)
    except BrokenPipeError:  # output piped into `head`: not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a person reads this: one line, unless --debug
        if isinstance(exc, UserError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from pydantic import ValidationError

        if isinstance(exc, ValidationError):  # settings from the environment or --asset
            for err in exc.errors(include_url=False):
                where = ".".join(str(p) for p in err["loc"])
                print(f"error: setting '{where}': {err['msg']} ({shown_input(where, err.get('input'))}; environment prefix CASCADE_RADAR_)",
                      file=sys.stderr)
            return 2
        if args.debug or isinstance(exc, (AssertionError, NameError, AttributeError, TypeError)):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
