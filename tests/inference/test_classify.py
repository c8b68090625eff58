"""`ispan classify` end to end on real encoded videos with the bundled default model."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.model_folder import sha256_file
from ispan_cli.nn import load_model, read_config
from ispan_cli.video.preprocess import preprocess, spec_from_config
from ispan_cli.zoo import DEFAULT_MODEL, zoo_dir
from tests.inference.schema import check_record
from tests.video.videogen import write_pattern_video

runner = CliRunner()
DEFAULT_DIR = zoo_dir() / DEFAULT_MODEL
LABELS = set(read_config(DEFAULT_DIR)[0].labels)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    # short side 128 = the default model's resize: no scaling, so an independent decode sees
    # exactly the pixels the pipeline sees
    paths = [
        write_pattern_video(root / f"clip{i}.mp4", "libx264", n, width=170, height=128)
        for i, n in enumerate([40, 57, 90])
    ]
    short = write_pattern_video(root / "short.mp4", "libx264", 3, width=170, height=128)
    bad = root / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    return {"good": paths, "short": short, "bad": bad, "root": root}


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _reference_probs(path: Path, segments: int) -> tuple[list[int], np.ndarray]:
    """Independent: decode every frame with PyAV, pick the TSN centre frames, run the model."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    n = len(frames)
    idx = [int(n / segments * i + n / (2 * segments)) for i in range(segments)]
    config, doc = read_config(DEFAULT_DIR)
    x = torch.from_numpy(preprocess(frames[idx], spec_from_config(config, doc)))
    with torch.no_grad():
        probs = load_model(DEFAULT_DIR)(x).softmax(-1)[0].numpy()
    return idx, probs


def test_records_match_an_independent_computation(videos):
    result = runner.invoke(
        app, ["classify", *map(str, videos["good"]), "--format", "jsonl", "--topk", "3", "--quiet"]
    )
    assert result.exit_code == 0, result.output
    records = _jsonl(result.stdout)
    assert [r["input"] for r in records] == [str(p) for p in videos["good"]]  # input order
    for path, rec in zip(videos["good"], records, strict=True):
        check_record(rec, topk=3, segments=8)
        idx, probs = _reference_probs(path, 8)
        assert rec["frames"]["indices"] == idx
        assert rec["frames"]["repeated"] is False
        want = np.argsort(-probs)[:3]
        assert [t["index"] for t in rec["topk"]] == want.tolist()
        np.testing.assert_allclose([t["score"] for t in rec["topk"]], probs[want], atol=1e-5)
        assert rec["model"]["id"] == DEFAULT_MODEL
        assert rec["model"]["sha256"] == sha256_file(DEFAULT_DIR / "model.safetensors")
        assert rec["topk"][0]["label"] in LABELS


def test_batch_size_and_workers_do_not_change_results(videos):
    args = ["classify", *map(str, videos["good"]), "-f", "jsonl", "-q"]
    one = _jsonl(runner.invoke(app, [*args, "--batch-size", "1", "--workers", "0"]).stdout)
    three = _jsonl(runner.invoke(app, [*args, "--batch-size", "3", "--workers", "3"]).stdout)
    for a, b in zip(one, three, strict=True):
        assert a["frames"] == b["frames"]
        np.testing.assert_allclose(
            [t["score"] for t in a["topk"]], [t["score"] for t in b["topk"]], atol=1e-6
        )


def test_bad_inputs_are_reported_and_the_job_carries_on(videos):
    inputs = [videos["good"][0], videos["bad"], videos["root"] / "missing.mp4", videos["good"][1]]
    result = runner.invoke(app, ["classify", *map(str, inputs), "-f", "jsonl"])
    assert result.exit_code == 1
    records = _jsonl(result.stdout)
    assert [r["input"] for r in records] == [str(p) for p in inputs]
    assert [r["error"] is None for r in records] == [True, False, False, True]
    for rec in records:
        check_record(rec)
    stderr_lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(stderr_lines) == 2 and str(videos["bad"]) in stderr_lines[0]
    assert "Traceback" not in result.output


def test_fail_fast_stops_at_the_first_failure(videos):
    inputs = [videos["bad"], *videos["good"]]
    result = runner.invoke(
        app,
        ["classify", *map(str, inputs), "-f", "jsonl", "-q", "--fail-fast", "--batch-size", "1"],
    )
    assert result.exit_code == 1
    records = _jsonl(result.stdout)
    assert len(records) == 1 and records[0]["error"]


def test_short_video_repeats_frames_and_says_so(videos):
    result = runner.invoke(app, ["classify", str(videos["short"]), "-f", "json", "-q"])
    assert result.exit_code == 0, result.output
    (rec,) = json.loads(result.stdout)
    check_record(rec, segments=8)
    assert rec["frames"]["repeated"] is True
    assert sorted(set(rec["frames"]["indices"])) == [0, 1, 2]


def test_folder_glob_and_stdin_inputs(videos):
    root = videos["root"]
    by_folder = _jsonl(runner.invoke(app, ["classify", str(root), "-f", "jsonl", "-q"]).stdout)
    assert len(by_folder) == 5  # 4 .mp4 videos + broken.mp4 (which fails)
    by_glob = _jsonl(
        runner.invoke(app, ["classify", str(root / "clip*.mp4"), "-f", "jsonl", "-q"]).stdout
    )
    assert [r["input"] for r in by_glob] == [str(p) for p in videos["good"]]
    listing = "\n".join(map(str, videos["good"][:2])) + "\n"
    by_stdin = runner.invoke(app, ["classify", "-", "-f", "jsonl", "-q"], input=listing)
    assert [r["input"] for r in _jsonl(by_stdin.stdout)] == [str(p) for p in videos["good"][:2]]


def test_csv_json_table_and_output_file(videos, tmp_path):
    paths = [str(videos["good"][0]), str(videos["bad"])]
    as_csv = runner.invoke(app, ["classify", *paths, "-f", "csv", "-q", "-k", "2"])
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["input"] for r in rows] == paths
    assert rows[0]["top1_label"] in LABELS
    assert len(rows[0]["topk"].split(";")) == 2 and rows[0]["error"] == ""
    assert len(rows[0]["frame_indices"].split()) == 8 and rows[1]["error"]

    as_json = json.loads(runner.invoke(app, ["classify", *paths, "-f", "json", "-q"]).stdout)
    assert [r["input"] for r in as_json] == paths

    table = runner.invoke(app, ["classify", *paths, "-f", "table"], env={"COLUMNS": "200"})
    assert any(label in table.stdout for label in LABELS) and "error" in table.stdout
    assert DEFAULT_MODEL in table.stdout

    out = tmp_path / "result.csv"  # format from the extension
    runner.invoke(app, ["classify", *paths, "-o", str(out), "-q"])
    assert next(iter(csv.DictReader(out.open())))["input"] == paths[0]


def _cli(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        input=stdin,
        env={**os.environ},
    )


def test_piped_output_is_jsonl_with_nothing_else_on_stdout(videos):
    result = _cli("classify", str(videos["good"][0]), str(videos["bad"]))
    assert result.returncode == 1
    records = _jsonl(result.stdout)  # every stdout line parses
    assert len(records) == 2
    assert "Traceback" not in result.stderr
    assert any(line.startswith("error: ") for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--crops", "4"], "4"),
        (["--device", "cuda:7"], "--device cuda:7"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 needs a GPU"),
        (["--model", "no/such-model-here-xyz"], ""),
    ],
)
def test_usage_errors_are_one_line(videos, args, message):
    if args[:2] == ["--device", "cuda:7"] and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    env_offline = {"HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify", str(videos["good"][0]), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env_offline},
    )
    assert result.returncode in (1, 2)
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert result.stdout == ""


def test_stdin_list_through_a_real_pipe(videos):
    listing = "".join(f"{p}\n" for p in videos["good"])
    result = _cli("classify", "-", "-q", stdin=listing)
    assert result.returncode == 0, result.stderr
    assert [r["input"] for r in _jsonl(result.stdout)] == [str(p) for p in videos["good"]]
    assert result.stderr == ""  # --quiet: nothing but data
