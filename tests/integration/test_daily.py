"""Daily operation: today, the daily job, the forecast ledger, alerts to a real local webhook receiver, /v1/forecasts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from cascade_radar.config import PROJECT_ROOT, OperationsConfig, Settings
from features.store import HistoryStore
from operations.alerts import mask, trigger
from operations.daily import daily, forecasts
from operations.ledger import Ledger, LedgerError, score
from tests.support.process import settings_env


class Receiver:
    """A webhook receiver on loopback: records every POST, answers with the statuses queued (then 200)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.posts.append({"path": self.path, "body": json.loads(body)})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/s3cr3t-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture()
def receiver():  # noqa: ANN201
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def ops(trained_synthetic, tmp_path: Path, receiver: Receiver) -> Settings:  # noqa: ANN001
    """The synthetic champion's settings with a ledger of this test's own, a low alert threshold and the receiver."""
    settings, _, _ = trained_synthetic
    alerts = OperationsConfig(ledger_file=tmp_path / "ledger.jsonl", update_store=False, webhook_urls=[receiver.url], retries=2,
                              backoff_seconds=0.01)
    # a fixed line (no false-alarm budget) low enough that every day alerts: these tests are about delivery
    return settings.model_copy(update={"alerts": alerts, "alert_threshold": 0.001, "false_alarm_budget_per_30d": None})


def test_today_forecasts_every_coin_with_freshness(ops: Settings) -> None:
    (fc,) = forecasts(ops)
    row = fc.row
    assert row["asset"] == "BTC" and 0 <= row["p_cascade"] <= 1 and row["side"] in ("long", "short")
    fresh = {f["family"]: f for f in row["freshness"]}
    assert set(fresh) >= {"price", "oi", "funding", "flows", "sopr", "nupl"}
    assert fresh["price"]["data_through"] == row["day"] == row["data_through"]  # the last answerable day has its price
    assert fresh["price"]["days_behind"] == row["age_days"]  # days behind are counted from today, like the age
    assert row["sentence"].startswith("Cascade risk within 14 days")


def test_an_alert_is_delivered_once_with_the_documented_payload(ops: Settings, receiver: Receiver, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    day = ft.table.index[-40]
    first = daily(ops, days=[day], sleep=lambda s: None)
    assert len(first.appended) == 1 and len(receiver.posts) == 1
    body = receiver.posts[0]["body"]
    assert {"asset", "day", "model", "p_cascade", "p_long", "p_short", "side", "alert", "basis", "top_drivers", "data_through",
            "age_days", "freshness", "trigger", "text", "content"} <= set(body)
    assert body["trigger"] == "entered the alert state" and body["day"] == str(day.date()) and "BTC" in body["text"]
    again = daily(ops, days=[day], sleep=lambda s: None)  # the same day again: nothing added, nothing sent
    assert again.appended == [] and len(receiver.posts) == 1
    nxt = daily(ops, days=[day + pd.Timedelta(days=1)], sleep=lambda s: None)  # still in the alert state: one episode, one alert
    assert len(nxt.appended) == 1 and len(receiver.posts) == 1 and nxt.appended[0]["trigger"] is None
    rows = Ledger(ops.ledger_path).read()
    assert [r["day"] for r in rows] == [str(day.date()), str((day + pd.Timedelta(days=1)).date())]
    sent = rows[0]["sent"][0]
    assert sent["delivered"] and sent["status"] == 200 and sent["attempts"] == 1
    assert "s3cr3t-token" not in json.dumps(rows) and sent["webhook"] == f"#1 {mask(receiver.url)}"  # the URL is a secret


def test_a_500_is_retried_and_a_400_is_not(ops: Settings, receiver: Receiver, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    sleeps: list[float] = []
    receiver.statuses = [500, 200]
    daily(ops, days=[ft.table.index[-60]], sleep=sleeps.append)
    assert len(receiver.posts) == 2 and sleeps == [0.01]
    refused = ops.model_copy(update={"alerts": ops.alerts.model_copy(update={"ledger_file": ops.alerts.ledger_file.with_name("other.jsonl")})})
    receiver.statuses = [400]
    report = daily(refused, days=[ft.table.index[-60]], sleep=sleeps.append)
    assert len(receiver.posts) == 3 and sleeps == [0.01]  # no retry on 4xx
    outcome = report.appended[0]["sent"][0]
    assert outcome == {**outcome, "status": 400, "attempts": 1, "delivered": False}


def test_a_failing_store_update_still_writes_the_forecast(ops: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import features.sources.update as update

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("provider exploded")

    monkeypatch.setattr(update, "build_connectors", broken)
    notes: list[str] = []
    report = daily(ops, update=True, log=notes.append, sleep=lambda s: None)
    assert any("update failed" in n and "going on with what is stored" in n for n in notes)
    assert len(report.appended) == 1


def test_the_ledger_survives_a_kill_in_the_middle_of_a_write_and_names_corruption(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    script = f"""
import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r})
from pathlib import Path
from operations.ledger import Ledger
ledger = Ledger(Path({str(path)!r}))
i = 0
while True:
    ledger.append([{{"asset": "BTC", "day": f"2024-{{1 + i // 28:02d}}-{{1 + i % 28:02d}}", "model_version": "1", "p_cascade": 0.5,
                    "pad": "x" * 20000}}])
    i += 1
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 20):
        time.sleep(0.05)  # let it write a while (imports are slow on a busy machine)
    os.kill(proc.pid, signal.SIGKILL)  # somewhere in the middle of a write
    proc.wait()
    rows = Ledger(path).read()  # whatever was written completely is intact
    assert len(rows) >= 20  # at least the 20 lines it was given time to write
    Ledger(path).append([{"asset": "ETH", "day": "2024-01-01", "model_version": "1", "p_cascade": 0.1}])
    assert len(Ledger(path).read()) == len(rows) + 1
    assert not list(tmp_path.glob(".*.tmp"))  # the killed writer's temporary file is gone
    lines = path.read_text().splitlines()
    lines[0] = lines[0].replace('"p_cascade": 0.5', '"p_cascade": 0.9')  # someone edits a past forecast
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(LedgerError, match=r"line 1: checksum mismatch"):
        Ledger(path).read()


def test_the_track_record_matches_a_hand_computation() -> None:
    # H = 3; events start 01-05 (long) and 01-12 (short); forecasts scored through 01-16 (day + 3 <= 01-16 -> day <= 01-13)
    days = pd.date_range("2024-01-01", "2024-01-14")
    alert_days = {"2024-01-02": "long", "2024-01-03": "short", "2024-01-08": "long", "2024-01-10": "long"}
    rows = pd.DataFrame({"day": [str(d.date()) for d in days], "alert": [str(d.date()) in alert_days for d in days],
                         "side": [alert_days.get(str(d.date()), "long") for d in days]})
    events = pd.DataFrame({"start": pd.to_datetime(["2024-01-05", "2024-01-12"]), "direction": ["long", "short"]})
    m = score(rows, events, pd.Timestamp("2024-01-16"), horizon=3)
    # 01-14 is unscored (01-17 > 01-16): 13 rows. Alerts 01-02 and 01-03 see 01-05 within 3 days (hits); 01-08 sees none
    # (01-09..11); 01-10 sees 01-12 (hit): precision 3/4. Event 01-05: first alert in [01-02, 01-04] is 01-02, lead 3,
    # side long (right). Event 01-12: first alert in [01-09, 01-11] is 01-10, lead 2, side long (wrong).
    assert m["rows"] == 13 and m["alerts"] == 4 and m["precision"] == 0.75
    assert m["events"] == 2 and m["recall"] == 1.0 and m["median_lead_days"] == 2.5 and m["direction_accuracy"] == 0.5
    assert m["side_uncertain"] == 0
    assert all(type(m[k]) is int for k in ("rows", "alerts", "events", "side_uncertain"))  # counts are counts, not 13.0


def test_a_side_uncertain_alert_is_not_scored_as_a_side() -> None:
    """Where the row said "side uncertain" it stated no side: direction accuracy is over the rows that stated one, and the
    record says how many did not; a rate with nothing to measure is missing, not NaN."""
    days = pd.date_range("2024-01-01", "2024-01-14")
    alert_days = {"2024-01-02": "long", "2024-01-03": "short", "2024-01-08": "long", "2024-01-10": "long"}
    rows = pd.DataFrame({"day": [str(d.date()) for d in days], "alert": [str(d.date()) in alert_days for d in days],
                         "side": [alert_days.get(str(d.date()), "long") for d in days],
                         "side_uncertain": [str(d.date()) == "2024-01-10" for d in days]})  # event 01-12's first alert (long: wrong)
    events = pd.DataFrame({"start": pd.to_datetime(["2024-01-05", "2024-01-12"]), "direction": ["long", "short"]})
    m = score(rows, events, pd.Timestamp("2024-01-16"), horizon=3)
    assert m["events"] == 2 and m["recall"] == 1.0 and m["side_uncertain"] == 1
    assert m["direction_accuracy"] == 1.0  # 01-05's first alert said long, right; 01-12's said "side uncertain": not scored
    only = score(rows.assign(side_uncertain=True), events, pd.Timestamp("2024-01-16"), horizon=3)
    assert only["side_uncertain"] == 2 and only["direction_accuracy"] is None
    empty = score(rows.iloc[0:0], events, pd.Timestamp("2024-01-16"), horizon=3)
    assert empty == {"rows": 0, "alerts": 0, "precision": None, "events": 0, "recall": None, "median_lead_days": None,
                     "side_uncertain": 0, "two_sided": 0, "direction_accuracy": None}


def test_a_two_sided_event_is_counted_apart_never_scored_for_side() -> None:
    """A caught two-sided event had no side: the track record counts it (``two_sided``), not as a right or wrong side."""
    days = pd.date_range("2024-01-01", "2024-01-14")
    alert_days = {"2024-01-02": "long", "2024-01-10": "long"}
    rows = pd.DataFrame({"day": [str(d.date()) for d in days], "alert": [str(d.date()) in alert_days for d in days],
                         "side": [alert_days.get(str(d.date()), "long") for d in days]})
    events = pd.DataFrame({"start": pd.to_datetime(["2024-01-05", "2024-01-12"]), "direction": ["long", "two-sided"]})
    m = score(rows, events, pd.Timestamp("2024-01-16"), horizon=3)
    assert m["events"] == 2 and m["recall"] == 1.0
    assert m["two_sided"] == 1 and m["side_uncertain"] == 0 and type(m["two_sided"]) is int
    assert m["direction_accuracy"] == 1.0  # 01-05: long, right; 01-12 two-sided: not scored (it was 0.5 when called wrong)


def test_the_ledger_command_says_side_uncertain_and_prints_counts_as_counts(ops: Settings, trained_synthetic,  # noqa: ANN001
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`cascade-radar ledger`: a row that said "side uncertain" is printed so (as `today` and `daily` print it) and is not
    scored as a side; counts print as integers, a rate not measured yet as '–'."""
    from cli.main import main

    _, ft, _ = trained_synthetic
    events = ft.labels.events
    starts = pd.to_datetime(events["start"])
    horizon = ops.labels.horizon_days
    # an event with no other starting within the horizon after it, its horizon long judged
    alone = next(s for s, nxt in zip(starts[:-1], starts[1:], strict=True) if (nxt - s).days > horizon + 2 and s < ft.table.index[-60])
    direction = events.loc[starts == alone, "direction"].iloc[0]
    other = "short" if direction == "long" else "long"
    said = [(alone - pd.Timedelta(days=2), other, True), (alone - pd.Timedelta(days=1), direction, False)]  # first alert: uncertain
    Ledger(ops.ledger_path).append([{"asset": "BTC", "day": str(d.date()), "model_version": "1", "p_cascade": 0.9, "alert": True, "side": side,
                                     "side_uncertain": uncertain, "basis": "out-of-fold"} for d, side, uncertain in said])
    env = {**settings_env(ops), "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ops.ledger_path)}
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        capsys.readouterr()
        assert main(["ledger"]) == 0
        out = capsys.readouterr().out
    finally:
        os.environ.clear()
        os.environ.update(saved)
    listed = {line.split()[1]: line for line in out.splitlines() if line.startswith("BTC ") and line.split()[1][:2] == "20"}
    assert "side uncertain" in listed[str(said[0][0].date())] and f" {other} " not in listed[str(said[0][0].date())]
    assert f" {direction} " in listed[str(said[1][0].date())]
    record = next(line.split() for line in out.splitlines() if line.split()[:2] == ["BTC", "out-of-fold"])  # the track record's line
    # asset, basis, rows, alerts, precision, events, recall, median lead, side uncertain, two-sided, direction accuracy
    assert record == ["BTC", "out-of-fold", "2", "2", "1.00", "1", "1.00", "2.0", "1", "0", "–"]


def test_a_rise_within_the_window_alerts_once() -> None:
    cfg = OperationsConfig(rise_step=0.2, rise_window_days=3)
    history = [{"day": "2024-01-01", "p_cascade": 0.10, "alert": False, "trigger": None},
               {"day": "2024-01-02", "p_cascade": 0.15, "alert": False, "trigger": None}]
    row = {"day": "2024-01-03", "p_cascade": 0.35, "alert": False}
    assert trigger(row, history, cfg).startswith("risk rose +0.25")
    history.append({**row, "trigger": "risk rose +0.25 within 3 days"})
    assert trigger({"day": "2024-01-04", "p_cascade": 0.40, "alert": False}, history, cfg) is None  # the same rise: once
    assert trigger({"day": "2024-01-04", "p_cascade": 0.60, "alert": True}, history, cfg) == "entered the alert state"


def test_forecasts_are_served_as_in_the_ledger(ops: Settings, trained_synthetic) -> None:  # noqa: ANN001
    from types import SimpleNamespace

    from serving.service import CascadeRadar

    _, ft, _ = trained_synthetic
    report = daily(ops, days=[ft.table.index[-30]], sleep=lambda s: None)
    # the route's own method on a stand-in service (a second ASGI app in one process would re-register BentoML's metrics)
    fake = SimpleNamespace(coins=SimpleNamespace(settings=ops, states={"BTC": None}))
    route = CascadeRadar.inner.forecasts
    body = json.loads(route(fake, asset="btc", start="2020-01-01", end=None).body)
    assert body["count"] == 1 and body["rows"][0]["p_cascade"] == report.appended[0]["p_cascade"] and "checksum" not in body["rows"][0]
    assert json.loads(route(fake, asset=None, start="2099-01-01", end=None).body)["count"] == 0
    bad = route(fake, asset=None, start="yesterday", end=None)
    assert bad.status_code == 400 and json.loads(bad.body)["field"] == "start"
    assert route(fake, asset="PEPE", start=None, end=None).status_code == 404


def test_a_second_daily_run_reads_no_ledger_row_and_leaves_the_file_as_it_was(ops: Settings, trained_synthetic,  # noqa: ANN001
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Idempotent and cheap: a run with nothing new looks its keys and bad lines up in the ledger's index — no row is read
    or checksummed, the file is not rewritten (same inode, size and time)."""
    import operations.ledger as ledger_module

    _, ft, _ = trained_synthetic
    day = ft.table.index[-35]
    assert len(daily(ops, days=[day], sleep=lambda s: None).appended) == 1
    before = ops.ledger_path.stat()
    checked: list[object] = []
    real = ledger_module.checksum
    monkeypatch.setattr(ledger_module, "checksum", lambda row: checked.append(row.get("day")) or real(row))
    assert daily(ops, days=[day], sleep=lambda s: None).appended == []
    after = ops.ledger_path.stat()
    assert checked == [] and (after.st_ino, after.st_size, after.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def test_the_systemd_unit_and_the_cron_line_run_the_daily_command(ops: Settings) -> None:
    unit = (PROJECT_ROOT / "deploy" / "cascade-radar-daily.service").read_text()
    exec_start = next(line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(".venv/bin/cascade-radar daily")
    assert ".venv/bin/cascade-radar daily" in (PROJECT_ROOT / "deploy" / "crontab").read_text()
    command = exec_start.replace("/opt/cascade-radar", str(PROJECT_ROOT)).split()
    env = {**os.environ, **settings_env(ops), "CASCADE_RADAR_ASSETS": '["BTC"]',
           "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ops.ledger_path), "CASCADE_RADAR_ALERTS__UPDATE_STORE": "false"}
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    # the synthetic history ends long before today: the job writes its row and says, with exit 3, that the answer is old
    assert done.returncode == 3, done.stderr[-2000:]
    assert "1 row(s) appended" in done.stdout and "missing or older than 3 day(s): BTC (exit 3)" in done.stdout
    env["CASCADE_RADAR_ALERTS__MAX_AGE_DAYS"] = "100000"  # a limit the synthetic history meets
    again = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "0 row(s) appended, 0 alert(s) sent" in again.stdout


def test_a_broken_webhook_never_stops_the_others(ops: Settings, receiver: Receiver, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    broken = ops.model_copy(update={"alerts": ops.alerts.model_copy(update={"webhook_urls": ["not a url at all", "http://127.0.0.1:9/down",
                                                                                            receiver.url]})})
    report = daily(broken, days=[ft.table.index[-50]], sleep=lambda s: None)
    outcomes = report.appended[0]["sent"]
    assert [o["delivered"] for o in outcomes] == [False, False, True]
    assert outcomes[0]["attempts"] == 1 and outcomes[1]["attempts"] == 3  # a bad URL once; a refused connection retried
    assert len(receiver.posts) == 1


def _forecaster_with(settings: Settings, stop: dict[str, int]):  # noqa: ANN202
    """The synthetic coin's forecaster with some inputs stopping ``stop[column]`` days before the end of the history."""
    from features.build import DERIVED_INPUTS
    from forecast.predict import CoinForecaster, load_champion

    raw = HistoryStore(settings.data_path).panel()
    for column, days in stop.items():
        for col in [c for c in (column, *DERIVED_INPUTS.get(column, ())) if c in raw.columns]:  # a derived input: every series behind it
            raw.loc[raw.index[-1] - pd.Timedelta(days=days - 1):, col] = float("nan")
    return CoinForecaster.build(settings, load_champion(settings), raw), raw.index[-1]


def test_one_missing_family_is_flagged_and_never_a_driver_two_refuse_the_day_with_the_reason(trained_synthetic) -> None:  # noqa: ANN001
    """The skill floor: a day is answered where the walk-forward's skill without its missing families reaches the floor —
    on this history without open interest it does, without open interest and funding it does not."""
    from forecast.predict import Unanswerable

    settings, _, _ = trained_synthetic
    one, last = _forecaster_with(settings, {"oi_close_usd": 5})  # OI stops 5 days before the end
    skill, floor = one.champion.model.skill["roc_auc"], one.skill_floor
    assert skill["oi"]["BTC"] >= floor > skill["funding+oi"]["BTC"]  # what the champion's walk-forward measured
    answer = one.forecast(last)
    assert answer["expected_roc_auc"] == skill["oi"]["BTC"] and answer["skill_floor"] == floor
    assert answer["day"] == str(last.date()) == answer["data_through"]  # one family missing: still answered ...
    assert answer["missing_families"] == ["oi"] and "oi" in answer["stale"]  # ... and flagged
    assert all(d["family"] != "oi" for d in answer["top_drivers"]) and "No data that day: open interest" in answer["sentence"]
    fresh = {f["family"]: f for f in answer["freshness"]}
    assert fresh["oi"]["data_through"] == str((last - pd.Timedelta(days=5)).date()) and fresh["oi"]["stale"] and fresh["oi"]["read_by_model"]
    assert fresh["oi"]["days_behind"] == answer["age_days"] + 5  # behind today, not behind the answered day

    two, last = _forecaster_with(settings, {"oi_close_usd": 5, "funding_rate_frac8h": 5})  # two families stop: refused after 2 days
    through = last - pd.Timedelta(days=3)  # the inputs stop at last - 5; stale_after_days = 2
    assert two.data_through == through and two.forecast()["day"] == str(through.date())
    with pytest.raises(Unanswerable) as refused:
        two.forecast(last)
    message = refused.value.message
    assert refused.value.status == 404 and message.startswith(f"{last.date()} cannot be answered: 2 of the families the model reads")
    assert "open interest (data through" in message and "funding (data through" in message and "cascade-radar daily" in message
    assert f"without them is {skill['funding+oi']['BTC']:.3f} ROC-AUC, below the floor {floor:.3f}" in message
    assert two.forecast_range(through, last)["refused"] == [{"first": str((through + pd.Timedelta(days=1)).date()), "last": str(last.date()),
                                                              "reason": two.refusal(through + pd.Timedelta(days=1))}]


def test_a_day_is_answered_the_same_from_the_store_as_it_stood_then(trained_synthetic) -> None:  # noqa: ANN001
    """No look-ahead in the one path: answering day t from the whole history equals answering it from the store cut at t."""
    from forecast.predict import CoinForecaster, load_champion

    settings, ft, _ = trained_synthetic
    champion = load_champion(settings)
    raw = HistoryStore(settings.data_path).panel()
    full = CoinForecaster.build(settings, champion, raw)
    for day in (ft.table.index[700], ft.table.index[-30]):
        cut = CoinForecaster.build(settings, champion, raw.loc[:day])
        a, b = full.forecast(day, detail=True), cut.forecast(day, detail=True)
        assert {k: v for k, v in a.items() if k != "data_through"} == {k: v for k, v in b.items() if k != "data_through"}
        assert b["data_through"] == str(day.date())


def _daily_env(ops: Settings, hook: str) -> dict[str, str]:
    return {**os.environ, **settings_env(ops), "CASCADE_RADAR_ASSETS": '["BTC"]', "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ops.ledger_path),
            "CASCADE_RADAR_ALERTS__UPDATE_STORE": "false", "CASCADE_RADAR_ALERT_THRESHOLD": "0.001", "CASCADE_RADAR_FALSE_ALARM_BUDGET_PER_30D": "null",
            "CASCADE_RADAR_ALERTS__WEBHOOK_URLS": json.dumps([hook]), "CASCADE_RADAR_ALERTS__BACKOFF_SECONDS": "0.01"}


def test_a_second_daily_run_while_one_runs_does_nothing_and_says_why(ops: Settings, receiver: Receiver, trained_synthetic) -> None:  # noqa: ANN001
    """The lock: held by a running job, a second `daily` exits 5 naming the holder; nothing appended, nothing sent."""
    from cascade_radar.files import Busy, exclusive

    _, ft, _ = trained_synthetic
    day = str(ft.table.index[-40].date())
    with exclusive(ops.ledger_path.with_name("daily.lock"), "the daily job"):
        with pytest.raises(Busy, match=r"the daily job is already running \(pid \d+ since .* UTC; lock daily.lock\): nothing done"):
            daily(ops, days=[pd.Timestamp(day)], sleep=lambda s: None)
        second = subprocess.run([sys.executable, "-m", "cli", "daily", "--as-of", day], cwd=PROJECT_ROOT, env=_daily_env(ops, receiver.url),
                                capture_output=True, text=True, timeout=300)
    assert second.returncode == 5, second.stdout + second.stderr[-2000:]
    assert "the daily job is already running (pid" in second.stderr and "(exit 5)" in second.stderr
    assert not ops.ledger_path.exists() and receiver.posts == []
    assert len(daily(ops, days=[pd.Timestamp(day)], sleep=lambda s: None).appended) == 1  # released: the next run works


def test_two_daily_runs_started_together_send_every_alert_once(ops: Settings, receiver: Receiver, trained_synthetic) -> None:  # noqa: ANN001
    _, ft, _ = trained_synthetic
    first, last = ft.table.index[-60].date(), ft.table.index[-31].date()
    command = [sys.executable, "-m", "cli", "daily", "--as-of", f"{first}..{last}"]
    runs = [subprocess.Popen(command, cwd=PROJECT_ROOT, env=_daily_env(ops, receiver.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes in ([0, 0], [0, 5]), outs  # the second waited for nothing: it stopped (5), or started after the first finished (0)
    rows = Ledger(ops.ledger_path).read()
    triggered = [(r["asset"], r["day"]) for r in rows if r["trigger"]]
    assert len(rows) == 30 and triggered  # every day once
    assert sorted((p["body"]["asset"], p["body"]["day"]) for p in receiver.posts) == sorted(triggered)  # every alert exactly once


def test_a_kill_between_the_send_and_the_ledger_row_never_sends_twice(ops: Settings, trained_synthetic, tmp_path: Path) -> None:  # noqa: ANN001
    """The outbox: the send is recorded (fsynced) before it starts; the job killed while the webhook holds the request leaves no
    ledger row, and the next run records the row without sending the alert again."""
    _, ft, _ = trained_synthetic
    day = str(ft.table.index[-40].date())
    victim: dict[str, int] = {}
    posts: list[dict] = []

    class Killer(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            posts.append(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
            os.kill(victim["pid"], signal.SIGKILL)  # the job dies before the answer, so before its ledger row
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Killer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hooks/t"
    try:
        run = subprocess.Popen([sys.executable, "-m", "cli", "daily", "--as-of", day], cwd=PROJECT_ROOT, env=_daily_env(ops, hook),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        victim["pid"] = run.pid
        run.communicate(timeout=300)
        assert run.returncode == -signal.SIGKILL and len(posts) == 1
        assert not ops.ledger_path.exists() or Ledger(ops.ledger_path).read() == []  # killed before its row
        outbox = ops.ledger_path.with_name(ops.ledger_path.stem + ".outbox.jsonl").read_text().splitlines()
        assert [json.loads(line)["key"][:2] for line in outbox] == [["BTC", day]]
        again = subprocess.run([sys.executable, "-m", "cli", "daily", "--as-of", day], cwd=PROJECT_ROOT, env=_daily_env(ops, hook),
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr[-2000:]
        assert len(posts) == 1 and "begun by an interrupted run — not sent again" in again.stdout
    finally:
        server.shutdown()
    (row,) = Ledger(ops.ledger_path).read()
    assert row["trigger"] == "entered the alert state" and row["sent"][0]["delivered"] is None
    assert row["sent"][0]["error"].startswith("an interrupted earlier run began sending this alert: not sent twice")


def test_a_corrupt_ledger_line_is_named_quarantined_on_repair_and_the_other_coins_go_on(ops: Settings, trained_synthetic,  # noqa: ANN001
                                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from cli.main import main

    _, ft, _ = trained_synthetic
    days = [ft.table.index[-40], ft.table.index[-39]]
    daily(ops, days=[days[0]], sleep=lambda s: None)
    good = ops.ledger_path.read_text()
    altered_eth = good.replace('"asset": "BTC"', '"asset": "ETH"').replace('"p_cascade": ', '"p_cascade": 1', 1)  # ETH's row, altered
    ops.ledger_path.write_text(good + altered_eth + '{"asset": "BTC", "day": "2020-01-0')  # and a torn last line
    said: list[str] = []
    nxt = daily(ops, days=[days[1]], sleep=lambda s: None, log=said.append)  # BTC's torn line: BTC waits; nothing lost
    assert nxt.appended == [] and any("ledger line 3 (BTC): the last line is incomplete" in s for s in said)
    assert any("ledger line 2 (ETH): checksum mismatch: the row was altered — ETH is skipped" in s for s in said)
    env = {**settings_env(ops), "CASCADE_RADAR_ALERTS__LEDGER_FILE": str(ops.ledger_path)}
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        capsys.readouterr()
        assert main(["ledger", "--check"]) == 6
        out = capsys.readouterr().out.splitlines()
        assert [line.split(": ", 1)[1] for line in out[:2]] == ["checksum mismatch: the row was altered", "the last line is incomplete (a write that was not atomic?)"]
        assert ", line 2 (ETH)" in out[0] and ", line 3 (BTC)" in out[1]
        assert main(["ledger", "--repair"]) == 0
        assert "moved 2 bad line(s) to" in capsys.readouterr().out
        assert main(["ledger", "--check"]) == 0
    finally:
        os.environ.clear()
        os.environ.update(saved)
    quarantined = [json.loads(line) for line in ops.ledger_path.with_name("ledger.quarantine.jsonl").read_text().splitlines()]
    assert [(q["line"], '"asset": "ETH"' in q["raw"]) for q in quarantined] == [(2, True), (3, False)]
    assert quarantined[1]["raw"] == '{"asset": "BTC", "day": "2020-01-0'  # every byte kept
    assert ops.ledger_path.read_text() == good  # the intact row, byte for byte
    assert len(daily(ops, days=[days[1]], sleep=lambda s: None).appended) == 1  # repaired: BTC goes on
