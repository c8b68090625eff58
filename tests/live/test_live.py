"""Live and remote classification with a real model: HTTP by URL, an RTMP stream served by
FFmpeg, reconnects, failures, and the Python API that the CLI shares."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli import Classifier
from ispan_cli.app import app
from ispan_cli.inference.live import LiveOptions, run_live
from tests.live.servers import RangeServer, RtmpServer, free_port, silent_server
from tests.live.windows import FrameLog, check_in_order_and_on_time, first_windows
from tests.video.videogen import write_pattern_video

FPS = 25
PATTERN_FRAMES = 250  # 10 s, looped by the server


@pytest.fixture(scope="module")
def clf():
    classifier = Classifier(model="istpan-tiny-synthetic", device="cpu", segments=4)
    # the first call pays torch's one-off set-up; the stream tests time the steady state
    classifier.classify_frames(np.zeros((4, 72, 96, 3), np.uint8))
    return classifier


@pytest.fixture(scope="module")
def pattern(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("live") / "pattern.mp4"
    return write_pattern_video(path, "libx264", PATTERN_FRAMES, width=96, height=72, rate=FPS)


def test_classify_by_url_equals_the_local_file(clf, pattern):
    with RangeServer(pattern.parent) as server:
        url = server.url(pattern.name)
        remote = clf.classify(url)
    local = clf.classify(str(pattern))
    assert remote["input"] == url
    assert remote["topk"] == local["topk"]
    assert remote["frames"] == local["frames"]


def test_classify_frames_is_classify_of_the_same_frames(clf, pattern):
    from ispan_cli.video.decoder import open_video

    record = clf.classify(str(pattern))
    with open_video(pattern) as reader:  # every frame at the model's scale, as the CLI decodes
        frames = reader.read(range(PATTERN_FRAMES), short_side=clf.predictor.preprocessing.resize)
        times = reader.frame_times()
    got = clf.classify_frames(frames, timestamps=times)
    assert got["frames"]["indices"] == record["frames"]["indices"]
    for a, b in zip(got["topk"], record["topk"], strict=True):
        assert a["index"] == b["index"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_classify_frames_refuses_wrong_arrays(clf):
    from ispan_cli.errors import ISpanError

    with pytest.raises(ISpanError, match="uint8 RGB shaped"):
        clf.classify_frames(np.zeros((4, 8, 8), np.float32))


def test_live_windows_arrive_while_the_stream_runs_in_order_with_the_right_frames(clf, pattern):
    frames = FrameLog()
    with RtmpServer(pattern) as server:
        records = first_windows(clf, server.url, 1.0, 3, frames)
    check_in_order_and_on_time(records, frames, 1.0, FPS, 3)
    seen = frames.seen
    numbers = sorted(seen)
    first = seen[0]
    assert all(seen[n] == (first + n) % PATTERN_FRAMES for n in numbers)  # in stream order
    for r in records:
        lo, hi = r["window"]["start"], r["window"]["end"]
        assert all(lo - 1e-6 <= t < hi for t in r["frames"]["timestamps"])
        # frame n of a constant 25 fps stream is shown at n / 25 s
        assert r["frames"]["timestamps"] == pytest.approx([n / FPS for n in r["frames"]["indices"]])
        assert all(n in seen for n in r["frames"]["indices"])
        assert r["live"]["latency_s"] < 1.0  # under the window length
        assert r["input"] == server.url


@pytest.mark.slow
def test_killed_server_is_reconnected_and_the_gap_reported(clf, pattern):
    records = []
    server = RtmpServer(pattern).start()
    live = LiveOptions(window=1.0, stride=1.0, reconnect=5, timeout=3)
    stop = threading.Event()
    try:
        for record in run_live(clf.predictor, server.url, clf.options, live, stop=stop):
            records.append(record)
            assert record["error"] is None, record
            if len(records) == 2:
                server.stop()

                def restart():
                    time.sleep(1.5)
                    server.start()

                threading.Thread(target=restart, daemon=True).start()
            if any("gap" in r for r in records) and "window" in record and len(records) > 4:
                break
    finally:
        stop.set()
        server.stop()
    gaps = [r for r in records if "gap" in r]
    assert len(gaps) == 1, records
    gap = gaps[0]["gap"]
    assert gap["reconnects"] >= 1 and gap["seconds"] >= 1.0
    after = [r for r in records[records.index(gaps[0]) + 1 :] if "window" in r]
    assert after and all(r["window"]["start"] >= gap["end"] - 1e-6 for r in after)
    indices = [r["window"]["index"] for r in records if "window" in r]
    assert indices == sorted(indices)


def test_silent_stream_server_ends_by_timeout(clf):
    with silent_server() as server:
        start = time.monotonic()
        live = LiveOptions(window=1.0, stride=1.0, timeout=1.0)
        url = f"rtmp://127.0.0.1:{server.port}/live/s"
        records = list(run_live(clf.predictor, url, clf.options, live))
    assert time.monotonic() - start < 10
    assert len(records) == 1 and "no answer within 1 s" in records[0]["error"]


def test_cli_refused_stream_is_one_error_line_without_the_password():
    url = f"rtmp://cam:s3cret@127.0.0.1:{free_port()}/live/s"
    result = CliRunner().invoke(app, ["classify", url, "-q", "-f", "jsonl", "--timeout", "2"])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "connection refused" in errors[0], result.stderr
    assert "s3cret" not in result.output and "s3cret" not in result.stderr
    record = json.loads(result.stdout.splitlines()[0])
    assert record["input"] == url.replace("s3cret", "***")
    assert record["settings"]["window"] == 2.0  # a live source is a rolling timeline


@pytest.mark.slow
def test_stream_api_of_a_file_is_its_timeline(clf, pattern):
    def untimed(records):
        return [{k: v for k, v in r.items() if k != "timings_ms"} for r in records]

    windows = untimed(clf.stream(str(pattern), window=5.0))
    assert len(windows) == PATTERN_FRAMES // FPS // 5
    assert windows == untimed(clf.classify(str(pattern), window=5.0))


def test_webcam_through_v4l2():
    devices = sorted(Path("/dev").glob("video*"))
    if not devices:
        pytest.skip("no camera (/dev/video*) on this machine")
    from ispan_cli.video.decoder import open_live

    with open_live(str(devices[0]), timeout=5) as reader:
        frame = next(iter(reader.frames()))
    assert frame.image.ndim == 3 and frame.image.dtype == np.uint8


def test_a_window_waiting_for_a_busy_model_is_replaced_and_counted():
    """The hand-off keeps at most one window: a newer one replaces it, counted as dropped;
    events (gaps, the end) are never dropped."""
    from ispan_cli.inference.live import _Event, _Handoff, _Window

    def window(i):
        return _Window(i, float(i), i + 1.0, np.zeros((1, 2, 2, 3), np.uint8), [i], [i], 0.0, False)

    handoff = _Handoff()
    handoff.put_window(window(0))
    handoff.put_window(window(1))
    handoff.put_window(window(2))
    handoff.put_event(_Event(None))
    item, dropped, waited = handoff.take(0)
    assert (item.index, dropped, waited) == (2, 2, False)
    item, dropped, waited = handoff.take(0)
    assert isinstance(item, _Event) and dropped == 0
    assert handoff.take(0) == (None, 0, True)
    # a window that comes while the model waits for one is "fresh" (waited=True)
    threading.Timer(0.05, handoff.put_window, [window(3)]).start()
    item, dropped, waited = handoff.take(5)
    assert (item.index, dropped, waited) == (3, 0, True)


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_with_a_complete_output(pattern):
    import os
    import signal
    import subprocess
    import sys

    chunks: list[str] = []
    with RtmpServer(pattern) as server:
        cmd = [sys.executable, "-m", "ispan_cli", "classify", server.url, "--window", "1",
               "--segments", "4", "-q", "-f", "json"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=lambda: chunks.extend(iter(proc.stdout.readline, "")))
        reader.start()
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if "".join(chunks).count('"window"') >= 2:  # records stream out as made
                    break
                time.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read()
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
            reader.join()
        stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    records = json.loads("".join(chunks))  # a whole JSON array: the writer was closed
    assert len(records) >= 2 and all(r["error"] is None for r in records)
    indices = [r["window"]["index"] for r in records]
    assert indices[0] == 0
    for a, b in itertools.pairwise(records):  # drops on a busy machine are counted
        assert b["window"]["index"] - a["window"]["index"] - 1 == b["live"]["dropped_windows"]


def test_max_latency_zero_is_no_bound():
    from ispan_cli.inference.live import _LatencyBound, _Window

    old = _Window(0, 0.0, 1.0, np.zeros((1, 2, 2, 3), np.uint8), [0], [0.0], 0.0, False)  # 1970
    assert not _LatencyBound(0).too_late(old, fresh=False)
    assert not _LatencyBound(None).too_late(old, fresh=False)
    assert _LatencyBound(5.0).too_late(old, fresh=False)
    assert not _LatencyBound(5.0).too_late(old, fresh=True)  # nothing fresher can be had


@pytest.mark.slow
def test_max_latency_drops_windows_that_would_come_too_late(pattern):
    """A model slower than the stream (istpan_tiny, 8 segments x 3 crops; the stride set to a
    third of its measured time per window, so it stays slower whatever the machine's load).

    Without --max-latency a window waits in the slot for the busy model (up to one stride);
    with it, a window whose age plus the model's recent time (the median of the last five
    records' preprocess + model) is over the bound is dropped and counted, and the model takes
    the next one as it comes. Tolerance: a window that came while the model waited is always
    classified (its age is one frame interval plus a thread wake-up, FRESH below).
    """
    from dataclasses import replace

    from ispan_cli.inference.pipeline import ClassifyOptions
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.video.preprocess import preprocess

    predictor = load_model("istpan_tiny", device="cpu", allow_registry=True).predictor()
    options = ClassifyOptions(segments=8, crops=3, batch_size=1, workers=0)
    spec = replace(predictor.preprocessing, crops=3)
    frames = np.zeros((8, spec.resize, spec.resize * 4 // 3, 3), np.uint8)
    times = []
    for _ in range(4):
        start = time.perf_counter()
        predictor.predict(preprocess(frames, spec)[None])
        times.append(time.perf_counter() - start)
    model_s = float(np.median(times[1:]))  # the first call pays torch's set-up
    stride = max(0.08, round(model_s / 3 * FPS) / FPS)
    bound = model_s + stride / 2
    fresh = 2 / FPS + 0.1

    def run(max_latency):
        records = []
        live = LiveOptions(window=1.0, stride=stride, max_latency=max_latency, timeout=10)
        with RtmpServer(pattern) as server:  # FFmpeg's RTMP server takes one client
            for record in run_live(predictor, server.url, options, live):
                assert record["error"] is None, record
                records.append(record)
                if len(records) == 10:
                    break
        for a, b in itertools.pairwise(records):  # every drop counted, in order
            assert b["window"]["index"] - a["window"]["index"] - 1 == b["live"]["dropped_windows"]
        own = [sum(r["timings_ms"].values()) / 1e3 for r in records]
        ages = [r["live"]["latency_s"] - t for r, t in zip(records, own, strict=True)]
        return records[1:], own, ages  # the first window: the connection's start-up burst

    plain, _, plain_ages = run(None)
    bounded, own, ages = run(bound)
    context = (model_s, stride, bound, ages, own)
    assert sum(r["live"]["dropped_windows"] for r in plain) > 0, context  # slower than the stream
    assert sum(r["live"]["dropped_windows"] for r in bounded) > 0, context
    for i in range(1, len(ages)):
        recent = own[max(0, i - 5) : i]
        expected = float(np.median(recent))
        assert ages[i] <= max(bound - expected, fresh) + 0.05, (i, expected, context)
    # the bound shortens the wait: windows reach the model younger than without it
    assert np.mean(ages[1:]) < np.mean(plain_ages[1:]), (plain_ages, context)
