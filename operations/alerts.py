"""Alerts: when to send (a coin enters the alert state, or its risk jumps), what to send, and delivery by webhook.

Once per episode: a coin already in the alert state on its previous ledger day sends nothing more until it
leaves it; a rise of ``rise_step`` within ``rise_window_days`` sends once, not again while the rise lasts.
Delivery: JSON POST with a timeout, retries with exponential backoff on 5xx and connection errors, none on
4xx; every outcome is returned for the ledger. Webhook URLs are secrets: only their masked form is ever
printed or recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from cascade_radar.config import OperationsConfig
from cascade_radar.rules import UNCERTAIN, side_said, skill_said, term_said, yardstick_said
from features.families import title_of


def mask(url: str) -> str:
    """``https://hooks.slack.com/***`` — scheme and host only: the path of a webhook URL is its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/***"


def trigger(row: dict[str, object], previous: list[dict[str, object]], cfg: OperationsConfig) -> str | None:
    """Why ``row`` should be sent (None: not), given the coin's earlier ledger rows (oldest first)."""
    before = previous[-1] if previous else None
    if row["alert"] and not (before and before["alert"]):
        return "entered the alert state"
    day = str(row["day"])
    recent = [r for r in previous if 0 < (_days(day) - _days(str(r["day"]))) <= cfg.rise_window_days]
    if recent:
        low = min(float(r["p_cascade"]) for r in recent)
        already = any((r.get("trigger") or "").startswith("risk rose") for r in recent)
        if float(row["p_cascade"]) - low >= cfg.rise_step and not already:
            return f"risk rose {float(row['p_cascade']) - low:+.2f} within {cfg.rise_window_days} days"
    return None


def _days(day: str) -> int:
    import datetime as dt

    return dt.date.fromisoformat(day).toordinal()


def payload(row: dict[str, object], reason: str) -> dict[str, object]:
    """The ledger row — the forecast path's answer, same field names — plus Slack- (``text``) and Discord-compatible
    (``content``) text."""
    drivers = ", ".join(f"{title_of(d['family'])} {d['shap']:+.2f}" for d in row.get("top_drivers", [])[:3])  # type: ignore[index]
    side = side_said(row)
    side_text = side if side == UNCERTAIN else f"{side} side"
    said = yardstick_said(float(row["p_cascade"]), int(row["horizon_days"]), row.get("base_rate"), row.get("relative_risk"),  # type: ignore[arg-type]
                          row.get("percentile"))  # type: ignore[arg-type]
    said += f" ({term_said(row.get('p_cascade_by_horizon'), row.get('p_major'))})"  # type: ignore[arg-type]
    text = (f"cascade-radar {row['asset']} {row['day']} ({row['age_days']} day(s) old): {said}; {side_text}"
            f"{' — ALERT' if row['alert'] else ''}{_line(row)} ({reason}; {row['basis']}). Drivers: {drivers}. "
            f"{skill_said(row.get('expected_roc_auc'), row.get('skill_floor'))}.")  # type: ignore[arg-type]
    body = {k: v for k, v in row.items() if k not in ("sent", "checksum")}
    return {**body, "trigger": reason, "text": text, "content": text}


def _line(row: dict[str, object]) -> str:
    """The coin's alert line beside the alert, where the row has it (a ledger row from before the lines has not)."""
    line = row.get("alert_threshold")
    return f" at its line {float(line):.2f}" if line is not None else ""  # type: ignore[arg-type]


def deliver(body: dict[str, object], urls: list[str], cfg: OperationsConfig, sleep: Callable[[float], None] = time.sleep,
            log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """POST ``body`` to every URL; one outcome per URL (masked URL, status, attempts, delivered)."""
    outcomes = []
    for index, url in enumerate(urls, start=1):
        attempts, status, error = 0, None, None
        delay = cfg.backoff_seconds
        while True:
            attempts += 1
            try:
                response = httpx.post(url, json=body, timeout=cfg.timeout_seconds)
                status, error = response.status_code, None
                if status < 500:
                    break  # delivered, or refused (4xx): retrying the same body cannot help
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:  # a malformed URL: retrying cannot help
                status, error = None, exc.__class__.__name__
                break
            except httpx.TransportError as exc:  # connection refused, timeout, DNS: worth another try
                status, error = None, exc.__class__.__name__
            except Exception as exc:  # noqa: BLE001 - a malformed URL and the like: retrying cannot help, the others still go
                status, error = None, exc.__class__.__name__
                break
            if attempts > cfg.retries:
                break
            sleep(delay)
            delay *= 2
        delivered = status is not None and status < 300
        outcome = {"webhook": f"#{index} {mask(url)}", "status": status, "attempts": attempts, "delivered": delivered, "error": error}
        log(f"  alert {body['asset']} {body['day']} -> webhook {outcome['webhook']}: "
            + ("delivered" if delivered else f"NOT delivered ({status or error}, {attempts} attempt(s))"))
        outcomes.append(outcome)
    return outcomes
