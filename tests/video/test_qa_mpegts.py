"""MPEG-TS, as recorders, broadcast captures and HLS segments write it. FFmpeg seeks a TS file by
byte position and can land past the keyframe it was sent to; in a clip of one GOP (x264's
default keyint is 250: any clip under 10 s at 25 fps) no keyframe follows, the decoder gave no
frame at all, and every such file failed with 'no frame ... can be decoded'."""

from __future__ import annotations

import pytest

from ispan_cli.video import open_video, probe

from .videogen import read_index


@pytest.mark.parametrize("gop", [1000, 12], ids=["one-gop", "gop-12"])
def test_mpegts_frames_are_the_right_ones_in_any_order(make_video, gop):
    path = make_video(
        f"ts-gop{gop}", "libx264", "ts", num_frames=60,
        options={"preset": "veryfast", "g": str(gop), "bf": "2", "x264-params": "scenecut=0"},
    )  # fmt: skip
    info = probe(path, "pyav")
    assert info.num_frames == 60
    assert info.keyframes == (1 if gop == 1000 else 5)
    reader = open_video(path, "pyav")
    try:
        for wanted in ([30, 59], [2, 10], [0], [45, 5]):  # backwards: a seek each time
            frames = reader.read(wanted)
            assert [read_index(f) for f in frames] == wanted
    finally:
        reader.close()


@pytest.mark.parametrize("gop", [1000, 12], ids=["one-gop", "gop-12"])
def test_opencv_backend_reads_the_right_mpegts_frames_in_any_order(make_video, gop):
    # OpenCV's seek in TS landed tens of frames off and it still numbered frames from where it
    # was sent: frames came back silently wrong (or not at all in a one-GOP clip)
    pytest.importorskip("cv2")
    path = make_video(
        f"ts-gop{gop}", "libx264", "ts", num_frames=60,
        options={"preset": "veryfast", "g": str(gop), "bf": "2", "x264-params": "scenecut=0"},
    )  # fmt: skip
    reader = open_video(path, "opencv")
    try:
        assert reader.info().num_frames == 60
        for wanted in ([30, 59], [2, 10], [0], [45, 5]):
            frames = reader.read(wanted)
            assert [read_index(f) for f in frames] == wanted
    finally:
        reader.close()
