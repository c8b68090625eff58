"""`ispan evaluate --help` describes evaluate's own --batch-size and --workers: it has no
timeline mode, and its workers are data-loader processes, not classify's decoding threads."""

from __future__ import annotations

from typer.testing import CliRunner

from ispan_cli.app import app


def test_batch_size_and_workers_help_is_evaluates_own() -> None:
    done = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "400"})
    assert done.exit_code == 0, done.output
    lines = {line.split()[1]: line for line in done.output.splitlines() if "│    --" in line}
    assert "timeline" not in lines["--batch-size"] and "Default: 4." in lines["--batch-size"]
    assert "threads" not in lines["--workers"] and "Data-loader processes" in lines["--workers"]
