"""Atomic file writes: all or nothing, for the store, the ledger, the feature table and the committed selection.

Ground floor: imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Temporary files of ``path`` left by writers that died (killed mid-write): their pid is in the name."""
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        parts = tmp.name[len(path.name) + 2:].split(".")
        pid = int(parts[0]) if parts and parts[0].isdigit() else None
        if pid is None or pid == os.getpid() or _pid_alive(pid):
            continue  # a live writer's file (or not ours to judge): leave it
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Write ``path`` all or nothing: ``write`` fills a temporary file beside it (unique name holding the writer's
    pid), which is fsynced and renamed over ``path``; on any failure the temporary file is removed and ``path`` is
    untouched. Temporary files of writers that were killed are removed on the next write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Busy(RuntimeError):
    """Another process holds the lock; the message says who and since when."""


@contextlib.contextmanager
def exclusive(path: Path, what: str, wait_seconds: float = 0.0, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (``flock``: released by the kernel when the holder dies, so a killed job never
    leaves it held) for the ``with`` block. Held by another process: wait up to ``wait_seconds`` (saying so once through
    ``say``), then raise ``Busy`` naming the holder's pid and start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a+")  # noqa: SIM115 - held for the block
    try:
        deadline = time.monotonic() + wait_seconds
        said = False
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise Busy(f"{what} is already running ({holder}; lock {path.name}): nothing done") from None
                if say and not said:
                    say(f"waiting for {what} ({holder}) to finish ...")
                    said = True
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC")
        fh.flush()
        yield
    finally:
        fh.close()  # closing the descriptor releases the lock
