"""RTSP against a real server: GStreamer's gst-rtsp-server on 127.0.0.1 (tests/live/rtsp_server.py),
streaming a generated video whose frames encode their index; the failures need no server.

The server's tests skip, naming the Debian packages, where GStreamer's RTSP server is not
installed; the failure tests (refused port, a server that never answers) always run.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
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
from tests.live.rtsp_server import RtspServer, require_rtsp_server
from tests.live.servers import free_port, silent_server
from tests.live.windows import FrameLog, check_in_order_and_on_time, first_windows
from tests.video.videogen import write_pattern_video

FPS = 25
WINDOW = 2.0  # seconds, every second
FRAMES = 1500  # 60 s: the server does not loop, and each connection starts at frame 0
LOGIN = "cam:s3cret"


@pytest.fixture(scope="module")
def clf():
    classifier = Classifier(model="istpan-tiny-synthetic", device="cpu", segments=4)
    # the first call pays torch's one-off set-up; the stream tests time the steady state
    classifier.classify_frames(np.zeros((4, 72, 96, 3), np.uint8))
    return classifier


@pytest.fixture(scope="module")
def pattern(tmp_path_factory) -> Path:
    # a keyframe every second and no B-frames, as a camera sends (a client joins within 1 s)
    path = tmp_path_factory.mktemp("rtsp") / "pattern.mp4"
    options = {"tune": "zerolatency", "g": str(FPS)}
    return write_pattern_video(path, "libx264", FRAMES, width=96, height=72, rate=FPS,
                               options=options)  # fmt: skip


@pytest.fixture(scope="module")
def server(pattern):
    """One server for the module's read-only tests; it requires ``LOGIN``."""
    require_rtsp_server()
    with RtspServer(pattern, login=LOGIN) as running:
        yield running


def test_rtsp_windows_arrive_while_the_stream_runs_in_order_with_the_right_frames(clf, server):
    frames = FrameLog()
    records = first_windows(clf, server.url, WINDOW, 4, frames)
    check_in_order_and_on_time(records, frames, WINDOW, FPS, 4)
    arrived, seen = frames.arrived, frames.seen
    # the server sends in real time (a burst would bring all 60 s at once)
    assert arrived[5 * FPS] - arrived[FPS] == pytest.approx(4.0, abs=1.0)
    numbers = sorted(seen)
    first = seen[0]
    assert first < FPS  # the connection started at the file's start (its first keyframe)
    assert all(seen[n] == first + n for n in numbers)  # every frame, in stream order
    for r in records:
        lo, hi = r["window"]["start"], r["window"]["end"]
        assert hi - lo == WINDOW and lo == r["window"]["index"] * 1.0
        # frame n of a constant 25 fps stream is shown at n / 25 s
        assert r["frames"]["timestamps"] == pytest.approx([n / FPS for n in r["frames"]["indices"]])
        # 4 segments: one frame in each quarter of the window
        quarters = [int((t - lo) / WINDOW * 4) for t in r["frames"]["timestamps"]]
        assert quarters == [0, 1, 2, 3], r["frames"]
        assert all(n in seen for n in r["frames"]["indices"])
        assert r["live"]["latency_s"] < WINDOW  # under the window length
        assert r["input"] == server.url.replace("s3cret", "***")  # the password never shows


@pytest.mark.slow  # the CLI's start-up in a subprocess
def test_rtsp_classify_by_the_cli_streams_records_as_they_are_made(server):
    """``ispan classify rtsp://...`` in a subprocess: JSONL records come out while it runs."""
    cmd = [sys.executable, "-m", "ispan_cli", "classify", server.url, "--window", "1",
           "--segments", "4", "--timeout", "10", "-q", "-f", "jsonl"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(
        target=lambda: lines.extend((time.time(), x) for x in iter(proc.stdout.readline, ""))
    )
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(lines) < 3 and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        streamed = len(lines)  # read while it ran: written and flushed as made
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    records = [json.loads(x) for _, x in lines]
    assert streamed >= 3 and all(r["error"] is None for r in records), records
    assert records[0]["window"]["index"] == 0
    for a, b in itertools.pairwise(records):  # in order; a skip (a loaded machine) is counted
        assert b["window"]["index"] - a["window"]["index"] - 1 == b["live"]["dropped_windows"]
    assert all("s3cret" not in x for _, x in lines) and "s3cret" not in stderr


def test_rtsp_auth_required_is_one_error_line_naming_the_fix(server):
    url = server.url.replace(f"{LOGIN}@", "")
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "5"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "401 Unauthorized" in errors[0], result.stderr
    assert "user and password" in errors[0]


def test_rtsp_wrong_path_is_404(server):
    url = server.url.replace("/s", "/nothing-here")
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "5"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "404 Not Found" in errors[0], result.stderr
    assert "s3cret" not in result.output and "s3cret" not in result.stderr


def test_rtsp_stream_that_stalls_ends_by_timeout_after_its_windows(clf, pattern):
    """The server stops sending mid-stream (SIGSTOP: the connection stays open, silent): the
    read times out after ``timeout`` and, with no reconnects, the run ends with one error."""
    require_rtsp_server()
    records = []
    with RtspServer(pattern) as server:
        live = LiveOptions(window=1.0, stride=1.0, timeout=1.5)
        for record in run_live(clf.predictor, server.url, clf.options, live):
            records.append((time.monotonic(), record))
            if len(records) == 2:
                os.killpg(server.proc.pid, signal.SIGSTOP)
                stalled = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGCONT)
    *windows, (ended, last) = records
    assert all(r["error"] is None for _, r in windows) and len(windows) >= 2
    assert "no answer within 1.5 s" in last["error"], last
    # the frames already buffered in the client are read first, then the 1.5 s of silence
    assert 1.5 <= ended - stalled < 6.0


@pytest.mark.slow
def test_rtsp_killed_server_is_reconnected_and_the_gap_reported(pattern):
    """``ispan classify rtsp://... --reconnect 5``: the server is killed after two windows and
    restarted 2 s later on the same port; the CLI reconnects and writes the gap as a record."""
    require_rtsp_server()
    server = RtspServer(pattern).start()
    cmd = [sys.executable, "-m", "ispan_cli", "classify", server.url, "--window", "1",
           "--segments", "4", "--reconnect", "5", "--timeout", "3", "-q",
           "-f", "jsonl"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))
    reader.start()
    killed = restarted = None
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            records = [json.loads(x) for x in list(lines)]
            if killed is None and len(records) >= 2:
                server.stop()
                killed = time.monotonic()
            if killed is not None and restarted is None and time.monotonic() - killed > 2.0:
                server.start()
                restarted = time.monotonic()
            gap_at = next((i for i, r in enumerate(records) if "gap" in r), None)
            if gap_at is not None and len(records) >= gap_at + 3:
                break
            time.sleep(0.05)
        assert proc.poll() is None, proc.stderr.read()
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        reader.join()
        server.stop()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    records = [json.loads(x) for x in lines]
    gaps = [r for r in records if "gap" in r]
    assert len(gaps) == 1, records
    gap = gaps[0]["gap"]
    assert gap["reconnects"] >= 1
    # the server was down for at least 2 s: the gap covers it (stream time keeps pace with
    # the wall clock across the gap)
    assert gap["seconds"] >= 2.0 and gap["seconds"] < restarted - killed + 10
    assert all(r["error"] is None for r in records)
    before = records[: records.index(gaps[0])]
    after = records[records.index(gaps[0]) + 1 :]
    assert len(before) >= 2 and len(after) >= 2
    assert all(r["window"]["end"] <= gap["start"] + 1e-6 for r in before)
    assert all(r["window"]["start"] >= gap["end"] - 1e-6 for r in after)
    indices = [r["window"]["index"] for r in records if "window" in r]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    # back to real time: a window waits at most about one stride (1 s) for the model
    assert all(r["live"]["latency_s"] - sum(r["timings_ms"].values()) / 1e3 < 1.5 for r in after)


def test_rtsp_refused_port_is_one_error_line_within_the_timeout():
    url = f"rtsp://cam:s3cret@127.0.0.1:{free_port()}/s"
    start = time.monotonic()
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "5"])
    assert time.monotonic() - start < 5 + 10  # the timeout, plus loading the model
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "connection refused" in errors[0], result.stderr
    assert "s3cret" not in result.output and "s3cret" not in result.stderr
    assert json.loads(result.stdout.splitlines()[0])["input"] == url.replace("s3cret", "***")


def test_rtsp_server_that_never_answers_is_one_error_line_by_the_timeout(clf):
    """It accepts the connection and never replies to OPTIONS: FFmpeg's RTSP client reports
    that as "Invalid data"; the error says what happened (no answer within --timeout)."""
    with silent_server() as server:
        url = f"rtsp://127.0.0.1:{server.port}/s"
        start = time.monotonic()
        records = list(run_live(clf.predictor, url, clf.options, LiveOptions(1.0, 1.0, timeout=2)))
        waited = time.monotonic() - start
        result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "2"])
    assert 1.8 <= waited < 6.0
    assert len(records) == 1 and "no answer within 2 s" in records[0]["error"], records
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no answer within 2 s" in errors[0], result.stderr
    assert "raise --timeout" in errors[0]


def test_rtsp_unknown_host_says_so_without_the_password():
    url = "rtsp://cam:s3cret@no-such-host.invalid/s"  # .invalid never resolves (RFC 6761)
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "5"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the host" in errors[0], result.stderr
    assert "s3cret" not in result.output and "s3cret" not in result.stderr
