"""An empty, config-less or weight-less model folder or checkpoint is one ``error:`` line in every
command that takes ``--model`` (issue 13: the error handler itself once crashed on one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.zoo import zoo_dir

VIDEO = Path(__file__).parent.parent / "samples" / "demo.mp4"
SOURCE = zoo_dir() / "istpan-tiny-synthetic"


def _make(kind: str, root: Path) -> Path:
    folder = root / kind
    if kind == "file.pt":  # an empty checkpoint file given as the model
        folder.write_bytes(b"")
        return folder
    folder.mkdir()
    if kind == "empty":
        return folder
    shutil.copy(SOURCE / "config.json", folder)
    shutil.copy(SOURCE / "model.safetensors", folder)
    if kind == "no-config":
        (folder / "config.json").unlink()
    elif kind == "no-weights":
        (folder / "model.safetensors").unlink()
    elif kind == "empty-config":
        (folder / "config.json").write_bytes(b"")
    elif kind == "empty-weights":
        (folder / "model.safetensors").write_bytes(b"")
    elif kind == "run-folder":  # what `ispan train` leaves before its first best/ model
        (folder / "config.json").unlink()
        (folder / "model.safetensors").unlink()
        (folder / "last.pt").write_bytes(b"")
    return folder


KINDS = {
    "empty": "has no config.json",
    "no-config": "has no config.json",
    "no-weights": "has no model.safetensors",
    "empty-config": "config.json is not valid JSON",
    "empty-weights": "is not a readable safetensors file",
    "run-folder": "has no config.json",
    "file.pt": "is a file, not a model folder",
}
COMMANDS = {
    "classify": lambda m, tmp: ["classify", str(VIDEO), "--model", m],
    "evaluate": lambda m, tmp: ["evaluate", "--dataset", "synthetic", "--model", m],
    "export": lambda m, tmp: ["export", "--onnx", "--model", m, "-o", str(tmp / "out.onnx")],
}


# every kind through classify; evaluate and export share the loader, so three kinds each
CASES = [(kind, "classify") for kind in KINDS] + [
    (kind, command)
    for command in ("evaluate", "export")
    for kind in ("empty", "no-weights", "file.pt")
]


@pytest.mark.parametrize(("kind", "command"), CASES)
def test_a_broken_model_folder_is_one_error_line(tmp_path, kind, command):
    folder = _make(kind, tmp_path)
    result = CliRunner().invoke(app, COMMANDS[command](str(folder), tmp_path))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "this is a bug" not in result.output
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors == lines[-1:], lines
    assert KINDS[kind] in errors[0], errors[0]
    assert not (tmp_path / "out.onnx").exists()
