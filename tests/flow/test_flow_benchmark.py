"""`ispan benchmark` of a flow model: measured on its own flow stacks, and its int8 copy
calibrated on flow stacks made as `ispan export --int8` makes them, not on RGB clips."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.errors import ISpanError

pytest.importorskip("onnxruntime")
SEGMENTS, LENGTH, CROP, RESIZE = 2, 2, 64, 73
SECONDS = 1.0


def _flow_model(folder, method: str = "dis"):
    import torch

    from ispan_cli.nn import create_model, save_model
    from ispan_cli.video.flow_spec import FlowSpec
    from ispan_cli.video.preprocess import PreprocessSpec

    torch.manual_seed(11)
    spec = FlowSpec(method, 20.0, length=LENGTH)
    model = create_model("tsn_tiny", labels=("a", "b", "c"), modality="flow", flow_length=LENGTH,
                         input_size=CROP, num_segments=SEGMENTS)  # fmt: skip
    extra = {"flow": spec.to_dict(), "preprocessing": PreprocessSpec(RESIZE, CROP).to_dict()}
    return spec, save_model(model.eval(), folder, extra=extra)


@pytest.fixture(scope="module")
def flow_bench(tmp_path_factory):
    """A benchmark of every runtime and int8 on a tiny DIS flow model; what quantize_int8 got."""
    import ispan_cli.export.quantize as quantize
    from ispan_cli.bench.run import BenchmarkOptions, run_benchmark

    root = tmp_path_factory.mktemp("flowbench")
    spec, folder = _flow_model(root / "flow_model")

    import ispan_cli.video.synthetic as synthetic

    given: list[list[np.ndarray]] = []
    real = quantize.quantize_int8
    real_writer = synthetic.write_synthetic_video
    kept = root / "written"
    kept.mkdir()

    def recorded(fp32, int8, clips):  # the real quantizer, its calibration input kept
        given.append([np.array(c) for c in clips])
        return real(fp32, int8, clips)

    def keep(path, *args, **kwargs):  # the real writer, a copy of each file kept: x264 does
        # not always give the same bytes for the same frames here (seen on an AVX-512 machine,
        # one encode in 4 differed), so the clips are not encoded again for the comparison
        written = real_writer(path, *args, **kwargs)
        shutil.copy(written, kept / written.name)
        return written

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(quantize, "quantize_int8", recorded)
        patch.setattr(synthetic, "write_synthetic_video", keep)
        options = BenchmarkOptions(
            model=str(folder), runtimes=("torch", "onnx", "onnx-int8"), device="cpu", count=2,
            seconds=SECONDS, calibration_clips=2,
        )  # fmt: skip
        result = run_benchmark(options).to_dict()
    return {"root": root, "spec": spec, "result": result, "calibration": given}


def _extracted_flow_inputs(videos, root, spec) -> list[np.ndarray]:
    """The videos' flow inputs through the other path: `ispan flow extract` to JPEGs, read back
    by the flow dataset as evaluation reads it."""
    from ispan_cli.data.clips import ClipSettings
    from ispan_cli.data.flow_clips import clips_for, with_flow
    from ispan_cli.data.items import VideoItem
    from ispan_cli.flow.batch import FlowOptions, run_flow_extract
    from ispan_cli.video.preprocess import PreprocessSpec

    flow_root = root / "extracted"
    report = run_flow_extract(FlowOptions(str(flow_root), (str(videos[0].parent),), method="dis"))
    assert not report.failed
    settings = with_flow(
        ClipSettings(SEGMENTS, PreprocessSpec(RESIZE, CROP), False), spec, flow_root,
        videos[0].parent,
    )  # fmt: skip
    out = []
    for clip, _, _, error in clips_for(tuple(VideoItem(str(v), 0) for v in videos), settings):
        assert error is None
        out.append(clip.numpy())
    return out


def test_int8_is_calibrated_on_the_flow_export_would_calibrate_on(flow_bench):
    (calibration,) = flow_bench["calibration"]  # quantized once
    assert len(calibration) == 2
    for clip in calibration:
        assert clip.shape == (1, SEGMENTS, 2 * LENGTH, CROP, CROP)  # (1, K, 2L, S, S), not 3
        # flow normalisation: (q - 128) / 128 of 0-255 levels, not ImageNet's RGB statistics
        levels = clip * 128 + 128
        assert np.array_equal(levels, np.rint(levels)) and 0 <= levels.min() < levels.max() <= 255
    # the same calibration clips, their flow extracted to JPEGs and read back independently
    root = flow_bench["root"] / "again"
    (root / "clips").mkdir(parents=True)
    videos = []
    for i in range(2):
        name = f"cal{i:03d}.mp4"
        videos.append(Path(shutil.copy(flow_bench["root"] / "written" / name, root / "clips")))
    expected = _extracted_flow_inputs(videos, root, flow_bench["spec"])
    for got, want in zip(calibration, expected, strict=True):
        assert np.array_equal(got, want)


def test_every_runtime_is_measured_on_flow_stacks(flow_bench):
    result = flow_bench["result"]
    assert result["flow"] == flow_bench["spec"].to_dict()
    assert result["segments"] == SEGMENTS and result["input_size"] == CROP
    assert [r["runtime"] for r in result["runtimes"]] == ["torch", "onnx", "onnx-int8"]
    assert result["decode_ms"] > 0 and result["preprocess_ms"] > 0  # preprocess: the flow
    _, onnx_run, int8_run = result["runtimes"]
    for run in result["runtimes"]:
        assert run["model_ms"] > 0 and run["end_to_end_videos_per_s"] > 0
        assert "failed" not in run["note"]  # the flow stream ran on every video end to end
    assert onnx_run["reference"] == "torch" and onnx_run["top1_agreement"] == 1.0
    assert onnx_run["max_abs_prob_diff"] < 1e-5
    assert int8_run["precision"] == "int8" and int8_run["reference"] == "onnx"
    assert int8_run["top1_agreement"] == 1.0 and 0 < int8_run["max_abs_prob_diff"] < 0.05


def test_visualize_with_a_flow_model_is_one_usage_error(tmp_path):
    from ispan_cli.bench.run import BenchmarkOptions, run_benchmark

    _, folder = _flow_model(tmp_path / "flow_model")
    options = BenchmarkOptions(model=str(folder), runtimes=("torch",), count=1, seconds=0.4,
                               visualize=True)  # fmt: skip
    with pytest.raises(ISpanError, match=r"--visualize times classify.*drop it for a flow model"):
        run_benchmark(options)


def test_a_flow_method_this_machine_cannot_run_is_one_error(tmp_path):
    import torch

    from ispan_cli.bench.run import BenchmarkOptions, run_benchmark

    if torch.cuda.is_available():
        pytest.skip("RAFT runs here: the refusal is a CPU-only machine's")
    _, folder = _flow_model(tmp_path / "flow_model", method="raft")
    options = BenchmarkOptions(model=str(folder), runtimes=("torch",), count=1, seconds=0.4)
    with pytest.raises(ISpanError, match="--method raft runs on a CUDA GPU"):
        run_benchmark(options)
