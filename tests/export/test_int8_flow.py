"""`ispan export --int8` of a flow model: calibrated and checked on the model's own flow stacks
(computed with its FlowSpec as `classify --flow-model` does), not on RGB clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from tests.flow.clips import shifted_frames, write_clip

pytest.importorskip("onnxruntime")
runner = CliRunner()
SPEC = {"method": "dis", "bound": 20.0, "length": 2}
SEGMENTS = 2


def _flow_model(tmp_path):
    import torch

    from ispan_cli.nn import create_model, save_model
    from ispan_cli.video.flow_spec import FlowSpec
    from ispan_cli.video.preprocess import PreprocessSpec

    torch.manual_seed(11)
    spec = FlowSpec(**SPEC)
    model = create_model("tsn_tiny", labels=("a", "b", "c"), modality="flow",
                         flow_length=spec.length, input_size=64, num_segments=SEGMENTS)  # fmt: skip
    extra = {"flow": spec.to_dict(), "preprocessing": PreprocessSpec(73, 64).to_dict()}
    return spec, save_model(model.eval(), tmp_path / "flow_model", extra=extra)


def _clips(folder, n: int, frames: int):
    shifts = [(1, 2), (2, 0), (0, 2), (-1, 1), (2, -1)]
    return [
        write_clip(folder / f"c{i}.mkv", shifted_frames(frames, shift=shifts[i % 5], seed=i))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def flow_int8(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8flow")
    spec, folder = _flow_model(root)
    videos = _clips(root / "calibration", 5, 10)
    out = root / "flow.onnx"
    result = runner.invoke(app, [
        "export", "--onnx", "--model", str(folder), "-o", str(out), "--int8",
        "--calibration", str(root / "calibration"), "--format", "json",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    return {"root": root, "spec": spec, "report": json.loads(result.stdout), "fp32": out,
            "videos": videos}  # fmt: skip


def _offline_flow_clip(video, root, spec):
    """The held-out video's flow input through the other path: `ispan flow extract` to JPEGs,
    read back by the flow dataset as evaluation reads it."""
    from ispan_cli.data.clips import ClipSettings
    from ispan_cli.data.flow_clips import clips_for, with_flow
    from ispan_cli.data.items import VideoItem
    from ispan_cli.flow.batch import FlowOptions, run_flow_extract
    from ispan_cli.video.preprocess import PreprocessSpec

    flow_root = root / "extracted"
    report = run_flow_extract(FlowOptions(str(flow_root), (str(video.parent),), method="dis"))
    assert not report.failed
    settings = with_flow(
        ClipSettings(SEGMENTS, PreprocessSpec(73, 64), False), spec, flow_root, video.parent
    )
    clip, _, _, error = clips_for((VideoItem(str(video), 0),), settings)[0]
    assert error is None
    return clip.numpy()


def test_a_flow_model_is_quantized_on_its_own_flow(flow_int8):
    import onnx

    from ispan_cli.runtime.loading import load_model
    from ispan_cli.runtime.onnx_format import read_info

    report = flow_int8["report"]["int8"]
    # 5 videos: the 5th held out, 4 calibrate
    assert report["calibration_clips"] == 4 and report["validation_clips"] == 1
    assert report["validation_source"] == "held-out"
    path = flow_int8["fp32"].with_name("flow.int8.onnx")
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    info = read_info(path)
    assert info.precision == "int8" and info.extra["int8"]["calibration_clips"] == 4
    # the FlowSpec travels with the int8 file as with the float one
    assert load_model(str(path), runtime="onnx", device="cpu").flow == flow_int8["spec"]
    assert info.config["flow"] == read_info(flow_int8["fp32"]).config["flow"]


def test_the_int8_session_runs_on_flow_and_the_report_is_measured_on_flow(flow_int8):
    from ispan_cli.runtime.onnx import OnnxPredictor
    from ispan_cli.runtime.predictor import softmax

    held_out = flow_int8["videos"][4]
    x = _offline_flow_clip(held_out, flow_int8["root"], flow_int8["spec"])
    assert x.shape == (1, SEGMENTS, 4, 64, 64)  # (B, K, 2L, S, S)
    fp32 = OnnxPredictor(flow_int8["fp32"], device="cpu")
    int8 = OnnxPredictor(flow_int8["fp32"].with_name("flow.int8.onnx"), device="cpu")
    a, b = fp32.logits(x), int8.logits(x)
    got = flow_int8["report"]["int8"]["agreement"]
    # the stored report is these very inputs' numbers: it was measured on flow stacks
    assert got["max_abs_logit_diff"] == pytest.approx(float(np.abs(a - b).max()), abs=1e-6)
    pa, pb = softmax(a), softmax(b)
    assert got["max_abs_prob_diff"] == pytest.approx(float(np.abs(pa - pb).max()), abs=1e-7)
    # the documented check (98% top-1 agreement; cosine as the RGB int8 tests): met
    assert got["top1_agreement"] == 1.0 and got["cosine"] >= 0.99
    assert 0 < got["max_abs_logit_diff"] < 0.1  # quantized: close, not bit-identical


def test_rgb_clips_would_not_have_fitted(flow_int8):
    # a guard on the test itself: the model's input really is 2L channels, so an RGB
    # calibration (the old behaviour) could not have produced this file
    from ispan_cli.runtime.onnx import OnnxPredictor

    fp32 = OnnxPredictor(flow_int8["fp32"], device="cpu")
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error type
        fp32.logits(np.zeros((1, SEGMENTS, 3, 64, 64), np.float32))


def test_calibration_clips_too_short_for_flow_are_one_error(tmp_path):
    _, folder = _flow_model(tmp_path)
    _clips(tmp_path / "short", 3, 1)  # one frame each: no flow at all
    result = runner.invoke(app, [
        "export", "--onnx", "--model", str(folder), "-o", str(tmp_path / "m.onnx"), "--int8",
        "--calibration", str(tmp_path / "short"), "--no-verify",
    ])  # fmt: skip
    assert result.exit_code != 0
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert "no model input could be made from the 3 video(s) of --calibration" in message
    assert "needs at least 2" in message
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.int8.onnx").exists()


@pytest.mark.slow  # 12 generated 3 s clips at 320x240, and their flow
def test_without_calibration_a_flow_model_calibrates_on_generated_clips_flow(tmp_path):
    from ispan_cli.export.run import (
        GENERATED_FLOW_CALIBRATION,
        GENERATED_FLOW_VALIDATION,
        ExportOptions,
        run_export,
    )

    _, folder = _flow_model(tmp_path)
    said: list[str] = []
    result = run_export(
        ExportOptions(model=str(folder), output=tmp_path / "m.onnx", int8=True, verify=False),
        progress=said.append,
    )
    report = result.int8
    assert report.validation_source == "generated"
    assert (report.calibration_clips, report.validation_clips) == (
        GENERATED_FLOW_CALIBRATION,
        GENERATED_FLOW_VALIDATION,
    )
    assert report.agreement.clips == GENERATED_FLOW_VALIDATION
    assert report.agreement.top1_agreement >= 0.98 and report.agreement.cosine >= 0.99
    assert any("computing dis flow of the calibration clips" in m for m in said)
