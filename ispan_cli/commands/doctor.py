"""``ispan doctor``: which parts of the installation work on this machine, and why not."""

from __future__ import annotations

import sys

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import FormatOpt, OutputFormat


def doctor(fmt: FormatOpt = OutputFormat.table) -> None:
    """Check versions, video decoders, torch devices, ONNX Runtime providers and Hub settings.

    Each part is tried for real (a frame decoded, a matmul run, an ONNX session run). Exits 1
    when a required part (torch, PyAV decoding, the ONNX Runtime CPU provider) is broken;
    OpenCV, CUDA and GPU providers are optional.
    """
    from ispan_cli.diagnostics import run_diagnostics

    report = _run_with_status(run_diagnostics)
    emit(report, fmt, _render)
    if not report.ok:
        names = ", ".join(f"{c.section}/{c.name}" for c in report.broken)
        typer.echo(f"error: required part(s) broken: {names} (see the details above)", err=True)
        raise typer.Exit(1)


def _run_with_status(run):
    if not sys.stderr.isatty():
        return run()
    from rich.console import Console

    with Console(stderr=True).status("checking...") as status:
        return run(progress=lambda name: status.update(f"checking {name}..."))


def _render(report) -> None:
    from rich.console import Console
    from rich.table import Table

    from ispan_cli.terminal import markup

    console = Console()
    table = Table(title="ispan doctor")
    for col in ("section", "check", "status", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    previous = None
    for c in report.checks:
        if previous is not None and c.section != previous:
            table.add_section()
        section, previous = ("" if c.section == previous else c.section), c.section
        if c.ok:
            status = "[green]ok[/green]"
        elif c.required:
            status = "[bold red]BROKEN[/bold red]"
        else:
            status = "[yellow]unavailable[/yellow]"
        table.add_row(section, c.name, status, markup(c.detail))
    console.print(table)
    hub = report.hub
    lines = [
        f"Hub endpoint: {hub.endpoint} (HF_ENDPOINT)",
        f"Hub cache: {hub.cache_dir} (HF_HOME / HF_HUB_CACHE), "
        f"{hub.cached_models} ispan model revision(s) cached",
        f"Offline: {'yes' if hub.offline else 'no'} (HF_HUB_OFFLINE)",
        f"HF_TOKEN: {'set' if hub.token_from_env else 'not set'}",
    ]
    if hub.error:
        lines.append(f"Hub cache problem: {hub.error}")
    for line in lines:
        console.print(markup(line), highlight=False)
    verdict = (
        "[green]all required parts work[/green]" if report.ok else "[bold red]broken[/bold red]"
    )
    console.print(f"Verdict: {verdict}")
