"""`ispan classify --model org/name@rev` end to end against the real local Hub server."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from ispan_cli.video import TSNSampler, sample_video
from ispan_cli.video.preprocess import PreprocessSpec, preprocess
from tests.video.videogen import write_pattern_video


def test_classify_with_a_pinned_hub_revision(hub_server, tmp_path):
    video = write_pattern_video(tmp_path / "clip.mp4", "libx264", 30, width=170, height=128)
    env = hub_server.clean_env(tmp_path / "hf")
    outputs = {}
    for ref in ("v1", "main"):
        done = subprocess.run(
            [sys.executable, "-m", "ispan_cli", "classify", str(video), "--model",
             f"acme/tiny@{ref}", "-k", "3", "-q"],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        (record,) = [json.loads(line) for line in done.stdout.splitlines()]  # piped: jsonl
        outputs[ref] = record
        assert record["model"]["id"] == "acme/tiny"
        assert record["model"]["source"] == "hub"
        assert record["model"]["revision"] == hub_server.commits[f"tiny@{ref}"]
        # independent: the saved model of that revision on the same frames
        spec = PreprocessSpec(resize=128, crop=112)
        frames = sample_video(video, TSNSampler(8), short_side=128).frames[0]
        with torch.no_grad():
            probs = hub_server.models[f"tiny@{ref}"](torch.from_numpy(preprocess(frames, spec)))
        probs = probs.softmax(-1)[0].numpy()
        top = np.argsort(-probs)[:3]
        assert [t["label"] for t in record["topk"]] == [["walk", "run", "jump"][i] for i in top]
        np.testing.assert_allclose([t["score"] for t in record["topk"]], probs[top], atol=1e-5)
    assert outputs["v1"]["model"]["sha256"] != outputs["main"]["model"]["sha256"]
