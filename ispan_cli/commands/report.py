"""``ispan report``: one self-contained HTML page for a training run or an evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    folder: Annotated[
        Path,
        typer.Argument(help="A training run (--output of train) or an `evaluate --output` folder."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The HTML file. Default: FOLDER/report.html.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Write a training run's or an evaluation's HTML report (one file, opens offline).

    One HTML file (images embedded; opens without a network): curves, the confusion
    matrix with class names, per-class accuracy worst first, the most confused pairs with a
    sample frame of a video of each class, the attention of a few validation clips (the run's
    best model or the evaluated one, on the CPU), the settings and the exact command. `ispan
    train` and `ispan evaluate --output` write it at the end."""
    from ispan_cli.engine.html_report import write_report
    from ispan_cli.outputs import check_output_file
    from ispan_cli.terminal import one_line

    if output is not None:
        check_output_file(output)
    path = write_report(folder, output)
    typer.echo(f"wrote {one_line(path)}", err=True)
