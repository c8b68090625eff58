"""benchmarks/gpu_check.py --dry-run: the GPU validation script runs every step on the CPU, so it
cannot rot between the sessions that are lent a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # over 14 s of the default suite; -m slow runs it
def test_dry_run_runs_every_step_and_writes_the_figures(tmp_path):
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py", "--dry-run", "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == ["environment", "pytest-gpu", "doctor", "benchmark", "train", "nccl",
                           "flow"]  # fmt: skip
    failed = {k: v["note"] for k, v in steps.items() if v["status"] == "failed"}
    assert not failed and done.returncode == 0, (failed, done.stderr[-2000:])
    assert steps["nccl"]["status"] == "skipped"  # CUDA only
    bench = steps["benchmark"]["figures"]
    assert {r["runtime"] for r in bench["runtimes"]} >= {"torch", "onnx"}
    assert all(r["model_videos_per_s"] > 0 for r in bench["runtimes"])
    assert bench["decode_only_videos_per_s"] > 0
    assert steps["train"]["figures"]["results"][0]["clips_per_s"] > 0
    assert "skipped" in steps["pytest-gpu"]["figures"]["summary"]
    assert "benchmark" in done.stdout and "decode + preprocess only" in done.stdout
    flow = steps["flow"]["figures"]  # RAFT: raft_large on the CPU at a tiny size
    assert steps["flow"]["status"] == "ok" and flow["device"] == "cpu"
    assert all(r["flows_per_s"] > 0 for r in flow["sizes"].values())
    assert flow["extract"]["frames"] == 3 and flow["extract"]["frames_per_s"] > 0
    from ispan_cli.flow.methods import raft_weights_file

    weights_note = "torchvision's weights" if raft_weights_file().is_file() else "random weights"
    assert flow["weights"].startswith(weights_note)
    assert "raft_large on cpu" in done.stdout and "flow extract --method raft" in done.stdout


def test_bad_step_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    def broken(ctx):
        raise RuntimeError("boom")

    steps = [("environment", gpu_check.step_environment), ("doctor", broken),
             ("nccl", gpu_check.step_nccl)]  # fmt: skip
    monkeypatch.setattr(gpu_check, "STEPS", steps)
    code = gpu_check.main(["--dry-run", "--out", str(tmp_path), "--wheels", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert code == 1
    assert report["steps"]["doctor"] == {"status": "failed", "seconds": 0.0,
                                         "note": "RuntimeError: boom", "figures": {}}  # fmt: skip
    assert report["steps"]["nccl"]["status"] == "skipped"  # ran after the broken step
    assert report["steps"]["environment"]["figures"]["cores"] >= 1


def test_the_raft_step_is_skipped_without_cuda_outside_a_dry_run():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check

    assert gpu_check.step_flow({"dry": False, "cuda": False}) == ("skipped", {}, "needs CUDA")
