"""Command-line options shared by several commands, defined once."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ispan_cli.hub import DEFAULT_TIMEOUT  # light: imports neither torch nor huggingface_hub
from ispan_cli.limits import MAX_BATCH, MAX_SEGMENTS, MAX_WORKERS


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


FormatOpt = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format.", case_sensitive=False)
]


class Precision(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Runtime(str, Enum):
    torch = "torch"
    onnx = "onnx"


class Crops(str, Enum):
    one = "1"
    three = "3"
    ten = "10"


ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        help="A model in models/, a local model folder, or a Hub repo org/name[@revision]. "
        "Default: the bundled default model.",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        "--device",
        "-d",
        help="auto (a working GPU, else the CPU), cpu, cuda or cuda:N.",
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option("--precision", help="fp16/bf16 run through autocast (fp16 needs a GPU).",
                 case_sensitive=False),
]  # fmt: skip
RuntimeOpt = Annotated[
    Runtime, typer.Option("--runtime", help="Inference engine.", case_sensitive=False)
]
CropsOpt = Annotated[
    Crops, typer.Option("--crops", help="Spatial views per frame: 1 centre, 3, or 10 (with flips).")
]
BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        min=1,
        max=MAX_BATCH,
        help="Videos per model call (default 4); in timeline mode, windows per call (default 1, "
        "which keeps memory lowest).",
        show_default=False,
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option("--workers", "-w", min=0, max=MAX_WORKERS, help="Background decoding threads."),
]


class Decoder(str, Enum):
    auto = "auto"
    pyav = "pyav"
    opencv = "opencv"


DecoderOpt = Annotated[
    Decoder,
    typer.Option(
        "--decoder",
        help="Video decoding backend: pyav (bundled FFmpeg, exact frame index), opencv "
        "(fallback; assumes a constant frame rate), auto (pyav if installed).",
        case_sensitive=False,
    ),
]

StreamOpt = Annotated[
    int | None,
    typer.Option(
        "--stream",
        min=0,
        help="Video stream to read, by its index in the file as `ispan probe` lists it (ffprobe's "
        "#0:N). Default: the one ffmpeg would choose (the largest picture, preferring the "
        "default stream). Needs the pyav decoder.",
        show_default=False,
    ),
]

SegmentsOpt = Annotated[
    int | None,
    typer.Option(
        "--segments",
        "-s",
        min=1,
        max=MAX_SEGMENTS,
        help="Number of equal segments (K, at most 1024); the centre frame of each is sampled. "
        "Default: the model's own K (8 without a model).",
    ),
]

TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.1,
        metavar="SECONDS",
        help="Seconds a Hugging Face Hub request may take to connect or to start answering; an "
        "answer must also bring 1 KiB in every such span. A stalled Hub makes the command fail "
        f"with an error instead of hanging. Default: {DEFAULT_TIMEOUT:g}.",
        show_default=False,
    ),
]
