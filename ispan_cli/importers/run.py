"""``ispan models import``: a published checkpoint -> an ordinary ispan model folder.

Steps: find the file (local path, http(s) URL into the cache, catalogue name, Hub repo), read it
without running code (``safe_pickle`` for ``.pth``, safetensors as they are), rename its keys
(``layouts``), build a TSN (or an ISTPAN whose attention starts uniform, so it predicts what the
TSN predicts), load the weights strictly, and write config.json (labels, preprocessing converted
from the peer's, sampling, a ``source`` section), model.safetensors and a model card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.importers.catalogue import CatalogueEntry, catalogue_entry, is_catalogue_name
from ispan_cli.importers.download import download, is_url
from ispan_cli.importers.labels import read_labels
from ispan_cli.importers.layouts import FORMATS, Converted, convert, detect_format
from ispan_cli.model_folder import CARD_FILE, CONFIG_FILE, atomic_write_text, sha256_file
from ispan_cli.video.flow_spec import FlowSpec
from ispan_cli.video.preprocess import PreprocessSpec
from ispan_cli.video.sampling import SamplingSpec

ARCHS = ("tsn", "istpan")
HUB_PREFIX = "hub:"
# MMAction2's ImageNet normalisation on 0-255 pixels (img_norm_cfg / data_preprocessor).
MM_MEAN = (123.675, 116.28, 103.53)
MM_STD = (58.395, 57.12, 57.375)
# Where the peer's recipe for each crop comes from when the catalogue does not say.
_DEFAULT_RESIZE, _DEFAULT_CROP, _DEFAULT_SEGMENTS = 256, 224, 8
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ImportOptions:
    source: str
    output: Path
    format: str = "auto"  # auto | mmaction2 | timm
    labels: str | None = None  # kinetics400 | ucf101 | hmdb51 | FILE
    arch: str = "tsn"
    segments: int | None = None  # K recorded for inference; None: the peer's
    timeout: float | None = None


@dataclass(frozen=True)
class ImportResult:
    output: Path
    arch: str
    backbone: str
    num_classes: int
    labels_from: str
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "arch": self.arch,
            "backbone": self.backbone,
            "num_classes": self.num_classes,
            "labels_from": self.labels_from,
            "source": self.source,
        }


@dataclass(frozen=True)
class _Fetched:
    path: Path
    origin: dict[str, Any]  # url / repo / catalogue name, for the source section
    entry: CatalogueEntry | None = None


def import_model(options: ImportOptions, progress: ProgressCallback | None = None) -> ImportResult:
    """Imports ``options.source`` into the folder ``options.output`` (see the module docstring)."""
    if options.format not in ("auto", *FORMATS):
        raise UsageError(f"--format {options.format} is not one of auto, {', '.join(FORMATS)}")
    if options.arch not in ARCHS:
        raise UsageError(f"--arch {options.arch} is not one of {', '.join(ARCHS)}")
    fetched = _fetch(options, progress)
    state, meta = _read(fetched.path)
    fmt = detect_format(state) if options.format == "auto" else options.format
    if fmt is None:
        keys = ", ".join(sorted(state)[:8])
        raise ISpanError(
            f"{fetched.path}: the checkpoint's layout is not one ispan knows (first keys: {keys}); "
            f"known formats: {', '.join(FORMATS)}"
        )
    converted = convert(state, fmt, str(fetched.path))
    if converted.fc_weight is None and fmt == "mmaction2":
        raise ISpanError(f"{fetched.path}: the MMAction2 checkpoint has no cls_head.fc_cls")
    labels, labels_from = _labels(options, fetched.entry, meta, converted)
    model = _build(converted, options, fetched.entry, labels)
    doc = _document(converted, fetched, options, model.config)
    _write(model, options.output, doc)
    return ImportResult(
        output=options.output,
        arch=model.config.arch,
        backbone=model.config.backbone,
        num_classes=model.config.num_classes,
        labels_from=labels_from,
        source=doc["source"],
    )


# -- finding and reading the file -----------------------------------------------------------------
def _fetch(options: ImportOptions, progress: ProgressCallback | None) -> _Fetched:
    spec = options.source
    timeout = 30.0 if options.timeout is None else options.timeout
    local = Path(spec).expanduser()
    if local.is_file():
        return _Fetched(local, {"path": str(local.resolve())})
    if is_catalogue_name(spec):
        entry = catalogue_entry(spec)
        path = download(entry.url, timeout=timeout, progress=progress)
        return _Fetched(path, {"catalogue": spec, "url": entry.url}, entry)
    if is_url(spec):
        return _Fetched(download(spec, timeout=timeout, progress=progress), {"url": spec})
    repo = spec.removeprefix(HUB_PREFIX)
    from ispan_cli.hub import fetch_repo_files, parse_hub_spec

    if spec.startswith(HUB_PREFIX) or (parse_hub_spec(repo) and not local.exists()):
        folder, repo_id, commit = fetch_repo_files(repo, progress=progress, timeout=options.timeout)
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise ISpanError(
                f"Hub repo {repo_id}@{commit[:12]} has no model.safetensors; pickle weights are "
                "not fetched from the Hub: pass the file's https URL (.../resolve/<rev>/<file>) "
                "to import it from there"
            )
        return _Fetched(weights, {"hub": repo_id, "revision": commit})
    raise ISpanError(
        f"{spec}: not a file, an http(s) URL, a catalogue name (`ispan models catalogue`) "
        "or a Hub repo (org/name)"
    )


def _read(path: Path) -> tuple[dict, dict]:
    """(state dict, meta) of a .safetensors or .pth file; the pickle is read without running it."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), {}
        except (SafetensorError, OSError) as exc:
            raise ISpanError(f"{path} is not a readable safetensors file ({exc})") from exc
    from ispan_cli.importers.safe_pickle import load_checkpoint

    obj = load_checkpoint(path)
    meta = obj.get("meta", {}) if isinstance(obj, dict) else {}
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise ISpanError(f"{path} holds no state dict (a mapping of names to tensors)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if len(tensors) != len(obj):
        bad = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))[:5]
        raise ISpanError(f"{path}: the state dict holds values that are not tensors: {bad}")
    return tensors, meta if isinstance(meta, dict) else {}


# -- labels, model, document ----------------------------------------------------------------------
def _labels(
    options: ImportOptions, entry: CatalogueEntry | None, meta: dict, converted: Converted
) -> tuple[tuple[str, ...], str]:
    n = converted.num_classes
    if options.labels is not None:
        labels, where = read_labels(options.labels)
    elif _meta_classes(meta):
        labels, where = _meta_classes(meta), "the checkpoint's dataset_meta"
    elif entry is not None:
        labels, where = read_labels(entry.labels)
    else:
        return (), "none (class indices only; give --labels)"
    if n is not None and len(labels) != n:
        raise ISpanError(
            f"the labels from {where} are {len(labels)} names but the checkpoint's classifier has "
            f"{n} classes; give --labels with exactly {n} names, one a line, in logit order"
        )
    return labels, where


def _meta_classes(meta: dict) -> tuple[str, ...]:
    dataset_meta = meta.get("dataset_meta")
    classes = dataset_meta.get("classes") if isinstance(dataset_meta, dict) else None
    if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
        return tuple(classes)
    return ()


def _build(converted: Converted, options: ImportOptions, entry: CatalogueEntry | None, labels):
    import torch

    from ispan_cli.nn import ISTPAN, ModelConfig

    crop = entry.crop if entry else _DEFAULT_CROP
    segments = options.segments or (entry.num_segments if entry else _DEFAULT_SEGMENTS)
    num_classes = converted.num_classes or 1000
    common = {
        "backbone": f"resnet{converted.depth}",
        "num_classes": num_classes,
        "labels": labels,
        "input_size": crop,
        "in_channels": converted.in_channels,
        "num_segments": segments,
        "dropout": 0.4 if converted.format == "mmaction2" else 0.0,  # TSNHead's dropout_ratio
    }
    if options.arch == "tsn":
        config = ModelConfig(arch="tsn", pyramid=(), attention_layer=None, **common)
    else:
        side = -(-crop // 32)  # layer4's side at this crop (ResNet stride 32, rounded up)
        config = ModelConfig(
            arch="istpan",
            pyramid=("layer2", "layer3", "layer4"),
            attention_layer="layer4",
            d=side * side,
            **common,
        )
    model = ISTPAN(config)
    state = {f"backbone.net.{k}": v for k, v in converted.backbone.items()}
    fc_weight = converted.fc_weight
    if fc_weight is None:  # a timm backbone without its classifier: nothing to predict with yet
        fc_weight = torch.zeros(num_classes, model.fc.in_features)
    state["fc.weight"] = fc_weight
    state["fc.bias"] = (
        converted.fc_bias if converted.fc_bias is not None else torch.zeros(num_classes)
    )
    if model.attention is not None:
        _near_uniform(model.attention)
        state.update({f"attention.{k}": v for k, v in model.attention.state_dict().items()})
    from ispan_cli.nn.serialization import check_state_dict

    check_state_dict(model, state, source=str(options.source))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _near_uniform(attention) -> None:
    """[ours] Score weights of std 1e-8 and zero bias: every row of A is flat to about 1e-6, so the
    attended features are the plain average over positions, which is exactly TSN's pooling, and
    the ISTPAN predicts what the TSN predicts; the tiny random rows still break the symmetry so
    fine-tuning can make the rows differ."""
    import torch

    with torch.no_grad():
        for layer in attention.scores:
            layer.weight.normal_(std=1e-8)
            layer.bias.zero_()


def _document(converted: Converted, fetched: _Fetched, options: ImportOptions, config) -> dict:
    entry = fetched.entry
    resize = entry.resize if entry else round(config.input_size * _DEFAULT_RESIZE / _DEFAULT_CROP)
    modality = "flow" if config.in_channels != 3 else "rgb"
    source: dict[str, Any] = {
        **fetched.origin,
        "file": fetched.path.name,
        "sha256": sha256_file(fetched.path),
        "format": converted.format,
        "modality": modality,
        "converted_by": "ispan models import",
    }
    if entry is not None:
        source["description"] = entry.description
        source["reported_by_peer"] = {
            **entry.reported,
            "note": "the peer's number from the page linked, not measured by ispan",
        }
    doc: dict[str, Any] = {
        "sampling": SamplingSpec(config.num_segments).to_dict(),  # TSN, centre frames at test
        "source": source,
    }
    if modality == "rgb":
        # the peer normalises 0-255 pixels with mean/std; ours are on [0, 1]: divide both by 255
        doc["preprocessing"] = PreprocessSpec(
            resize=resize,
            crop=config.input_size,
            crops=1,
            mean=tuple(round(m / 255, 6) for m in MM_MEAN),
            std=tuple(round(s / 255, 6) for s in MM_STD),
        ).to_dict()
    else:  # flow stacks: the peer's mean = std = 128 on 0-255 flow images, recorded as theirs
        source["peer_preprocessing"] = {"mean": 128, "std": 128, "resize": resize}
        # MMAction2's TSN flow models: TV-L1 (dense_flow), bound 20, L = channels / 2, their
        # normalisation; the geometry (resize, crop) is the preprocessing section's, whose RGB
        # mean/std a flow model does not use
        doc["flow"] = FlowSpec(
            method="tvl1", bound=20.0, length=config.in_channels // 2, mean=128.0, std=128.0
        ).to_dict()
        doc["preprocessing"] = {"resize": resize, "crop": config.input_size, "crops": 1}
    return doc


def _write(model, output: Path, doc: dict) -> None:
    from ispan_cli.nn import save_model

    if output.exists() and not output.is_dir():
        raise ISpanError(f"-o {output} exists and is not a folder")
    if (output / CONFIG_FILE).exists():
        raise ISpanError(
            f"{output} already holds a model ({CONFIG_FILE}); choose a new folder or remove it"
        )
    save_model(model, output, extra=doc)
    atomic_write_text(output / CARD_FILE, model_card(model.config, doc))


def model_card(config, doc: dict) -> str:
    """The README.md of an imported folder: what it is, where it is from, what ispan did not do."""
    source = doc["source"]
    where = source.get("url") or source.get("hub") or source.get("path")
    reported = source.get("reported_by_peer")
    lines = [
        f"# {source.get('description') or f'{config.arch.upper()} {config.backbone} (imported)'}",
        "",
        f"Imported by `ispan models import` from a {source['format']} checkpoint: `{where}`",
        f"(sha256 `{source['sha256']}`). The weights are the publisher's, renamed to ispan's "
        "layout; nothing was trained or changed.",
        "",
        f"- architecture: {config.arch} on {config.backbone}, {config.num_classes} classes, "
        f"input {config.in_channels} x {config.input_size} x {config.input_size}, "
        f"K = {config.num_segments} segments",
        f"- modality: {source['modality']}",
    ]
    if config.arch == "istpan":
        lines.append(
            "- the attention layer is new and starts near uniform, so this model predicts what "
            "the imported TSN predicts until it is fine-tuned"
        )
    lines += ["", "## Accuracy", ""]
    if reported:
        lines.append(
            f"The publisher reports top-1 {reported['top1']} / top-5 {reported['top5']} on "
            f"{reported['dataset']} ({reported['protocol']}); source: {reported['link']}."
        )
    lines.append(
        "**ispan has not measured the accuracy of this model.** Its single-view inference "
        "(K segments, one centre crop) differs from the multi-view protocol most published "
        "numbers use; measure it with `ispan evaluate`."
    )
    return "\n".join(lines) + "\n"
