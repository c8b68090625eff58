"""`ispan models info` on what `ispan export` wrote: a .onnx file, or the folder `-o DIR/` made
(what `--runtime onnx --model` takes); its metadata, not "no model ... not a folder"."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.export.run import ExportOptions, run_export
from tests.export.conftest import MODEL

runner = CliRunner()


def test_models_info_reads_an_exported_file_and_folder(tmp_path):
    folder = tmp_path / "deploy"
    folder.mkdir()
    run_export(ExportOptions(model=MODEL, output=folder, verify=False, with_attention=True))
    for name in (str(folder / "model.onnx"), str(folder)):
        result = runner.invoke(app, ["models", "info", name, "--format", "json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout)
        assert record["source"] == "onnx file" and record["path"] == str(folder / "model.onnx")
        assert record["exported_from"]["id"] == MODEL
        assert record["outputs"][0] == "logits" and "attention_fused" in record["outputs"]
        assert record["precision"] == "fp32" and record["sampling"]["segments"] == 8
        assert record["preprocessing"]["crop"] == 112
        assert record["model"]["labels"] and record["model"]["arch"] == "istpan"
    table = runner.invoke(app, ["models", "info", str(folder)])
    assert table.exit_code == 0, table.output
    assert "onnx file" in table.stdout and "attention_fused" in table.stdout


def test_models_info_on_a_corrupt_onnx_file_is_one_error_line(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    result = runner.invoke(app, ["models", "info", str(bad)])
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "export it again" in line
