"""ONNX export of the bundled model: parity with PyTorch, metadata, verification, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.errors import ISpanError
from ispan_cli.export.verify import verify_export
from ispan_cli.model_folder import sha256_file
from ispan_cli.nn import load_model, read_config
from ispan_cli.runtime.onnx import CPU, OnnxPredictor
from ispan_cli.runtime.onnx_format import read_info
from ispan_cli.video import TSNSampler, preprocess, sample_video, spec_from_config
from tests.export.conftest import DEFAULT_DIR, MODEL

runner = CliRunner()


def _real_clips(videos, k: int) -> np.ndarray:
    """(2 videos, K, 3, S, S) from real decoded frames, preprocessed the one way."""
    config, doc = read_config(DEFAULT_DIR)
    spec = spec_from_config(config, doc)
    clips = []
    for path in videos:
        sampled = sample_video(path, TSNSampler(k), "pyav", short_side=spec.resize)
        clips.append(preprocess(sampled.frames[0], spec)[0])
    return np.stack(clips)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("k", [3, 8])
def test_logits_match_pytorch_for_dynamic_batch_and_segments(exported, export_videos, batch, k):
    clips = _real_clips(export_videos, k)
    x = np.concatenate([clips, clips[::-1]])[:batch]  # batch of real clips (1 or 3)
    model = load_model(DEFAULT_DIR)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = OnnxPredictor(exported["plain"], device="cpu").logits(x)
    assert got.shape == (batch, 5)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)  # logits reach ~50


@pytest.mark.parametrize(("batch", "k"), [(1, 3), (3, 8)])
def test_attention_outputs_match_forward_with_attention(exported, export_videos, batch, k):
    clips = _real_clips(export_videos, k)
    x = np.concatenate([clips, clips])[:batch]
    with torch.no_grad():
        logits, maps = load_model(DEFAULT_DIR).forward_with_attention(torch.from_numpy(x))
    predictor = OnnxPredictor(exported["attention"], device="cpu")
    got_logits, fused, levels = predictor.logits_with_attention(x)
    np.testing.assert_allclose(got_logits, logits.numpy(), atol=1e-4, rtol=1e-5)
    assert fused.shape == (batch, 49, k, 7, 7)
    np.testing.assert_allclose(fused, maps.fused.numpy(), atol=1e-6, rtol=0)
    assert len(levels) == len(maps.levels) == 3
    for got, want in zip(levels, maps.levels, strict=True):
        np.testing.assert_allclose(got, want.numpy(), atol=1e-6, rtol=0)


def test_plain_export_has_no_attention_outputs(exported):
    predictor = OnnxPredictor(exported["plain"], device="cpu")
    assert [o.name for o in predictor.session.get_outputs()] == ["logits"]
    with pytest.raises(ISpanError, match="--with-attention"):
        predictor.logits_with_attention(np.zeros((1, 2, 3, 112, 112), np.float32))


def test_metadata_round_trip(exported):
    config, doc = read_config(DEFAULT_DIR)
    info = read_info(exported["attention"])
    assert info.config == json.loads((DEFAULT_DIR / "config.json").read_text())
    assert info.labels == config.labels
    assert info.weights_sha256 == sha256_file(DEFAULT_DIR / "model.safetensors")
    assert info.model_id == "istpan-tiny-placeholder" and info.source == "zoo"
    # the one sampling vocabulary (SamplingSpec); the older "tsn-centre" still reads back
    assert info.sampling == {"method": "tsn", "segments": 8, "test": "centre", "train": "random"}
    assert info.outputs == (
        "logits",
        "attention_fused",
        *(f"attention_level_{j}" for j in range(3)),
    )
    assert info.precision == "fp32" and info.opset == 18
    predictor = OnnxPredictor(exported["attention"], device="cpu")
    assert predictor.preprocessing == spec_from_config(config, doc)
    assert predictor.num_segments == 8 and predictor.labels == config.labels
    # the graph itself: dynamic batch and segment axes, fixed frame size, and a valid model
    model = onnx.load(str(exported["attention"]))
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "segments", 3, 112, 112]


def test_device_cpu_is_honoured_and_auto_falls_back_quietly(exported, capfd):
    assert OnnxPredictor(exported["plain"], device="cpu").provider == CPU
    auto = OnnxPredictor(exported["plain"], device="auto")
    assert auto.provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU)
    if auto.provider == CPU and not torch.cuda.is_available():
        assert auto.device == "cpu"
    assert "onnxruntime" not in capfd.readouterr().err  # no provider error spam


def test_verification_catches_a_model_that_differs(exported, export_videos):
    config, doc = read_config(DEFAULT_DIR)
    model = load_model(DEFAULT_DIR)
    spec = spec_from_config(config, doc)
    report = verify_export(model, exported["plain"], export_videos[1], spec)
    assert report.passed and report.agreement.max_abs_prob_diff < 1e-6
    with torch.no_grad():
        model.fc.bias[0] += 0.01  # shifts class 0's probability by about 2e-3: far above 1e-4
    report = verify_export(model, exported["plain"], export_videos[1], spec)
    assert not report.passed
    assert report.agreement.max_abs_prob_diff > 1e-3


def test_export_refuses_to_overwrite_without_force(exported, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"precious")
    args = ["export", "--onnx", "--model", MODEL, "--no-verify", "--output", str(target)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "already exists" in result.stderr and "--force" in result.stderr
    assert target.read_bytes() == b"precious"
    result = runner.invoke(app, [*args, "--force", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verify"] is None
    assert read_info(target).model_id == "istpan-tiny-placeholder"


def test_export_command_reports_the_verification(tmp_path, export_videos):
    out = tmp_path / "cli.onnx"
    args = [
        "export",
        "--onnx",
        "--model",
        MODEL,
        "-o",
        str(out),
        "--verify-video",
        str(export_videos[0]),
    ]
    result = runner.invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["path"] == str(out) and out.is_file()
    verify = report["verify"]
    assert verify["passed"] is True and verify["video"] == str(export_videos[0])
    assert verify["agreement"]["clips"] == 3  # three crops: a batch of 3 real views
    assert verify["agreement"]["top1_agreement"] == 1.0
    assert len(verify["frame_indices"]) == 8


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x08\x07garbage that is not protobuf \xff\xfe", "not a readable ONNX model"),
        ("half", "not a readable ONNX model"),
    ],
)
def test_corrupt_onnx_gives_one_clear_line(exported, export_videos, tmp_path, content, message):
    bad = tmp_path / "bad.onnx"
    data = exported["plain"].read_bytes()
    bad.write_bytes(data[: len(data) // 2] if content == "half" else content)
    result = runner.invoke(
        app, ["classify", str(export_videos[0]), "--runtime", "onnx", "--model", str(bad)]
    )
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert str(bad) in lines[0]


def test_onnx_without_ispan_metadata_is_refused(exported, export_videos, tmp_path):
    model = onnx.load(str(exported["plain"]))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    result = runner.invoke(
        app, ["classify", str(export_videos[0]), "--runtime", "onnx", "--model", str(foreign)]
    )
    assert result.exit_code == 1
    assert "not one exported by `ispan export`" in result.stderr


def test_runtime_onnx_on_a_folder_without_model_onnx_says_how_to_make_one(export_videos):
    result = runner.invoke(app, ["classify", str(export_videos[0]), "--runtime", "onnx"])
    assert result.exit_code == 1
    assert "has no model.onnx" in result.stderr and "ispan export --onnx" in result.stderr


def test_the_onnx_path_runs_without_torch(exported, export_videos):
    """Deployments may lack torch: loading, preprocessing and predicting must not import it."""
    code = (
        "import sys\n"
        "from ispan_cli.video.clip import load_clip\n"
        "from ispan_cli.runtime.loading import load_predictor\n"
        f"p = load_predictor({str(exported['plain'])!r}, 'onnx', 'cpu')\n"
        f"clip = load_clip({str(export_videos[0])!r}, 8, p.preprocessing, 'pyav')\n"
        "probs = p.predict(clip.data[None])\n"
        "assert probs.shape == (1, 5) and abs(probs.sum() - 1) < 1e-5\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'onnx') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_onnx_path_with_a_zoo_name_runs_without_torch(exported, export_videos, tmp_path):
    """The same promise through the zoo: a name resolves through ispan_cli.hub, which must not
    pull torch in either (it once imported ispan_cli.nn for the weights' sha256)."""
    import shutil

    from tests.export.conftest import DEFAULT_DIR

    zoo = tmp_path / "zoo"
    shutil.copytree(DEFAULT_DIR, zoo / "onnx-model")  # a model folder that also holds its ONNX
    shutil.copyfile(exported["plain"], zoo / "onnx-model" / "model.onnx")
    code = (
        "import sys\n"
        "from ispan_cli.video.clip import load_clip\n"
        "from ispan_cli.runtime.loading import load_predictor\n"
        "p = load_predictor('onnx-model', 'onnx', 'cpu')\n"
        f"clip = load_clip({str(export_videos[0])!r}, 8, p.preprocessing, 'pyav')\n"
        "probs = p.predict(clip.data[None])\n"
        "assert probs.shape == (1, 5) and abs(probs.sum() - 1) < 1e-5\n"
        "assert (p.identity.id, p.identity.source) == ('onnx-model', 'zoo'), p.identity\n"
        "print(sorted(m for m in ('torch', 'torchvision', 'onnx') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, "ISPAN_MODELS_DIR": str(zoo)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_failed_verification_keeps_the_previous_file(exported, export_videos, tmp_path):
    """--force whose verification fails used to delete the previous good file; a bad
    verification video left the unverified file under the final name."""
    import shutil

    from ispan_cli.errors import ISpanError
    from ispan_cli.export.run import ExportOptions, run_export

    good = tmp_path / "model.onnx"
    shutil.copyfile(exported["plain"], good)
    before = good.read_bytes()
    # a tolerance nothing meets: verification fails whatever the numbers
    options = ExportOptions(model=MODEL, output=good, force=True, tolerance=-1.0,
                            verify_video=export_videos[0])  # fmt: skip
    with pytest.raises(ISpanError, match=r"verification failed.*was not written"):
        run_export(options)
    assert good.read_bytes() == before
    bad_video = tmp_path / "bad.mp4"
    bad_video.write_text("not a video")
    fresh = tmp_path / "fresh.onnx"
    result = runner.invoke(app, ["export", "--onnx", "--model", MODEL, "-o", str(fresh),
                                 "--verify-video", str(bad_video)])  # fmt: skip
    assert result.exit_code != 0 and "error:" in result.stderr
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mp4", "model.onnx"]  # no leftovers
