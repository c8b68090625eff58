"""A reader leaves nothing for the garbage collector: its decoder goes when it is closed or
dropped, in the process that used it, after normal reads and after errors alike.

A PyAV codec context left in a reference cycle keeps FFmpeg's frame threads until a collection
frees it. A DataLoader worker forked meanwhile inherits it without those threads, and when the
child's collector frees it, ``avcodec_free_context`` waits for them forever (the hang that
``data/loader.py`` guards against). The reader's frame generator used to hold the reader (reader
-> generator -> its frame -> reader), and PyAV's container and streams refer to each other, so
a reader that failed to open was left to the collector with its container open.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.video import VideoError, open_video
from ispan_cli.video.synthetic import write_synthetic_video
from tests.video.videogen import write_audio_only

# what holds FFmpeg's memory and threads; PyAV's enum members are module-level and live forever
AV_RESOURCES = (
    av.container.Container,
    av.stream.Stream,
    av.codec.context.CodecContext,
    av.frame.Frame,
    av.packet.Packet,
)


def left_for_the_collector(scenario: Callable[[], None]) -> tuple[list[str], list[str]]:
    """Runs ``scenario`` with the collector off. Returns the PyAV objects it created that are
    still alive once it returned (it keeps no reference: only a collection can free them), and
    those a collection then finds unreachable (kept by ``DEBUG_SAVEALL``)."""
    gc.collect()
    # held while the scenario runs, so no new object can take one of their ids
    before = [o for o in gc.get_objects() if issubclass(type(o), AV_RESOURCES)]
    known = {id(o) for o in before}

    def new(objects) -> list[str]:
        return sorted(
            type(o).__name__
            for o in objects
            if issubclass(type(o), AV_RESOURCES) and id(o) not in known
        )

    gc.disable()
    try:
        scenario()
        alive = new(gc.get_objects())
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        garbage = new(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()
    return alive, garbage


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cycles")
    out = {"clip": write_synthetic_video(root / "clip.mp4", seconds=3, width=64, height=48)}
    whole = write_synthetic_video(root / "whole.mkv", seconds=4, width=64, height=48, seed=1)
    data = whole.read_bytes()
    out["cut"] = root / "cut.mkv"
    out["cut"].write_bytes(data[: len(data) * 2 // 3])  # frames cut off mid-file
    out["audio"] = write_audio_only(root / "song.m4a")
    return out


def read_closed(videos) -> None:
    with open_video(videos["clip"], threads=2) as reader:
        reader.read([0, 5, 60, 10])  # forward, then back: a seek


def read_unclosed(videos) -> None:
    reader = open_video(videos["clip"], threads=2)
    reader.read([3, 40])


def read_raises(videos) -> None:
    try:
        with open_video(videos["clip"], threads=2) as reader:
            reader.read([2])
            reader.read([10_000])
    except VideoError:
        pass
    else:
        raise AssertionError("frame 10000 of a 75-frame clip was read")


def caller_raises(videos) -> None:
    try:
        with open_video(videos["clip"], threads=2) as reader:
            reader.read([2, 50])
            raise ISpanError("the caller's own error")
    except ISpanError:
        pass


def truncated(videos) -> None:
    with open_video(videos["cut"], threads=2) as reader:
        info = reader.info()
        assert info.truncated  # the tail was trimmed by seeking to each keyframe from the end
        reader.read([0, info.num_frames - 1, info.num_frames // 2])


def no_video_stream(videos) -> None:
    # fails after the container is open
    try:
        open_video(videos["audio"])
    except VideoError as exc:
        assert "no video stream" in str(exc)
    else:
        raise AssertionError("an audio file opened as a video")


def over_the_pixel_limit(videos) -> None:
    # fails after the container and the stream are open
    os.environ["ISPAN_MAX_FRAME_PIXELS"] = "100"
    try:
        open_video(videos["clip"])
    except VideoError as exc:
        assert "frame limit" in str(exc)
    else:
        raise AssertionError("64x48 frames passed a 100-pixel limit")
    finally:
        del os.environ["ISPAN_MAX_FRAME_PIXELS"]


def dataset_items(videos) -> None:
    from ispan_cli.data.clips import ClipSettings, VideoClips
    from ispan_cli.data.items import VideoItem
    from ispan_cli.video.preprocess import PreprocessSpec

    items = (VideoItem(str(videos["clip"]), 0), VideoItem(str(videos["audio"]), 1))
    for train in (True, False):
        settings = ClipSettings(segments=3, spec=PreprocessSpec(resize=48, crop=32), train=train)
        dataset = VideoClips(items, settings)
        (clip, _, _, error), (bad, _, _, why) = dataset[(0, 0)], dataset[(1, 0)]
        assert clip is not None and error is None
        assert bad is None and "no video stream" in why


SCENARIOS = [
    read_closed,
    read_unclosed,
    read_raises,
    caller_raises,
    truncated,
    no_video_stream,
    over_the_pixel_limit,
    dataset_items,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_nothing_is_left_for_the_collector(scenario, videos, monkeypatch):
    monkeypatch.delenv("ISPAN_MAX_FRAME_PIXELS", raising=False)
    alive, garbage = left_for_the_collector(lambda: scenario(videos))
    assert alive == [], f"PyAV objects only a collection can free: {alive}"
    assert garbage == [], f"PyAV objects in reference cycles: {garbage}"


def test_nothing_is_left_by_a_server_without_ranges(tmp_path):
    """The remote reader's seek-retry path: a seek back fails, and it reads from a new request."""
    from tests.live.servers import RangeServer

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "12", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        noise = np.random.default_rng(0).integers(0, 256, (100, 48, 64, 3), dtype=np.uint8)
        for i, rgb in enumerate(noise):  # noise: a file larger than what FFmpeg buffers
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with RangeServer(tmp_path, ranges=False) as server:
        requests = []

        def scenario() -> None:
            with open_video(server.url(path.name)) as reader:
                reader.read([90])
                before = len(server.requests)
                reader.read([3])  # back: this server cannot seek
                requests.append(len(server.requests) - before)

        alive, garbage = left_for_the_collector(scenario)
    assert requests == [1], "the read back did not take a new request"
    assert alive == [] and garbage == [], (alive, garbage)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_child_forked_after_reading_collects_without_hanging(videos):
    """The hang itself: a decoder with frame threads, read, closed and dropped before a fork;
    the child's collection must not find it (it would wait for threads the child lacks)."""
    script = textwrap.dedent(
        """
        import gc, os, sys, time
        from ispan_cli.video import open_video

        gc.disable()
        with open_video(sys.argv[1], threads=2) as reader:
            reader.read([0, 30, 10])
        del reader
        pid = os.fork()
        if pid == 0:
            gc.collect()
            os._exit(0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                print("exited")
                sys.exit(0)
            time.sleep(0.05)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("hung")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(videos["clip"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout.strip() == "exited", (result.stdout, result.stderr)


@pytest.mark.parametrize("workers", [0, 1])
def test_classify_leaves_nothing_for_the_collector_after_a_failed_video(videos, workers):
    """An error handed from the decoding to the job (inline with ``--workers 0``, as the Python
    API runs, or from a decode thread) must not keep the failed reader in a cycle: an exception
    carried in a Future holds its traceback's frames, and those hold the future."""
    from ispan_cli.inference.inputs import InputItem
    from ispan_cli.inference.pipeline import ClassifyOptions, run_classify
    from ispan_cli.runtime.loading import load_predictor

    predictor = load_predictor("istpan-tiny-synthetic", "torch", "cpu", "fp32")
    items = [InputItem(str(videos[name])) for name in ("audio", "clip", "audio")]
    options = ClassifyOptions(segments=2, workers=workers, batch_size=2)
    records: list[dict] = []
    alive, garbage = left_for_the_collector(
        lambda: records.extend(run_classify(predictor, items, options))
    )
    assert ["no video stream" in (r["error"] or "") for r in records] == [True, False, True]
    assert alive == [], f"PyAV objects only a collection can free: {alive}"
    assert garbage == [], f"PyAV objects in reference cycles: {garbage}"
