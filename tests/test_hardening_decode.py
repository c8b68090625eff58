"""Decode-time allocations are bounded by the frames actually needed (issue 13).

A 3 MB MJPEG claiming 16000x16000 pixels a frame made ``ispan frames`` use 8.3 GB to print 8
indices. The hostile files are made here cheaply: a flat grey JPEG's entropy-coded data is the
same 4 bytes for every 16x16 block, so a 16000x16000 frame is built from the scan of a 16x16 one
encoded by PyAV, with the size in its SOF0 header changed. Peak memory is read from the child
process's ``ru_maxrss``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

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


# Runs the CLI in a child and prints that child's peak RSS (bytes) as the last stdout line.
_MEASURE = """
import resource, subprocess, sys
r = subprocess.run([sys.executable, "-m", "ispan_cli", *sys.argv[1:]], capture_output=True,
                   text=True)
sys.stdout.write(r.stdout)
sys.stderr.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(r.returncode)
"""


def run_measured(*args: str, env: dict | None = None) -> tuple[subprocess.CompletedProcess, int]:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    *out, peak = result.stdout.splitlines()
    result.stdout = "\n".join(out)
    return result, int(peak)


@pytest.fixture(scope="module")
def baseline() -> int:
    """Peak RSS of a command that decodes nothing: what importing the CLI costs (it varies with
    what the CLI imports at start-up), so the tests bound what decoding adds."""
    result, peak = run_measured("--version")
    assert result.returncode == 0, result.stderr
    return peak


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and "this is a bug" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_the_generated_file_really_is_16000_pixels_square(tmp_path):
    path = write_mjpeg(tmp_path / "huge.avi", [16000] * 3)
    assert path.stat().st_size < 20 * MiB  # a few MB claiming gigabytes of pixels
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.width, ctx.height) == (16000, 16000)


@pytest.mark.parametrize("decoder", ["pyav", pytest.param("opencv", marks=pytest.mark.slow)])
def test_a_16000_pixel_square_mjpeg_is_refused_in_bounded_memory(tmp_path, decoder, baseline):
    path = write_mjpeg(tmp_path / "huge.avi", [16000] * 3)
    result, peak = run_measured("frames", str(path), "--decoder", decoder)
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "16000x16000" in line and "ISPAN_MAX_FRAME_PIXELS" in line
    # one decoded frame would be 366 MiB as YUV and 732 MiB as RGB; the run adds far less
    assert peak - baseline < 150 * MiB, (peak - baseline) / MiB


def test_a_frame_that_grows_mid_stream_is_refused_by_the_decoder(tmp_path, baseline):
    # The header and the first frame say 16x16: only FFmpeg's max_pixels sees the second frame.
    path = write_mjpeg(tmp_path / "grows.avi", [16, 16000, 16000, 16])
    result, peak = run_measured("frames", str(path), "-o", str(tmp_path / "out"), "-s", "4")
    assert result.returncode == 1
    line = _one_error_line(result)
    assert "frame limit" in line and "grows.avi" in line
    assert peak - baseline < 150 * MiB, (peak - baseline) / MiB


def test_the_limit_can_be_lowered_and_raised(tmp_path, monkeypatch):
    from ispan_cli.errors import UsageError
    from ispan_cli.limits import max_frame_pixels
    from ispan_cli.video import probe

    path = write_mjpeg(tmp_path / "small.avi", [1024] * 3)
    lowered, _ = run_measured("probe", str(path), env={"ISPAN_MAX_FRAME_PIXELS": "1000000"})
    assert lowered.returncode == 1
    assert "1024x1024" in _one_error_line(lowered) and "1,000,000 pixels" in lowered.stderr
    assert (probe(path).width, probe(path).height) == (1024, 1024)  # the default takes it
    monkeypatch.setenv("ISPAN_MAX_FRAME_PIXELS", "lots")
    with pytest.raises(UsageError, match="ISPAN_MAX_FRAME_PIXELS='lots'"):
        max_frame_pixels()


def test_frames_without_out_decodes_no_sampled_frame(tmp_path, baseline):
    # 8000x8000 is under the limit: 183 MiB a frame as RGB, 92 MiB as YUV. Printing 8 indices
    # used to decode and convert all 8 (1.4 GiB of RGB); now only the first frame is decoded.
    path = write_mjpeg(tmp_path / "big.avi", [8000] * 8)
    result, peak = run_measured("frames", str(path), "-f", "json")
    assert result.returncode == 0, result.stderr
    indices = [row["index"] for row in json.loads(result.stdout)["frames"]]
    assert indices == list(range(8))
    assert peak - baseline < 400 * MiB, (peak - baseline) / MiB


def test_decoder_threads_are_bounded_by_the_memory_budget():
    assert decode_threads(1920, 1080, 0, cores=16) == 0  # FFmpeg's own choice stands
    assert decode_threads(1920, 1080, 4, cores=16) == 4
    per_frame = 8192 * 8192 * 3
    assert decode_threads(8192, 8192, 0, cores=16) == DECODE_BUDGET_BYTES // per_frame
    assert decode_threads(8192, 8192, 0, cores=16) * per_frame <= DECODE_BUDGET_BYTES
    assert decode_threads(60000, 60000, 8, cores=16) == 1  # never zero (zero means "auto")
    assert MAX_FRAME_PIXELS == 8192 * 8192
