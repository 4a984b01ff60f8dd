"""Staged folders (cascade_radar/files.py): a set of files published whole, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from cascade_radar.files import COMPLETE, STAGING_DIR, publish, settle_leftovers, staged_folder


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the staging area, by its path below ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and STAGING_DIR not in p.relative_to(root).parts}


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


OLD = {"evaluation.md": "old report", "oof.csv": "old oof", "fold_models/fold1/m.txt": "old 1", "fold_models/fold2/m.txt": "old 2",
       "eth/evaluation.md": "old eth", "tune/nested.md": "not the run's"}
NEW = {"evaluation.md": "new report", "oof.csv": "new oof", "fold_models/fold1/m.txt": "new 1", "eth/evaluation.md": "new eth",
       "eth/fold_models/fold1/m.txt": "new eth 1"}


def test_a_finished_block_publishes_the_whole_set_and_only_it(tmp_path: Path) -> None:
    write(tmp_path, OLD)
    with staged_folder(tmp_path, whole=("fold_models",)) as staged:
        write(staged, NEW)
        assert tree(tmp_path) == {k: v.encode() for k, v in OLD.items()}  # nothing published while the run writes
    # every new file in place; fold_models/ swapped whole (the old fold2 does not linger); files outside the set kept
    assert tree(tmp_path) == {k: v.encode() for k, v in {**NEW, "tune/nested.md": "not the run's"}.items()}
    assert list((tmp_path / STAGING_DIR).iterdir()) == []


def test_a_block_that_raises_leaves_the_published_set_byte_identical_and_no_run_folder(tmp_path: Path) -> None:
    write(tmp_path, OLD)
    with pytest.raises(RuntimeError, match="registry down"), staged_folder(tmp_path, whole=("fold_models",)) as staged:
        write(staged, {"evaluation.md": "half", "oof.csv": "half"})
        raise RuntimeError("registry down")
    assert tree(tmp_path) == {k: v.encode() for k, v in OLD.items()}
    assert list((tmp_path / STAGING_DIR).iterdir()) == []


def test_a_killed_runs_folder_is_removed_by_the_next_run_and_a_complete_one_is_finished(tmp_path: Path) -> None:
    write(tmp_path, OLD)
    killed = tmp_path / STAGING_DIR / "20250101T000000Z-999999-x"  # died writing: never complete
    write(killed, {"evaluation.md": "partial"})
    assert settle_leftovers(tmp_path, ("fold_models",)) == [killed] and not killed.exists()
    assert tree(tmp_path) == {k: v.encode() for k, v in OLD.items()}
    # died while publishing: the report moved, the out-of-fold table and the fold models not yet — the next run finishes it
    cut = tmp_path / STAGING_DIR / "20250102T000000Z-999998-y"
    write(cut, {"oof.csv": "new oof", "fold_models/fold1/m.txt": "new 1"})
    (cut / COMPLETE).touch()
    (tmp_path / "evaluation.md").write_text("new report")
    with staged_folder(tmp_path, whole=("fold_models",)):
        assert not cut.exists()
        assert tree(tmp_path)["oof.csv"] == b"new oof" and tree(tmp_path)["fold_models/fold1/m.txt"] == b"new 1"
        assert "fold_models/fold2/m.txt" not in tree(tmp_path)


def test_publish_swaps_a_whole_folder_when_a_cut_run_left_one_set_aside(tmp_path: Path) -> None:
    write(tmp_path, {"fold_models/fold2/m.txt": "old 2"})
    staged = tmp_path / STAGING_DIR / "run"
    write(staged, {"fold_models/fold1/m.txt": "new 1", ".replaced-fold_models/fold9/m.txt": "set aside by the cut run"})
    publish(staged, tmp_path, whole=("fold_models",))
    assert tree(tmp_path) == {"fold_models/fold1/m.txt": b"new 1"}
