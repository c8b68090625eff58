"""Tracing a model to ONNX with dynamic batch and segment axes.

torch's dynamo exporter (``torch.onnx.export(dynamo=True)``, which needs onnxscript) is used: it
keeps the frame size static while the batch and K axes stay symbolic, which the old TorchScript
exporter cannot do through the reshapes in ``forward`` (it loses the spatial sizes and then
refuses adaptive pooling). The model is exported in eval mode from the same ``forward`` (or
``forward_with_attention``) used everywhere else.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import atomic_path
from ispan_cli.runtime.onnx_format import FUSED, INPUT_NAME, LEVEL_PREFIX, LOGITS, OnnxModelInfo

DEFAULT_OPSET = 18
# Example sizes for tracing; they differ from 1 and from each other so that the exporter cannot
# specialise the symbolic axes to a constant.
_TRACE_BATCH, _TRACE_SEGMENTS = 2, 3


class _WithAttention(nn.Module):
    """forward_with_attention as a graph with flat outputs: logits, fused map, level maps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        logits, maps = self.model.forward_with_attention(x)
        return (logits, maps.fused, *maps.levels)


def output_names(model, with_attention: bool) -> tuple[str, ...]:
    """Graph output names: logits, then (with attention) the fused map and each level's map."""
    if not with_attention:
        return (LOGITS,)
    if model.attention is None:
        raise ISpanError(
            f"--with-attention needs an ISTPAN model; this is a plain {model.config.arch} "
            "baseline without attention maps"
        )
    levels = len(model.config.pyramid)
    return (LOGITS, FUSED, *(f"{LEVEL_PREFIX}{j}" for j in range(levels)))


def export_onnx(
    model,
    path: str | Path,
    info: OnnxModelInfo,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Writes ``model`` (an ISTPAN in any mode; exported in eval mode) to ``path`` with ``info``
    as metadata, then runs ``onnx.checker``. The file appears only when complete."""
    import onnx

    path = Path(path)
    model = model.eval()
    with_attention = FUSED in info.outputs
    module = _WithAttention(model).eval() if with_attention else model
    size = model.config.input_size
    c = model.config.in_channels  # 3 for RGB, 2L for a flow stream
    example = torch.randn(_TRACE_BATCH, _TRACE_SEGMENTS, c, size, size)
    batch, segments = torch.export.Dim("batch"), torch.export.Dim("segments")
    captured = io.StringIO()
    try:
        # The exporter prints progress and warnings of its own; keep them out of the CLI output
        # (they are in the exception if it fails).
        with (
            torch.no_grad(),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(captured),
            _quiet_loggers(),
        ):
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=list(info.outputs),
                dynamic_shapes={"x": {0: batch, 1: segments}},
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
        proto = program.model_proto
    except ISpanError:
        raise
    except Exception as exc:
        raise ISpanError(
            f"ONNX export failed ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); "
            "rerun with --debug for the traceback"
        ) from exc
    from ispan_cli.runtime.onnx_format import write_props

    write_props(proto, info)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ISpanError(f"the exported graph fails onnx.checker: {exc}") from exc
    save_atomic(proto, path)
    return path


def save_atomic(proto, path: Path) -> None:
    """Writes an ONNX model to a temporary name beside ``path`` and renames it."""
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(proto, str(tmp))


@contextlib.contextmanager
def _quiet_loggers():
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
