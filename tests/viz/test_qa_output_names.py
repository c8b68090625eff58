"""visualize --output without a video suffix (a folder-looking name, an image name): one error
line before the model loads, not FFmpeg's words after the whole render."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from tests.export.conftest import MODEL

runner = CliRunner()


@pytest.mark.parametrize("name", ["rendered", "out/", "sheet.png"])
def test_output_that_is_not_a_video_name_is_one_error_line(export_videos, tmp_path, name):
    output = f"{tmp_path}/{name}"
    args = ["visualize", str(export_videos[0]), "--model", MODEL, "-o", output]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: --output ") and ".mp4" in line, result.stderr
    assert "bug in ispan" not in result.stderr
    assert "model " not in result.stderr  # refused before the model loaded
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_other_h264_containers_still_render(export_videos, tmp_path):
    import av

    output = tmp_path / "att.MKV"
    args = ["visualize", str(export_videos[0]), "--model", MODEL, "-o", str(output)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    with av.open(str(output)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in container.decode(video=0)) == 8
