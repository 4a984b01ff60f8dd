"""`make bento`: a Bento that serves on its own — each coin's champion and history packaged inside it.

``package(settings)`` writes ``serving/packaged/`` (git-ignored): per coin the champion as the plain files
``CascadeModel.save`` writes (LightGBM text models + JSON, the same files the MLflow model holds), the fold
models of its training run, its registry identity, and the coin's history store. ``serving/bentofile.yaml``
includes that folder and sets ``CASCADE_RADAR_PACKAGED_DIR``, so a served Bento reads the package instead of an
MLflow store and a data directory it would not have.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from cascade_radar.config import PROJECT_ROOT, Settings
from features.store import HistoryStore

PACKAGE_DIR = PROJECT_ROOT / "serving" / "packaged"
MANIFEST = "manifest.json"


def package(settings: Settings, target: Path = PACKAGE_DIR) -> dict[str, object]:
    """Export every coin of ``settings.assets`` that has a champion (and the context coin's history); returns the manifest."""
    from training.explain import download_champion_folds
    from training.register import load_champion

    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    packaged, skipped = {}, {}
    for asset in settings.assets:
        each = settings.for_asset(asset)
        try:
            model, identity = load_champion(each)
        except LookupError as exc:
            skipped[asset] = str(exc)
            continue
        root = target / asset.lower()
        model.save(root / "model")
        with tempfile.TemporaryDirectory() as tmp:
            folds = download_champion_folds(each, identity, Path(tmp))
            if folds is not None:
                shutil.copytree(folds / "fold_models", root / "fold_models")
        (root / "identity.json").write_text(json.dumps(identity, indent=1))
        packaged[asset] = identity
    for asset in {*packaged, settings.features.context_asset}:
        store = HistoryStore(settings.for_asset(asset).data_path)
        for series in [s.series for s in store.status()]:
            destination = target / "data" / asset.lower() / store.path(series).name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(store.path(series), destination)
    manifest = {"assets": list(packaged), "identities": packaged, "skipped": skipped}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def packaged_assets(directory: Path) -> list[str]:
    manifest = directory / MANIFEST
    return json.loads(manifest.read_text())["assets"] if manifest.exists() else []


def served_assets(settings: Settings) -> list[str]:
    """The coins the service answers for: inside a Bento those packaged in it, else ``settings.assets`` (any tickers). The
    API documents these, the dashboard links these; any other coin is answered 404 naming ``asset``."""
    if settings.packaged_path is not None:
        return packaged_assets(settings.packaged_path) or settings.assets
    return settings.assets
