"""`ispan export --int8`: a really quantized file, calibrated on real clips, with its report."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.export.quantize import last_convolutions
from ispan_cli.runtime.onnx import OnnxPredictor
from ispan_cli.runtime.onnx_format import read_info
from ispan_cli.runtime.predictor import softmax
from ispan_cli.video.synthetic import write_synthetic_video

runner = CliRunner()


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("int8")
    calibration = root / "calibration"
    videos = [
        write_synthetic_video(calibration / f"c{i}.mp4", 1.0, 160, 128, seed=i) for i in range(5)
    ]
    out = root / "model.onnx"
    result = runner.invoke(
        app,
        [
            "export",
            "--onnx",
            # the untrained placeholder: its agreement with fp32 is checked against a fixed
            # limit below; the trained demo model loses more to int8 (see the issue notes)
            "--model",
            "istpan-tiny-placeholder",
            "-o",
            str(out),
            "--int8",
            "--calibration",
            str(calibration),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    return {"report": json.loads(result.stdout), "fp32": out, "videos": videos}


def test_int8_file_is_quantized_and_self_describing(int8_export):
    report = int8_export["report"]["int8"]
    path = int8_export["fp32"].with_name("model.int8.onnx")
    assert report["path"] == str(path)
    model = onnx.load(str(path))
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 10  # the convolutions' weights (and their zero points)
    # 8-bit weights, except the last convolution's (about half of this tiny model's), kept float
    assert path.stat().st_size < 0.75 * int8_export["fp32"].stat().st_size
    float_convs = [
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and not n.input[1].endswith("_DequantizeLinear_Output")
    ]
    assert float_convs == last_convolutions(model)
    info = read_info(path)
    assert info.precision == "int8" and info.extra["int8"] == {
        k: v for k, v in report.items() if k not in ("path", "size_bytes")
    }
    assert info.labels == read_info(int8_export["fp32"]).labels


def test_agreement_report_matches_an_independent_run(int8_export):
    report = int8_export["report"]["int8"]
    # 5 videos: every 5th (the last) is held out, the other 4 calibrate
    assert report["calibration_clips"] == 4 and report["validation_clips"] == 1
    assert report["validation_source"] == "held-out"
    fp32 = OnnxPredictor(int8_export["fp32"], device="cpu")
    int8 = OnnxPredictor(int8_export["fp32"].with_name("model.int8.onnx"), device="cpu")
    assert int8.precision == "int8"
    from ispan_cli.video.clip import load_clip

    clip = load_clip(str(int8_export["videos"][4]), 8, fp32.preprocessing, "auto").data
    a, b = softmax(fp32.logits(clip)), softmax(int8.logits(clip))
    got = report["agreement"]
    assert got["max_abs_prob_diff"] == pytest.approx(float(np.abs(a - b).max()), abs=1e-7)
    assert got["top1_agreement"] == float(a.argmax() == b.argmax())
    assert 0 < got["max_abs_logit_diff"] < 0.1  # quantized: close, but not bit-identical


def test_int8_runs_in_classify(int8_export):
    path = int8_export["fp32"].with_name("model.int8.onnx")
    result = runner.invoke(
        app,
        [
            "classify",
            str(int8_export["videos"][0]),
            "--runtime",
            "onnx",
            "--model",
            str(path),
            "-f",
            "json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["precision"] == "int8" and record["runtime"] == "onnx"


def test_calibration_without_int8_is_a_usage_error(tmp_path):
    result = runner.invoke(
        app, ["export", "--onnx", "-o", str(tmp_path / "m.onnx"), "--calibration", str(tmp_path)]
    )
    assert result.exit_code == 2 and "--calibration needs --int8" in result.stderr


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_int8_keeps_the_trained_demo_models_predictions(tmp_path):
    """The trained demo model, calibrated on synthetic-dataset clips, against fp32 on held-out
    ones and on generated clips of another kind (video.synthetic's textures).

    Threshold: the issue's 98% top-1 agreement, so none of these 32 clips may change class, and
    a logit cosine of at least 0.99. Measured with calibration seeds 2-11 (not 4: validation):
    always 32/32 and cosine >= 0.9998; benchmarks/int8_quality.py: 200/200 synthetic validation
    clips. The previous settings quantized the classifier's input, the attention-pooled
    features, whose range on the generated clips is 3-4x the calibrated one: 69-100% (median 91%)
    over those seeds, cosine 0.94-0.97; seed 2 (used here) gives 69%, i.e. 31% disagreeing.
    """
    from ispan_cli.data.synth_writer import write_synthetic
    from ispan_cli.export.quantize import int8_agreement, load_clips, quantize_int8
    from ispan_cli.export.run import ExportOptions, run_export
    from ispan_cli.video.files import videos_in

    fp32 = run_export(
        ExportOptions(model="istpan-tiny-synthetic", output=tmp_path / "m.onnx", verify=False)
    ).path
    spec = OnnxPredictor(fp32, device="cpu").preprocessing
    # data seeds other than the model's training seed (1)
    write_synthetic(tmp_path / "calibration", 0, 12, seed=2)
    write_synthetic(tmp_path / "validation", 0, 16, seed=4)
    generated = [
        write_synthetic_video(tmp_path / "generated" / f"g{i}.mp4", 1.0, 160, 128, seed=2000 + i)
        for i in range(16)
    ]
    calibration = load_clips(videos_in(tmp_path / "calibration"), 8, spec)
    validation = load_clips([*videos_in(tmp_path / "validation"), *generated], 8, spec)
    assert len(calibration) == 12 and len(validation) == 32
    int8 = quantize_int8(fp32, tmp_path / "m.int8.onnx", calibration)
    agreement = int8_agreement(fp32, int8, validation)
    assert agreement.top1_agreement >= 0.98, agreement
    assert agreement.cosine >= 0.99, agreement


def test_a_calibration_folder_of_unreadable_videos_is_one_error_before_the_export(tmp_path):
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i in range(2):
        (folder / f"broken{i}.mp4").write_bytes(b"not a video")
    out = tmp_path / "m.onnx"
    result = runner.invoke(
        app, ["export", "--onnx", "-o", str(out), "--int8", "--calibration", str(folder)]
    )
    assert result.exit_code != 0 and result.stderr.count("error:") == 1
    message = " ".join(result.stderr.split())
    assert "no model input could be made from the 2 video(s) of --calibration" in message
    assert "broken0.mp4" in message and "Traceback" not in result.output
    assert "exporting" not in result.stderr  # refused before the export's work
    assert not out.exists()
