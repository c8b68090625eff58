"""Hostile or broken ONNX files (issue 13): malformed ispan metadata, a graph of the wrong rank,
more or fewer classes than labels. Each is one ``error:`` line (or, where the graph fails on the
clips themselves, one error record per input while the job carries on), never "a bug in ispan".

The files are tiny graphs built here with the ``onnx`` helper API: the mean of each segment's
pixels times a (K, classes) matrix, so the scores of the control file can be computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.identity import ModelIdentity
from ispan_cli.runtime.onnx_format import PREFIX, OnnxModelInfo
from ispan_cli.zoo import zoo_dir

VIDEO = Path(__file__).parent.parent / "samples" / "demo.mp4"
DOC = json.loads((zoo_dir() / "istpan-tiny-synthetic" / "config.json").read_text())
CLASSES = len(DOC["model"]["labels"])  # 5
K = DOC["model"]["num_segments"]  # 8
CROP = DOC["preprocessing"]["crop"]  # 112


def _weights(k: int, classes: int) -> np.ndarray:
    return np.arange(k * classes, dtype=np.float32).reshape(k, classes) / (k * classes)


def tiny_onnx(
    path: Path,
    *,
    input_shape=("N", K, 3, CROP, CROP),
    classes: int | str = CLASSES,
    weight_classes: int = CLASSES,
    outputs: tuple[str, ...] = ("logits",),
    props: dict[str, str | None] | None = None,
    input_name: str = "clips",
    per_segment: bool = False,
) -> Path:
    """logits = mean over (C, H, W) of each segment, times a (K, classes) matrix; per_segment:
    the K means themselves (a class axis as wide as the clips' K, unknown until run time)."""
    rank = len(input_shape)
    k = input_shape[1] if isinstance(input_shape[1], int) else K
    if rank != 5:  # a classifier of single images (N, C, H, W): rows are channels
        k = input_shape[1]
    w = numpy_helper.from_array(_weights(k, weight_classes), "w")
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["m"], axes=list(range(2, rank)), keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["logits"]),
    ]
    if per_segment:
        nodes[0].output[0] = "logits"
        nodes.pop()
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    info = OnnxModelInfo(
        config=DOC,
        identity=ModelIdentity("tiny", None, "0" * 64, "file"),
        outputs=outputs,
        precision="fp32",
        sampling={},
        opset=17,
    )
    entries = {**info.to_props(), **(props or {})}
    for key, value in entries.items():
        if value is not None:  # None: leave the entry out
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def _classify(model: Path, *videos: Path):
    args = ["classify", *map(str, videos or (VIDEO,)), "--runtime", "onnx", "--model", str(model)]
    return CliRunner().invoke(app, [*args, "-f", "jsonl", "--quiet"])


def _one_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert result.stdout.strip() == ""
    return lines[0]


def test_the_control_file_classifies_as_computed_by_hand(tmp_path):
    from ispan_cli.video import TSNSampler, preprocess, sample_video
    from ispan_cli.video.preprocess import PreprocessSpec

    result = _classify(tiny_onnx(tmp_path / "ok.onnx"))
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    spec = PreprocessSpec.from_dict(DOC["preprocessing"])
    frames = sample_video(VIDEO, TSNSampler(K), short_side=spec.resize).frames[0]
    x = preprocess(frames, spec)[0]  # (K, 3, S, S)
    logits = x.mean(axis=(1, 2, 3)) @ _weights(K, CLASSES)
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    best = int(np.argmax(probs))
    assert record["topk"][0]["index"] == best
    assert record["topk"][0]["label"] == DOC["model"]["labels"][best]
    assert record["topk"][0]["score"] == pytest.approx(float(probs[best]), abs=1e-4)


METADATA = [
    ({f"{PREFIX}config": "{not json"}, "ispan.config is not valid JSON"),
    ({f"{PREFIX}config": "[1, 2]"}, "ispan.config must be a JSON object"),
    ({f"{PREFIX}config": '{"format": "ispan"}'}, 'ispan.config has no "model" object'),
    ({f"{PREFIX}config": None}, "the entry ispan.config is missing"),
    ({f"{PREFIX}outputs": None}, "the entry ispan.outputs is missing"),
    ({f"{PREFIX}model_id": None}, "the entry ispan.model_id is missing"),
    ({f"{PREFIX}outputs": '"logits"'}, "ispan.outputs must be a JSON array"),
    ({f"{PREFIX}outputs": "[]"}, 'ispan.outputs must be a list of names starting with "logits"'),
    ({f"{PREFIX}format_version": "one"}, "ispan.format_version must be a whole number"),
    ({f"{PREFIX}opset": "x"}, "ispan.opset must be a whole number"),
    ({f"{PREFIX}precision": "fp64"}, "ispan.precision must be one of fp32, int8"),
    ({f"{PREFIX}sampling": "[]"}, "ispan.sampling must be a JSON object"),
    ({f"{PREFIX}extra": "{"}, "ispan.extra is not valid JSON"),
]


def _config_with(section: str, **changes) -> str:
    doc = json.loads(json.dumps(DOC))
    doc[section].update(changes)
    return json.dumps(doc)


METADATA += [
    ({f"{PREFIX}config": _config_with("model", labels=[1, 2, 3, 4, 5])}, "labels must be a list"),
    ({f"{PREFIX}config": _config_with("model", num_segments=10**18)}, "model num_segments must"),
    ({f"{PREFIX}config": _config_with("model", num_segments="8")}, "model num_segments must"),
    ({f"{PREFIX}config": _config_with("model", input_size=-1)}, "model input_size must"),
    ({f"{PREFIX}config": _config_with("model", num_classes=4)}, "5 labels for num_classes=4"),
    (
        {f"{PREFIX}config": _config_with("preprocessing", std=[float("nan")] * 3)},
        "preprocessing std must be 3 finite numbers",
    ),
    (
        {f"{PREFIX}config": _config_with("preprocessing", resize=40000)},
        "preprocessing resize must be a whole number of pixels in [1, 2048]",
    ),
]


@pytest.mark.parametrize(("props", "message"), METADATA, ids=[m for _, m in METADATA])
def test_malformed_metadata_is_one_error_line(tmp_path, props, message):
    line = _one_error(_classify(tiny_onnx(tmp_path / "bad.onnx", props=props)))
    assert message in line, line


GRAPHS = [
    ({"input_shape": ("N", 3, CROP, CROP)}, "has rank 4"),
    ({"input_shape": ("N", K, 3, 64, 64)}, "its preprocessing crops 112x112"),
    ({"input_name": "video"}, "takes the input(s) ['video']"),
    ({"classes": 7, "weight_classes": 7}, "scores 7 classes but its metadata has 5 labels"),
    ({"classes": 3, "weight_classes": 3}, "scores 3 classes but its metadata has 5 labels"),
    ({"outputs": ("logits", "attention_fused")}, "lists output(s) ['attention_fused']"),
]


@pytest.mark.parametrize(("kwargs", "message"), GRAPHS, ids=[m for _, m in GRAPHS])
def test_a_graph_that_does_not_fit_is_refused_before_any_video(tmp_path, kwargs, message):
    line = _one_error(_classify(tiny_onnx(tmp_path / "bad.onnx", **kwargs)))
    assert message in line, line


def _records(result) -> list[dict]:
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_clips_the_graph_refuses_give_one_record_per_input(tmp_path):
    # a graph fixed to K=4 passes the load checks (K is not recorded as fixed) but ONNX
    # Runtime refuses the 8-segment clips: every input gets its error record, none is lost
    model = tiny_onnx(tmp_path / "k4.onnx", input_shape=("N", 4, 3, CROP, CROP))
    copy = tmp_path / "again.mp4"
    copy.write_bytes(VIDEO.read_bytes())
    result = _classify(model, VIDEO, copy)
    records = _records(result)
    assert result.exit_code != 0
    assert [r["input"] for r in records] == [str(VIDEO), str(copy)]
    for record in records:
        assert "ONNX Runtime cannot run" in record["error"]
        assert "Got: 8 Expected: 4" in record["error"]


def test_logits_of_the_wrong_width_at_run_time_are_an_error_record(tmp_path):
    # the class axis is the clips' K (symbolic in the graph): only the run shows 8 scores for
    # 5 labels
    model = tiny_onnx(
        tmp_path / "dyn.onnx", input_shape=("N", "K", 3, CROP, CROP), per_segment=True
    )
    records = _records(_classify(model))
    assert len(records) == 1 and "returned logits shaped [1, 8]" in records[0]["error"]
