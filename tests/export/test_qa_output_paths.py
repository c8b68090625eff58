"""export --output: a folder that does not exist yet (`-o deploy/`, as the README shows) and a
place that cannot be written (one error line, before any work)."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.runtime.onnx_format import read_info
from tests.export.conftest import MODEL

runner = CliRunner()


def _export(output: str):
    return runner.invoke(app, ["export", "--onnx", "--model", MODEL, "--no-verify", "-o", output])


def test_output_folder_with_trailing_slash_is_created(tmp_path):
    target = tmp_path / "deploy"
    result = _export(f"{target}/")
    assert result.exit_code == 0, result.output
    assert read_info(target / "model.onnx").model_id == MODEL
    assert sorted(p.name for p in target.iterdir()) == ["model.onnx"]  # no lock or probe left


def test_output_under_a_file_is_one_error_line(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    result = _export(str(tmp_path / "notes.txt" / "m.onnx"))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: --output ") and "cannot create the folder" in lines[-1]
    assert "bug in ispan" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_output_in_a_folder_that_refuses_files_is_one_error_line():
    # /proc passes the permission bits' test for root but takes no new files
    result = _export("/proc/m.onnx")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: --output /proc/m.onnx")
    assert "bug in ispan" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_output_in_a_read_only_folder_is_one_error_line(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        result = _export(str(folder / "m.onnx"))
    finally:
        folder.chmod(0o755)
    assert result.exit_code == 2, result.output
    assert "not writable" in result.stderr and list(folder.iterdir()) == []
