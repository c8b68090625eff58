"""Choosing where and at what precision a model runs, with errors that say what to change."""

from __future__ import annotations

from ispan_cli.errors import UsageError

PRECISIONS = ("fp32", "fp16", "bf16")


def resolve_device(spec: str = "auto"):
    """``auto`` -> a working CUDA device, else the CPU; ``cpu``; ``cuda`` or ``cuda:N``.

    A CUDA device counts as working only if a small operation on it succeeds, so a machine with
    a broken driver falls back to the CPU under ``auto`` instead of failing later.
    """
    import torch

    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available() and _cuda_works(torch.device("cuda:0")):
            return torch.device("cuda:0")
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {spec}: no CUDA device is available here; use --device cpu or auto"
            )
        try:
            device = torch.device(spec if spec != "cuda" else "cuda:0")
        except RuntimeError as exc:
            raise UsageError(f"--device {spec} is not a device name ({exc})") from exc
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0..cuda:{torch.cuda.device_count() - 1})"
            )
        if not _cuda_works(device):
            raise UsageError(
                f"--device {spec} is listed but fails a test operation; check the "
                "driver with `ispan doctor`, or use --device cpu"
            )
        return device
    raise UsageError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:N")


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
