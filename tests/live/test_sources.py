"""Sources: what an input names, masked credentials, remote files over real HTTP, and one
clear error per network failure (servers on 127.0.0.1 started here)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ispan_cli.video.decoder import open_video
from ispan_cli.video.errors import VideoError
from ispan_cli.video.sources import mask_credentials, parse_source
from ispan_cli.video.synthetic import write_synthetic_video
from tests.live.servers import RangeServer, free_port, silent_server
from tests.video.videogen import read_index, write_pattern_video


@pytest.fixture(scope="module")
def pattern(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    write_pattern_video(root / "clip.mp4", "libx264", 60, width=96, height=72, rate=25)
    # textured, a few hundred KB: larger than FFmpeg's read buffer, so seeks reach the server
    write_synthetic_video(root / "big.mp4", seconds=4.0, width=320, height=240)
    return root / "clip.mp4"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("clip.mp4", "file"),
        ("/tmp/a b.mkv", "file"),
        ("file:///tmp/x.mp4", "file"),
        ("http://h/x.mp4", "remote"),
        ("HTTPS://h/x.mp4", "remote"),
        ("https://h/live/index.m3u8?t=1", "live"),
        ("rtsp://cam/s", "live"),
        ("rtmp://h/live/s", "live"),
        ("udp://239.0.0.1:1234", "live"),
        ("webcam:0", "webcam"),
        ("/dev/video2", "webcam"),
    ],
)
def test_parse_source_kinds(text, kind):
    assert parse_source(text).kind == kind


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(VideoError, match="unknown URL scheme gopher"):
        parse_source("gopher://h/x")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s", "rtsp://admin:***@10.0.0.5:554/s"),
        ("rtmp://:tok@h/live", "rtmp://***@h/live"),
        ("rtmp://sekrit@h/live", "rtmp://***@h/live"),  # a token as the user name
        ("udp://@:1234", "udp://@:1234"),  # FFmpeg's "receive on every address": nothing hidden
        ("http://h/x.mp4?token=abc&x=1", "http://h/x.mp4?token=***&x=1"),
        ("http://h/x.mp4", "http://h/x.mp4"),
        ("clip.mp4", "clip.mp4"),
    ],
)
def test_credentials_are_masked(url, masked):
    assert mask_credentials(url) == masked
    assert parse_source(url).display == masked


def test_url_reads_the_same_frames_as_the_file_and_seeks_by_range(pattern):
    with RangeServer(pattern.parent) as server:
        url = server.url("clip.mp4")
        with open_video(pattern) as local, open_video(url) as remote:
            assert remote.path == url
            np.testing.assert_array_equal(remote.frame_times(), local.frame_times())
            wanted = [55, 3, 30, 31, 0]  # out of order: backward seeks
            frames = remote.read(wanted)
            np.testing.assert_array_equal(frames, local.read(wanted))
            assert [read_index(f) for f in frames] == wanted
            assert remote.info().num_frames == 60
        big = pattern.parent / "big.mp4"
        with open_video(big) as local, open_video(server.url("big.mp4")) as remote:
            wanted = [90, 2, 60]
            np.testing.assert_array_equal(remote.read(wanted), local.read(wanted))
        # seeking used the server's ranges: requests starting past byte 0
        assert any(r and not r.startswith("bytes=0-") for r in server.requests), server.requests


def test_refused_port_is_one_error():
    url = f"http://127.0.0.1:{free_port()}/x.mp4"
    with pytest.raises(VideoError, match="connection refused; is the server running"):
        open_video(url)


@pytest.mark.parametrize(
    ("status", "words"), [(404, "404 Not Found; check the URL"), (401, "401 Unauthorized")]
)
def test_http_errors_are_one_error_without_credentials(pattern, status, words):
    with RangeServer(pattern.parent, status=status) as server:
        url = server.url("clip.mp4").replace("http://", "http://me:pw@")
        with pytest.raises(VideoError) as info:
            open_video(url)
    message = str(info.value)
    assert words in message
    assert "pw" not in message and "me:***@" in message


def test_silent_server_ends_by_the_timeout():
    with silent_server() as server:
        start = time.monotonic()
        with pytest.raises(VideoError, match=r"no answer within 1 s"):
            open_video(f"http://127.0.0.1:{server.port}/x.mp4", timeout=1.0)
        assert time.monotonic() - start < 8


def test_live_source_through_open_video_says_what_to_do():
    with pytest.raises(VideoError, match=r"live source.*--window"):
        open_video("rtsp://user:pw@127.0.0.1:1/s")


def test_missing_file_keeps_its_file_error(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        open_video(tmp_path / "none.mp4")


def test_probe_and_list_files_take_urls(pattern, tmp_path):
    from typer.testing import CliRunner

    from ispan_cli.app import app
    from ispan_cli.inference.inputs import expand_inputs

    with RangeServer(pattern.parent) as server:
        url = server.url("clip.mp4").replace("http://", "http://u:pw@")
        result = CliRunner().invoke(app, ["probe", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"num_frames": 60' in result.stdout
    assert "pw" not in result.stdout and "u:***@" in result.stdout
    listing = tmp_path / "sources.txt"
    listing.write_text(f"{pattern}\nrtsp://cam/s\nhttp://h/x.mp4\n")
    items = [i.path for i in expand_inputs([f"@{listing}"])]
    assert items == [str(pattern), "rtsp://cam/s", "http://h/x.mp4"]


def test_unknown_host_is_one_error():
    with pytest.raises(VideoError, match="cannot reach the host"):
        open_video("http://no-such-host.invalid/x.mp4", timeout=5)


def test_classifier_export_is_lazy():
    import subprocess
    import sys

    code = (
        "import sys, ispan_cli; a = 'numpy' in sys.modules; "
        "from ispan_cli import Classifier; print(a, 'torch' in sys.modules, Classifier.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "Classifier"]
