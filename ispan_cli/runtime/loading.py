"""From a ``--model`` value to a loaded model that carries its contract.

:func:`load_model` is the one way every command gets a model: it resolves the value (zoo name,
folder, Hub repo, ``.onnx`` file, optionally a registry architecture), reads ``config.json`` (or
the ONNX metadata), loads the weights and builds the preprocessing, and returns a
:class:`LoadedModel` with one :class:`~ispan_cli.identity.ModelIdentity`. The ONNX path imports
no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.identity import ModelIdentity
from ispan_cli.runtime.onnx_format import ONNX_FILE
from ispan_cli.runtime.predictor import Predictor
from ispan_cli.video.flow_spec import SECTION as FLOW_SECTION
from ispan_cli.video.flow_spec import FlowSpec, check_channels
from ispan_cli.video.preprocess import PreprocessSpec
from ispan_cli.video.sampling import SamplingSpec
from ispan_cli.zoo import DEFAULT_MODEL

if TYPE_CHECKING:  # importing either would import torch or onnxruntime
    from ispan_cli.hub import ResolvedModel
    from ispan_cli.nn.config import ModelConfig
    from ispan_cli.runtime.onnx import OnnxPredictor

RUNTIMES = ("torch", "onnx")


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run, with everything its weights promise.

    torch: ``model`` is the network in eval mode on ``device`` (a torch.device) and ``config``
    its ModelConfig. onnx: ``session`` is the OnnxPredictor over the file and ``config`` is None
    (building a ModelConfig imports torch); ``document`` carries the same fields.
    """

    identity: ModelIdentity
    document: dict[str, Any]  # the config.json document, "preprocessing" always present
    preprocessing: PreprocessSpec
    runtime: str  # torch | onnx
    device: Any
    precision: str = "fp32"
    model: Any = None
    session: OnnxPredictor | None = None
    config: ModelConfig | None = None

    @property
    def num_segments(self) -> int:
        return int(self.document["model"].get("num_segments", 8))

    @property
    def sampling(self) -> SamplingSpec:
        """How the weights expect clips to be sampled (config.json, or the ONNX metadata)."""
        doc = (
            self.session.info.sampling
            if self.session is not None
            else self.document.get("sampling")
        )
        return SamplingSpec.from_dict(doc, self.num_segments)

    @property
    def in_channels(self) -> int:
        return int(self.document["model"].get("in_channels", 3))

    @property
    def flow(self) -> FlowSpec | None:
        """How a flow model's input is made (the ``"flow"`` section of config.json, which the
        ONNX metadata carries inside the document); None for an RGB model. A flow model
        (2L input channels) without one gets TSN's: TV-L1, bound 20, L from its channels."""
        doc = self.document.get(FLOW_SECTION)
        if doc is None:
            c = self.in_channels
            return None if c == 3 else FlowSpec(length=max(c // 2, 1))
        spec = FlowSpec.from_dict(doc)
        check_channels(spec, self.in_channels)
        return spec

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.document["model"].get("labels") or ())

    def predictor(self) -> Predictor:
        """The model behind the Predictor interface (classify, benchmark)."""
        if self.session is not None:
            return self.session
        from ispan_cli.runtime.predictor import TorchPredictor

        return TorchPredictor(
            self.model, self.identity, self.preprocessing, self.device, self.precision
        )


def resolve(spec: str | None) -> ResolvedModel:
    """The model folder ``spec`` names (zoo name, folder, Hub repo); None: the default model."""
    from ispan_cli.hub import resolve_model

    if (spec or DEFAULT_MODEL) == DEFAULT_MODEL:
        _demo_note()
    return resolve_model(spec or DEFAULT_MODEL)


_noted: list[bool] = []


def skip_demo_note() -> None:
    """No demo-model note in this process (``--quiet``: stderr carries errors only)."""
    _noted.append(True)


def _demo_note() -> None:
    """Once per process, on stderr (stdout stays the command's output): the default model knows
    only synthetic shapes, and where the real ones are."""
    import sys

    if not _noted:
        _noted.append(True)
        print(
            f"note: {DEFAULT_MODEL} is a synthetic demo (moving shapes, not real actions); for "
            "real labels import a published model, see README.md 'Real models' "
            "(e.g. ispan models import mmaction2:tsn-r50-kinetics400 -o k400)",
            file=sys.stderr,
        )


def load_model(
    spec: str | None,
    runtime: str = "torch",
    device: str = "auto",
    precision: str = "fp32",
    timeout: float | None = None,
    *,
    threads: int = 0,
    allow_registry: bool = False,
) -> LoadedModel:
    """Resolves ``spec`` (None for the default model) and loads it for ``runtime``.

    torch: a model folder, zoo name or Hub repo; with ``allow_registry`` also a registry
    architecture name, with seeded random weights (speed work only). onnx: a ``.onnx`` file or
    a model folder holding ``model.onnx``; ``threads``: ONNX Runtime's intra-op threads.
    timeout: seconds for Hub requests (see ``ispan_cli.hub.hub_timeout``; None: the default).
    """
    from ispan_cli.hub import hub_timeout

    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r} is not one of {', '.join(RUNTIMES)}")
    with hub_timeout(timeout):
        if runtime == "onnx":  # before any torch import: the ONNX path runs without torch
            loaded = _load_onnx(spec, device, precision, threads)
        else:
            loaded = _load_torch(spec, device, precision, allow_registry)
    try:
        loaded.sampling  # noqa: B018 -- checked now, not when first used
        loaded.flow  # noqa: B018
    except ISpanError as exc:
        raise ISpanError(f"model {loaded.identity.id}: {exc}") from exc
    return loaded


def load_predictor(
    spec: str | None,
    runtime: str = "torch",
    device: str = "auto",
    precision: str = "fp32",
    timeout: float | None = None,
) -> Predictor:
    """:func:`load_model` behind the Predictor interface."""
    return load_model(spec, runtime, device, precision, timeout).predictor()


def _load_torch(spec: str | None, device: str, precision: str, allow_registry: bool):
    from ispan_cli.nn import load_model as load_folder
    from ispan_cli.nn import read_config
    from ispan_cli.runtime.device import check_precision, resolve_device
    from ispan_cli.video.preprocess import spec_from_config

    torch_device = resolve_device(device)
    check_precision(precision, torch_device)
    try:  # a model folder, zoo name or Hub repo first: those have trained weights
        resolved = resolve(spec)
    except ISpanError:
        if allow_registry and spec is not None and _is_architecture(spec):
            return _load_registry(spec, torch_device, precision)
        raise
    config, doc = read_config(resolved.path)
    preprocessing = spec_from_config(config, doc)
    if "preprocessing" not in doc:
        doc = {**doc, "preprocessing": preprocessing.to_dict()}
    model = load_folder(resolved.path, device=str(torch_device))
    return LoadedModel(
        resolved.identity, doc, preprocessing, "torch", torch_device, precision, model,
        config=config,
    )  # fmt: skip


def _load_registry(name: str, torch_device, precision: str) -> LoadedModel:
    """A registry architecture with random weights, seeded so that runs compare."""
    import torch

    from ispan_cli.nn import create_model
    from ispan_cli.video.preprocess import default_spec

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = create_model(name).eval()
    preprocessing = default_spec(model.config)
    doc = {
        "format": "ispan",
        "model": model.config.to_dict(),
        "preprocessing": preprocessing.to_dict(),
    }
    identity = ModelIdentity(name, None, "", "registry")
    return LoadedModel(
        identity, doc, preprocessing, "torch", torch_device, precision, model.to(torch_device),
        config=model.config,
    )  # fmt: skip


def _is_architecture(name: str) -> bool:
    from ispan_cli.nn import list_models

    return name in list_models()


def _load_onnx(spec: str | None, device: str, precision: str, threads: int) -> LoadedModel:
    from ispan_cli.model_folder import sha256_file
    from ispan_cli.runtime.onnx import OnnxPredictor

    if precision != "fp32":
        raise UsageError(
            f"--precision {precision} applies to --runtime torch; an ONNX file runs at the "
            "precision it was exported with (fp32, or int8 from `ispan export --int8`)"
        )
    path, model_id, source, revision = find_onnx_file(spec)
    identity = ModelIdentity(model_id, revision, sha256_file(path), source)
    session = OnnxPredictor(path, identity, device, threads)
    return LoadedModel(
        identity, session.info.config, session.preprocessing, "onnx", session.device,
        session.precision, session=session,
    )  # fmt: skip


def find_onnx_file(spec: str | None) -> tuple[Path, str, str, str | None]:
    """``--model`` for the ONNX runtime -> (file, model id, source, Hub revision).

    Accepts a ``.onnx`` file, or any model folder (local, zoo or Hub) holding ``model.onnx``.
    """
    if spec is not None:
        candidate = Path(spec).expanduser()
        if candidate.suffix.lower() == ".onnx" or candidate.is_file():
            if not candidate.is_file():
                raise ISpanError(f"ONNX file {spec} does not exist")
            return candidate, spec, "file", None
        if candidate.is_dir() and (candidate / ONNX_FILE).is_file():
            return candidate / ONNX_FILE, spec, "folder", None
    resolved = resolve(spec)
    path = resolved.path / ONNX_FILE
    if not path.is_file():
        raise ISpanError(
            f"model {resolved.model_id} has no {ONNX_FILE}; create one with `ispan export "
            f"--onnx --model {spec or resolved.model_id} --output DIR/{ONNX_FILE}` and pass "
            "--model DIR (or the .onnx file), or use --runtime torch"
        )
    return path, resolved.model_id, resolved.source, resolved.revision
