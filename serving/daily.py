"""Daily operation: today's forecast for every coin, and the job a scheduler runs once a day.

``forecasts`` computes, per coin with a champion, the forecast of one day from the store as it stood then
(history truncated at the day: a replay of a past day reads nothing published after it) with the freshness
of every family. ``daily`` updates the store, forecasts the latest day, appends to the ledger and sends
alerts — idempotent (a second run the same day adds and sends nothing), and one coin's failure (provider,
webhook, missing champion) never loses the others' forecasts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from cascade_radar.config import Settings
from features.build import MarketContext, assemble_panel, feature_frame, is_context_coin, load_market_context
from features.families import family_of
from features.freshness import family_freshness, latest_complete_day
from features.store import HistoryStore
from serving.alerts import deliver, payload, trigger
from serving.ledger import Ledger
from training.explain import IN_SAMPLE, OUT_OF_SAMPLE, champion_explainer, day_explanation


@dataclass
class CoinForecast:
    asset: str
    row: dict[str, object] | None = None  # the ledger row (without checksum)
    sentence: str = ""
    error: str = ""  # why there is no forecast


@dataclass
class DailyReport:
    forecasts: list[CoinForecast]
    appended: list[dict[str, object]] = field(default_factory=list)
    sent: list[dict[str, object]] = field(default_factory=list)
    update_notes: list[str] = field(default_factory=list)


def forecast_coin(settings: Settings, as_of: pd.Timestamp | None, context: MarketContext | None) -> CoinForecast:
    """One coin's forecast for ``as_of`` (default: its latest complete day); ``context``: the context coin's data then."""
    from training.register import load_champion

    asset = settings.asset
    try:
        model, identity = load_champion(settings)
    except LookupError as exc:
        return CoinForecast(asset, error=f"no champion: {exc}")
    raw = HistoryStore(settings.data_path).panel()
    if as_of is not None:
        raw = raw.loc[:as_of]  # the store as it stood that day
    if raw.empty:
        return CoinForecast(asset, error=f"no history in {settings.data_path}" + (f" up to {as_of.date()}" if as_of is not None else ""))
    context = None if is_context_coin(settings) else context
    panel, features, _ = feature_frame(raw, settings, context)
    day = as_of if as_of is not None else latest_complete_day(assemble_panel(raw))
    if day not in features.index:
        return CoinForecast(asset, error=f"no data for {day.date()} (history ends {features.index[-1].date()})")
    explainer = champion_explainer(model, identity, settings, [])
    row = explainer.explain(features.loc[[day]]).iloc[0]
    explanation = day_explanation(row, features.loc[day], settings.labels.horizon_days, settings.alert_threshold, top=5)
    fresh = family_freshness(panel, day, settings.alerts.stale_after_days, context)
    read = set(model.cascade_features) | set(model.direction_features)
    families_read = {family_of(f) for f in read}
    ledger_row = {
        "asset": asset, "day": str(day.date()), "model_version": identity["version"], "model": identity["name"],
        "made_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "horizon_days": settings.labels.horizon_days,
        "p_cascade": explanation["cascade_probability"], "p_long": explanation["long_probability"], "p_short": explanation["short_probability"],
        "side": explanation["direction"], "alert": bool(explanation["alert"]),
        "basis": OUT_OF_SAMPLE if row["basis"] != IN_SAMPLE else IN_SAMPLE,  # in-sample: the champion saw this day's outcome
        "data_through": {f.family: f.data_through for f in fresh},
        "stale": sorted(f.family for f in fresh if f.stale and f.family in families_read),
        "top_drivers": [{"feature": d["feature"], "family": d["family"], "contribution": round(float(d["contribution"]), 4)}
                        for d in explanation["top_drivers"]],
        "missing_families": explanation["missing_families"],
    }
    return CoinForecast(asset, ledger_row, explanation["sentence"])


def forecasts(settings: Settings, as_of: pd.Timestamp | None = None) -> list[CoinForecast]:
    """Every coin's forecast (coins without a champion or history come back with the reason)."""
    try:
        context = load_market_context(settings, until=as_of)  # the store as it stood then
    except Exception:  # noqa: BLE001 - without the context coin the others still forecast, its families missing (never 0)
        context = None
    out = []
    for asset in settings.assets:
        try:
            out.append(forecast_coin(settings.for_asset(asset), as_of, context))
        except Exception as exc:  # noqa: BLE001 - one coin's failure never loses the others'
            out.append(CoinForecast(asset, error=f"{exc.__class__.__name__}: {exc}"))
    return out


def update_stores(settings: Settings, log: Callable[[str], None]) -> list[str]:
    """Fetch new days for every coin from the live providers; offline or failing providers are reported, not fatal."""
    from features.sources.update import build_connectors, run_update

    notes = []
    for asset in settings.assets:
        try:
            outcomes = run_update(HistoryStore(settings.for_asset(asset).data_path), build_connectors(asset))
        except Exception as exc:  # noqa: BLE001
            notes.append(f"{asset}: update failed ({exc.__class__.__name__}: {exc}); going on with what is stored")
            continue
        tried = [o for o in outcomes if not o.skipped.startswith(("needs an API key", f"no {asset} data"))]  # providers that could run
        if tried and all(o.network_down for o in tried):
            notes.append(f"{asset}: offline — no provider reachable; going on with what is stored")
        else:
            new = sum(o.new_rows for o in outcomes)
            notes.append(f"{asset}: +{new} new rows")
    for note in notes:
        log(note)
    return notes


def daily(settings: Settings, as_of: pd.Timestamp | None = None, update: bool | None = None, log: Callable[[str], None] = print,
          sleep: Callable[[float], None] | None = None) -> DailyReport:
    """The once-a-day job: update, forecast every coin, append to the ledger, alert. Run twice, it adds and sends nothing."""
    import time

    report = DailyReport([])
    if update if update is not None else (settings.alerts.update_store and as_of is None):
        report.update_notes = update_stores(settings, log)
    report.forecasts = forecasts(settings, as_of)
    ledger = Ledger(settings.ledger_path)
    history = ledger.read()
    known = {(r["asset"], r["day"], r["model_version"]) for r in history}
    rows = []
    for fc in report.forecasts:
        if fc.row is None:
            log(f"{fc.asset}: no forecast — {fc.error}")
            continue
        row = dict(fc.row)
        if (row["asset"], row["day"], row["model_version"]) in known:
            continue  # already forecast (and alerted) today: nothing twice
        earlier = sorted((r for r in history if r["asset"] == row["asset"] and r["day"] < row["day"]), key=lambda r: r["day"])
        reason = trigger(row, earlier, settings.alerts)
        row["trigger"] = reason
        row["sent"] = []
        if reason and settings.alerts.webhook_urls:
            row["sent"] = deliver(payload(row, reason), settings.alerts.webhook_urls, settings.alerts, sleep or time.sleep, log)
            report.sent.append(row)
        rows.append(row)
    report.appended = ledger.append(rows)
    return report
