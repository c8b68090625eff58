"""``ispan merge``: join the part files of a sharded classify job into one output."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import FormatOpt, OutputFormat


def merge(
    output: Annotated[
        Path,
        typer.Argument(
            help="The --output of the sharded classify job (out.jsonl): its parts "
            "out.jsonl.part-IIIII-of-NNNNN lie beside it.",
            show_default=False,
        ),
    ],
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Merge the complete parts of a sharded `ispan classify` into OUTPUT, in input order.

    For SLURM array jobs and --shard by hand (under torchrun and srun the processes merge by
    themselves). Every part must be complete (its .done marker written); the parts are removed
    once OUTPUT is written. The merged file equals what one process would have written.
    """
    from rich.console import Console

    from ispan_cli.inference.merge import merge_parts
    from ispan_cli.outputs import check_output_file, exclusive
    from ispan_cli.terminal import markup

    check_output_file(output)
    with exclusive(output):
        result = merge_parts(output)
    emit(
        result,
        fmt,
        lambda r: Console().print(
            f"merged {r.parts} parts into {markup(r.output)}: {r.records} records ({r.format})",
            highlight=False,
        ),
    )
