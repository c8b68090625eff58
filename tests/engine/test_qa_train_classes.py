"""`ispan train` on a folder dataset pointed one level too high, or with an empty class folder;
the same command again on the finished run; `evaluate --output` into it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ispan_cli.engine.evaluate_options import EvaluateOptions
from ispan_cli.engine.evaluation import evaluate
from ispan_cli.errors import UsageError
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


SETTINGS = {
    "dataset": "folder", "arch": "istpan_tiny", "pretrained": "none", "segments": 1,
    "input_size": 32, "batch_size": 4, "epochs": 1, "workers": 0, "device": "cpu",
    "precise_bn": 0,
}  # fmt: skip


def _train(root: Path, run: Path) -> str:
    """The messages of a run in this process (what the terminal shows), one string."""
    from ispan_cli.engine.launch import TrainOptions, run_training

    said: list[str] = []

    def report(event) -> None:
        if event.kind == "message":
            said.append(event.data["text"])

    settings = {**SETTINGS, "data_root": str(root), "output": str(run)}
    run_training(TrainOptions(settings=settings), report)
    return "\n".join(said)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, str]:
    """A finished run on a folder with an empty class folder: (data, run, its messages)."""
    tmp = tmp_path_factory.mktemp("qa-run")
    root = tmp / "data"
    _tree(root, ("jump", "run"))
    (root / "train" / "sit").mkdir()
    run = tmp / "run"
    return root, run, _train(root, run)


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


def test_an_empty_class_folder_is_warned_about(trained) -> None:
    _, run, said = trained
    warning = "warning: 1 of 3 classes have no training videos (sit)"
    assert warning in said, said
    assert warning in (run / "train.log").read_text()


def test_evaluate_refuses_a_training_run_folder_before_scoring(trained) -> None:
    """It replaced the run's report.html; `ispan report` then saw an evaluation there."""
    _, run, _ = trained
    report = (run / "report.html").read_bytes()
    with pytest.raises(UsageError, match=r"holds a training run.*e\.g\. .*run/eval$"):
        evaluate(EvaluateOptions(dataset="synthetic", synthetic_sizes=(1, 2), workers=0,
                                 model=str(run / "best"), output=run))  # fmt: skip
    assert (run / "report.html").read_bytes() == report
    assert not (run / "metrics.json").exists()


def test_the_same_command_on_a_finished_run_says_it_is_finished(trained) -> None:
    """It said 'resumed ... at epoch 2' of a 1-epoch run."""
    root, run, _ = trained
    best = (run / "best" / "model.safetensors").read_bytes()
    text = _train(root, run)
    assert "holds a finished run (--epochs 1, 1 done): nothing to train" in text, text
    assert "resumed from" not in text
    assert (run / "best" / "model.safetensors").read_bytes() == best
