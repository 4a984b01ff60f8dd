"""`make ui` stops MLflow's whole process group, workers included."""

from __future__ import annotations

import os
import subprocess
import time

from training.ui import stop_group


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_stop_group_ends_children_that_outlive_their_parent() -> None:
    # a parent that starts a worker and ignores SIGTERM, like a server whose workers outlive it
    proc = subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60 & echo $!; wait"], stdout=subprocess.PIPE, start_new_session=True, text=True)
    worker = int(proc.stdout.readline())
    assert alive(worker)
    started = time.monotonic()
    stop_group(proc.pid, timeout=1.0)
    proc.wait(timeout=5)
    time.sleep(0.2)
    assert not alive(worker)
    assert time.monotonic() - started < 5
