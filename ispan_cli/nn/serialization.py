"""Model folders: ``config.json`` + ``model.safetensors``, the same layout as a Hub model repo.

``config.json`` has a ``model`` section (ModelConfig, labels included) plus room for sections that
other parts of ispan add (preprocessing, metrics). Weights are safetensors only: loading never
unpickles anything, and every key and shape must match the config's architecture.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ispan_cli import __version__
from ispan_cli.errors import ISpanError
from ispan_cli.model_folder import (  # noqa: F401 - sha256_file: re-exported for callers
    CONFIG_FILE,
    FORMAT,
    FORMAT_VERSION,
    WEIGHTS_FILE,
    atomic_path,
    pickle_hint,
    pickles_in,
    sha256_file,
)
from ispan_cli.nn.config import ModelConfig
from ispan_cli.nn.state_dict import state_dict_problems


def save_model(model, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``config.json`` and ``model.safetensors`` into ``directory`` (created if needed).

    extra: further top-level sections of config.json (e.g. ``preprocessing``, ``metrics``).
    Each file is written to a temporary name and renamed, so a crash never leaves half a file.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ispan_version": __version__,
        "model": model.config.to_dict(),
        **(extra or {}),
    }
    with atomic_path(directory / WEIGHTS_FILE) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    with atomic_path(directory / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
    return directory


def read_config(directory: str | Path) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig of a model folder and the whole config.json document."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ISpanError(f"model folder {directory} does not exist or is not a folder")
    if not path.is_file():
        raise ISpanError(f"{directory} has no {CONFIG_FILE}; it is not an ispan model folder")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ISpanError(f"{path} is not valid JSON ({exc}); restore it from the original") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or "model" not in doc:
        raise ISpanError(f'{path} is not an ispan config (expected "format": "{FORMAT}")')
    version = doc.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ISpanError(
            f'{path}: "format_version" must be a whole number ({FORMAT_VERSION} for this ispan), '
            f"got {version!r:.40}; restore the file from the original"
        )
    if version > FORMAT_VERSION:
        raise ISpanError(
            f"{path} has format_version {doc['format_version']}, newer than this ispan "
            f"understands ({FORMAT_VERSION}); upgrade ispan"
        )
    return ModelConfig.from_dict(doc["model"]), doc


def load_model(directory: str | Path, device: str = "cpu"):
    """Builds the model described by ``config.json`` and loads ``model.safetensors`` strictly.

    Returns the model in eval mode on ``device``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ispan_cli.nn.model import ISTPAN

    directory = Path(directory)
    config, _ = read_config(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ISpanError(f"{directory} has no {WEIGHTS_FILE}{pickle_hint(pickles_in(directory))}")
    check_against_header(config, weights)  # before anything of the config's size is allocated
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ISpanError(f"{weights} is not a readable safetensors file ({exc})") from exc
    model = ISTPAN(config)
    check_state_dict(model, state, source=str(weights))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def check_against_header(config: ModelConfig, weights: Path) -> None:
    """The config's shapes against the weights file's header, allocating nothing: an untrusted
    config (``"d": 1e8``, ``num_classes`` 1e7) would otherwise take gigabytes and minutes to
    build before the mismatch shows. The model is built on PyTorch's meta device (shapes only)
    and the header is read without loading a tensor."""
    from types import SimpleNamespace

    import torch
    from safetensors import SafetensorError, safe_open

    from ispan_cli.nn.model import ISTPAN

    try:
        with safe_open(str(weights), "pt") as fh:
            names = list(fh.keys())
            shapes = {k: SimpleNamespace(shape=tuple(fh.get_slice(k).get_shape())) for k in names}
    except (SafetensorError, OSError) as exc:
        raise ISpanError(f"{weights} is not a readable safetensors file ({exc})") from exc
    with torch.device("meta"), _shapes_only():
        skeleton = ISTPAN(config)
    expected = {k: SimpleNamespace(shape=tuple(v.shape)) for k, v in skeleton.state_dict().items()}
    problems = state_dict_problems(expected, shapes)
    if problems:
        raise ISpanError(
            f"{weights} does not match its config.json ({'; '.join(problems)}); the weights and "
            "config must come from the same save_model call"
        )


def _shapes_only():
    """A torch function mode that skips ``torch.nn.init``'s fills while a model is built on the
    meta device: a meta tensor holds no values, and the fills' meta kernels import
    ``torch._dynamo``, which cost 2.4 s of CPU in every process that loaded a model."""
    from torch.overrides import TorchFunctionMode

    class ShapesOnly(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if getattr(func, "__module__", None) == "torch.nn.init":
                return args[0] if args else kwargs.get("tensor")
            return func(*args, **kwargs)

    return ShapesOnly()


def check_state_dict(model, state: dict, source: str) -> None:
    """Raises ISpanError naming missing, unexpected and mis-shaped keys."""
    problems = state_dict_problems(model.state_dict(), state)
    if problems:
        raise ISpanError(
            f"{source} does not match its config.json ({'; '.join(problems)}); the weights and "
            "config must come from the same save_model call"
        )
