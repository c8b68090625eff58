"""Fixtures of the batch-inference tests (resume, shards): a list file of real encoded videos
(and two inputs that fail), and one uninterrupted run over it: the reference that every resumed,
killed or sharded run must equal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from tests.inference.schema import check_record
from tests.video.videogen import write_pattern_video

runner = CliRunner()
LAUNCHER_ENV = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_ID",
    "SLURM_STEPID", "SLURM_STEP_NUM_TASKS",
)  # fmt: skip


@pytest.fixture(autouse=True)
def _one_process(monkeypatch):
    """Tests run as one process even when pytest itself runs under torchrun or srun."""
    for name in LAUNCHER_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def list_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume-videos")
    paths = [
        write_pattern_video(root / f"v{i}.mp4", "libx264", 20 + 3 * i, width=170, height=128)
        for i in range(6)
    ]
    (root / "broken.mp4").write_bytes(b"not a video")
    inputs = [*map(str, paths[:3]), str(root / "broken.mp4"), str(root / "missing.mp4")]
    inputs += map(str, paths[3:])
    listing = root / "list.txt"
    listing.write_text("".join(f"{p}\n" for p in inputs))
    return {"paths": paths, "inputs": inputs, "list": listing, "root": root}


def strip_timings(records: list[dict]) -> list[dict]:
    """Records without their timings, scores to 6 decimals: another batch composition (batch 1
    against 4, or a shard's batches) may change a score in its last float bits."""
    out = []
    for r in records:
        r = {k: v for k, v in r.items() if k != "timings_ms"}
        r["topk"] = [{**t, "score": round(t["score"], 6)} for t in r["topk"]]
        out.append(r)
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def classify(*args: str):
    return runner.invoke(app, ["classify", *args])


@pytest.fixture(scope="module")
def reference(list_videos, tmp_path_factory):
    """One uninterrupted run over the list, as jsonl and csv."""
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    result = classify(str(list_videos["list"]), "-o", str(out), "-q")
    assert result.exit_code == 1, result.output  # two inputs fail
    records = read_jsonl(out)
    assert [r["input"] for r in records] == list_videos["inputs"]  # a list file, in order
    for r in records:
        check_record(r)
    assert records[0]["settings"] == {
        "segments": 8, "crops": 1, "topk": 5, "decoder": "auto", "stream": None
    }  # fmt: skip
    out_csv = out.with_suffix(".csv")
    classify(str(list_videos["list"]), "-o", str(out_csv), "-q")
    return {"jsonl": records, "csv": out_csv.read_text()}
