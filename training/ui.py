"""Run the MLflow UI on the project's store and stop it cleanly, workers included."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from cascade_radar.config import Settings
from training.register import setup_tracking


def pid_file(settings: Settings) -> Path:
    return Path(settings.artifact_location).parent / "ui.pid"


def run_ui(settings: Settings, host: str, port: int) -> int:
    """Start ``mlflow ui`` in its own process group and wait; SIGINT/SIGTERM stop the whole group.

    MLflow's job-executor workers outlive a kill of the server process alone, so job execution is
    disabled and the group, not the process, is signalled.
    """
    from training.register import tracking_store_path

    store = tracking_store_path(settings)
    if store is not None and not store.exists():
        print(f"note: no tracking store at {store} yet — the UI starts on an empty one; `make train` fills it")
    experiment_id = setup_tracking(settings)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
           "--default-artifact-root", Path(settings.artifact_location).as_uri(), "--host", host, "--port", str(port), "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    pid_file(settings).write_text(str(proc.pid))
    print(f"MLflow UI on http://{host}:{port} (store {settings.tracking_uri}); Ctrl-C or `make ui-stop` to stop")
    # MLflow 3.17 picks an experiment's view from the UI's own workflow switch (GenAI unless a browser chose "Model
    # training"), not from the experiment's mlflow.experimentKind tag: this link opens the runs list in the training view
    print(f"the runs (training view): http://{host}:{port}/#/experiments/{experiment_id}?workflowType=machine_learning")

    def stop(signum: int, _frame: object) -> None:
        # a UI holds nothing to flush: SIGTERM, and SIGKILL whatever still runs after 1 s (a prompt Ctrl-C, not a graceful 10 s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the workers too

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        return proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        pid_file(settings).unlink(missing_ok=True)


def stop_group(pgid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after ``timeout`` seconds."""
    import time

    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_ui(settings: Settings) -> bool:
    """Stop a UI started by `make ui` in another terminal (via its pid file)."""
    path = pid_file(settings)
    if not path.exists():
        return False
    stop_group(int(path.read_text()))
    path.unlink(missing_ok=True)
    return True
