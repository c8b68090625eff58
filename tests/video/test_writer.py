"""Writing: browser-playable H.264 MP4 (yuv420p, even size, index first), with a fallback."""

from __future__ import annotations

import av
import numpy as np
import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.video import probe
from ispan_cli.video.writer import VideoWriter, encoder_available, write_video

from .conftest import require_encoder
from .videogen import pattern_frame, read_index


def test_h264_mp4_with_odd_size_reads_back_frame_exact(tmp_path):
    require_encoder("libx264")
    frames = [pattern_frame(i, 97, 73) for i in range(40)]
    written = write_video(tmp_path / "out.mp4", frames, fps=30)
    assert written.codec == "libx264" and (written.width, written.height) == (98, 74)
    assert written.frames == 40
    with av.open(str(written.path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert [read_index(f[:73, :97]) for f in decoded] == list(range(40))
    # the padding column/row repeats the edge rather than adding a black line
    np.testing.assert_allclose(decoded[5][:73, 97].astype(float), decoded[5][:73, 96], atol=12)
    info = probe(written.path)
    assert info.fps == pytest.approx(30.0) and info.num_frames == 40
    data = written.path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # faststart: playable while loading


def test_falls_back_to_the_next_encoder(tmp_path):
    assert not encoder_available("no-such-encoder")
    path = tmp_path / "fallback.mp4"
    with VideoWriter(path, fps=25, codecs=("no-such-encoder", "mpeg4")) as writer:
        for i in range(10):
            writer.write(pattern_frame(i, 64, 48))
    assert writer.codec == "mpeg4"
    assert probe(path).codec == "mpeg4"


def test_writer_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ISpanError, match="none of the video encoders"):
        write_video(tmp_path / "x.mp4", [pattern_frame(0, 64, 48)], fps=25, codecs=("nope",))
    with pytest.raises(ISpanError, match="uint8 RGB"):
        write_video(tmp_path / "y.mp4", [np.zeros((48, 64), np.uint8)], fps=25)
    writer = VideoWriter(tmp_path / "z.mp4", fps=25)
    writer.write(pattern_frame(0, 64, 48))
    with pytest.raises(ISpanError, match="80x48 but the video is 64x48"):
        writer.write(pattern_frame(1, 80, 48))
