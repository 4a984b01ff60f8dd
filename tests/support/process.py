"""Start and stop a real `bentoml serve` process of the service (used by `make bench` and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd

from cascade_radar.config import Settings
from serving.schemas import SignalRow

ROOT = Path(__file__).resolve().parents[2]
SIGNAL_FIELDS = [f for f in SignalRow.model_fields if f != "date"]


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that points another process (`bentoml serve`, the CLI) at ``settings``' stores."""
    return {"CASCADE_RADAR_DATA_DIR": str(settings.data_path.parent), "CASCADE_RADAR_REPORTS_DIR": str(settings.reports_root),
            "CASCADE_RADAR_MLFLOW_TRACKING_URI": settings.tracking_uri, "CASCADE_RADAR_REFERENCE_DIR": str(settings.reference_path)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str], port: int, timeout: float = 120.0, target: str = "serving.service:CascadeRadar",
                 cwd: Path | None = None) -> subprocess.Popen:
    """`bentoml serve <target>` (the service, or a built Bento's tag) on 127.0.0.1:``port``, returned once /readyz answers 200."""
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", target, "--host", "127.0.0.1", "--port", str(port)],
                            cwd=cwd or ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {proc.returncode}: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise RuntimeError(f"bentoml serve was not ready within {timeout:.0f} s")


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """SIGTERM to the serve process (its worker has its own process group), SIGKILL if it lingers."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def signals_payload(panel: pd.DataFrame, day: pd.Timestamp, rows: int) -> dict[str, list[dict[str, object]]]:
    """A /predict_signals body from an assembled panel: the ``rows`` days ending at ``day``."""
    window = panel.loc[day - pd.Timedelta(days=rows - 1) : day].reindex(columns=SIGNAL_FIELDS)
    out = []
    for d, r in window.iterrows():
        row: dict[str, object] = {"date": str(d.date())}
        row.update({f: None if pd.isna(r[f]) else float(r[f]) for f in SIGNAL_FIELDS})
        out.append(row)
    return {"signals": out}
