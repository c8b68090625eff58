"""`ispan classify --runtime onnx` gives the same records as `--runtime torch`."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.model_folder import sha256_file
from tests.export.conftest import MODEL
from tests.inference.schema import check_record

runner = CliRunner()


def _records(args: list[str]) -> list[dict]:
    result = runner.invoke(app, ["classify", *args, "--format", "jsonl", "--quiet"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_onnx_records_equal_torch_records(exported, export_videos):
    inputs = [str(p) for p in export_videos]
    common = ["--topk", "5", "--crops", "3"]
    torch_records = _records([*inputs, *common, "--model", MODEL])
    for model in (str(exported["plain"]), str(exported["folder"])):
        onnx_records = _records([*inputs, *common, "--runtime", "onnx", "--model", model])
        for t, o in zip(torch_records, onnx_records, strict=True):
            check_record(o, topk=5, segments=8)
            assert o["runtime"] == "onnx" and o["device"] == "cpu"
            assert o["input"] == t["input"] and o["frames"] == t["frames"]
            assert [e["index"] for e in o["topk"]] == [e["index"] for e in t["topk"]]
            assert [e["label"] for e in o["topk"]] == [e["label"] for e in t["topk"]]
            np.testing.assert_allclose(
                [e["score"] for e in o["topk"]], [e["score"] for e in t["topk"]], atol=1e-6
            )
    # the record names the file that ran and its hash
    assert onnx_records[0]["model"]["sha256"] == sha256_file(exported["folder"] / "model.onnx")


def test_onnx_timeline_equals_torch_timeline(exported, export_videos):
    args = [str(export_videos[1]), "--window", "1", "--stride", "0.5"]
    t = _records([*args, "--model", MODEL])
    o = _records([*args, "--runtime", "onnx", "--model", str(exported["plain"])])
    assert [r["window"] for r in o] == [r["window"] for r in t] and len(t) >= 3
    for a, b in zip(t, o, strict=True):
        assert a["topk"][0]["index"] == b["topk"][0]["index"]
        assert abs(a["topk"][0]["score"] - b["topk"][0]["score"]) < 1e-6


def test_precision_other_than_fp32_is_a_usage_error_on_onnx(exported, export_videos):
    result = runner.invoke(
        app,
        [
            "classify",
            str(export_videos[0]),
            "--runtime",
            "onnx",
            "--model",
            str(exported["plain"]),
            "--precision",
            "bf16",
        ],
    )
    assert result.exit_code == 2 and "--precision bf16" in result.stderr
