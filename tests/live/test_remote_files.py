"""Remote files read without reading them whole: an MP4's frame index from its header, frames
fetched by range requests, bit-identical to the local file; and the cases that still read every
packet first (AVI, variable rate with B-frames), or read in order (a server without ranges).

Servers on 127.0.0.1 started here count the bytes they write per request.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from ispan_cli.video.decoder import open_video
from ispan_cli.video.errors import VideoError
from ispan_cli.video.pyav_open import MAX_LEADING, header_scan, scan_packets, video_stream
from tests.live.servers import RangeServer
from tests.video.videogen import pattern_frame, read_index, write_pattern_video

NOTE = "indexed by reading the whole file"


def write_padded(path: Path, frames: int, pad: int, gop: int, faststart: bool = False) -> Path:
    """A 96x72 H.264 pattern video (B-frames) whose every packet carries ``pad`` bytes of
    filler data (NAL type 12, which decoders drop): a large file that encodes in a second."""
    nal = b"\x0c" + b"\xff" * (pad - 6) + b"\x80"
    filler = len(nal).to_bytes(4, "big") + nal  # MP4 stores NAL units length-prefixed
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25, options={"g": str(gop), "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"

        def mux(packets):
            for p in packets:
                padded = av.Packet(bytes(p) + filler)
                padded.pts, padded.dts, padded.time_base = p.pts, p.dts, p.time_base
                padded.is_keyframe, padded.stream = p.is_keyframe, stream
                container.mux(padded)

        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 96, 72), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            mux(stream.encode(frame))
        mux(stream.encode())
    return path


def write_shifted(path: Path, frames: int, shifted: int) -> Path:
    """Intra-only H.264 at 25 fps whose frame ``shifted`` is shown 1/250 s late: evenly spaced
    decoding times, so the header looks like a constant rate, which this one frame is not."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"g": "1", "bf": "0"})
        stream.width, stream.height, stream.pix_fmt = 96, 72, "yuv420p"
        packets = []
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern_frame(i, 96, 72), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            packets += stream.encode(frame)
        packets += stream.encode()
        for i, p in enumerate(packets):  # intra only: one packet per frame, in order
            p.time_base = Fraction(1, 1000)
            p.dts = 40 * i
            p.pts = 40 * i + (4 if i == shifted else 0)
            container.mux(p)
    return path


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("remote")
    # ~45 MB, 1500 frames, a keyframe every 12: 8 sampled frames are 8 short GOPs of it
    write_padded(root / "large_end.mp4", 1500, 30_000, gop=12)  # moov after the frames
    write_padded(root / "large_start.mp4", 1500, 30_000, gop=12, faststart=True)
    write_pattern_video(root / "long_gop.mp4", "libx264", 600, options={"g": "600", "bf": "3"})
    rate = 25
    vfr_pts = np.cumsum([0] + [1 + (i % 3) for i in range(119)]).tolist()  # 1-3 ticks apart
    write_pattern_video(
        root / "vfr.mp4", "libx264", 120, rate=rate, pts=vfr_pts, time_base=Fraction(1, rate),
        options={"bf": "0"},
    )  # fmt: skip
    write_pattern_video(
        root / "vfr_b.mp4", "libx264", 120, rate=rate, pts=vfr_pts, time_base=Fraction(1, rate),
        options={"bf": "3"},
    )  # fmt: skip
    write_pattern_video(root / "clip.avi", "mpeg4", 90, options={"bf": "2", "g": "30"})
    write_shifted(root / "shifted_late.mp4", 60, shifted=40)
    write_shifted(root / "shifted_early.mp4", 60, shifted=5)
    return root


def _remote_and_local(server: RangeServer, path: Path, wanted: list[int]):
    with open_video(server.url(path.name)) as remote, open_video(path) as local:
        got = remote.read(wanted)
        np.testing.assert_array_equal(got, local.read(wanted))
        np.testing.assert_array_equal(remote.frame_times(), local.frame_times())
        assert remote.info().num_frames == local.info().num_frames
    return got


@pytest.fixture(scope="module")
def clf():
    from ispan_cli import Classifier

    return Classifier(model="istpan-tiny-synthetic", device="cpu", segments=8)


@pytest.mark.parametrize("name", ["large_end.mp4", "large_start.mp4"])
def test_classify_by_url_reads_a_fraction_of_a_large_mp4(root, clf, name):
    path = root / name
    with RangeServer(root) as server:
        remote = clf.classify(server.url(name))
        served = server.bytes_sent
        requests = list(server.served)
    local = clf.classify(str(path))
    assert remote["topk"] == local["topk"]
    assert remote["frames"] == local["frames"]
    size = path.stat().st_size
    # the header, the first frames and 8 GOPs of 12 frames (30 KB each), plus what TCP had in
    # flight when FFmpeg hung up: about 13% here; the packet scan read all of it first
    assert served < 0.2 * size, requests
    assert len(requests) >= 8  # one range request per sampled frame, or near it


def test_frames_by_url_are_the_local_files_in_any_order(root):
    wanted = [1400, 3, 777, 776, 0, 1499, 12, 11]  # backward seeks, neighbours, both ends
    with RangeServer(root) as server:
        got = _remote_and_local(server, root / "large_end.mp4", wanted)
    assert [read_index(f) for f in got] == wanted


def test_long_gop_by_url(root, caplog):
    wanted = [599, 300, 1, 450, 299]  # deep inside a 600-frame GOP: decoded from frame 0
    with caplog.at_level(logging.WARNING, "ispan.files"), RangeServer(root) as server:
        got = _remote_and_local(server, root / "long_gop.mp4", wanted)
    assert [read_index(f) for f in got] == wanted
    assert NOTE not in caplog.text  # read from the header


def test_variable_rate_without_b_frames_is_read_from_the_header(root, caplog):
    with caplog.at_level(logging.WARNING, "ispan.files"), RangeServer(root) as server:
        got = _remote_and_local(server, root / "vfr.mp4", [119, 50, 51, 7])
        with open_video(server.url("vfr.mp4")) as remote:
            assert remote.info().variable_frame_rate is True
    assert [read_index(f) for f in got] == [119, 50, 51, 7]
    assert NOTE not in caplog.text


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("vfr_b.mp4", "variable frame rate and reordered (B-)frames"),
        ("clip.avi", "AVI stores no presentation timestamps"),
    ],
)
def test_files_the_header_cannot_index_are_scanned_with_one_note(root, caplog, name, why):
    wanted = [89, 2, 60, 61]
    with caplog.at_level(logging.WARNING, "ispan.files"), RangeServer(root) as server:
        got = _remote_and_local(server, root / name, wanted)
        url = server.url(name)
        with open_video(url) as again:  # a second open of the same URL: no second note
            again.read([5])
    assert [read_index(f) for f in got] == wanted
    notes = [r.getMessage() for r in caplog.records if NOTE in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith(f"{url}: ") and why in notes[0], notes


@pytest.mark.parametrize(("name", "at"), [("shifted_late.mp4", 40), ("shifted_early.mp4", 5)])
def test_a_frame_off_the_header_index_switches_to_the_scan(root, caplog, name, at):
    path = root / name
    with av.open(str(path)) as container:  # the trap: the header alone looks trustworthy
        header, _ = header_scan(container, video_stream(container, path))
        scanned = scan_packets(container, video_stream(container, path))
    assert header is not None
    assert not np.array_equal(header.index.pts, scanned.index.pts)
    wanted = [at + 1, at, 0, 59]
    with caplog.at_level(logging.WARNING, "ispan.files"), RangeServer(root) as server:
        got = _remote_and_local(server, path, wanted)
    assert [read_index(f) for f in got] == wanted
    assert "does not fit the index in its header" in caplog.text


def _header_matches_scan(path: Path) -> bool | None:
    """None: the header is not trusted; else whether its index is the packet scan's."""
    with av.open(str(path)) as container:
        stream = video_stream(container, path)
        header, _ = header_scan(container, stream)
        if header is None:
            return None
        scanned = scan_packets(container, stream)
    return bool(
        np.array_equal(header.index.pts, scanned.index.pts)
        and np.array_equal(header.index.keyframe, scanned.index.keyframe)
    )


@pytest.mark.parametrize(
    ("codec", "options", "container"),
    [
        ("libx264", {"bf": "3", "g": "12"}, "mp4"),
        ("libx264", {"bf": "0", "g": "50"}, "mov"),
        ("libx264", {"bf": "3", "b-pyramid": "normal", "g": "25", "open-gop": "1"}, "mp4"),
        ("mpeg4", {"bf": "2", "g": "10"}, "mp4"),
        ("mjpeg", {}, "mov"),
        ("libx265", {"bf": "4", "g": "20"}, "mp4"),
    ],
)
def test_the_header_index_is_the_packet_scan(tmp_path, codec, options, container):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    pix = "yuvj420p" if codec == "mjpeg" else "yuv420p"
    path = tmp_path / f"v.{container}"
    write_pattern_video(path, codec, 75, pix_fmt=pix, options=options)
    with av.open(str(path)) as opened:
        stream = video_stream(opened, path)
        header, why = header_scan(opened, stream)
        scanned = scan_packets(opened, stream)
    assert header is not None, why
    np.testing.assert_array_equal(header.index.pts, scanned.index.pts)
    # a keyframe is placed where it is decoded: where it is shown, or (an open GOP: MPEG-4
    # part 2 and x265 put B-frames shown before it after it) a few frames earlier
    placed, shown = header.index.keyframe_indices(), scanned.index.keyframe_indices()
    assert len(placed) == len(shown)
    assert np.all((placed <= shown) & (shown <= placed + MAX_LEADING))
    # and by URL the frames are the local file's, leading frames of an open GOP included
    near = {int(k) + d for k in shown[1:] for d in (-2, -1, 0)} | {74, 1}
    wanted = sorted(i for i in near if 0 <= i < 75)[::-1][:24]
    with RangeServer(tmp_path) as server:
        got = _remote_and_local(server, path, wanted)
    assert [read_index(f) for f in got] == wanted


def test_the_header_is_not_trusted_for_variable_rate_with_b_frames(root):
    assert _header_matches_scan(root / "vfr_b.mp4") is None
    assert _header_matches_scan(root / "vfr.mp4") is True


@pytest.mark.parametrize("name", ["large_start.mp4", "clip.avi"])
def test_a_server_without_ranges_is_read_in_order(root, name):
    path = root / name
    wanted = [80, 3, 40, 41] if name.endswith(".avi") else [1400, 3, 777, 776]
    with RangeServer(root, ranges=False) as server:
        got = _remote_and_local(server, path, wanted)
        served, requests = server.bytes_sent, list(server.served)
    assert [read_index(f) for f in got] == wanted
    # one pass in frame order after opening (an AVI is read once more first, for its index)
    passes = 2 if name.endswith(".avi") else 1
    assert served < (passes + 0.1) * path.stat().st_size, requests


def test_a_server_without_ranges_and_moov_at_the_end_is_one_error(root):
    with (
        RangeServer(root, ranges=False) as server,
        pytest.raises(VideoError, match=r"does not answer range requests.*faststart"),
    ):
        open_video(server.url("large_end.mp4"))
