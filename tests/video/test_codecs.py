"""Every codec/container in issue 3 returns exactly the requested frames, on both backends.

The frames' pixels encode their index (videogen.py), so each returned frame is checked by reading
the pattern back, independently of the decoder's own idea of which frame it is.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ispan_cli.video import TSNSampler, open_video, probe, sample_video

from .conftest import CASES, NUM_FRAMES
from .videogen import read_index

# Unsorted, repeated, adjacent (decode forward), far apart (seek), backwards (seek back), ends.
REQUEST = [149, 3, 77, 78, 10, 120, 3, 0, 79, 148]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_exact_frames_by_index(case, decoder, case_video):
    path = case_video(case)
    with open_video(path, decoder) as reader:
        frames = reader.read(REQUEST)
        assert frames.shape == (len(REQUEST), case.height, case.width, 3)
        assert frames.dtype == np.uint8
        assert [read_index(f) for f in frames] == REQUEST
        # a second read on the same reader goes backwards: it must seek, not return stale frames
        again = reader.read([5, 140, 6])
        assert [read_index(f) for f in again] == [5, 140, 6]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_consecutive_reads_continue_decoding_exactly(case, case_video):
    # Each read continues from where the last stopped (no seek): frames the previous read let
    # the decoder skip must not be the ones this read wants.
    with open_video(case_video(case), "pyav") as reader:
        got = [read_index(reader.read([i])[0]) for i in (1, 2, 3, 5, 8, 9, 30, 31, 33, 34)]
    assert got == [1, 2, 3, 5, 8, 9, 30, 31, 33, 34]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_probe_counts_frames_and_reports_the_stream(case, case_video):
    info = probe(case_video(case))
    assert info.num_frames == NUM_FRAMES
    assert (info.width, info.height) == (case.width, case.height)
    assert info.rotation == 0
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(NUM_FRAMES / 25.0)
    assert info.variable_frame_rate is False
    assert info.bit_depth == case.bit_depth
    assert info.truncated is False and info.warnings == ()
    expected_codec = {"libx264": "h264", "libx265": "hevc", "libvpx-vp9": "vp9"}
    assert info.codec == expected_codec.get(case.codec, case.codec)
    if case.ext == "mkv" or case.ext == "webm":
        # Matroska headers carry no frame count: it was counted
        assert info.container_frames is None and info.frame_count_source == "counted"


@pytest.mark.parametrize("case", [CASES[0], CASES[4], CASES[9]], ids=lambda c: c.name)
@pytest.mark.parametrize("decoder", ["pyav", "opencv"])
def test_scaled_in_decoder_keeps_aspect_and_frames(case, decoder, case_video):
    with open_video(case_video(case), decoder) as reader:
        frames = reader.read(REQUEST, short_side=40)
    expected_w = round(case.width * 40 / case.height)
    assert frames.shape == (len(REQUEST), 40, expected_w, 3)
    assert [read_index(f) for f in frames] == REQUEST


def test_tsn_sampling_end_to_end_returns_the_segment_centres(case_video):
    sampled = sample_video(case_video(CASES[4]), TSNSampler(8))
    expected = [int(NUM_FRAMES / 8 * k + NUM_FRAMES / 16) for k in range(8)]
    assert sampled.sampling.indices.tolist() == [expected]
    assert sampled.frames.shape[:2] == (1, 8)
    assert [read_index(f) for f in sampled.frames[0]] == expected
    np.testing.assert_allclose(sampled.sampling.timestamps[0], np.array(expected) / 25.0)


def test_without_pyav_auto_falls_back_to_opencv(h264_video):
    # A fresh interpreter where importing av fails, as on a machine without PyAV.
    code = (
        "import sys; sys.modules['av'] = None\n"
        "from ispan_cli.video import available_decoders, open_video, DecoderUnavailableError\n"
        "print(available_decoders()['pyav'] is not None, available_decoders()['opencv'])\n"
        f"reader = open_video({str(h264_video)!r})\n"
        "print(reader.name, reader.info().num_frames)\n"
        "try:\n"
        f"    open_video({str(h264_video)!r}, 'pyav')\n"
        "except DecoderUnavailableError as exc:\n"
        "    print('pyav unavailable:', 'pip install av' in str(exc))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:3] == [
        "True None",
        f"opencv {NUM_FRAMES}",
        "pyav unavailable: True",
    ]
