"""Decode-time allocations are bounded by the frames actually needed (issue 13).

A 3 MB MJPEG claiming 16000x16000 pixels a frame made ``ispan frames`` use 8.3 GB to print 8
indices. The hostile files are made here cheaply: a flat grey JPEG's entropy-coded data is the
same 4 bytes for every 16x16 block, so a 16000x16000 frame is built from the scan of a 16x16 one
encoded by PyAV, with the size in its SOF0 header changed. The command's one error line is checked
through the CLI; peak memory (``ru_maxrss``) in a child running the same video-layer call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.limits import DECODE_BUDGET_BYTES, MAX_FRAME_PIXELS, decode_threads

MiB = 2**20


def gray_jpeg(side: int) -> bytes:
    """A baseline JPEG of a flat grey side x side picture (side: a multiple of 16)."""
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width = enc.height = 16
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 25)
    enc.options = {"huffman": "default"}  # the standard tables: every block codes the same
    rgb = np.full((16, 16, 3), 128, np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuvj420p")
    data = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    sof, sos = data.index(b"\xff\xc0"), data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")  # after the SOS header
    mcu = data[start : data.rindex(b"\xff\xd9")]  # one 16x16 block's scan
    head = bytearray(data[:start])
    head[sof + 5 : sof + 9] = side.to_bytes(2, "big") * 2  # SOF0: height, width
    return bytes(head) + mcu * (side // 16) ** 2 + b"\xff\xd9"


def write_mjpeg(path: Path, sides: list[int], header_side: int | None = None) -> Path:
    """An AVI of MJPEG frames of the given sizes (the header says ``header_side`` or the first)."""
    jpegs = {side: gray_jpeg(side) for side in set(sides)}
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mjpeg", rate=8)
        stream.width = stream.height = header_side or sides[0]
        stream.pix_fmt = "yuvj420p"
        for i, side in enumerate(sides):
            packet = av.Packet(jpegs[side])
            packet.stream = stream
            packet.pts = packet.dts = i
            packet.time_base = Fraction(1, 8)
            out.mux(packet)
    return path


# Runs library code in a child (the video layer, without the CLI's start-up imports) and prints
# the error it raised, if any, and the child's peak RSS in bytes as the last line.
_MEASURE = """
import resource, sys
from ispan_cli.errors import ISpanError
from ispan_cli.video import TSNSampler, open_video, sample_video
from ispan_cli.video.extract import sample_indices
path = sys.argv[1]
try:
    exec(sys.argv[2])
except ISpanError as exc:
    print("error:", exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def run_measured(path: Path | str, code: str) -> tuple[str, int]:
    """(what the code printed, peak RSS in bytes) of ``code`` run on ``path`` in a child."""
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path), code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    *out, peak = result.stdout.splitlines()
    return "\n".join(out), int(peak)


@pytest.fixture(scope="module")
def baseline() -> int:
    """The child's peak RSS when it decodes nothing: the tests bound what decoding adds."""
    _, peak = run_measured("", "pass")
    return peak


def _cli_error(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and "this is a bug" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_the_generated_file_really_is_16000_pixels_square(tmp_path):
    path = write_mjpeg(tmp_path / "huge.avi", [16000] * 3)
    assert path.stat().st_size < 20 * MiB  # a few MB claiming gigabytes of pixels
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.width, ctx.height) == (16000, 16000)


@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_a_16000_pixel_square_mjpeg_is_refused_in_bounded_memory(tmp_path, decoder, baseline):
    path = write_mjpeg(tmp_path / "huge.avi", [16000] * 3)
    line = _cli_error("frames", str(path), "--decoder", decoder)
    assert "16000x16000" in line and "ISPAN_MAX_FRAME_PIXELS" in line
    printed, peak = run_measured(path, f"open_video(path, {decoder!r})")
    assert printed.startswith("error: ") and "16000x16000" in printed
    # one decoded frame would be 366 MiB as YUV and 732 MiB as RGB; opening adds far less
    assert peak - baseline < 150 * MiB, (peak - baseline) / MiB


def test_a_frame_that_grows_mid_stream_is_refused_by_the_decoder(tmp_path, baseline):
    # The header and the first frame say 16x16: only FFmpeg's max_pixels sees the second frame.
    path = write_mjpeg(tmp_path / "grows.avi", [16, 16000, 16000, 16])
    line = _cli_error("frames", str(path), "-o", str(tmp_path / "out"), "-s", "4")
    assert "frame limit" in line and "grows.avi" in line
    printed, peak = run_measured(path, "sample_video(path, TSNSampler(4))")
    assert printed.startswith("error: ") and "frame limit" in printed
    assert peak - baseline < 150 * MiB, (peak - baseline) / MiB


def test_the_limit_can_be_lowered_and_raised(tmp_path, monkeypatch):
    from ispan_cli.errors import UsageError
    from ispan_cli.limits import max_frame_pixels
    from ispan_cli.video import probe

    path = write_mjpeg(tmp_path / "small.avi", [1024] * 3)
    assert (probe(path).width, probe(path).height) == (1024, 1024)  # the default takes it
    monkeypatch.setenv("ISPAN_MAX_FRAME_PIXELS", "1000000")
    line = _cli_error("probe", str(path))
    assert "1024x1024" in line and "1,000,000 pixels" in line
    monkeypatch.setenv("ISPAN_MAX_FRAME_PIXELS", "lots")
    with pytest.raises(UsageError, match="ISPAN_MAX_FRAME_PIXELS='lots'"):
        max_frame_pixels()


def test_frames_without_out_decodes_no_sampled_frame(tmp_path, baseline):
    # 8000x8000 is under the limit: 183 MiB a frame as RGB, 92 MiB as YUV. Printing 8 indices
    # used to decode and convert all 8 (1.4 GiB of RGB); now only the first frame is decoded.
    import tracemalloc

    path = write_mjpeg(tmp_path / "big.avi", [8000] * 8)
    tracemalloc.start()  # NumPy reports its arrays to tracemalloc: decoded RGB frames count
    try:
        result = CliRunner().invoke(app, ["frames", str(path), "-f", "json"])
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert numpy_peak < 64 * MiB, numpy_peak / MiB  # not one 183 MiB RGB frame
    assert [row["index"] for row in json.loads(result.stdout)["frames"]] == list(range(8))
    printed, peak = run_measured(path, "print(sample_indices(path, TSNSampler(8))[1].indices)")
    assert printed == "[[0 1 2 3 4 5 6 7]]"
    assert peak - baseline < 400 * MiB, (peak - baseline) / MiB


def test_decoder_threads_are_bounded_by_the_memory_budget():
    assert decode_threads(1920, 1080, 0, cores=16) == 0  # FFmpeg's own choice stands
    assert decode_threads(1920, 1080, 4, cores=16) == 4
    per_frame = 8192 * 8192 * 3
    assert decode_threads(8192, 8192, 0, cores=16) == DECODE_BUDGET_BYTES // per_frame
    assert decode_threads(8192, 8192, 0, cores=16) * per_frame <= DECODE_BUDGET_BYTES
    assert decode_threads(60000, 60000, 8, cores=16) == 1  # never zero (zero means "auto")
    assert MAX_FRAME_PIXELS == 8192 * 8192
