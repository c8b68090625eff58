"""`ispan benchmark` on the bundled tiny model: every runtime side by side, numbers that hold."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def report():
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--count",
            "2",
            "--seconds",
            "1",
            "--int8",
            "--rounds",
            "3",
            "--visualize",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_runtime_is_measured_side_by_side(report):
    assert [r["runtime"] for r in report["runtimes"]] == ["torch", "onnx", "onnx-int8"]
    assert report["videos"]["source"] == "generated" and report["videos"]["count"] == 2
    assert report["segments"] == 8 and report["input_size"] == 112
    assert report["decode_ms"] > 0 and report["preprocess_ms"] > 0
    for run in report["runtimes"]:
        # three rounds of a model pass and an end-to-end pass; the figures are their medians
        rounds = run["rounds"]
        assert len(rounds) == 3 and all(r["model_s"] > 0 and r["end_to_end_s"] > 0 for r in rounds)
        model_s = sorted(r["model_s"] for r in rounds)[1]
        assert run["model_ms"] == pytest.approx(1e3 * model_s, rel=1e-3)
        assert run["model_videos_per_s"] == pytest.approx(1e3 / run["model_ms"], rel=1e-3)
        e2e_s = sorted(r["end_to_end_s"] for r in rounds)[1]
        assert run["end_to_end_videos_per_s"] == pytest.approx(1 / e2e_s, rel=1e-3)
        # the ratio pairs the passes of one round (seconds apart), not the medians
        ratio = sorted(r["model_s"] / r["end_to_end_s"] for r in rounds)[1]
        assert run["end_to_end_over_model"] == pytest.approx(ratio, rel=1e-3)
        assert "failed" not in run["note"]  # the pipeline classified every video
        assert run["peak_rss_mb"] > 50


def test_the_thread_plan_follows_the_usable_cores(report):
    import os

    plan = report["machine"]["thread_plan"]
    assert 1 <= plan["cores"] <= len(os.sched_getaffinity(0))
    assert report["machine"]["torch_threads"] == plan["model_threads"] == plan["cores"]
    assert report["machine"]["onnxruntime_threads"] == plan["cores"]
    assert plan["decode_workers"] == max(1, plan["cores"] // 8)
    assert plan["spin"] is (plan["processes"] == 1)  # busy-waiting only with the node to itself


def test_runtimes_agree_and_int8_is_int8(report):
    torch_run, onnx_run, int8_run = report["runtimes"]
    assert onnx_run["reference"] == "torch" and onnx_run["top1_agreement"] == 1.0
    assert onnx_run["max_abs_prob_diff"] < 1e-5
    assert int8_run["reference"] == "onnx" and int8_run["precision"] == "int8"
    assert 0 < int8_run["max_abs_prob_diff"] < 0.05
    assert torch_run["top1_agreement"] is None


def test_visualize_overhead_is_reported(report):
    viz = report["visualize"]
    assert viz["classify_s"] > 0 and viz["visualize_s"] > 0
    assert viz["overhead"] == pytest.approx(viz["visualize_s"] / viz["classify_s"] - 1, abs=1e-3)


def test_registry_architecture_runs_with_random_weights(tmp_path):
    result = runner.invoke(
        app,
        [
            "benchmark",
            "--model",
            "tsn_tiny",
            "--runtime",
            "onnx",
            "--count",
            "1",
            "--seconds",
            "0.5",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == {
        "id": "tsn_tiny",
        "source": "registry",
        "arch": "tsn",
        "backbone": "tiny",
    }
    assert [r["runtime"] for r in report["runtimes"]] == ["onnx"]


def test_table_output_and_onnx_file_with_torch_is_refused(tmp_path):
    result = runner.invoke(
        app,
        ["benchmark", "--count", "1", "--seconds", "0.5", "--runtime", "torch"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "model ms/video" in result.stdout and "end-to-end videos/s" in result.stdout
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    result = runner.invoke(app, ["benchmark", "--model", str(model), "--runtime", "torch"])
    assert result.exit_code == 2 and "only --runtime onnx" in result.stderr
