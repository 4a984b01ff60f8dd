"""Where `make tune` writes its model choice, and which choice training follows.

A tune writes to a local, git-ignored file (the tree stays clean), which training then prefers over the committed
training/selection.json and says so; `cascade-radar tune --commit` writes the committed file instead. Nothing here tunes:
the writer and the loader are called directly on files in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cascade_radar.config as config_module
import training.tune as tune_module
from cascade_radar.config import PROJECT_ROOT, ModelConfig, selection_file
from cli.main import build_parser, choice_in_force
from training.tune import choice_target, write_choice


@pytest.fixture()
def choice_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A committed choice (num_leaves 6) and no local one yet, at temporary paths, as the loader and the writer see them."""
    committed = tmp_path / "training" / "selection.json"
    committed.parent.mkdir()
    committed.write_text(json.dumps({"choice": {"num_leaves": 6}, "made": "2026-01-01"}, indent=1) + "\n")
    local = tmp_path / "data" / "selection.local.json"
    for module in (config_module, tune_module):
        monkeypatch.setattr(module, "SELECTION_FILE", committed)
        monkeypatch.setattr(module, "LOCAL_SELECTION_FILE", local)
    return committed, local


def test_a_tune_leaves_the_committed_choice_untouched_and_training_prefers_the_local_one(choice_files: tuple[Path, Path]) -> None:
    committed, local = choice_files
    before = committed.read_bytes()
    assert selection_file() == committed and ModelConfig().num_leaves == 6
    assert "selection.json (committed, made 2026-01-01)" in choice_in_force()

    record = {"choice": {"num_leaves": 3}, "made": "2026-02-02"}
    assert write_choice(record) == local  # the default: local
    assert committed.read_bytes() == before  # the committed file is byte for byte what it was
    assert json.loads(local.read_text()) == record
    assert selection_file() == local and ModelConfig().num_leaves == 3  # training follows the local choice ...
    assert ModelConfig(num_leaves=5).num_leaves == 5  # ... and an explicit value still wins
    said = choice_in_force()
    assert "selection.local.json (local: `make tune` of 2026-02-02, not committed" in said and "--commit" in said  # ... and says so


def test_tune_commit_writes_the_committed_choice_and_removes_the_local_one(choice_files: tuple[Path, Path]) -> None:
    committed, local = choice_files
    write_choice({"choice": {"num_leaves": 3}, "made": "2026-02-02"})
    assert write_choice({"choice": {"num_leaves": 4}, "made": "2026-03-03"}, commit=True) == committed
    assert not local.exists()  # it would shadow the choice just committed
    assert json.loads(committed.read_text())["choice"] == {"num_leaves": 4} and ModelConfig().num_leaves == 4
    assert "(committed, made 2026-03-03)" in choice_in_force()


def test_the_cli_writes_locally_unless_told_to_commit() -> None:
    parse = build_parser().parse_args
    assert not parse(["tune"]).commit and not parse(["tune"]).dry_run
    assert parse(["tune", "--commit"]).commit and parse(["tune", "--dry-run"]).dry_run
    with pytest.raises(SystemExit):  # a dry run writes nothing: it cannot commit
        parse(["tune", "--commit", "--dry-run"])


def test_the_local_choice_lives_where_git_ignores_it() -> None:
    assert choice_target(commit=False) == tune_module.LOCAL_SELECTION_FILE and choice_target(commit=True) == config_module.SELECTION_FILE
    # where it is outside the suite (which moves it: tests/conftest.py), as a fresh process of the project sees it
    env = {k: v for k, v in os.environ.items() if k != "CASCADE_RADAR_LOCAL_SELECTION_FILE"}
    where = subprocess.run([sys.executable, "-c", "from cascade_radar.config import LOCAL_SELECTION_FILE as f; print(f)"], cwd=PROJECT_ROOT,
                           env=env, capture_output=True, text=True, check=True).stdout.strip()
    local = Path(where).relative_to(PROJECT_ROOT).as_posix()
    assert local == "data/selection.local.json"  # beside the local store
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "check-ignore", "-q", local], cwd=PROJECT_ROOT, check=False)
    assert ignored.returncode == 0, f"{local} is not git-ignored: `make tune` would dirty the tree"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "training/selection.json"], cwd=PROJECT_ROOT, capture_output=True, check=False)
    assert tracked.returncode == 0, "training/selection.json, the committed choice, is not tracked"
