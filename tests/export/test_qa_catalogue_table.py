"""`ispan models catalogue` at an 80-column terminal: every name, which is what the user types
into `ispan models import NAME`, is shown whole (it was cut to "mmaction2:tsn-r50-kine…")."""

from __future__ import annotations

from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.importers.catalogue import catalogue

runner = CliRunner()


def test_catalogue_names_are_whole_at_80_columns():
    result = runner.invoke(app, ["models", "catalogue"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    cells = {line.split("│")[1].strip() for line in result.stdout.splitlines() if "│" in line}
    names = set(catalogue())
    assert names and names <= cells, names - cells
