"""`ispan doctor`: every probe does the real thing, and a broken required part makes it exit 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.diagnostics import CPU_PROVIDER, _onnxruntime_providers, run_diagnostics

SECTIONS = {"versions", "decoders", "devices", "onnxruntime"}
GPU_PROVIDER_HINTS = ("CUDA", "Tensorrt", "ROCM", "MIGraphX", "Dml", "NvTensorRT")


@pytest.fixture(scope="module")
def report():
    return run_diagnostics()


def _checks(doc: dict) -> dict[str, dict]:
    return {f"{c['section']}/{c['name']}": c for c in doc["checks"]}


def test_json_document_schema(report):
    doc = json.loads(json.dumps(report.to_dict()))
    assert set(doc) == {"ok", "broken", "checks", "onnxruntime_providers", "hub"}
    assert isinstance(doc["ok"], bool) and isinstance(doc["broken"], list)
    for check in doc["checks"]:
        assert set(check) == {"section", "name", "ok", "required", "detail"}
        assert check["section"] in SECTIONS
        assert isinstance(check["ok"], bool) and isinstance(check["required"], bool)
        assert isinstance(check["detail"], str) and check["detail"]
    names = [f"{c['section']}/{c['name']}" for c in doc["checks"]]
    assert len(names) == len(set(names))
    assert set(doc["onnxruntime_providers"]) == {"listed", "working"}
    assert set(doc["hub"]) == {
        "endpoint",
        "cache_dir",
        "offline",
        "token_from_env",
        "cached_models",
        "error",
    }
    # the required parts are always reported, whatever the machine
    for name in ("versions/torch", "decoders/pyav", f"onnxruntime/{CPU_PROVIDER}", "devices/cpu"):
        assert _checks(doc)[name]["required"] is True
    for name in ("decoders/opencv",):
        assert _checks(doc)[name]["required"] is False


def test_everything_required_works_here(report):
    assert report.ok, report.broken
    assert report.to_dict()["broken"] == []


def test_versions_are_those_of_the_imported_modules(report):
    import av
    import cv2
    import huggingface_hub
    import onnxruntime
    import torch

    checks = _checks(report.to_dict())
    assert checks["versions/torch"]["detail"].startswith(torch.__version__)
    assert checks["versions/av"]["detail"] == f"{av.__version__} (FFmpeg {av.ffmpeg_version_info})"
    assert checks["versions/opencv"]["detail"] == cv2.__version__
    assert checks["versions/onnxruntime"]["detail"] == onnxruntime.__version__
    assert checks["versions/huggingface_hub"]["detail"] == huggingface_hub.__version__


def test_both_decoders_decode_the_probe_video(report):
    checks = _checks(report.to_dict())
    assert checks["decoders/pyav"]["ok"], checks["decoders/pyav"]
    assert checks["decoders/opencv"]["ok"], checks["decoders/opencv"]  # installed here


def test_the_cpu_provider_is_reported_as_initialising(report):
    import onnxruntime

    doc = report.to_dict()
    assert doc["onnxruntime_providers"]["listed"] == onnxruntime.get_available_providers()
    assert CPU_PROVIDER in doc["onnxruntime_providers"]["working"]
    cpu = _checks(doc)[f"onnxruntime/{CPU_PROVIDER}"]
    assert cpu["ok"] and "initialises and runs" in cpu["detail"]


def test_gpu_is_not_claimed_where_torch_sees_none(report):
    import torch

    doc = report.to_dict()
    if torch.cuda.is_available():
        assert _checks(doc)["devices/cuda:0"]["ok"]
        pytest.skip("torch sees a CUDA device: GPU providers may legitimately work here")
    gpu = [c for c in doc["checks"] if c["section"] == "onnxruntime" and c["name"] != CPU_PROVIDER]
    for check in gpu:
        assert any(hint in check["name"] for hint in GPU_PROVIDER_HINTS), check
        assert not check["ok"] and not check["required"], check
        assert "not required" in check["detail"]
    assert doc["onnxruntime_providers"]["working"] == [CPU_PROVIDER]
    cuda = _checks(doc)["devices/cuda"]
    assert not cuda["ok"] and not cuda["required"] and "not required" in cuda["detail"]
    assert not [c for c in doc["checks"] if c["name"].startswith("cuda:")]


def test_provider_probing_keeps_onnxruntime_quiet(capfd):
    # onnxruntime logs failed GPU providers from C++ on fd 2 and prints "EP Error" from Python
    checks, listed = _onnxruntime_providers()
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert [c.name for c in checks] == listed


def test_hub_section_reflects_huggingface_hub_settings(report):
    from huggingface_hub import constants

    hub = report.to_dict()["hub"]
    assert hub["endpoint"] == constants.ENDPOINT.rstrip("/")
    assert hub["cache_dir"] == str(constants.HF_HUB_CACHE)
    assert hub["offline"] is bool(constants.HF_HUB_OFFLINE)


def test_doctor_command_renders_table_and_json():
    runner = CliRunner()
    as_json = runner.invoke(app, ["doctor", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is True
    table = runner.invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert CPU_PROVIDER in table.stdout and "Hub endpoint:" in table.stdout
    assert "Verdict: all required parts work" in table.stdout


@pytest.mark.parametrize(
    ("shadow", "content", "broken", "fmt"),
    [
        # the classic: a file named like a library in the working directory shadows it
        ("av.py", "# my own script, named av.py\n", {"versions/av", "decoders/pyav"}, "json"),
        (
            "onnxruntime/__init__.py",
            'raise ImportError("libonnxruntime.so.1: cannot open shared object file")\n',
            {"versions/onnxruntime", f"onnxruntime/{CPU_PROVIDER}"},
            "table",
        ),
    ],
)
def test_a_broken_required_part_exits_1_without_traceback(tmp_path, shadow, content, broken, fmt):
    (tmp_path / shadow).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / shadow).write_text(content)
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("ISPAN_DEBUG", None)
    # `python -m` puts the working directory first on sys.path, as running from that folder does
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "doctor", "--format", fmt],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    error_lines = done.stderr.strip().splitlines()
    assert len(error_lines) == 1 and error_lines[0].startswith("error: required part(s) broken:")
    for name in broken:
        assert name in error_lines[0]
    if fmt == "json":
        doc = json.loads(done.stdout)
        assert doc["ok"] is False and set(doc["broken"]) == broken
        assert str(tmp_path / shadow) in _checks(doc)["versions/av"]["detail"]
        assert _checks(doc)["decoders/opencv"]["ok"]  # the rest is still probed
    else:
        assert "BROKEN" in done.stdout and "cannot open shared object file" in done.stdout
        assert "Verdict: broken" in done.stdout
