"""Daily operation: the day's forecast for every coin, and the job a scheduler runs once a day.

Every forecast comes from the one forecast path (``forecast.predict``): the ledger row *is* the answer `/predict` and
`cascade-radar today` give for the coin and day (same numbers, same basis), plus when it was made. ``daily`` updates
the store, forecasts the last answerable day (or the days asked: a replay), appends to the ledger and sends alerts —
idempotent (a second run the same day adds and sends nothing), and one coin's failure (provider, webhook, missing
champion) never loses the others' forecasts. A replayed past day carries the basis that answered it: out-of-fold where
the champion saw the day, never hindsight passed off as a forecast.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.files import exclusive
from features.sources.update import SeriesOutcome
from features.store import HistoryStore
from forecast.predict import Coins, Unanswerable, load_coins
from operations.alerts import deliver, payload, trigger
from operations.ledger import Ledger, Outbox, key_of


@dataclass
class CoinForecast:
    asset: str
    row: dict[str, object] | None = None  # the answer of the forecast path (the ledger row, without its bookkeeping)
    error: str = ""  # why there is no forecast


@dataclass
class DailyReport:
    forecasts: list[CoinForecast]
    appended: list[dict[str, object]] = field(default_factory=list)
    sent: list[dict[str, object]] = field(default_factory=list)
    update_notes: list[str] = field(default_factory=list)
    update_outcomes: dict[str, list[SeriesOutcome]] = field(default_factory=dict)  # per coin, per series

    @property
    def outdated(self) -> list[str]:
        """Coins with no forecast, or whose forecast is older than ``alerts.max_age_days``."""
        return sorted({fc.asset for fc in self.forecasts if fc.row is None or fc.row["outdated"]})


def forecasts(settings: Settings, days: list[pd.Timestamp] | None = None, assets: list[str] | None = None,
              coins: Coins | None = None) -> list[CoinForecast]:
    """Every coin's forecast of each of ``days`` (default: its last answerable day), oldest first; a coin without a
    champion or history, or a day it cannot answer, comes back with the reason."""
    coins = coins or load_coins(settings, assets)
    made_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    out = []
    for asset in assets or settings.assets:
        if asset in coins.reasons:
            out.append(CoinForecast(asset, error=coins.reasons[asset]))
            continue
        forecaster = coins.forecasters[asset]
        for day in days or [None]:
            try:
                answer = forecaster.forecast(day)
                if day is not None:  # a replayed day: the store as it stood then held data through that day, no later
                    answer["data_through"] = answer["day"]
                out.append(CoinForecast(asset, {**answer, "made_at": made_at}))
            except Unanswerable as exc:
                out.append(CoinForecast(asset, error=exc.message))
            except Exception as exc:  # noqa: BLE001 - one coin's failure never loses the others'
                out.append(CoinForecast(asset, error=f"{exc.__class__.__name__}: {exc}"))
    return out


def update_stores(settings: Settings, log: Callable[[str], None], sleep: Callable[[float], None] | None = None,
                  keys: dict[str, str] | None = None) -> tuple[list[str], dict[str, list[SeriesOutcome]]]:
    """Fetch new days for every coin from the live providers; offline or failing providers are reported, not fatal.
    Returns a line per coin and, per coin, every series' outcome (what was fetched, skipped and why)."""
    from features.sources.update import build_connectors, run_update

    notes: list[str] = []
    outcomes: dict[str, list[SeriesOutcome]] = {}
    for asset in settings.assets:
        try:
            connectors = build_connectors(asset, base_urls=settings.provider_urls, sleep=sleep, keys=keys)
            outcomes[asset] = run_update(HistoryStore(settings.for_asset(asset).data_path), connectors)
        except Exception as exc:  # noqa: BLE001
            notes.append(f"{asset}: update failed ({exc.__class__.__name__}: {exc}); going on with what is stored")
            continue
        found = outcomes[asset]
        tried = [o for o in found if not o.skipped.startswith(("needs an API key", f"no {asset} data"))]  # providers that could run
        if tried and all(o.network_down for o in tried):
            notes.append(f"{asset}: offline — no provider reachable; going on with what is stored")
            continue
        notes.append(f"{asset}: +{sum(o.new_rows for o in found)} new rows")
        # what could not be refreshed, and why (quota, region, splice refused, a bad page): the day's answer may go stale on it
        notes += [f"{asset}:   {o.source} {o.series} skipped — {o.skipped}" for o in tried if o.skipped and not o.network_down]
    for note in notes:
        log(note)
    return notes, outcomes


def daily(settings: Settings, days: list[pd.Timestamp] | None = None, update: bool | None = None, log: Callable[[str], None] = print,
          sleep: Callable[[float], None] | None = None, assets: list[str] | None = None, fetch_sleep: Callable[[float], None] | None = None,
          keys: dict[str, str] | None = None) -> DailyReport:
    """The once-a-day job: update, forecast every coin, append to the ledger, alert. Run twice, it adds and sends nothing.

    ``days``: replay these past days instead of the last answerable one (oldest first; one pass, the store is not
    updated unless ``update`` says so). ``sleep``: the webhooks' backoff; ``fetch_sleep`` and ``keys``: the connectors' waits and
    API keys (default: real sleeps, keys from the environment)."""
    import time

    # one run at a time: a second copy (cron and a hand run, an overlapping timer) changes nothing — it says so and stops
    with exclusive(settings.ledger_path.with_name("daily.lock"), "the daily job", settings.alerts.lock_wait_seconds, log):
        return _daily(settings, days, update, log, sleep or time.sleep, assets, fetch_sleep, keys)


def _daily(settings: Settings, days: list[pd.Timestamp] | None, update: bool | None, log: Callable[[str], None],
           sleep: Callable[[float], None], assets: list[str] | None, fetch_sleep: Callable[[float], None] | None,
           keys: dict[str, str] | None) -> DailyReport:
    report = DailyReport([])
    ledger = Ledger(settings.ledger_path)
    bad = ledger.bad_lines()  # from the ledger's index: kept where they are, the coins whose rows are intact go on
    damaged = {b.asset for b in bad}
    for b in bad:
        log(f"ledger line {b.line}{f' ({b.asset})' if b.asset else ''}: {b.reason} — "
            + (f"{b.asset} is skipped" if b.asset else "its coin cannot be told; the others go on")
            + "; `cascade-radar ledger --check` lists every bad line, `--repair` quarantines them")
    if update if update is not None else (settings.alerts.update_store and days is None):
        report.update_notes, report.update_outcomes = update_stores(settings, log, fetch_sleep, keys)
    report.forecasts = forecasts(settings, sorted(days) if days else None, assets)
    known = ledger.present([key_of(fc.row) for fc in report.forecasts if fc.row is not None])  # looked up in the index: no row read
    outbox = Outbox(settings.ledger_path.with_name(settings.ledger_path.stem + ".outbox.jsonl"))
    begun = outbox.keys()
    rows: list[dict[str, object]] = []
    for fc in report.forecasts:
        if fc.row is None:
            log(f"{fc.asset}: no forecast — {fc.error}")
            continue
        if fc.asset in damaged:
            fc.row, fc.error = None, "a ledger row of this coin is corrupt: not forecast into it until `cascade-radar ledger --repair`"
            log(f"{fc.asset}: no forecast — {fc.error}")
            continue
        row = dict(fc.row)
        if key_of(row) in known:
            continue  # already forecast (and alerted) that day: nothing twice
        known.add(key_of(row))
        # the coin's past as alerts.trigger reads it — its last row and its rows within the rise window — from the ledger's
        # index, then this run's own rows (written after, so last on a tie), oldest first
        this_run = [r for r in rows if r["asset"] == row["asset"] and r["day"] < row["day"]]
        earlier = sorted([*ledger.recent(str(row["asset"]), str(row["day"]), settings.alerts.rise_window_days), *this_run], key=lambda r: r["day"])
        reason = trigger(row, earlier, settings.alerts)
        row["trigger"] = reason
        row["sent"] = []
        if reason and settings.alerts.webhook_urls:
            if key_of(row) in begun:  # an earlier run began this send and died before its ledger row: never a second send
                row["sent"] = [{"webhook": "all", "status": None, "attempts": 0, "delivered": None,
                                "error": "an interrupted earlier run began sending this alert: not sent twice (see the webhook's channel)"}]
                log(f"  alert {row['asset']} {row['day']}: begun by an interrupted run — not sent again")
            else:
                outbox.record(row, reason)  # before the send, fsynced
                row["sent"] = deliver(payload(row, reason), settings.alerts.webhook_urls, settings.alerts, sleep, log)
                report.sent.append(row)
        rows.append(row)
    report.appended = ledger.append(rows, tolerate_bad=bool(bad))
    return report
