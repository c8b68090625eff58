"""No output is ever lost: outputs are written atomically, locked against a second writer,
checked before the model loads, and never an input; run folders are locked and a folder that is
not a run is not written into without --force."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.engine.runs import FAST, ispan
from tests.video.videogen import write_pattern_video

ISPAN = str(Path(sys.executable).with_name("ispan"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("outputs")
    first = write_pattern_video(root / "v00.mp4", "libx264", 40, width=170, height=128)
    paths = [first]
    for i in range(1, 40):  # copies: enough work that a run can be caught in the middle
        paths.append(root / f"v{i:02d}.mp4")
        paths[-1].write_bytes(first.read_bytes())
    return paths


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wait_for(predicate, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([ISPAN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)  # fmt: skip


def _one_error(done) -> str:
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert done.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "this is a bug" not in lines[0]
    return lines[0]


def test_a_killed_classify_leaves_the_previous_output_as_it_was(videos, tmp_path):
    out = tmp_path / "prev.jsonl"
    out.write_text('{"earlier": "results"}\n')
    before = _digest(out)
    run = _start("classify", *map(str, videos), "-o", str(out), "--workers", "0", "-q")
    # kill it while records are being written (its temporary file exists)
    _wait_for(lambda: any(p.name.startswith(".prev.") and p.suffix == ".jsonl"
                          for p in tmp_path.iterdir()) or run.poll() is not None)  # fmt: skip
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    assert _digest(out) == before


def _hold_lock(target: Path) -> subprocess.Popen:
    """Another process holding ispan's lock on ``target`` (as a running classify or train does)."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import time\nfrom ispan_cli.outputs import exclusive\n"
         f"with exclusive({str(target)!r}):\n    print('locked', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_writer_is_refused_with_the_holder_named(videos, tmp_path):
    out = tmp_path / "same.jsonl"
    out.write_text("the first writer's\n")
    holder = _hold_lock(out)
    try:
        second = subprocess.run([ISPAN, "classify", str(videos[0]), "-o", str(out)],
                                capture_output=True, text=True, timeout=120)  # fmt: skip
        line = _one_error(second)
        assert "being written by another ispan process" in line and f"pid {holder.pid}" in line
        assert "model " not in second.stderr  # refused before loading the model
        assert out.read_text() == "the first writer's\n"
    finally:
        holder.kill()
        holder.wait(30)
    # the holder died without unlocking: the kernel released it, and a new run goes ahead
    done = subprocess.run([ISPAN, "classify", *map(str, videos[:3]), "-o", str(out), "-q"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["input"] for r in records] == [str(v) for v in videos[:3]]
    assert not (tmp_path / ".same.jsonl.lock").exists()  # released, and removed


@pytest.mark.parametrize("case", ["folder", "missing-folder", "read-only-folder"])
def test_bad_output_paths_are_refused_before_the_model_loads(case, videos, tmp_path):
    if case == "folder":
        out, expect = tmp_path, "is a folder"
    elif case == "missing-folder":
        out, expect = tmp_path / "nope" / "out.jsonl", "does not exist"
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        locked = tmp_path / "ro"
        locked.mkdir(mode=0o500)
        out, expect = locked / "out.jsonl", "not writable"
    done = subprocess.run([ISPAN, "classify", str(videos[0]), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert expect in _one_error(done)
    assert "model " not in done.stderr  # refused before loading anything


def test_visualize_never_overwrites_its_input(videos, tmp_path):
    video = tmp_path / "input.mp4"
    video.write_bytes(videos[0].read_bytes())
    before = _digest(video)
    done = subprocess.run([ISPAN, "visualize", str(video), "-o", str(video)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "is also an input" in _one_error(done)
    assert _digest(video) == before
    # the same file through another name is the same input
    link = tmp_path / "alias.mp4"
    os.link(video, link)
    done = subprocess.run([ISPAN, "visualize", str(video), "-o", str(link)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert "is also an input" in _one_error(done)
    assert _digest(video) == before


def test_a_failed_visualize_leaves_the_previous_output(videos, tmp_path):
    out = tmp_path / "attention.mp4"
    out.write_bytes(b"previous render")
    # --level 9 does not exist: the job fails after the output was opened for writing before
    done = subprocess.run([ISPAN, "visualize", str(videos[0]), "-o", str(out), "--level", "9"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert out.read_bytes() == b"previous render"
    assert [p.name for p in tmp_path.iterdir()] == ["attention.mp4"]  # no temporary left


def test_train_refuses_a_folder_that_is_not_a_run_unless_forced(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes")
    args = ["train", *FAST, "--epochs", "1", "--synthetic-train", "16", "--synthetic-val", "4",
            "--output", str(out)]  # fmt: skip
    line = _one_error(ispan(*args, check=False))
    assert "is not empty (notes.txt)" in line and "--force" in line
    assert ispan(*args, "--force").returncode == 0
    assert (out / "notes.txt").read_text() == "my own notes"
    assert (out / "best" / "model.safetensors").is_file()


def test_a_run_folder_is_locked_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = _hold_lock(out)
    args = ["train", *FAST, "--epochs", "1", "--synthetic-train", "16", "--synthetic-val", "4",
            "--output", str(out)]  # fmt: skip
    line = _one_error(ispan(*args, check=False))
    assert "being written by another ispan process" in line and f"pid {holder.pid}" in line
    holder.kill()
    holder.wait(30)
    assert ispan(*args).returncode == 0  # the kernel released the lock with its holder


def test_an_empty_input_list_is_an_error_and_keeps_the_previous_output(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("earlier\n")
    done = subprocess.run([ISPAN, "classify", "-", "-o", str(out)], input="", capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert "nothing to classify" in _one_error_of_many(done)
    assert out.read_text() == "earlier\n"


def _one_error_of_many(done) -> str:
    errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert done.returncode == 1 and len(errors) == 1, done.stderr
    return errors[0]
