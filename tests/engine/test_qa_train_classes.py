"""`ispan train` on a folder dataset pointed one level too high, or with an empty class folder."""

from __future__ import annotations

from pathlib import Path

from tests.data.trees import tiny_video
from tests.engine.runs import ispan

TINY = [
    "--dataset", "folder", "--arch", "istpan_tiny", "--pretrained", "none", "--segments", "1",
    "--input-size", "32", "--batch-size", "4", "--epochs", "1", "--workers", "0",
    "--device", "cpu", "--precise-bn", "0",
]  # fmt: skip


def _tree(root: Path, classes: tuple[str, ...], per_class: int = 2) -> None:
    for c, cls in enumerate(classes):
        for subset in ("train", "val"):
            for v in range(per_class):
                tiny_video(root / subset / cls / f"{v}.mp4", 10 * c + v, frames=2, size=16)


def test_data_root_one_level_too_high_is_one_error_line(tmp_path: Path) -> None:
    """data/<dataset>/train/... given as data/: one class (the dataset's folder) learned at 100%."""
    _tree(tmp_path / "data" / "mine", ("jump", "run"))
    done = ispan("train", *TINY, "--data-root", str(tmp_path / "data"),
                 "--output", str(tmp_path / "run"), check=False)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "has 1 class (mine)" in lines[0] and "one level too high" in lines[0]
    assert not (tmp_path / "run" / "best").exists()


def test_an_empty_class_folder_is_warned_about(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _tree(root, ("jump", "run"))
    (root / "train" / "sit").mkdir()
    run = tmp_path / "run"
    done = ispan("train", *TINY, "--data-root", str(root), "--output", str(run))
    warning = "warning: 1 of 3 classes have no training videos (sit)"
    assert warning in " ".join(done.stderr.split()), done.stderr
    assert warning in (run / "train.log").read_text()
