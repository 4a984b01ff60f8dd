"""Every coin's assembled panel and features, kept on disk per version of the stores, the settings and the feature code.

Why: turning a coin's store into features (read and check every series, assemble, the families, the lags) costs
0.1-0.4 s a coin, and the market-wide inputs read every coin's store once more; a service of hundreds of coins paid that
at every start (issue 37: 200 coins took 138 s to become ready). The frames depend only on the stores' files, the feature
and label settings and the code under ``features/``, so they are written once — by `make train`, or by the first start
after the stores changed — under a key made of exactly those, and read back (~15 ms a coin) while none of them changes.
A changed store file (the daily job's append: a new file by rename), setting or feature file gives another key: the
frames are built again, never read stale. A key's folder is used only once its manifest, written last, is there; a
write that fails (read-only disk, full disk) is logged and the frames built in memory serve as before.

Layout: ``<data_dir>/.cache/frames/<key>/`` with ``<coin>.panel.parquet``, ``<coin>.features.parquet``, ``catalogue.parquet``,
the market context's ``context.panel.parquet``, ``context.features.parquet`` and ``market.parquet``, then ``manifest.json``.
The two newest keys are kept (a service still reading the previous one while the daily job writes the next).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cascade_radar.config import Settings
from cascade_radar.files import atomic_write
from features.store import SERIES

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout changes: an older folder is then another key
KEEP = 2


@functools.cache
def code_digest() -> str:
    """A digest of every Python file under ``features/`` (what turns a store into features), once per process."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def store_roots(settings: Settings, roots: dict[str, Path] | None = None) -> dict[str, Path]:
    """The store folder of every coin the frames read: the served coins and the context coin (``roots`` overrides)."""
    coins = dict.fromkeys([*settings.assets, settings.features.context_asset])
    return {c: Path((roots or {}).get(c) or settings.for_asset(c).data_path) for c in coins}


def frames_key(settings: Settings, roots: dict[str, Path] | None = None) -> str:
    """The key of the frames of ``settings``' coins: every store file's name, size and modification time, the feature and
    label settings, the coin list and the feature code. Stat calls only: ~1 ms for 200 coins' stores."""
    h = hashlib.sha256(f"format {FORMAT}\n{code_digest()}\n".encode())
    h.update(settings.features.model_dump_json().encode())
    h.update(settings.labels.model_dump_json().encode())
    h.update(json.dumps(settings.assets).encode())
    for coin, root in store_roots(settings, roots).items():
        h.update(f"\n{coin}:{root}".encode())
        for series in SERIES:
            path = root / f"{series}.parquet"
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"|{series}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}".encode())
    return h.hexdigest()[:32]


def cache_root(settings: Settings) -> Path:
    return settings.data_path.parent / ".cache" / "frames"


@dataclass(frozen=True)
class CachedFrames:
    """A complete key folder: each coin's (panel, features) read on request, and what every coin shares."""

    folder: Path
    coins: tuple[str, ...]

    def coin(self, asset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        stem = asset.lower()
        return pd.read_parquet(self.folder / f"{stem}.panel.parquet"), pd.read_parquet(self.folder / f"{stem}.features.parquet")

    def catalogue(self) -> pd.DataFrame:
        return pd.read_parquet(self.folder / "catalogue.parquet")

    def context(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None:
        """(the context coin's panel, its context-family features, the market-wide inputs or None); None: no context."""
        if not (self.folder / "context.panel.parquet").exists():
            return None
        market = self.folder / "market.parquet"
        return (pd.read_parquet(self.folder / "context.panel.parquet"), pd.read_parquet(self.folder / "context.features.parquet"),
                pd.read_parquet(market) if market.exists() else None)


def read_frames(settings: Settings, key: str) -> CachedFrames | None:
    """The frames of ``key`` if a complete folder holds them, else None (never a partial folder)."""
    folder = cache_root(settings) / key
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        return None
    return CachedFrames(folder, tuple(manifest.get("coins", [])))


def _parquet(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: frame.to_parquet(tmp))


def write_frames(settings: Settings, key: str, coins: dict[str, tuple[pd.DataFrame, pd.DataFrame]], catalogue: pd.DataFrame,
                 context: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None] | None) -> Path | None:
    """Write the frames under ``key`` (manifest last) and keep the ``KEEP`` newest keys; the folder, or None when it could
    not be written (logged: the caller serves what it built)."""
    root = cache_root(settings)
    folder = root / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for asset, (panel, features) in coins.items():
            _parquet(panel, folder / f"{asset.lower()}.panel.parquet")
            _parquet(features, folder / f"{asset.lower()}.features.parquet")
        _parquet(catalogue, folder / "catalogue.parquet")
        if context is not None:
            _parquet(context[0], folder / "context.panel.parquet")
            _parquet(context[1], folder / "context.features.parquet")
            if context[2] is not None:
                _parquet(context[2], folder / "market.parquet")
        manifest = {"format": FORMAT, "key": key, "coins": sorted(coins)}
        atomic_write(folder / "manifest.json", lambda tmp: tmp.write_text(json.dumps(manifest)))
    except OSError as exc:
        log.warning("feature frames not cached in %s (%s): built again at the next start", folder, exc)
        return None
    _prune(root, key)
    return folder


def _prune(root: Path, keep_key: str) -> None:
    """Remove all but the ``KEEP`` newest key folders (the one just written is always kept)."""
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in folders if p.name != keep_key][KEEP - 1:]:
        shutil.rmtree(old, ignore_errors=True)
