"""``ispan models``: the registered architectures and the model folders in the local zoo."""

from __future__ import annotations

import json
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.emit import emit
from ispan_cli.commands.options import FormatOpt, OutputFormat, TimeoutOpt

app = typer.Typer(
    help="List the model architectures, the local model zoo and cached Hub models; import "
    "published checkpoints.",
    no_args_is_help=True,
)


@app.command("list")
def list_command(fmt: FormatOpt = OutputFormat.table) -> None:
    """Architectures, local model folders and cached Hub models.

    Registered architectures (parameters, GFLOPs per clip at the default input), the model
    folders in models/ (or $ISPAN_MODELS_DIR) and the ispan models in the Hub cache.
    """
    from ispan_cli.hub import hub_settings
    from ispan_cli.hub_cache import list_cached_models
    from ispan_cli.nn import get_variant, list_models, model_cost
    from ispan_cli.zoo import list_zoo, zoo_dir

    variants = []
    for name in list_models():
        variant = get_variant(name)
        cost = model_cost(variant.config)
        variants.append(
            {
                "name": name,
                "arch": variant.config.arch,
                "backbone": variant.config.backbone,
                "parameters": cost.parameters,
                "gflops": round(cost.flops / 1e9, 2),
                "segments": cost.segments,
                "input_size": cost.input_size,
                "description": variant.description,
            }
        )
    zoo = [
        {
            "name": e.name,
            "path": str(e.path),
            "arch": e.arch,
            "backbone": e.backbone,
            "num_classes": e.num_classes,
            "problem": e.problem,
        }
        for e in list_zoo()
    ]
    hub_cache = hub_settings().cache_dir
    hub = [
        {
            "repo_id": e.repo_id,
            "revision": e.revision,
            "refs": list(e.refs),
            "path": str(e.path),
            "arch": e.arch,
            "backbone": e.backbone,
            "num_classes": e.num_classes,
            "size_on_disk": e.size_on_disk,
            "problem": e.problem,
        }
        for e in list_cached_models(hub_cache)
    ]
    doc = {
        "architectures": variants,
        "zoo": zoo,
        "zoo_dir": str(zoo_dir()),
        "hub": hub,
        "hub_cache": str(hub_cache),
    }
    emit(doc, fmt, _render_list)


def _render_list(doc: dict) -> None:
    _render_tables(doc["architectures"], doc["zoo"], doc["zoo_dir"])
    _render_hub_table(doc["hub"], doc["hub_cache"])


def _render_hub_table(hub: list[dict], cache: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not hub:
        console.print(f"No ispan models in the Hub cache {_text(cache)}.")
        return
    table = Table(title=f"Hub models in {_text(cache)} (use as org/name@revision)")
    for col in ("model", "refs", "arch", "backbone", "classes", "MB", "status"):
        table.add_column(col, justify="right" if col == "MB" else "left")
    for e in hub:
        table.add_row(
            _text(f"{e['repo_id']}@{e['revision'][:12]}"),
            _text(", ".join(e["refs"]) or "-"),
            _text(e["arch"]),
            _text(e["backbone"]),
            str(e["num_classes"]),
            f"{e['size_on_disk'] / 1e6:.1f}",
            _text(e["problem"] or "ok"),
        )
    console.print(table)


def _text(value: str) -> str:
    """Text from the cache (written by a server) for rich: no markup, no escape sequences."""
    from rich.markup import escape

    from ispan_cli.terminal import visible

    return escape(visible(value, 400))


def _render_tables(variants: list[dict], zoo: list[dict], zoo_path: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Architectures (random init; GFLOPs per clip of K segments)")
    for col, justify in [
        ("name", "left"),
        ("arch", "left"),
        ("backbone", "left"),
        ("params", "right"),
        ("GFLOPs", "right"),
        ("K x size", "right"),
    ]:
        table.add_column(col, justify=justify, no_wrap=True)
    for v in variants:
        table.add_row(
            v["name"],
            v["arch"],
            v["backbone"],
            f"{v['parameters'] / 1e6:.2f}M",
            f"{v['gflops']:.2f}",
            f"{v['segments']} x {v['input_size']}",
        )
    console.print(table)
    if not zoo:
        console.print(f"No model folders in {zoo_path}.")
        return
    local = Table(title=f"Model folders in {zoo_path}")
    for col in ("name", "arch", "backbone", "classes", "status"):
        local.add_column(col)
    for e in zoo:
        local.add_row(
            *(_text(v) for v in (e["name"], e["arch"], e["backbone"])),
            str(e["num_classes"]),
            _text(e["problem"] or "ok"),
        )
    console.print(local)


@app.command("info")
def info_command(
    name: Annotated[
        str,
        typer.Argument(
            help="A registered architecture, a model in models/, a folder, a file made by "
            "`ispan export` (.onnx, or a folder holding only model.onnx: its metadata), or a "
            "Hub repo org/name[@revision] (downloaded into the Hub cache if not there yet)."
        ),
    ],
    fmt: FormatOpt = OutputFormat.table,
    timeout: TimeoutOpt = None,
) -> None:
    """The configuration, labels and extra sections (preprocessing, metrics) of one model."""
    from ispan_cli.errors import ISpanError
    from ispan_cli.hub import parse_hub_spec, resolve_model
    from ispan_cli.nn import get_variant, list_models, read_config
    from ispan_cli.zoo import find_local_model, zoo_dir

    onnx_file = _onnx_file(name)
    folder = None if onnx_file is not None else find_local_model(name)
    if onnx_file is not None:
        record = _onnx_record(name, onnx_file)
    elif folder is not None:
        config, doc = read_config(folder)
        record = {"name": name, "source": str(folder), **doc, "model": config.to_dict()}
    elif name in list_models():
        variant = get_variant(name)
        record = {
            "name": name,
            "source": "registry (random init)",
            "description": variant.description,
            "model": variant.config.to_dict(),
        }
    elif parse_hub_spec(name) is not None:
        with _download_progress(name) as progress:
            resolved = resolve_model(name, progress=progress, timeout=timeout)
        config, doc = read_config(resolved.path)
        record = {
            "name": name,
            "source": "hub",
            "repo_id": resolved.model_id,
            "revision": resolved.revision,
            "ref": resolved.ref,
            "sha256": resolved.sha256,
            "path": str(resolved.path),
            **doc,
            "model": config.to_dict(),
        }
    else:
        raise ISpanError(
            f"no model {name!r}: not a folder, not in {zoo_dir()}, not an architecture "
            f"({', '.join(list_models())}), and not a Hub repo (org/name[@revision])"
        )
    emit(record, fmt, _render_info)


def _onnx_file(name: str) -> Path | None:
    """An exported file ``name``, or the ``model.onnx`` of a folder that holds only that (what
    `ispan export -o DIR/` writes): what `--runtime onnx --model NAME` would run."""
    from ispan_cli.runtime.onnx_format import ONNX_FILE

    path = Path(name).expanduser()
    if path.suffix.lower() == ".onnx" and path.is_file():
        return path
    if path.is_dir() and not (path / "config.json").exists() and (path / ONNX_FILE).is_file():
        return path / ONNX_FILE
    return None


def _onnx_record(name: str, path: Path) -> dict:
    """The record of an exported file, from its metadata (one error line if it has none)."""
    from ispan_cli.runtime.onnx_format import read_info

    info = read_info(path)
    doc = dict(info.config)
    return {
        "name": name,
        "source": "onnx file",
        "path": str(path),
        "exported_from": {
            "id": info.model_id,
            "revision": info.revision,
            "source": info.source,
            "weights_sha256": info.weights_sha256,
        },
        "precision": info.precision,
        "outputs": list(info.outputs),
        "opset": info.opset,
        "sampling": info.sampling,
        **{k: v for k, v in doc.items() if k not in ("model", "sampling")},
        **({"extra": info.extra} if info.extra else {}),
        "model": dict(doc.get("model") or {}),
    }


@contextmanager
def _download_progress(name: str):
    """A bytes progress bar on stderr while a Hub model downloads (a terminal only)."""
    import sys

    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        *Progress.get_default_columns(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"downloading {name}", total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _render_info(record: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    model = dict(record["model"])
    labels = model.pop("labels")
    from ispan_cli.terminal import text

    # everything here comes from a config.json, possibly a stranger's: shown, never interpreted
    table = Table(title=text(f"{record['name']} ({record['source']})"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in model.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(text(key), text(shown))
    shown = ", ".join(labels[:20]) + (f", ... ({len(labels)} in all)" if len(labels) > 20 else "")
    table.add_row("labels", text(shown or "(none: class indices only)"))
    skip = {"name", "source", "model", "format", "format_version"}
    for key, value in record.items():
        if key not in skip:
            shown = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
            table.add_row(text(key), text(shown))
    Console().print(table)


class ImportFormat(str, Enum):
    auto = "auto"
    mmaction2 = "mmaction2"
    timm = "timm"


class ImportArch(str, Enum):
    tsn = "tsn"
    istpan = "istpan"


@app.command("import")
def import_command(
    source: Annotated[
        str,
        typer.Argument(
            help="A checkpoint file (.pth or .safetensors), an http(s) URL (downloaded into "
            "ispan's cache, resumable), a catalogue name (`ispan models catalogue`, e.g. "
            "mmaction2:tsn-r50-kinetics400) or a Hub repo (hub:org/name, e.g. "
            "hub:timm/resnet50.a1_in1k; safetensors only).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The model folder to write (must not hold one yet)."),
    ],
    fmt_in: Annotated[
        ImportFormat,
        typer.Option("--format", help="The checkpoint's layout; auto: from its key names."),
    ] = ImportFormat.auto,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="kinetics400, ucf101, hmdb51 (shipped lists) or a FILE with one class name a "
            "line. Default: the checkpoint's dataset_meta, else the catalogue entry's set.",
            show_default=False,
        ),
    ] = None,
    arch: Annotated[
        ImportArch,
        typer.Option(
            "--arch",
            help="tsn: the checkpoint as it is; istpan: ISTPAN with the same backbone and "
            "classifier and a new attention layer that starts uniform (same predictions at "
            "import; a Kinetics start for fine-tuning).",
        ),
    ] = ImportArch.tsn,
    segments: Annotated[
        int | None,
        typer.Option(
            "--segments", "-s", min=1, help="K recorded for inference [default: the peer's]."
        ),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--output-format", help="Output format.", case_sensitive=False)
    ] = OutputFormat.table,
    timeout: TimeoutOpt = None,
) -> None:
    """Import a published checkpoint (MMAction2 TSN, timm ResNet) as an ispan model folder.

    Pickled .pth files are read without running any code from them. The folder works with
    classify, evaluate, export, benchmark and hub push; its model card says where the weights
    come from and that ispan has not measured their accuracy.
    """
    from ispan_cli.importers import ImportOptions, import_model

    options = ImportOptions(
        source=source,
        output=output,
        format=fmt_in.value,
        labels=labels,
        arch=arch.value,
        segments=segments,
        timeout=timeout,
    )
    with _download_progress(source) as progress:
        result = import_model(options, progress=progress)
    emit(result, fmt, _render_import)


def _render_import(result) -> None:
    from rich.console import Console

    peer = result.source.get("reported_by_peer")
    Console().print(
        f"Wrote {_text(str(result.output))}: {result.arch} on {result.backbone}, "
        f"{result.num_classes} classes (labels: {_text(result.labels_from)})."
    )
    if peer:
        Console().print(
            f"The publisher reports top-1 {peer['top1']} on {_text(peer['dataset'])} "
            f"({_text(peer['link'])}); ispan has not measured it."
        )


@app.command("catalogue")
def catalogue_command(fmt: FormatOpt = OutputFormat.table) -> None:
    """Published checkpoints `ispan models import` knows by name, with what their publisher
    reports (not measured by ispan)."""
    from ispan_cli.importers.catalogue import catalogue

    entries = catalogue()
    doc = {name: {k: v for k, v in vars(e).items() if k != "name"} for name, e in entries.items()}
    emit(doc, fmt, lambda _: _render_catalogue(entries))


def _render_catalogue(entries) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="ispan models import NAME -o DIR (accuracy as reported by the publisher)")
    # the name is what the user types: never cut to "mmaction2:tsn-r50-kine…"; the description
    # wraps instead
    table.add_column("name", no_wrap=True, min_width=max(len(n) for n in entries) if entries else 4)
    for col in ("classes", "K", "peer top-1"):
        table.add_column(col)
    table.add_column("description", overflow="fold")
    for name, e in entries.items():
        table.add_row(name, str(e.num_classes), str(e.num_segments), str(e.reported["top1"]),
                      e.description)  # fmt: skip
    Console().print(table)
