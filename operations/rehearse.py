"""`cascade-radar rehearse` (`make rehearse`): the daily job rehearsed end to end against emulated providers.

1. The reference history is read (the path a user's files take) and cut: the store as it stood at the cut date.
2. A champion is trained on that store alone (a model can't have seen the days after it), in the rehearsal's own
   MLflow store.
3. The provider emulator (``operations.emulator``) serves the reference's days from shortly before the cut (an overlap,
   as the updater asks for) as each provider documents them; the real ``daily`` job runs against it: update, forecast,
   ledger, an alert to a loopback webhook; then the days after the cut are replayed into the ledger.
4. Checked against what the reference says directly: every served series extends the store with exactly the
   reference's values, the feature table and every forecast after the cut equal the ones built from the reference,
   a ledger row per answered coin and day, one webhook delivery per alert.
5. Once more with faults (``FAULT_PLAN``): each faulted provider's series stay as they were, the others extend as in
   the clean run, and the summary says what was skipped and why.

It prints a summary per provider and, last, the number of mismatches; the CLI exits non-zero on any.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cascade_radar.config import Settings
from features.build import load_feature_table
from features.schemas import SERIES
from features.sources.reference import import_reference
from features.sources.update import OVERLAP_DAYS
from features.store import HistoryStore
from forecast.predict import CoinForecaster, Unanswerable, load_coins
from operations.daily import daily
from operations.emulator import (
    BINANCE_WINDOW_DAYS,
    PROVIDES,
    RECENT_ONLY,
    Fault,
    ProviderEmulator,
    WebhookReceiver,
    stored_or_stand_in,
    wait_for,
)

CUT_BEFORE_END_DAYS = 60
SERVED_OVERLAP_DAYS = OVERLAP_DAYS + 1  # the days before the cut the updater re-fetches (its overlap, which the splice check compares)
RTOL = 1e-9  # exact up to the floating-point error of a documented unit conversion (percent, 1 / (1 - NUPL), a mean of events)
REHEARSAL_KEYS = {"coinglass": "rehearsal-coinglass-key", "coinalyze": "rehearsal-coinalyze-key"}  # sent to the emulator only
# One documented failure per provider: what a user meets on a bad day.
FAULT_PLAN: dict[str, str] = {
    "coinglass": "429",  # no Retry-After: retried with backoff, then a quota stop for the rest of CoinGlass
    "coinalyze": "429-retry-after",  # Retry-After 120 s: over a minute, a quota stop at once
    "binance-spot": "451",  # a restricted region: refused, not retried
    "binance-usdm-positioning": "-1130",  # an out-of-window startTime
    "binance-usdm-candles": "5xx",  # an outage: retried, then given up
    "binance-usdm-funding": "malformed",  # a page cut off mid-JSON
    "bgeometrics": "429",  # the free tier's hourly quota: not retried
    "coinmetrics": "5xx-once",  # a transient 503: the retry rides it out and the series extends as in the clean run
}
COMPARED = ("p_cascade", "p_long", "p_short", "side", "side_uncertain", "alert", "basis", "hindsight", "model", "model_used", "data_through",
            "missing_families", "stale", "top_drivers", "sentence", "checklist")


@dataclass
class Rehearsal:
    """What a rehearsal found: summary lines and every mismatch (each a line saying what differed)."""

    lines: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def say(self, line: str, log: Callable[[str], None]) -> None:
        self.lines.append(line)
        log(line)

    def differ(self, line: str, log: Callable[[str], None]) -> None:
        self.mismatches.append(line)
        log(f"  MISMATCH {line}")


def default_cut(stores: dict[str, HistoryStore]) -> pd.Timestamp:
    """60 days before the reference's end: the last day of its all-exchange liquidations (which most CoinGlass files share)."""
    ends = [day for day in (s.last_day("liquidations") for s in stores.values()) if day is not None]
    if not ends:
        raise ValueError("the reference history holds no liquidation series to place the cut against: give --cut YYYY-MM-DD")
    return max(ends) - pd.Timedelta(days=CUT_BEFORE_END_DAYS)


def copy_store(source: HistoryStore, target: Path, through: pd.Timestamp | None = None) -> HistoryStore:
    """A copy of ``source`` (every series, or its days through ``through``) in ``target``."""
    store = HistoryStore(target)
    for series in SERIES:
        frame = source.read(series)
        frame = frame.loc[:through] if through is not None else frame
        if len(frame.dropna(how="all")):
            store.append(series, frame.dropna(how="all"), source="+".join(source.sources(series)) or "reference", check_splice=False)
    return store


def served_frames(full: HistoryStore, asset: str, cut: pd.Timestamp, today: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Per series, the reference's days the emulator serves for ``asset``: from a few days before the cut, in the columns a
    provider that covers the coin delivers (a series only a last-30-days provider serves: those days alone; a series the
    reference lacks: its declared stand-in, ``emulator.STAND_INS``)."""
    from features.sources.base import load_connectors

    connectors = load_connectors()
    columns: dict[str, list[str]] = {}
    providers: dict[str, list[str]] = {}
    for name, by_series in PROVIDES.items():
        if asset not in connectors[name].assets:
            continue
        for series, cols in by_series.items():
            providers.setdefault(series, []).append(name)
            columns.setdefault(series, [])
            columns[series] += [c for c in cols if c not in columns[series]]
    out = {}
    for series, cols in columns.items():
        # a series the reference lacks is new to the user's store too: its provider's whole history is fetched the first time
        # (Coinalyze keeps daily history for good), as a user adding a key would; the others from a few days before the cut
        new = full.read(series).dropna(how="all").empty
        frame = stored_or_stand_in(full.read, series).loc[None if new else cut - pd.Timedelta(days=SERVED_OVERLAP_DAYS - 1) :, cols]
        if series == "open_interest":  # a bar has a high and a low; where the reference kept the close alone, a flat bar
            frame = frame.assign(oi_high_usd=frame["oi_high_usd"].fillna(frame["oi_close_usd"]), oi_low_usd=frame["oi_low_usd"].fillna(frame["oi_close_usd"]))
        frame = frame.dropna(how="all")
        if all(p in RECENT_ONLY for p in providers[series]):
            frame = frame.loc[today - pd.Timedelta(days=BINANCE_WINDOW_DAYS) :]
        if len(frame):
            out[series] = frame
    return out


def differing_cells(got: pd.DataFrame, want: pd.DataFrame) -> list[str]:
    """Where two frames differ (days, columns, values beyond ``RTOL``; missing equals missing), a few examples first."""
    out = []
    missing_days, extra_days = want.index.difference(got.index), got.index.difference(want.index)
    if len(missing_days):
        out.append(f"{len(missing_days)} day(s) missing, first {missing_days[0].date()}")
    if len(extra_days):
        out.append(f"{len(extra_days)} day(s) not in the reference, first {extra_days[0].date()}")
    days = got.index.intersection(want.index)
    for column in want.columns:
        if column not in got.columns:
            out.append(f"column {column} missing")
            continue
        if not (pd.api.types.is_numeric_dtype(want[column]) and pd.api.types.is_numeric_dtype(got[column])):  # a label's side
            a, b = got.loc[days, column].astype(object).to_numpy(), want.loc[days, column].astype(object).to_numpy()
            bad = np.array([not (pd.isna(x) and pd.isna(y)) and (pd.isna(x) or pd.isna(y) or x != y) for x, y in zip(a, b, strict=True)], dtype=bool)
        else:
            a, b = got.loc[days, column].astype(float).to_numpy(), want.loc[days, column].astype(float).to_numpy()
            bad = ~((np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=RTOL, atol=0.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            out.append(f"{column}: {int(bad.sum())} value(s) differ, first {days[i].date()} {a[i]!r} vs reference {b[i]!r}")
    return out


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (np.isnan(a) and np.isnan(b)) or bool(np.isclose(a, b, rtol=RTOL, atol=1e-12))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def rehearse(settings: Settings, workspace: Path, cut: pd.Timestamp | None = None, faults: bool = True,
             log: Callable[[str], None] = print, replay_days: int | None = None, tiers: bool = True) -> Rehearsal:
    """Rehearse the daily job for ``settings.assets`` in ``workspace`` (emptied first); see the module docstring.
    ``replay_days``: replay only the first days after the cut (a shorter run for the test suite); ``tiers``: also the free
    tiers (no CoinGlass key, with and without Coinalyze's)."""
    from training.train import train

    result = Rehearsal()
    if workspace.exists():
        shutil.rmtree(workspace)
    assets = list(settings.assets)
    coins = list(dict.fromkeys([*assets, settings.features.context_asset]))
    base = settings.model_copy(update={"reports_dir": workspace / "reports", "mlruns_dir": workspace / "mlruns", "mlflow_tracking_uri": None,
                                       "provider_urls": {}, "packaged_dir": None,
                                       # the gate judges skill, not the data path rehearsed here: any fitted model is the champion
                                       "gate": settings.gate.model_copy(update={"baselines": []})})

    # 1. the reference, read as a user's files are; the store as it stood at the cut
    full = {a: HistoryStore(workspace / "reference" / a.lower()) for a in coins}
    for asset, store in full.items():
        import_reference(store, settings.reference_path, asset)
    cut = pd.Timestamp(cut) if cut is not None else default_cut(full)
    today = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize()
    served = {a: served_frames(full[a], a, cut, today) for a in coins}
    cut_stores = {a: copy_store(full[a], workspace / "cut" / a.lower(), through=cut) for a in coins}
    # what the reference says the store should hold after a clean daily run: the cut store plus the served days
    expected = {a: copy_store(cut_stores[a], workspace / "expected" / a.lower()) for a in coins}
    for asset in coins:
        for series, frame in served[asset].items():
            expected[asset].append(series, frame, source="reference", check_splice=False)
    result.say(f"rehearsal of {', '.join(assets)}: store cut at {cut.date()}; the emulator serves the reference's days from "
               f"{(cut - pd.Timedelta(days=SERVED_OVERLAP_DAYS - 1)).date()}", log)

    # 2. the champion a user would have had: trained on the cut store only
    trained = train(base.model_copy(update={"data_dir": workspace / "cut"}))
    result.say(f"champion trained on the store through {cut.date()}: {', '.join(f'{a} v{v}' for a, v in trained.champions.items() if v)}"
               + (f"; no champion for {', '.join(a for a, v in trained.champions.items() if not v)} (gate)" if not all(trained.champions.values())
                  else ""), log)

    # 3. the clean run
    for asset in coins:
        shutil.copytree(workspace / "cut" / asset.lower(), workspace / "clean" / asset.lower())
    with ProviderEmulator({a: served[a] for a in coins}) as emulator, WebhookReceiver() as hook:
        run = base.model_copy(update={"data_dir": workspace / "clean", "provider_urls": emulator.provider_urls(),
                                      "alerts": base.alerts.model_copy(update={"webhook_urls": [hook.url], "update_store": True})})
        said: list[str] = []
        first = daily(run, log=said.append, keys=REHEARSAL_KEYS)
        reference = base.model_copy(update={"data_dir": workspace / "expected"})
        forecasters = load_coins(reference, assets).forecasters  # the answers the reference gives, with the same champion
        days = sorted({d for f in forecasters.values() for d in f.answerable_days if d > cut})[:replay_days or None]
        replay = daily(run, days=days, update=False, log=said.append, keys=REHEARSAL_KEYS) if days else None
        rows = [*first.appended, *(replay.appended if replay else [])]
        triggered = [r for r in rows if r.get("trigger")]
        wait_for(lambda: len(hook.received) >= len(triggered))
        _check_series(result, log, "clean", emulator, first.update_outcomes, {a: HistoryStore(workspace / "clean" / a.lower()) for a in coins},
                      expected, cut_stores, set())
        _check_forecasts(result, log, run, reference, forecasters, cut, first, replay)
        result.say(f"ledger: {len(rows)} row(s) appended ({len(first.appended)} by the daily run, {len(rows) - len(first.appended)} by the replay of "
                   f"{len(days)} day(s) after the cut)", log)
        delivered = [o for r in triggered for o in r["sent"] if o["delivered"]]
        received = {(b["asset"], b["day"], round(float(b["p_cascade"]), 12)) for b in hook.received}
        sent = {(r["asset"], r["day"], round(float(r["p_cascade"]), 12)) for r in triggered}
        result.say(f"alerts: {len(triggered)} triggered, {len(delivered)} delivered, {len(hook.received)} received by the loopback webhook"
                   + (f" (first: {triggered[0]['asset']} {triggered[0]['day']}, {triggered[0]['trigger']})" if triggered else ""), log)
        if received != sent or len(delivered) != len(triggered):
            result.differ(f"alerts: the webhook received {sorted(received)} but the ledger says {sorted(sent)} were sent", log)
        if not triggered:
            result.differ("alerts: no alert was triggered in the rehearsed days, so delivery was not exercised (choose another --cut)", log)

    # 4. the run with faults
    if faults:
        for asset in coins:
            shutil.copytree(workspace / "cut" / asset.lower(), workspace / "faults" / asset.lower())
        plan = {name: Fault(kind) for name, kind in FAULT_PLAN.items()}
        waits: list[float] = []
        with ProviderEmulator({a: served[a] for a in coins}, faults=plan) as emulator:
            run = base.model_copy(update={"data_dir": workspace / "faults", "provider_urls": emulator.provider_urls(),
                                          "alerts": base.alerts.model_copy(update={"webhook_urls": [], "update_store": True})})
            report = daily(run, log=lambda _: None, keys=REHEARSAL_KEYS, fetch_sleep=waits.append)  # backoff recorded, not slept
            faulted = {name for name, kind in FAULT_PLAN.items() if kind != "5xx-once"}
            result.say(f"with faults ({', '.join(f'{n}: {k}' for n, k in FAULT_PLAN.items())}); the connectors' waits (rate limits, "
                       f"backoff): {sum(waits):.0f} s in {len(waits)}, recorded and not slept", log)
            _check_series(result, log, "faults", emulator, report.update_outcomes, {a: HistoryStore(workspace / "faults" / a.lower()) for a in coins},
                          expected, cut_stores, faulted)
            answered = [fc for fc in report.forecasts if fc.row is not None]
            result.say(f"  the daily job went on: {len(answered)} of {len(report.forecasts)} coin(s) forecast from what was stored", log)
    # 5. the free tiers: no CoinGlass key, with and without a Coinalyze key — every day after the cut still answered
    if tiers:  # the days the paid store answers after the cut (the replayed ones): a free tier must answer them too
        wanted = {a: [d for d in f.answerable_days if d > cut][:replay_days or None] for a, f in forecasters.items()}
        for tier, keys in FREE_TIERS.items():
            _rehearse_tier(result, log, base, workspace, coins, assets, served, wanted, tier, keys)
    result.say(f"mismatches: {len(result.mismatches)}", log)
    return result


# A user without the paid plan: the keys each free tier holds (REHEARSAL_KEYS without CoinGlass's; then without Coinalyze's too)
FREE_TIERS: dict[str, dict[str, str]] = {"free keys (Coinalyze)": {k: v for k, v in REHEARSAL_KEYS.items() if k != "coinglass"},
                                         "no key": {}}


def _rehearse_tier(result: Rehearsal, log: Callable[[str], None], base: Settings, workspace: Path, coins: list[str], assets: list[str],
                   served: dict[str, dict[str, pd.DataFrame]], wanted: dict[str, list[pd.Timestamp]], tier: str, keys: dict[str, str]) -> None:
    """The daily job on the cut store with only ``keys``; each day of ``wanted`` (per coin: the days after the cut the
    paid store answers) must be answered (the skill floor, not a count), and the summary says which provider fed each
    family on the last of them."""
    folder = workspace / f"tier-{tier.split()[0]}-{len(keys)}"
    for asset in coins:
        shutil.copytree(workspace / "cut" / asset.lower(), folder / asset.lower())
    with ProviderEmulator({a: served[a] for a in coins}) as emulator:
        run = base.model_copy(update={"data_dir": folder, "provider_urls": emulator.provider_urls(),
                                      "alerts": base.alerts.model_copy(update={"webhook_urls": [], "update_store": True})})
        report = daily(run, log=lambda _: None, keys=keys, fetch_sleep=lambda _: None)
    fed = {o.series: o.source for found in report.update_outcomes.values() for o in found if not o.skipped and o.new_rows}
    coins_loaded = load_coins(run, assets)
    for asset, forecaster in coins_loaded.forecasters.items():
        days = [d for d in wanted.get(asset, []) if d in forecaster.features.index]
        if not days:
            continue
        last = days[-1]
        answered = [d for d in days if forecaster.refusal(d) is None]
        skills = [forecaster.skill_of(forecaster.features.index.get_loc(d))["expected_roc_auc"] for d in answered]
        result.say(f"tier '{tier}' ({', '.join(keys) or 'no key'}): {asset} {len(answered)} of {len(days)} day(s) after the cut answered "
                   f"({days[0].date()}..{last.date()})" + (f", expected ROC-AUC {min(skills):.3f}..{max(skills):.3f}" if skills else ""), log)
        result.say(f"  {asset} on {last.date()}, each family from: {family_sources(forecaster, last, fed)}", log)
        if len(answered) < len(days):
            refused = [d for d in days if d not in set(answered)]
            result.differ(f"tier '{tier}': {asset} {len(refused)} day(s) after the cut not answered, first {refused[0].date()}: "
                          f"{forecaster.refusal(refused[0])}", log)
    for asset, why in coins_loaded.reasons.items():
        result.differ(f"tier '{tier}': {asset} has no forecaster — {why}", log)


def family_sources(forecaster: CoinForecaster, day: pd.Timestamp, fed: dict[str, str]) -> str:
    """Per family the model reads, the stored columns that supplied its inputs on ``day`` (or their last day within
    ``alerts.stale_after_days`` before it) and the provider that fed each in this run (``fed``: series -> provider), or
    'missing'."""
    from features.build import CHANGE_SOURCE, DERIVED_INPUTS
    from features.families import load_families

    panel = forecaster.panel.loc[:day].tail(forecaster.settings.alerts.stale_after_days + 1)
    registry = load_families()
    parts = []
    missing = set(forecaster.missing_on(day))
    for family in forecaster.read_families:
        if family in missing:
            parts.append(f"{registry[family].title}: missing")
            continue
        used = []
        for name in (*registry[family].inputs, *registry[family].optional_inputs):
            if (name == "price_usd" and family != "price") or name not in panel.columns or panel[name].isna().all():
                continue
            at = panel[name].last_valid_index()
            column = panel.at[at, f"{name}{CHANGE_SOURCE}"] if name in DERIVED_INPUTS and f"{name}{CHANGE_SOURCE}" in panel.columns else name
            series = next((n for n, schema in SERIES.items() if column in schema.columns), None)
            used.append(f"{column} ({fed.get(series, 'stored before the cut') if series else 'derived'})")
        parts.append(f"{registry[family].title}: {', '.join(dict.fromkeys(used)) or 'missing'}")
    return "; ".join(parts)


def _check_series(result: Rehearsal, log: Callable[[str], None], run: str, emulator: ProviderEmulator,
                  outcomes: dict[str, list[object]], got: dict[str, HistoryStore], expected: dict[str, HistoryStore],
                  cut_stores: dict[str, HistoryStore], faulted: set[str]) -> None:
    """Per provider: what it extended (or why not), and every stored series against what it should hold."""
    for error in emulator.errors:
        result.differ(f"{run}: the emulator failed to answer — {error}", log)
    result.say(f"{run} run — per provider (requests to the emulator; per coin and series: new days, or why skipped):", log)
    by_provider: dict[str, list[object]] = {}
    for asset, found in outcomes.items():
        for o in found:
            by_provider.setdefault(o.source, []).append((asset, o))
    for provider, found in sorted(by_provider.items()):
        parts, elsewhere = [], []
        for asset, o in found:
            if o.skipped == f"no {asset} data at this provider":
                elsewhere.append(asset)  # said once per provider, not once per series
                continue
            parts.append(f"{asset} {o.series} " + (f"skipped ({o.skipped[:160]})" if o.skipped else f"+{o.new_rows} new, {o.revised_rows} revised"))
        if elsewhere:
            parts.append(f"does not cover {', '.join(dict.fromkeys(elsewhere))}")
        note = " — keeps the last 30 days only, and the reference's days are older" if provider in RECENT_ONLY and run == "clean" else ""
        result.say(f"  {provider} [{emulator.requests_to(provider)} request(s)]: " + "; ".join(parts) + note, log)
        if provider in faulted and not any(o.skipped for _, o in found):
            result.differ(f"{run}: {provider} was faulted ({FAULT_PLAN[provider]}) but no series says it was skipped", log)
    for asset, store in got.items():
        for series in SERIES:
            sources = [p for p, s in PROVIDES.items() if series in s]
            # a series whose every provider failed must be as it was at the cut; the others as the reference says
            want = cut_stores[asset] if sources and all(p in faulted for p in sources) else expected[asset]
            problems = differing_cells(store.read(series), want.read(series))
            for problem in problems:
                result.differ(f"{run}: {asset} {series} ({'unchanged since the cut' if want is cut_stores[asset] else 'reference'}): {problem}", log)


def _check_forecasts(result: Rehearsal, log: Callable[[str], None], run: Settings, reference: Settings, forecasters: dict[str, CoinForecaster],
                     cut: pd.Timestamp, first: object, replay: object) -> None:
    """The feature table after the cut, and every forecast the job made, against the ones built from the reference."""
    for asset in run.assets:
        got_ft = load_feature_table(HistoryStore(run.for_asset(asset).data_path), run.for_asset(asset))
        want_ft = load_feature_table(HistoryStore(reference.for_asset(asset).data_path), reference.for_asset(asset))
        after = want_ft.table.index[want_ft.table.index > cut]
        problems = differing_cells(got_ft.table.loc[got_ft.table.index > cut], want_ft.table.loc[after])
        result.say(f"feature table {asset}: {len(after)} day(s) after the cut x {want_ft.table.shape[1]} columns, "
                   f"{len(problems)} column(s) differing", log)
        for problem in problems:
            result.differ(f"feature table {asset}: {problem}", log)
    compared = differ = 0
    for report, replayed in ((first, False), (replay, True)):
        if report is None:
            continue
        for fc in report.forecasts:
            if fc.row is None:
                continue
            if fc.asset not in forecasters:
                result.differ(f"forecast {fc.asset} {fc.row['day']}: the job answered, the reference has no forecaster", log)
                continue
            try:
                want = forecasters[fc.asset].forecast(dt.date.fromisoformat(fc.row["day"]))
            except Unanswerable as exc:
                result.differ(f"forecast {fc.asset} {fc.row['day']}: the job answered, the reference refuses ({exc.message})", log)
                continue
            if replayed:
                want["data_through"] = want["day"]
            compared += 1
            wrong = [k for k in COMPARED if not _same(fc.row.get(k), want.get(k))]
            if wrong:
                differ += 1
                k = wrong[0]
                result.differ(f"forecast {fc.asset} {fc.row['day']}: {', '.join(wrong)} differ ({k}: {fc.row.get(k)!r} vs reference {want.get(k)!r})", log)
    result.say(f"forecasts: {compared} compared with the reference's ({', '.join(COMPARED[:6])}, drivers, sentence, ...), {differ} differing", log)
