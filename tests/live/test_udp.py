"""UDP against a real sender: the ``ffmpeg`` program streams a generated video whose frames encode
their index as MPEG-TS over UDP to 127.0.0.1 in real time (``-re``), and ispan receives it.

UDP has no connection and no end: the receiver binds the port and takes what comes, and a
sender that stops is only silence. What a user gets then: every window completed before it,
then, after ``--timeout`` seconds of silence, one error record (the CLI: one ``error:`` line,
exit 1, the output file complete); never a hang. With ``--reconnect N`` the port is bound again
and a sender that comes back continues the run after a gap record, as a restarted RTSP server
does. Ctrl-C ends a run that would otherwise never end, with the output file closed.

The sender is started once the receiver has bound the port (``/proc/net/udp``), so the stream
is received from its start, less the half second FFmpeg's probe takes (``analyzeduration``).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli import Classifier
from ispan_cli.app import app
from ispan_cli.inference.live import LiveOptions, run_live
from tests.live.servers import require_ffmpeg
from tests.live.windows import FrameLog, check_in_order_and_on_time, first_windows
from tests.video.videogen import read_index, write_pattern_video

FPS = 25
WINDOW = 2.0  # seconds, every second
FRAMES = 750  # 30 s; the sender sends it once unless told to loop


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_bound(port: int) -> bool:
    """Whether a socket on this machine is bound to UDP ``port`` (the receiver is listening)."""
    text = Path("/proc/net/udp").read_text()
    return any(line.split()[1].endswith(f":{port:04X}") for line in text.splitlines()[1:])


class UdpSender:
    """``ffmpeg -re -i VIDEO -c:v copy -f mpegts udp://127.0.0.1:PORT``: the file's own frames
    and timestamps (copied, not re-encoded: frame i of the file is at i / FPS s in the stream).
    ``start``/``stop`` can be called again (a sender that comes back, same port)."""

    def __init__(self, video: Path, port: int, loop: bool = False) -> None:
        if not Path("/proc/net/udp").exists():
            pytest.skip("needs /proc/net/udp to see when the receiver has bound its port")
        self.exe = require_ffmpeg()
        self.video, self.port, self.loop = video, port, loop
        self.proc: subprocess.Popen | None = None
        self.started: float | None = None  # time.monotonic() of the last start

    def start(self) -> UdpSender:
        loop = ["-stream_loop", "-1"] if self.loop else []
        cmd = [
            self.exe, "-hide_banner", "-loglevel", "error", "-nostdin", "-re", *loop,
            "-i", str(self.video), "-an", "-c:v", "copy", "-f", "mpegts",
            f"udp://127.0.0.1:{self.port}?pkt_size=1316",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self.started = time.monotonic()
        return self

    def start_when_bound(self, within: float = 120.0) -> threading.Thread:
        """Starts the sender, from a thread, once the receiver has bound the port."""

        def wait_then_start():
            deadline = time.monotonic() + within
            while not udp_bound(self.port) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.start()

        thread = threading.Thread(target=wait_then_start, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def clf():
    classifier = Classifier(model="istpan-tiny-synthetic", device="cpu", segments=4)
    # the first call pays torch's one-off set-up; the stream tests time the steady state
    classifier.classify_frames(np.zeros((4, 72, 96, 3), np.uint8))
    return classifier


@pytest.fixture(scope="module")
def pattern(tmp_path_factory) -> Path:
    # a keyframe every second and no B-frames, as a camera or an encoder for UDP sends
    path = tmp_path_factory.mktemp("udp") / "pattern.mp4"
    options = {"tune": "zerolatency", "g": str(FPS)}
    return write_pattern_video(path, "libx264", FRAMES, width=96, height=72, rate=FPS,
                               options=options)  # fmt: skip


@pytest.fixture
def sender(pattern):
    running = UdpSender(pattern, free_udp_port())
    try:
        yield running
    finally:
        running.stop()


def test_udp_windows_arrive_while_the_stream_runs_in_order_with_the_right_frames(clf, sender):
    frames = FrameLog()
    url = f"udp://127.0.0.1:{sender.port}"
    sender.start_when_bound()
    records = first_windows(clf, url, WINDOW, 4, frames)
    check_in_order_and_on_time(records, frames, WINDOW, FPS, 4)
    arrived, seen = frames.arrived, frames.seen
    # the sender sends in real time (a burst would bring all 30 s at once)
    assert arrived[5 * FPS] - arrived[FPS] == pytest.approx(4.0, abs=1.0)
    numbers = sorted(seen)
    first = seen[0]
    # the probe's half second is not shown (FFmpeg's nobuffer), but nothing after it is lost
    assert first < FPS
    assert all(seen[n] == first + n for n in numbers)  # every frame, in stream order
    for r in records:
        lo, hi = r["window"]["start"], r["window"]["end"]
        assert hi - lo == WINDOW and lo == r["window"]["index"] * 1.0
        # the window's frames, identified by their pixels: file frame i is at i / FPS s of the
        # file, so at (i - first) / FPS s of the stream as received
        pixels = [seen[n] for n in r["frames"]["indices"]]
        assert r["frames"]["timestamps"] == pytest.approx([(i - first) / FPS for i in pixels])
        # 4 segments: one frame in each quarter of the window
        quarters = [int((t - lo) / WINDOW * 4) for t in r["frames"]["timestamps"]]
        assert quarters == [0, 1, 2, 3], r["frames"]
        assert r["live"]["latency_s"] < WINDOW  # under the window length
        assert r["input"] == url


def test_udp_joined_mid_stream_classifies_whole_frames_only(clf, sender):
    """A receiver started while the sender runs (as one joins a broadcast) gets the stream
    from the next keyframe on: every frame its windows use is a whole picture (its index reads
    back), none is a half-decoded one from before the keyframe."""
    seen: dict[int, int] = {}

    def on_frame(frame, t, fps):
        seen[frame.number] = read_index(frame.image)  # raises on a damaged picture

    sender.loop = True
    sender.start()
    time.sleep(1.3)  # between two keyframes (one a second)
    url = f"udp://127.0.0.1:{sender.port}"
    records = []
    live = LiveOptions(window=1.0, stride=1.0, timeout=10)
    for record in run_live(clf.predictor, url, clf.options, live, on_frame):
        assert record["error"] is None, record
        records.append(record)
        if len(records) == 2:
            break
    first = seen[0]
    assert first >= FPS  # the frames sent before it bound the port went to nobody
    assert all(seen[n] == first + n for n in sorted(seen))  # whole frames, none lost
    for r in records:
        pixels = [seen[n] for n in r["frames"]["indices"]]
        assert r["frames"]["timestamps"] == pytest.approx([(i - first) / FPS for i in pixels])


def test_udp_sender_that_stops_ends_by_timeout_after_its_windows(clf, sender):
    """The sender is killed after two windows: UDP says nothing of it, so the receiver hears
    silence; after ``timeout`` of it the run ends with one error record (no reconnects)."""
    url = f"udp://127.0.0.1:{sender.port}"
    records = []
    stopped = None
    sender.start_when_bound()
    live = LiveOptions(window=1.0, stride=1.0, timeout=1.5)
    for record in run_live(clf.predictor, url, clf.options, live):
        records.append((time.time(), record))
        if len(records) == 2:
            sender.stop()
            stopped = time.time()
        assert time.monotonic() - sender.started < 60, records  # never a hang
    *windows, (ended, last) = records
    assert len(windows) >= 2 and all(r["error"] is None for _, r in windows), records
    assert [r["window"]["index"] for _, r in windows] == list(range(len(windows)))
    assert last["input"] == url and last["topk"] == []
    assert "no answer within 1.5 s" in last["error"], last
    # the silence began at most a frame and the model's time before the sender was stopped;
    # its last frame or two come out of FFmpeg's buffers when the read gives up
    assert 1.0 <= ended - stopped < 6.0


def _sender_comes_back(clf, sender) -> tuple[list[dict], float, float]:
    """``--reconnect 5``, ``--timeout 1.5``: the sender is killed after two windows and started
    again 2 s later on the same port. The records (up to two windows after the gap), when the
    sender stopped and when the first frame after the gap arrived (wall clock)."""
    url = f"udp://127.0.0.1:{sender.port}"
    records: list[dict] = []
    stopped = back = None
    sender.start_when_bound()
    live = LiveOptions(window=1.0, stride=1.0, reconnect=5, timeout=1.5)
    stop = threading.Event()

    def on_frame(frame, t, fps):
        nonlocal back
        if stopped is not None and back is None and frame.number == 0:  # a new connection
            back = frame.arrived

    def restart():
        time.sleep(2.0)
        sender.start()

    for record in run_live(clf.predictor, url, clf.options, live, on_frame, stop=stop):
        assert record["error"] is None, record
        records.append(record)
        if len(records) == 2:
            sender.stop()
            stopped = time.time()
            threading.Thread(target=restart, daemon=True).start()
        gap_at = next((i for i, r in enumerate(records) if "gap" in r), None)
        if gap_at is not None and len(records) >= gap_at + 3:
            stop.set()
        assert stopped is None or time.time() - stopped < 60, records  # never a hang
    assert back is not None, records
    return records, stopped, back


@pytest.mark.slow
def test_udp_sender_that_comes_back_continues_after_a_gap_record(clf, sender):
    """The receiver, bound again, carries on after the silence and reports it as one gap."""
    records, _, _ = _sender_comes_back(clf, sender)
    gaps = [r for r in records if "gap" in r]
    assert len(gaps) == 1, records
    gap = gaps[0]["gap"]
    assert gap["reconnects"] >= 1 and "no answer within 1.5 s" in gap["reason"]
    assert gaps[0]["input"] == f"udp://127.0.0.1:{sender.port}" and gaps[0]["topk"] == []
    before = records[: records.index(gaps[0])]
    after = records[records.index(gaps[0]) + 1 :]
    assert len(before) >= 2 and len(after) >= 2
    assert all(r["window"]["end"] <= gap["start"] + 1e-6 for r in before)
    assert all(r["window"]["start"] >= gap["end"] - 1e-6 for r in after)
    indices = [r["window"]["index"] for r in records if "window" in r]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    # back to real time: no backlog from the silence (a loaded machine may take a second)
    assert all(r["live"]["latency_s"] < 2.0 for r in after)


@pytest.mark.slow
def test_udp_gap_record_covers_the_whole_silence(clf, sender):
    """The gap is the time no frame came: from the sender's stop to the first frame after it
    (stream time keeps pace with the wall clock across it), not that less ``--timeout``."""
    records, stopped, back = _sender_comes_back(clf, sender)
    (gap,) = [r["gap"] for r in records if "gap" in r]
    # the last frames came at most a frame and the model's time before the stop
    assert gap["seconds"] == pytest.approx(back - stopped, abs=0.5), (gap, back - stopped)


@pytest.mark.slow  # the CLI's start-up in a subprocess
def test_udp_cli_ctrl_c_closes_the_output_file(pattern, tmp_path):
    """``ispan classify udp://... -o out.json`` in a subprocess, the sender looping: records
    reach the file while it runs; SIGINT ends the run with exit 0 and the JSON array closed."""
    sender = UdpSender(pattern, free_udp_port(), loop=True)
    out = tmp_path / "out.json"
    url = f"udp://127.0.0.1:{sender.port}"
    cmd = [sys.executable, "-m", "ispan_cli", "classify", url, "--window", "1",
           "--segments", "4", "--timeout", "10", "-q", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sender.start_when_bound()
        deadline = time.monotonic() + 120
        streamed = 0
        while time.monotonic() < deadline and proc.poll() is None:
            # records are in out.json itself as they are made (a live source's output is
            # written in place: `tail -f` sees them, a kill keeps them)
            streamed = _text(out).count('"window": {"index"')
            if streamed >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sender.stop()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert streamed >= 3
    records = json.loads(out.read_text())  # a whole JSON array: the writer was closed
    # every record on disk before the SIGINT is in the file, and the one in hand when it came
    assert len(records) >= streamed and all(r["error"] is None for r in records), records
    assert not list(tmp_path.glob(".out.*"))  # renamed into place, the lock let go
    assert all(r["input"] == url for r in records)
    assert records[0]["window"]["index"] == 0
    for a, b in itertools.pairwise(records):  # drops on a busy machine are counted
        assert b["window"]["index"] - a["window"]["index"] - 1 == b["live"]["dropped_windows"]


@pytest.mark.slow
def test_udp_cli_killed_keeps_every_record_written(pattern, tmp_path):
    """SIGKILL (out of memory, a scheduler's kill) mid-stream: every record already reported is
    in out.jsonl, whole lines, nothing stranded in a temporary file."""
    sender = UdpSender(pattern, free_udp_port(), loop=True)
    out = tmp_path / "out.jsonl"
    url = f"udp://127.0.0.1:{sender.port}"
    cmd = [sys.executable, "-m", "ispan_cli", "classify", url, "--window", "1",
           "--segments", "4", "--timeout", "10", "-q", "-o", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sender.start_when_bound()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if _text(out).count("\n") >= 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        seen = _text(out).count("\n")
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        sender.stop()
    lines = out.read_text().splitlines()
    assert len(lines) >= seen >= 3
    records = [json.loads(line) for line in lines]  # whole lines only
    assert [r["window"]["index"] for r in records] == sorted(r["window"]["index"] for r in records)
    assert not list(tmp_path.glob(".out.*.tmp.*"))


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:  # not there yet, or renamed just now
        return ""


def test_udp_without_a_sender_is_one_error_line_by_the_timeout():
    url = f"udp://127.0.0.1:{free_udp_port()}"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "2"])
    assert time.monotonic() - start < 2 + 15  # the timeout, plus loading the model
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{url}: no answer within 2 s" in errors[0], result.stderr
    assert json.loads(result.stdout.splitlines()[0])["input"] == url


def test_udp_port_taken_by_another_program_is_one_error_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        url = f"udp://127.0.0.1:{taken.getsockname()[1]}"
        start = time.monotonic()
        result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "5"])
    assert time.monotonic() - start < 15  # refused at once, not after the timeout
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Address already in use" in errors[0], result.stderr


def test_udp_listen_on_every_address_is_shown_as_typed():
    """``udp://@:PORT`` is FFmpeg's and VLC's way to receive on every address; it holds no
    credentials, so records and messages show it as typed, not as ``udp://***@:PORT``."""
    url = f"udp://@:{free_udp_port()}"
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "1"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{url}: no answer within 1 s" in errors[0], result.stderr
    assert json.loads(result.stdout.splitlines()[0])["input"] == url
