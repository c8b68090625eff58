"""The CLI root: start-up imports, version, models list/info, error rendering, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import ispan_cli
from ispan_cli.app import app
from ispan_cli.nn import count_parameters, create_model, list_models, save_model

runner = CliRunner()
HEAVY = ("torch", "torchvision", "av", "cv2", "onnxruntime", "onnx", "numpy", "safetensors")


def _run(*args, env=None, **kwargs):
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def _imported_top_level(importtime_stderr: str) -> set[str]:
    # lines look like: "import time:   123 |   456 |   torch.nn"
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_does_not_import_heavy_libraries():
    result = _run("-m", "ispan_cli", "--help", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert result.returncode == 0, result.stderr
    assert "models" in result.stdout
    imported = _imported_top_level(result.stderr)
    assert "typer" in imported  # the parse works: the CLI library itself shows up
    assert not imported & set(HEAVY), imported & set(HEAVY)


def test_nn_imports_no_cli_or_video_libraries():
    code = (
        "import sys, ispan_cli.nn; "
        "print(sorted(m for m in ('typer', 'rich', 'av', 'cv2', 'click') if m in sys.modules))"
    )
    result = _run("-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version_through_module_and_console_script():
    assert _run("-m", "ispan_cli", "--version").stdout.strip() == f"ispan {ispan_cli.__version__}"
    script = os.path.join(os.path.dirname(sys.executable), "ispan")
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"ispan {ispan_cli.__version__}"


def test_models_list_json_matches_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPAN_MODELS_DIR", str(tmp_path))
    result = runner.invoke(app, ["models", "list", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["name"]: r for r in doc["architectures"]}
    assert sorted(rows) == list_models()
    # parameters: an independently built (real, not meta) module
    assert rows["istpan_tiny"]["parameters"] == count_parameters(create_model("istpan_tiny"))
    # FLOPs: torchvision's published figure for ResNet-50 (GMACs per 224 image), x2 x 8 segments
    from torchvision.models import ResNet50_Weights

    gmacs = ResNet50_Weights.IMAGENET1K_V2.meta["_ops"]
    assert rows["tsn_resnet50"]["gflops"] == pytest.approx(8 * 2 * gmacs, rel=0.01)
    assert doc["zoo"] == []


def test_models_list_shows_zoo_folders_and_their_problems(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPAN_MODELS_DIR", str(tmp_path))
    save_model(create_model("istpan_tiny", labels=("x", "y")), tmp_path / "good")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    result = runner.invoke(app, ["models", "list", "--format", "json"])
    zoo = {e["name"]: e for e in json.loads(result.stdout)["zoo"]}
    assert zoo["good"]["problem"] is None and zoo["good"]["num_classes"] == 2
    assert zoo["broken"]["problem"] == "no model.safetensors"
    table = runner.invoke(app, ["models", "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0
    assert "good" in table.stdout and "no model.safetensors" in table.stdout


def test_models_info_reads_a_model_folder(tmp_path):
    torch.manual_seed(0)
    model = create_model("istpan_tiny", labels=("walk", "run"))
    save_model(model, tmp_path / "m", extra={"metrics": {"top1": 0.5}})
    result = runner.invoke(app, ["models", "info", str(tmp_path / "m"), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"]["labels"] == ["walk", "run"]
    assert doc["metrics"] == {"top1": 0.5}
    table = runner.invoke(app, ["models", "info", str(tmp_path / "m")], env={"COLUMNS": "200"})
    assert "walk, run" in table.stdout and '"top1": 0.5' in table.stdout


def test_user_errors_are_one_line_without_traceback():
    result = _run("-m", "ispan_cli", "models", "info", "no_such_model")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no model 'no_such_model'")
    assert "istpan_resnet50" in lines[0]  # says what would work
    assert "Traceback" not in result.stderr + result.stdout


def test_debug_shows_the_traceback():
    result = _run("-m", "ispan_cli", "--debug", "models", "info", "no_such_model")
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ISpanError" in result.stderr


def test_usage_errors_exit_2():
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2
    assert runner.invoke(app, ["models", "list", "--format", "yaml"]).exit_code == 2


def test_bugs_are_reported_in_one_line(monkeypatch):
    def boom(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("ispan_cli.nn.model_cost", boom)
    monkeypatch.delenv("ISPAN_DEBUG", raising=False)
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 1
    assert "unexpected ZeroDivisionError: division by zero (this is a bug in ispan" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _all_commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _all_commands(sub, (*path, name))


def test_help_paragraphs_are_not_broken_at_the_source_line_width():
    # typer 0.29 prints a docstring's line breaks as they are: help used to break mid-sentence
    # ("not trusted from the" / "header), codec ..."), in the command list and in each --help
    import inspect

    import typer.main

    runner = CliRunner()
    for path, command in _all_commands(typer.main.get_command(app)):
        result = runner.invoke(app, [*path, "--help"], terminal_width=2000, env={"COLUMNS": "2000"})
        assert result.exit_code == 0, (path, result.output)
        lines = [" ".join(line.strip(" │").split()) for line in result.output.splitlines()]
        for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
            assert " ".join(paragraph.split()) in lines, (path, paragraph)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["train", "--dataset", "synthetic", "--split", "0"], "'--split'"),
        (["classify", "x.mp4", "--crops", "2"], "'--crops'"),
        (["flow", "extract", "x.mp4", "--bogus"], "No such option: --bogus"),
        (["models", "info"], "Missing argument"),
        (["bogus"], "No such command 'bogus'"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(args, says):
    # click's own rendering was a box of 4-5 lines (usage, hint, the framed message)
    result = subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert " -h shows the options" in lines[0] and result.stdout == ""


def test_a_command_without_its_arguments_still_shows_its_help():
    result = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify"], capture_output=True, text=True, timeout=60
    )
    shown = result.stdout + result.stderr
    assert result.returncode == 2 and "classify [OPTIONS] {inputs}" in shown, shown
    assert not any(line.startswith("error:") for line in shown.splitlines()), shown
