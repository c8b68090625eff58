"""Training a flow stream, and evaluating RGB + flow with late fusion, on real files: a folder
dataset of generated clips whose two classes differ only by motion (a texture moving right or
down), its flow extracted by `ispan flow extract --method dis`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.errors import ISpanError
from tests.flow.clips import shifted_frames, write_clip

ROOT = Path(__file__).resolve().parents[2]
CLASSES = {"down": (0, 2), "right": (2, 0)}  # (dx, dy) pixels per frame


def _ispan(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args], capture_output=True, text=True, cwd=cwd,
        timeout=600,
    )  # fmt: skip
    if check and done.returncode != 0:
        raise AssertionError(f"ispan {' '.join(args)} failed:\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def motion_data(tmp_path_factory) -> tuple[Path, Path]:
    """(data root, flow root): train/<class>/ 4 clips each, val/<class>/ 2 each, 64x48, 10
    frames; DIS flow in the rawframes layout."""
    root = tmp_path_factory.mktemp("motion")
    data = root / "data"
    seed = 0
    for subset, n in (("train", 4), ("val", 2)):
        for name, shift in CLASSES.items():
            for i in range(n):
                seed += 1
                frames = shifted_frames(10, shift=shift, seed=seed)
                write_clip(data / subset / name / f"{name}_{i}.mkv", frames)
    flow = root / "flow"
    _ispan("flow", "extract", str(data), "-o", str(flow), "--method", "dis", cwd=root)
    return data, flow


def _train(data: Path, out: Path, *extra: str, epochs: int = 1):
    from ispan_cli.engine.launch import TrainOptions, run_training

    settings = {
        "dataset": "folder", "data_root": str(data), "arch": "tsn_tiny", "pretrained": "none",
        "epochs": epochs, "batch_size": 4, "segments": 2, "input_size": 64, "workers": 0,
        "device": "cpu", "output": str(out), "precise_bn": 0,
    }  # fmt: skip
    it = iter(extra)
    settings.update(dict(zip(it, it, strict=True)))
    return run_training(TrainOptions(settings=settings))


@pytest.fixture(scope="module")
def flow_run(motion_data, tmp_path_factory) -> Path:
    data, flow = motion_data
    out = tmp_path_factory.mktemp("runs") / "flow"
    _train(data, out, "modality", "flow", "flow_root", str(flow), "flow_length", 2)
    return out / "best"


def test_a_flow_run_writes_a_flow_model_folder(flow_run):
    from ispan_cli.runtime.loading import load_model

    doc = json.loads((flow_run / "config.json").read_text())
    assert doc["model"]["in_channels"] == 4  # 2L, L = 2
    assert doc["flow"]["method"] == "dis" and doc["flow"]["length"] == 2
    assert doc["training"]["modality"] == "flow"
    loaded = load_model(str(flow_run), device="cpu")
    assert loaded.flow.method == "dis" and loaded.flow.channels == 4


def test_flow_clips_are_the_stacked_flow_normalised(motion_data):
    # the evaluation clip of one video, against an independent read of its JPEGs
    import cv2

    from ispan_cli.data import load_dataset
    from ispan_cli.data.clips import ClipSettings
    from ispan_cli.data.flow_clips import clips_for, spec_of_flow_root, with_flow
    from ispan_cli.video.preprocess import PreprocessSpec

    data, flow = motion_data
    split = load_dataset("folder", str(data))
    spec = spec_of_flow_root(flow, split.test, data, 2)
    assert spec.method == "dis" and spec.length == 2
    settings = with_flow(ClipSettings(2, PreprocessSpec(48, 48), False), spec, flow, data)
    clip, _, _, error = clips_for(split.test, settings)[0]
    assert error is None and clip.shape == (1, 2, 4, 48, 48)
    item = Path(split.test[0].path)
    folder = flow / item.parent.parent.name / item.parent.name / item.stem
    # 9 flows, K=2, L=2: 8 starts, centres of 2 parts -> 2 and 6 (0-based); crop 48 of 64x48
    for k, start in enumerate((2, 6)):
        for j in range(2):
            for c, axis in enumerate("xy"):
                q = cv2.imread(str(folder / f"flow_{axis}_{start + j + 1:05d}.jpg"), 0)
                expected = (q[:, 8:56].astype(np.float32) - 128) / 128
                assert np.array_equal(clip[0, k, 2 * j + c].numpy(), expected)


def test_flow_training_needs_a_flow_root(motion_data, tmp_path):
    data, _ = motion_data
    with pytest.raises(ISpanError, match="--modality flow needs --flow-root"):
        _train(data, tmp_path / "r", "modality", "flow")


def _rgb_model(folder: Path) -> Path:
    import torch

    from ispan_cli.nn import create_model, save_model
    from ispan_cli.video.preprocess import PreprocessSpec

    torch.manual_seed(5)
    model = create_model("tsn_tiny", labels=tuple(CLASSES), input_size=64, num_segments=2)
    return save_model(
        model.eval(), folder, extra={"preprocessing": PreprocessSpec(73, 64).to_dict()}
    )


def test_two_stream_evaluate_reports_each_stream_and_the_fusion(motion_data, flow_run, tmp_path):
    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate
    from ispan_cli.engine.fusion import read_scores

    data, flow = motion_data
    rgb = _rgb_model(tmp_path / "rgb")
    out = tmp_path / "eval"
    options = EvaluateOptions(
        "folder", str(rgb), str(data), workers=0, device="cpu", output=out,
        flow_model=str(flow_run), flow_root=str(flow), fusion_weights=(1.0, 1.5),
    )  # fmt: skip
    report = evaluate(options).to_dict()
    split = report["splits"]["1"]
    assert split["videos"] == 4 and set(split["streams"]) == {"rgb", "flow"}
    assert report["streams"]["flow"]["weight"] == 1.5
    # the fused scores are 1 x rgb + 1.5 x flow of the per-stream files, video by video
    r, f, fused = (read_scores(out / kind) for kind in ("rgb", "flow", "fused"))
    assert r.videos == f.videos == fused.videos
    assert np.allclose(fused.logits, r.logits + 1.5 * f.logits, atol=1e-5)
    top1 = float(np.mean(fused.logits.argmax(1) == fused.labels))
    assert split["top1"] == pytest.approx(top1)
    for kind, s in (("rgb", r), ("flow", f)):
        assert split["streams"][kind]["top1"] == pytest.approx(
            float(np.mean(s.logits.argmax(1) == s.labels))
        )


def test_flow_made_another_way_is_refused(motion_data, flow_run, tmp_path):
    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate

    data, flow = motion_data
    # the same folders, but the records say TV-L1 at bound 15
    other = tmp_path / "other"
    import shutil

    shutil.copytree(flow, other)
    for record in other.rglob("flow.json"):
        doc = json.loads(record.read_text())
        doc["spec"].update(method="tvl1", bound=15.0)
        record.write_text(json.dumps(doc))
    options = EvaluateOptions(
        "folder", str(flow_run), str(data), workers=0, device="cpu", flow_root=str(other)
    )
    with pytest.raises(ISpanError) as err:
        evaluate(options)
    message = str(err.value)
    assert "\n" not in message and "method tvl1 (the model's: dis)" in message
    assert "bound 15" in message and "ispan flow extract --method dis --bound 20" in message


def test_two_stream_usage_mistakes(motion_data, flow_run, tmp_path):
    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate

    data, flow = motion_data
    rgb = _rgb_model(tmp_path / "rgb")
    base = {"dataset": "folder", "data_root": str(data), "workers": 0, "device": "cpu"}
    for changes, match in [
        ({"model": str(rgb), "flow_model": str(flow_run)}, "give --flow-root"),
        ({"model": str(flow_run), "flow_model": str(flow_run), "flow_root": str(flow)},
         "is a flow model; give the RGB stream as --model"),
        ({"model": str(rgb), "flow_model": str(rgb), "flow_root": str(flow)}, "is an RGB model"),
        ({"model": str(rgb), "flow_model": str(flow_run), "flow_root": str(flow),
          "fusion_weights": (1.0,)}, "--fusion-weights: 1 weight"),
    ]:  # fmt: skip
        with pytest.raises(ISpanError, match=match):
            evaluate(EvaluateOptions(**{**base, **changes}))


@pytest.mark.slow
def test_flow_alone_learns_the_synthetic_motion_classes(tmp_path):
    # the synthetic dataset's classes differ by shape and motion; flow sees only the motion,
    # and should beat chance (1/5) clearly
    _ispan("data", "synth", "--out", "synth", "--train", "100", "--val", "40", cwd=tmp_path)
    _ispan("flow", "extract", "synth", "-o", "flow", "--method", "dis", "--workers", "2",
           cwd=tmp_path)  # fmt: skip
    _ispan("train", "--dataset", "folder", "--data-root", "synth", "--modality", "flow",
           "--flow-root", "flow", "--arch", "tsn_tiny", "--pretrained", "none", "--epochs", "6",
           "--batch-size", "10", "--segments", "3", "--workers", "0", "--device", "cpu",
           "--output", "run", "--quiet", cwd=tmp_path)  # fmt: skip
    doc = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert doc["model"]["in_channels"] == 10 and doc["flow"]["method"] == "dis"
    assert doc["metrics"]["top1"] >= 0.5, doc["metrics"]


def test_classify_computes_the_flow_the_model_was_trained_on(motion_data, flow_run, tmp_path):
    # the on-the-fly flow stack equals the extracted JPEGs as evaluation reads them, and the
    # record's scores are each stream's probabilities and their weighted mean
    import torch

    from ispan_cli.data import load_dataset
    from ispan_cli.data.clips import ClipSettings
    from ispan_cli.data.flow_clips import clips_for, with_flow
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions
    from ispan_cli.inference.two_stream import load_flow_clip, run_two_stream, two_stream
    from ispan_cli.runtime.loading import load_model

    data, flow = motion_data
    flow_loaded = load_model(str(flow_run), device="cpu")
    spec, pre = flow_loaded.flow, flow_loaded.preprocessing
    split = load_dataset("folder", str(data))
    video = split.test[0].path
    live = load_flow_clip(video, 2, spec, pre.crop, pre.resize)
    settings = with_flow(ClipSettings(2, pre, False), spec, flow, data)
    offline, _, _, error = clips_for(split.test, settings)[0]
    assert error is None and np.array_equal(live.data, offline.numpy())

    rgb = load_model(str(_rgb_model(tmp_path / "rgb")), device="cpu").predictor()
    streams = two_stream(rgb, flow_loaded.predictor(), spec, (1.0, 1.5))
    (record,) = run_two_stream(rgb, streams, [InputItem(video)], ClassifyOptions(2, topk=2))
    with torch.no_grad():
        p_flow = flow_loaded.model(offline).softmax(-1)[0].numpy()
    by_label = {e["label"]: e["score"] for e in record["streams"]["flow"]["topk"]}
    assert np.allclose([by_label[c] for c in CLASSES], p_flow, atol=1e-5)
    p_rgb = {e["label"]: e["score"] for e in record["streams"]["rgb"]["topk"]}
    for entry in record["topk"]:
        name = entry["label"]
        assert entry["score"] == pytest.approx((p_rgb[name] + 1.5 * by_label[name]) / 2.5)
    assert record["settings"]["flow_model"] == str(flow_run)
    assert record["streams"]["flow"]["flow"]["starts"] == [2, 6]


def test_classify_two_stream_mistakes(flow_run, tmp_path):
    from ispan_cli.inference.two_stream import load_two_stream, two_stream
    from ispan_cli.runtime.loading import load_model

    rgb = load_model(str(_rgb_model(tmp_path / "rgb")), device="cpu").predictor()
    flow = load_model(str(flow_run), device="cpu")
    with pytest.raises(ISpanError, match="is an RGB model"):
        two_stream(rgb, rgb, None, (1, 1))
    with pytest.raises(ISpanError, match="two finite, non-negative weights"):
        two_stream(rgb, flow.predictor(), flow.flow, (1, -1))
    with pytest.raises(ISpanError, match="drop --window"):
        load_two_stream(rgb, str(flow_run), "1,1.5", 2.0)
    with pytest.raises(ISpanError, match="give two numbers"):
        load_two_stream(rgb, str(flow_run), "1,x", None)


@pytest.mark.slow  # two fresh interpreters load torch
def test_the_cli_runs_both_streams(motion_data, flow_run, tmp_path):
    data, flow = motion_data
    rgb = _rgb_model(tmp_path / "rgb")
    done = _ispan("evaluate", "--dataset", "folder", "--data-root", str(data), "--model",
                  str(rgb), "--flow-model", str(flow_run), "--flow-root", str(flow),
                  "--fusion-weights", "1,1.5", "--workers", "0", "--format", "json",
                  "--output", str(tmp_path / "eval"), cwd=tmp_path)  # fmt: skip
    report = json.loads(done.stdout)
    assert set(report["splits"]["1"]["streams"]) == {"rgb", "flow"}
    assert (tmp_path / "eval" / "fused" / "video_scores.jsonl").is_file()
    video = next((data / "val" / "right").iterdir())
    done = _ispan("classify", str(video), "--model", str(rgb), "--flow-model", str(flow_run),
                  "--format", "jsonl", cwd=tmp_path)  # fmt: skip
    record = json.loads(done.stdout)
    assert set(record["streams"]) == {"rgb", "flow"} and len(record["topk"]) == 2
    bad = _ispan("classify", str(video), "--model", str(rgb), "--flow-model", str(rgb),
                 cwd=tmp_path, check=False)  # fmt: skip
    assert bad.returncode != 0 and bad.stderr.count("error:") == 1 and "Traceback" not in bad.stderr
    alone = _ispan("classify", str(video), "--model", str(flow_run), cwd=tmp_path, check=False)
    assert alone.returncode != 0 and "is a flow model; classify with an RGB --model" in alone.stderr


def test_flow_without_records_is_taken_as_it_is(motion_data, flow_run, tmp_path):
    # the shared archives have no flow.json: nothing to check, the flow is read and scored
    import shutil

    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate

    data, flow = motion_data
    bare = tmp_path / "bare"
    shutil.copytree(flow, bare)
    for record in bare.rglob("flow.json"):
        record.unlink()
    options = EvaluateOptions(
        "folder", str(flow_run), str(data), workers=0, device="cpu", flow_root=str(bare)
    )
    assert evaluate(options).to_dict()["splits"]["1"]["videos"] == 4


def test_a_video_that_fails_is_one_record_and_the_job_goes_on(motion_data, flow_run, tmp_path):
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions
    from ispan_cli.inference.two_stream import run_two_stream, two_stream
    from ispan_cli.runtime.loading import load_model

    data, _ = motion_data
    rgb = load_model(str(_rgb_model(tmp_path / "rgb")), device="cpu").predictor()
    flow = load_model(str(flow_run), device="cpu")
    streams = two_stream(rgb, flow.predictor(), flow.flow, (1.0, 1.5))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    good = str(next((data / "val" / "down").iterdir()))
    items = [InputItem(str(broken)), InputItem(good)]
    records = list(run_two_stream(rgb, streams, items, ClassifyOptions(2, topk=1)))
    assert records[0]["error"] and "broken.mp4" in records[0]["error"] and not records[0]["topk"]
    assert records[1]["error"] is None and len(records[1]["topk"]) == 1


def test_visualize_shows_a_flow_streams_attention_over_its_stacks(motion_data, tmp_path):
    import torch

    from ispan_cli.inference.two_stream import load_flow_clip
    from ispan_cli.nn import create_model, save_model
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.video.flow_spec import FlowSpec
    from ispan_cli.video.preprocess import PreprocessSpec
    from ispan_cli.viz.maps import attention_mass
    from ispan_cli.viz.run import VisualizeOptions, run_visualize
    from ispan_cli.viz.runner import load_runner

    data, _ = motion_data
    torch.manual_seed(2)
    model = create_model("istpan_tiny", labels=tuple(CLASSES), modality="flow", flow_length=2,
                         input_size=64, num_segments=2)  # fmt: skip
    spec = FlowSpec("dis", 20.0, length=2)
    extra = {"flow": spec.to_dict(), "preprocessing": PreprocessSpec(73, 64).to_dict()}
    folder = save_model(model.eval(), tmp_path / "flow_istpan", extra=extra)
    video = next((data / "val" / "right").iterdir())
    maps = tmp_path / "maps.npz"
    result = run_visualize(
        load_runner(str(folder), device="cpu"),
        VisualizeOptions(video, tmp_path / "out.mp4", maps_out=maps, short_side=None),
    )
    assert result.frames == 2 and result.views[0].frame_indices == [2, 6]  # the stacks' starts
    saved = np.load(maps)
    clip = load_flow_clip(str(video), 2, spec, 64, 73)
    with torch.no_grad():
        _, expected = load_model(str(folder), device="cpu").model.forward_with_attention(
            torch.from_numpy(clip.data)
        )
    assert np.allclose(saved["fused"], attention_mass(expected.fused.numpy())[0], atol=1e-5)


@pytest.mark.parametrize("method", ["dis", "tvl1"])
def test_one_flow_method_serves_every_video_of_a_run(motion_data, tmp_path, monkeypatch, method):
    # the method is made once per run, not per video (RAFT reloaded its weights for each), and
    # the records are those of a method made for each video alone: no state carries over
    import torch

    import ispan_cli.flow.methods as methods
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions
    from ispan_cli.inference.two_stream import load_flow_clip, run_two_stream, two_stream
    from ispan_cli.nn import create_model, save_model
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.video.flow_spec import FlowSpec
    from ispan_cli.video.preprocess import PreprocessSpec

    data, _ = motion_data
    videos = sorted(str(p) for p in (data / "val").rglob("*.mkv"))  # both motions, 2 each
    assert len(videos) == 4
    torch.manual_seed(3)
    model = create_model("tsn_tiny", labels=tuple(CLASSES), modality="flow", flow_length=2,
                         input_size=64, num_segments=2)  # fmt: skip
    spec = FlowSpec(method, 20.0, length=2)
    extra = {"flow": spec.to_dict(), "preprocessing": PreprocessSpec(73, 64).to_dict()}
    flow = load_model(str(save_model(model.eval(), tmp_path / "flow", extra=extra)), device="cpu")
    expected = []
    for video in videos:  # a method made per call, scored by the PyTorch model directly
        clip = load_flow_clip(video, 2, spec, 64, 73)
        with torch.no_grad():
            expected.append(flow.model(torch.from_numpy(clip.data)).softmax(-1)[0].numpy())

    made: list[tuple[str, str]] = []
    real = methods.create_method

    def counted(name: str, device: str = "auto"):
        made.append((name, device))
        return real(name, device)

    monkeypatch.setattr(methods, "create_method", counted)
    rgb = load_model(str(_rgb_model(tmp_path / "rgb")), device="cpu").predictor()
    streams = two_stream(rgb, flow.predictor(), spec, (1.0, 1.5))
    items = [InputItem(v) for v in videos]
    records = list(run_two_stream(rgb, streams, items, ClassifyOptions(2, topk=2)))
    assert made == [(method, "auto")]
    for record, p_flow in zip(records, expected, strict=True):
        assert record["error"] is None
        by_label = {e["label"]: e["score"] for e in record["streams"]["flow"]["topk"]}
        assert np.allclose([by_label[c] for c in CLASSES], p_flow, rtol=0, atol=1e-6)


def test_int8_calibration_makes_one_flow_method_for_all_its_clips(motion_data, monkeypatch):
    # export --int8 and benchmark --int8 of a flow model: one method for the calibration set
    import ispan_cli.flow.methods as methods
    from ispan_cli.export.quantize import model_inputs
    from ispan_cli.inference.two_stream import load_flow_clip
    from ispan_cli.video.flow_spec import FlowSpec
    from ispan_cli.video.preprocess import PreprocessSpec

    data, _ = motion_data
    videos = sorted(str(p) for p in (data / "val").rglob("*.mkv"))
    spec = FlowSpec("dis", 20.0, length=2)
    made: list[str] = []
    real = methods.create_method

    def counted(name: str, device: str = "auto"):
        made.append(name)
        return real(name, device)

    monkeypatch.setattr(methods, "create_method", counted)
    inputs = model_inputs(videos, 2, PreprocessSpec(73, 64), "auto", flow=spec)
    assert made == ["dis"]
    monkeypatch.setattr(methods, "create_method", real)
    for got, video in zip(inputs.clips, videos, strict=True):  # as a method made per video
        assert np.array_equal(got, load_flow_clip(video, 2, spec, 64, 73).data)
