"""One Ctrl-C stops any command promptly and cleanly (issue 13): exit status 130, one
``interrupted`` line, no traceback, and every output file either as it was or made of complete
lines. Real processes get a real SIGINT in the middle of their work."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

VIDEO = Path(__file__).parent.parent / "samples" / "demo.mp4"
PROMPT_S = 10.0  # from SIGINT to exit; the old way out waited on workers for 30 s and more


class Child:
    """``python -m ispan_cli ARGS`` with its stderr lines readable as they come."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ispan_cli", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.lines.get(timeout=1).startswith(prefix):
                    return
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
        raise AssertionError(f"no {prefix!r} line: {''.join(self.stderr)}")

    def interrupt(self) -> tuple[int, float, str]:
        assert self.proc.poll() is None, "the command ended before the interrupt"
        start = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            stdout, _ = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("still running 60 s after Ctrl-C") from None
        return self.proc.returncode, time.monotonic() - start, stdout


def _clean_exit(code: int, took: float, stderr: list[str]) -> None:
    text = "".join(stderr)
    assert code == 130, (code, text)
    assert took < PROMPT_S, f"{took:.1f} s to stop"
    assert "Traceback" not in text and "this is a bug" not in text, text
    assert text.strip().splitlines()[-1] == "interrupted", text


def _videos(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        os.link(VIDEO, folder / f"v{i:03d}.mp4")  # hard links: n names, one file
    return folder


def _complete_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a cut-off last line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.slow
def test_ctrl_c_during_classify_keeps_the_previous_output_and_stdout_whole(tmp_path):
    videos = _videos(tmp_path / "videos", 60)
    previous = tmp_path / "prev.jsonl"
    previous.write_text('{"input": "from an earlier run"}\n')
    to_file = Child("classify", str(videos), "-o", str(previous), "--workers", "2", cwd=tmp_path)
    to_stdout = Child("classify", str(videos), "-f", "jsonl", "--workers", "2", cwd=tmp_path)
    for child in (to_file, to_stdout):
        child.wait_for("model ")
    time.sleep(2.0)  # into the videos
    code, took, _ = to_file.interrupt()
    _clean_exit(code, took, to_file.stderr)
    records = _complete_lines(previous)
    assert records == [{"input": "from an earlier run"}] or len(records) == 60
    code, took, stdout = to_stdout.interrupt()
    _clean_exit(code, took, to_stdout.stderr)
    assert stdout == "" or stdout.endswith("\n")
    for line in stdout.splitlines():  # every record that was written is whole
        assert json.loads(line)["input"].endswith(".mp4")
    assert len(stdout.splitlines()) < 60  # it really was stopped midway


@pytest.mark.slow
def test_ctrl_c_during_train_stops_in_one_line(tmp_path):
    run = tmp_path / "run"
    child = Child(
        "train", "--dataset", "synthetic", "--arch", "istpan_tiny", "--pretrained", "none",
        "--epochs", "50", "--batch-size", "4", "--segments", "3", "--workers", "2",
        "--device", "cpu", "--output", str(run),
        cwd=tmp_path,
    )  # fmt: skip
    child.wait_for("training on cpu")
    time.sleep(3.0)  # into the steps, data-loader workers running
    code, took, _ = child.interrupt()
    _clean_exit(code, took, child.stderr)
    for csv in run.rglob("*.csv"):
        assert csv.read_text().endswith("\n")
    log = (run / "train.log").read_text()
    assert log.endswith("\n")
    shutil.rmtree(run)
