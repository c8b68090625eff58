"""Where `ispan evaluate --output` and `ispan fuse --output` write: never over a file, over
the scores being fused, over an evaluation's metrics or mixed with another kind of evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.engine.evaluate_options import EvaluateOptions
from ispan_cli.engine.evaluation import evaluate
from ispan_cli.errors import UsageError


def _scores(path: Path, logits: list[list[float]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {"video": f"v{i}.mp4", "label": f"c{i % 2}", "label_index": i % 2, "predicted": "c0",
         "logits": row}
        for i, row in enumerate(logits)
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_evaluate_output_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    """Was 'unexpected FileExistsError ... this is a bug' once every video was scored."""
    file = tmp_path / "out.txt"
    file.write_text("mine")
    with pytest.raises(UsageError, match="is a file; give a folder"):
        evaluate(EvaluateOptions(dataset="synthetic", synthetic_sizes=(1, 2), workers=0,
                                 output=file))  # fmt: skip
    assert file.read_text() == "mine"


def test_fuse_into_an_input_folder_keeps_that_streams_scores(tmp_path: Path) -> None:
    rgb = _scores(tmp_path / "eval-rgb" / "video_scores.jsonl", [[2.0, 0.0], [0.0, 1.0]])
    flow = _scores(tmp_path / "eval-flow" / "video_scores.jsonl", [[0.0, 1.0], [1.0, 0.0]])
    before = rgb.read_text()
    runner = CliRunner()
    done = runner.invoke(app, ["fuse", str(rgb.parent), str(flow), "-o", str(rgb.parent)])
    assert done.exit_code == 2, done.output
    assert "one of the scores being fused" in done.output
    assert rgb.read_text() == before
    # an evaluation's metrics.json is not replaced either; a previous fusion's may be
    (tmp_path / "eval-x").mkdir()
    (tmp_path / "eval-x" / "metrics.json").write_text('{"splits": {}}')
    done = runner.invoke(app, ["fuse", str(rgb), str(flow), "-o", str(tmp_path / "eval-x")])
    assert done.exit_code == 2 and "another command's metrics.json" in done.output
    fused = tmp_path / "fused"
    for weights in ("1,1", "1,2"):
        done = runner.invoke(app, ["fuse", str(rgb), str(flow), "--weights", weights,
                                   "-o", str(fused)])  # fmt: skip
        assert done.exit_code == 0, done.output
    assert json.loads((fused / "metrics.json").read_text())["streams"][1]["weight"] == 2.0


def test_one_split_is_not_written_over_an_all_splits_evaluation(tmp_path: Path) -> None:
    """It replaced metrics.json (the mean and std) and left split1/..split3/ beside its files."""
    out = tmp_path / "eval"
    common = {"dataset": "synthetic", "synthetic_sizes": (1, 2), "workers": 0, "output": out}
    evaluate(EvaluateOptions(splits=(1, 2, 3), **common))
    before = (out / "metrics.json").read_text()
    assert json.loads(before)["splits"].keys() == {"1", "2", "3"}
    with pytest.raises(UsageError, match=r"holds an evaluation of split\(s\) 1, 2, 3"):
        evaluate(EvaluateOptions(splits=(2,), **common))
    assert (out / "metrics.json").read_text() == before
    evaluate(EvaluateOptions(splits=(1, 2, 3), **common))  # the same again: fine
