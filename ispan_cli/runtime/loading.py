"""From a ``--model`` value to a ready predictor."""

from __future__ import annotations

from ispan_cli.errors import UsageError
from ispan_cli.runtime.predictor import ModelIdentity, Predictor

# The model classify and `make demo` use without --model (a folder in models/).
DEFAULT_MODEL = "istpan-tiny-synthetic"


def load_predictor(
    spec: str | None,
    runtime: str = "torch",
    device: str = "auto",
    precision: str = "fp32",
    timeout: float | None = None,
) -> Predictor:
    """Resolves ``spec`` (zoo name, folder, Hub repo; None for the default) and loads it.

    runtime onnx: ``spec`` is a ``.onnx`` file or a model folder holding ``model.onnx``.
    timeout: seconds for Hub requests (see ``ispan_cli.hub.hub_timeout``; None: the default).
    """
    from ispan_cli.hub import hub_timeout

    with hub_timeout(timeout):
        return _load_predictor(spec, runtime, device, precision)


def _load_predictor(spec: str | None, runtime: str, device: str, precision: str) -> Predictor:
    if runtime == "onnx":  # before the torch imports below: the ONNX path runs without torch
        from ispan_cli.runtime.onnx import load_onnx_predictor

        return load_onnx_predictor(spec, device, precision)
    if runtime != "torch":
        raise UsageError(f"--runtime {runtime!r} is not one of torch, onnx")
    from ispan_cli.hub import resolve_model
    from ispan_cli.nn import load_model, read_config
    from ispan_cli.runtime.device import check_precision, resolve_device
    from ispan_cli.runtime.predictor import TorchPredictor
    from ispan_cli.video.preprocess import spec_from_config

    torch_device = resolve_device(device)
    check_precision(precision, torch_device)
    resolved = resolve_model(spec or DEFAULT_MODEL)
    config, doc = read_config(resolved.path)
    model = load_model(resolved.path)
    identity = ModelIdentity(
        id=resolved.model_id, revision=resolved.revision, sha256=resolved.sha256,
        source=resolved.source,
    )  # fmt: skip
    return TorchPredictor(model, identity, spec_from_config(config, doc), torch_device, precision)
