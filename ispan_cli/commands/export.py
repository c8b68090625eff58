"""``ispan export``: a verified, self-describing ONNX file (and an int8 copy on request)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import (
    Decoder,
    DecoderOpt,
    FormatOpt,
    ModelOpt,
    OutputFormat,
    TimeoutOpt,
)


def export(
    onnx: Annotated[
        bool, typer.Option("--onnx", help="Export to ONNX (the one format so far; required).")
    ] = False,
    model: ModelOpt = None,
    # a str, not a Path: Path drops the trailing slash that says "a folder" (`-o deploy/`
    # for a folder that does not exist yet)
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="<path>",
            help="The .onnx file, or a folder (writes DIR/model.onnx, usable as --model DIR "
            "--runtime onnx; missing folders are created). Default: ./<model name>.onnx.",
            show_default=False,
        ),
    ] = None,
    opset: Annotated[int, typer.Option("--opset", min=18, help="ONNX opset version.")] = 18,
    with_attention: Annotated[
        bool,
        typer.Option(
            "--with-attention",
            help="Add the fused and per-level attention maps as outputs (for `ispan visualize "
            "--runtime onnx`).",
        ),
    ] = False,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Compare with PyTorch on a decoded video; fail beyond 1e-4 or on a top-1 "
            "disagreement.",
        ),
    ] = True,
    verify_video: Annotated[
        Path | None,
        typer.Option(
            "--verify-video",
            help="The video to verify on. Default: a generated one.",
            show_default=False,
        ),
    ] = None,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8",
            help="Also write <name>.int8.onnx: static int8 quantization, with its agreement "
            "with fp32.",
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Folder of videos to calibrate int8 on (every 5th held out for the report). "
            "Default: generated clips.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing output files.")
    ] = False,
    decoder: DecoderOpt = Decoder.auto,
    timeout: TimeoutOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Export a model to ONNX with dynamic batch and segment axes, verified against PyTorch.

    The file carries the model's config (labels, preprocessing, sampling, model id, weights
    sha256) in its metadata, so `ispan classify --runtime onnx --model FILE` needs nothing else.
    """
    from rich.console import Console

    from ispan_cli.errors import UsageError
    from ispan_cli.export.run import ExportOptions, run_export
    from ispan_cli.hub import hub_timeout

    if not onnx:
        raise UsageError("say which format: --onnx (the only one so far)")
    err = Console(stderr=True)
    options = ExportOptions(
        model=model,
        output=output,
        opset=opset,
        with_attention=with_attention,
        verify=verify,
        verify_video=verify_video,
        int8=int8,
        calibration=calibration,
        force=force,
        decoder=decoder.value,
    )
    with hub_timeout(timeout):
        result = run_export(
            options, progress=lambda m: err.print(f"[dim]{m}[/dim]", highlight=False)
        )
    emit(result, fmt, lambda r: _render(Console(), r))


def _render(console, result) -> None:
    from rich.table import Table

    from ispan_cli.terminal import markup

    info = result.info
    console.print(
        f"wrote {markup(result.path)} ({result.size_bytes / 1e6:.1f} MB): {markup(info.model_id)}, "
        "outputs "
        f"{', '.join(info.outputs)}, dynamic batch and segments",
        highlight=False,
    )
    if info.source == "registry":
        console.print("note: random weights (a registry architecture), for speed work only")
    rows = []
    if result.verify is not None:
        rows.append(("fp32 vs PyTorch", result.verify.agreement, result.verify.video))
    else:
        console.print("verification skipped (--no-verify)")
    if result.int8 is not None:
        what = f"{result.int8.validation_clips} {result.int8.validation_source} clip(s)"
        rows.append(("int8 vs fp32", result.int8.agreement, what))
    if rows:
        table = Table("", *(name for name, _, _ in rows))
        metrics = [
            ("clips", lambda a: str(a.clips)),
            ("max |logit diff|", lambda a: f"{a.max_abs_logit_diff:.2e}"),
            ("max |prob diff|", lambda a: f"{a.max_abs_prob_diff:.2e}"),
            ("cosine (min)", lambda a: f"{a.cosine:.6f}"),
            ("top-1 agreement", lambda a: f"{a.top1_agreement:.1%}"),
            ("top-5 agreement", lambda a: f"{a.top5_agreement:.1%}"),
        ]
        if any(a.max_abs_attention_diff is not None for _, a, _ in rows):
            metrics.append(
                (
                    "max |attention diff|",
                    lambda a: (
                        "-"
                        if a.max_abs_attention_diff is None
                        else f"{a.max_abs_attention_diff:.2e}"
                    ),
                )
            )
        for label, cell in metrics:
            table.add_row(label, *(cell(a) for _, a, _ in rows))
        console.print(table)
        for name, _, on in rows:
            console.print(f"{name}: on {markup(on)}", highlight=False)
    if result.verify is not None:
        console.print(f"verified: probabilities within {result.verify.tolerance:g}, same top-1")
    if result.int8 is not None and result.int8_path is not None:
        console.print(
            f"wrote {markup(result.int8_path)} "
            f"({(result.int8_size_bytes or 0) / 1e6:.1f} MB), int8",
            highlight=False,
        )
        if result.int8.agreement.top1_agreement < 0.98:
            console.print(
                "[yellow]warning: int8 top-1 agreement with fp32 is below 98%; calibrate on "
                "clips like the real ones (--calibration DIR) or use the fp32 file[/yellow]"
            )
