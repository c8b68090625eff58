"""``ispan classify --help`` on --timeout: it bounds video URLs and live streams too (not only
the Hub, as the shared option's text said), and their default is not the Hub's."""

from __future__ import annotations

from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.commands.classify import VIDEO_TIMEOUT
from ispan_cli.hub import DEFAULT_TIMEOUT as HUB_TIMEOUT
from ispan_cli.video.sources import DEFAULT_TIMEOUT as SOURCE_TIMEOUT


def test_timeout_help_names_video_sources_and_both_defaults():
    result = CliRunner().invoke(app, ["classify", "--help"], env={"COLUMNS": "250"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "video URLs, and live streams" in text
    assert f"Default: {HUB_TIMEOUT:g} for the Hub, {SOURCE_TIMEOUT:g} for video sources." in text
    assert VIDEO_TIMEOUT == SOURCE_TIMEOUT
