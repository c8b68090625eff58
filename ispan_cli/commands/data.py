"""``ispan data synth``: write the synthetic dataset as a folder of real video files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Datasets: write the synthetic dataset.", no_args_is_help=True)


@app.command("synth")
def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="New folder to write into.")],
    train: Annotated[int, typer.Option("--train", min=0, help="Training clips.")] = 500,
    val: Annotated[int, typer.Option("--val", min=0, help="Validation clips.")] = 100,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Data seed (= --split of the on-the-fly synthetic dataset)."),
    ] = 1,
) -> None:
    """Write synthetic clips as OUT/{train,val}/<class>/*.mp4 (a `folder` dataset) and
    OUT/boxes.jsonl (the target's box in every frame)."""
    from rich.progress import Progress

    from ispan_cli.data.synth_writer import write_synthetic

    with Progress(transient=True, console=_console()) as bar:
        task = bar.add_task("writing", total=train + val)
        counts = write_synthetic(
            out, train, val, seed, lambda done, _total: bar.update(task, completed=done)
        )
    typer.echo(
        f"wrote {counts['train']} training and {counts['val']} validation clips to {out}", err=True
    )


def _console():
    from rich.console import Console

    return Console(stderr=True)
