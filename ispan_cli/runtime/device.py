"""Choosing where and at what precision a model runs, with errors that say what to change."""

from __future__ import annotations

from ispan_cli.errors import UsageError

PRECISIONS = ("fp32", "fp16", "bf16")


def parse_device(device: str) -> tuple[str, int | None]:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> (kind, index); the one ``--device`` parser,
    shared by PyTorch and ONNX Runtime (no torch import)."""
    spec = device.strip().lower()
    if spec in ("auto", "cpu"):
        return spec, None
    if spec == "cuda":
        return "cuda", 0
    if spec.startswith("cuda:") and spec[5:].isdigit():
        return "cuda", int(spec[5:])
    raise UsageError(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N")


def resolve_device(spec: str = "auto"):
    """``auto`` -> a working CUDA device, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``.

    A CUDA device counts as working only if a small operation on it succeeds, so a machine with
    a broken driver falls back to the CPU under ``auto`` instead of failing later.
    """
    import torch

    kind, index = parse_device(spec)
    if kind == "auto":
        if torch.cuda.is_available() and _cuda_works(torch.device("cuda:0")):
            return torch.device("cuda:0")
        return torch.device("cpu")
    if kind == "cpu":
        return torch.device("cpu")
    name = spec.strip().lower()
    if not torch.cuda.is_available():
        raise UsageError(
            f"--device {name}: no CUDA device is available here; use --device cpu or auto"
        )
    if index >= torch.cuda.device_count():
        raise UsageError(
            f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) "
            f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
        )
    device = torch.device("cuda", index)
    if not _cuda_works(device):
        raise UsageError(
            f"--device {name} is listed but fails a test operation; check the "
            "driver with `ispan doctor`, or use --device cpu"
        )
    return device


def _cuda_works(device) -> bool:
    import torch

    try:
        return float((torch.ones(2, device=device) * 2).sum().item()) == 4.0
    except Exception:  # driver/runtime errors surface as several different exception types
        return False


def check_precision(precision: str, device) -> None:
    """Reduced precision runs through autocast on a GPU; on the CPU only bf16 is supported."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if device.type == "cpu" and precision == "fp16":
        raise UsageError("--precision fp16 needs a GPU; use fp32 (or bf16) on the CPU")


def autocast_dtype(precision: str):
    """The torch dtype for autocast, or None for full precision."""
    import torch

    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
