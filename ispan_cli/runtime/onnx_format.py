"""The ispan ONNX file format: the metadata that makes an exported ``.onnx`` file self-describing.

Stored as ONNX ``metadata_props`` (string key/value pairs): the whole ``config.json`` document
(labels, preprocessing, architecture), the sampling, where the weights came from and their
sha256, the graph's outputs and its precision. Reading it needs only the ``onnx`` package (no
torch), so the ONNX Runtime path never imports torch. ``ispan_cli.export`` writes it and the
runtime reads it; it lives here so that export imports runtime and never the reverse.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError
from ispan_cli.identity import ModelIdentity

# The file name a model folder holds its export under (`--model DIR --runtime onnx` finds it).
ONNX_FILE = "model.onnx"
FORMAT = "ispan-onnx"
FORMAT_VERSION = 1
INPUT_NAME = "clips"
LOGITS = "logits"
FUSED = "attention_fused"
LEVEL_PREFIX = "attention_level_"
PREFIX = "ispan."


@dataclass(frozen=True)
class OnnxModelInfo:
    """What an exported file says about itself."""

    config: dict[str, Any]  # the model folder's config.json document
    identity: ModelIdentity  # of the weights exported (their safetensors sha256)
    outputs: tuple[str, ...]
    precision: str  # fp32 | int8
    sampling: dict[str, Any]
    opset: int
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the int8 agreement report

    @property
    def model_id(self) -> str:
        return self.identity.id

    @property
    def revision(self) -> str | None:
        return self.identity.revision

    @property
    def weights_sha256(self) -> str:
        return self.identity.sha256

    @property
    def source(self) -> str:
        return self.identity.source

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.config["model"].get("labels") or ())

    @property
    def num_segments(self) -> int:
        return int(self.config["model"].get("num_segments", 8))

    @property
    def with_attention(self) -> bool:
        return FUSED in self.outputs

    @property
    def num_levels(self) -> int:
        return sum(name.startswith(LEVEL_PREFIX) for name in self.outputs)

    def to_props(self) -> dict[str, str]:
        """The metadata_props entries (all strings; structured values as JSON)."""
        from ispan_cli import __version__

        return {
            f"{PREFIX}format": FORMAT,
            f"{PREFIX}format_version": str(FORMAT_VERSION),
            f"{PREFIX}ispan_version": __version__,
            f"{PREFIX}config": json.dumps(self.config, sort_keys=True),
            f"{PREFIX}labels": json.dumps(list(self.labels)),
            f"{PREFIX}preprocessing": json.dumps(self.config.get("preprocessing")),
            f"{PREFIX}sampling": json.dumps(self.sampling),
            f"{PREFIX}model_id": self.model_id,
            f"{PREFIX}revision": self.revision or "",
            f"{PREFIX}weights_sha256": self.weights_sha256,
            f"{PREFIX}source": self.source,
            f"{PREFIX}outputs": json.dumps(list(self.outputs)),
            f"{PREFIX}precision": self.precision,
            f"{PREFIX}opset": str(self.opset),
            f"{PREFIX}extra": json.dumps(self.extra, sort_keys=True),
        }

    @classmethod
    def from_props(cls, props: dict[str, str], where: str) -> OnnxModelInfo:
        """The metadata of a file, every entry checked: an untrusted file's labels, sizes and
        preprocessing reach the terminal and the allocator."""
        if props.get(f"{PREFIX}format") != FORMAT:
            raise ISpanError(
                f"{where} is an ONNX file but not one exported by `ispan export` (no ispan "
                "metadata: labels and preprocessing are unknown); export it with "
                "`ispan export --onnx`"
            )
        damaged = _Damaged(where)
        version = damaged.integer("format_version", props.get(f"{PREFIX}format_version", "0"))
        if version > FORMAT_VERSION:
            raise ISpanError(
                f"{where} has ispan ONNX format_version {version}, newer than this ispan "
                f"understands ({FORMAT_VERSION}); upgrade ispan"
            )
        for key in ("config", "model_id", "weights_sha256", "outputs"):
            if f"{PREFIX}{key}" not in props:
                raise damaged.error(f"the entry {PREFIX}{key} is missing")
        config = damaged.json("config", props[f"{PREFIX}config"], dict)
        model = config.get("model")
        if not isinstance(model, dict):
            raise damaged.error(f'{PREFIX}config has no "model" object')
        _check_model_section(model, damaged)
        outputs = damaged.json("outputs", props[f"{PREFIX}outputs"], list)
        if not outputs or not all(isinstance(o, str) for o in outputs) or outputs[0] != LOGITS:
            raise damaged.error(f'{PREFIX}outputs must be a list of names starting with "{LOGITS}"')
        precision = props.get(f"{PREFIX}precision", "fp32")
        if precision not in PRECISIONS:
            raise damaged.error(f"{PREFIX}precision must be one of {', '.join(PRECISIONS)}")
        return cls(
            config=config,
            identity=ModelIdentity(
                id=props[f"{PREFIX}model_id"],
                revision=props.get(f"{PREFIX}revision") or None,
                sha256=props[f"{PREFIX}weights_sha256"],
                source=props.get(f"{PREFIX}source", ""),
            ),
            outputs=tuple(outputs),
            precision=precision,
            sampling=damaged.json("sampling", props.get(f"{PREFIX}sampling", "{}"), dict),
            opset=damaged.integer("opset", props.get(f"{PREFIX}opset", "0")),
            extra=damaged.json("extra", props.get(f"{PREFIX}extra", "{}"), dict),
        )


PRECISIONS = ("fp32", "int8")


class _Damaged:
    """Builds the one error for a file whose ispan metadata is damaged or hostile."""

    def __init__(self, where: str) -> None:
        self.where = where

    def error(self, what: str) -> ISpanError:
        return ISpanError(
            f"{self.where} has damaged ispan metadata ({what}); export it again with "
            "`ispan export --onnx`"
        )

    def json(self, key: str, text: str, kind: type) -> Any:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.error(f"{PREFIX}{key} is not valid JSON: {exc}") from None
        if not isinstance(value, kind):
            raise self.error(f"{PREFIX}{key} must be a JSON {_JSON_NAMES[kind]}")
        return value

    def integer(self, key: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise self.error(f"{PREFIX}{key} must be a whole number, got {text!r:.40}") from None


_JSON_NAMES = {dict: "object", list: "array"}


def _check_model_section(model: dict[str, Any], damaged: _Damaged) -> None:
    """The fields the ONNX path reads without building a ModelConfig (that needs torch)."""
    from ispan_cli.limits import MAX_CLASSES, MAX_INPUT_SIZE, MAX_SEGMENTS

    labels = model.get("labels") or []
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise damaged.error("labels must be a list of strings")
    bounds = {
        "num_segments": MAX_SEGMENTS,
        "input_size": MAX_INPUT_SIZE,
        "num_classes": MAX_CLASSES,
    }
    for name, high in bounds.items():
        value = model.get(name, 1)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise damaged.error(
                f"model {name} must be a whole number in [1, {high}], got {value!r}"
            )
    if labels and "num_classes" in model and len(labels) != model["num_classes"]:
        raise damaged.error(f"{len(labels)} labels for num_classes={model['num_classes']}")


def write_props(model, info: OnnxModelInfo) -> None:
    """Replaces the ispan entries of an ``onnx.ModelProto``'s metadata_props."""
    keep = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in info.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def read_info(path: str | Path) -> OnnxModelInfo:
    """The metadata of an exported file, reading the graph structure but not the weights."""
    path = Path(path)
    model = load_onnx(path, load_external_data=False)
    return OnnxModelInfo.from_props({p.key: p.value for p in model.metadata_props}, str(path))


def load_onnx(path: str | Path, load_external_data: bool = True):
    """``onnx.load`` with a one-line error for missing, empty or corrupt files."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ISpanError(f"ONNX file {path} does not exist")
    if path.stat().st_size == 0:
        raise ISpanError(f"{path} is empty (0 bytes); export it again with `ispan export --onnx`")
    try:
        return onnx.load(str(path), load_external_data=load_external_data)
    except Exception as exc:  # protobuf DecodeError and friends: not a readable ONNX model
        raise ISpanError(
            f"{path} is not a readable ONNX model ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}); export it again with `ispan export --onnx`"
        ) from exc
