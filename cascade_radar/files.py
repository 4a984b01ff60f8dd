"""Atomic file writes: all or nothing, for the store, the ledger, the feature table and the committed selection; and
staged folders, for a set of files that must change together (a training run's reports).

Ground floor: imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
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


STAGING_DIR = ".runs"  # under the published folder: the same filesystem, so publishing is a rename, never a copy
COMPLETE = ".complete"  # marks a run folder holding its whole set: from then on it is published, even by the next run


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())


def publish(staged: Path, target: Path, whole: tuple[str, ...] = ()) -> None:
    """Move every file of ``staged`` to the same place under ``target`` (a rename each, so a reader sees a file's old or
    new bytes, never part of them); a directory named in ``whole`` moves as one, the old one set aside first, so no file of
    an older set lingers beside the new ones. Entries whose name starts with a dot are the staging area's own: left."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staged.iterdir()):
        if entry.name.startswith("."):
            continue
        place = target / entry.name
        if entry.is_dir() and entry.name in whole:
            aside = staged / f".replaced-{entry.name}"  # removed with the run folder
            shutil.rmtree(aside, ignore_errors=True)
            if place.is_dir():
                place.rename(aside)
            entry.rename(place)
        elif entry.is_dir():
            publish(entry, place, whole)
        else:
            os.replace(entry, place)


def settle_leftovers(target: Path, whole: tuple[str, ...] = ()) -> list[Path]:
    """Run folders in ``target/.runs/`` left by writers that were killed: one marked complete (killed while publishing) is
    published, finishing its set; any other is removed, ``target`` untouched. Returns the folders settled.

    Only for a caller holding the writers' lock on ``target``: then every other run folder is a dead writer's. A pid is
    not asked whether it is alive: a dead run's pid reused by another process would keep its folder, and a complete one
    published later would put an old set over a newer one."""
    runs = target / STAGING_DIR
    settled = []
    for run in sorted(runs.iterdir()) if runs.is_dir() else []:  # names start with the UTC time: oldest first
        if (run / COMPLETE).exists():
            publish(run, target, whole)
        shutil.rmtree(run, ignore_errors=True)
        settled.append(run)
    return settled


@contextlib.contextmanager
def staged_folder(target: Path, whole: tuple[str, ...] = ()) -> Iterator[Path]:
    """A fresh folder, laid out like ``target``, for a set of files that must change together: its files replace those
    of ``target`` when the ``with`` block ends (see ``publish``). A block that raises leaves ``target`` untouched and the
    folder removed; a process killed inside it leaves ``target`` untouched and the folder in ``target/.runs/``
    (``<UTC time>-<pid>-<random>``), which the next call settles first. One writer at a time: the caller holds a lock on ``target``."""
    settle_leftovers(target, whole)
    runs = target / STAGING_DIR
    runs.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-", dir=runs))
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    _fsync_tree(staged)  # the bytes on disk before the set is declared whole
    (staged / COMPLETE).touch()
    publish(staged, target, whole)  # if this is cut short, the next call finishes it
    shutil.rmtree(staged, ignore_errors=True)


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
