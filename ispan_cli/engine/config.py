"""TrainConfig: every setting of a training run, with defaults from the paper's recipe
(arXiv:1808.01106, TSN-style).

Precedence: defaults < ``--config FILE`` (TOML) < command-line options. The config is saved with
each checkpoint and in the model folder, so a run can be resumed and reproduced from its output.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ispan_cli.errors import UsageError
from ispan_cli.limits import MAX_BATCH, MAX_WORKERS

SCHEDULES = ("cosine", "step", "constant")
AMP = ("off", "bf16", "fp16")
# --monitor: the validation figure --patience watches and the best model is chosen by
MONITORS = ("top1", "mean_class", "loss")
# --modality: the streams ispan_cli.nn.flow builds (nn.flow.MODALITIES; a test keeps the two
# equal: importing ispan_cli.nn here would import torch into `ispan --help`)
MODALITIES = ("rgb", "flow")
# [ours] attention warm-up and learning-rate multiplier (see engine/optim.make_scheduler)
ATTENTION_WARMUP = 0.0
ATTENTION_LR = 1.0
# Settings that may differ when a run is resumed: they do not change what was already computed.
# The share of a split's listed videos that may be missing or undecodable (--max-skipped).
DEFAULT_MAX_SKIPPED = 0.01
RESUMABLE_CHANGES = frozenset(
    {
        "epochs",
        "workers",
        "output",
        "command",
        "resume",
        "device",
        "checkpoint_every",
        "eval_every",
        "max_skipped",
        # how long this process may run and when to give up: not what was computed so far
        "time_limit",
        "patience",
        # where the values came from, not what they are; where they are logged
        "origins",
        "log",
        "mlflow_uri",
        "experiment",
        "run_name",
    }
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


DEFAULT_WORKERS = 4


def default_workers() -> int:
    """Data-loading processes when --workers is not given: DEFAULT_WORKERS, at most one per
    core this process may use (more only queue for the same cores, and PyTorch warns about each
    DataLoader)."""
    from ispan_cli.runtime.threads import usable_cores

    return min(DEFAULT_WORKERS, usable_cores()[0])


@dataclass(frozen=True)
class TrainConfig:
    """A training run. The defaults follow the TSN-style recipe of the paper
    (arXiv:1808.01106) for UCF101 and HMDB51 fine-tuning from ImageNet (SGD momentum 0.9,
    weight decay 5e-4, dropout 0.8, partial BN, cosine schedule, K=8, 224 crops with scale
    jitter, corner cropping and flips)."""

    dataset: str = "ucf101"
    data_root: str | None = None
    split: int = 1
    arch: str = "istpan_resnet50"
    pretrained: str = "imagenet"
    segments: int = 8
    input_size: int | None = None  # None: the architecture's own
    epochs: int = 50
    batch_size: int = 32  # global: split across processes
    lr: float = 0.001
    schedule: str = "cosine"
    lr_steps: tuple[float, ...] = (0.5, 0.75)  # step schedule: fractions of the run, x0.1 each
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4
    dropout: float = 0.8
    beta: float = 0.1
    gamma: float = 0.1
    interaction_loss: bool = True
    diversity_loss: bool = True
    attention_warmup: float = ATTENTION_WARMUP  # fraction of the run with the attention frozen
    attention_lr: float = ATTENTION_LR  # multiplier of --lr for the attention layer
    output_norm: bool = True  # [ours] ModelConfig.output_norm: M over the mean row sum of A
    partial_bn: bool | None = None  # None: on when fine-tuning pretrained weights
    frozen_bn: bool = False  # every BN on running statistics: makes N processes equal to 1
    flip: bool = True
    precise_bn: int = 20  # batches to recompute BN statistics before evaluating; 0: off
    amp: str = "off"
    workers: int = field(default_factory=default_workers)
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    decoder: str = "auto"
    output: str = "runs/train"
    eval_every: int = 1
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: end of each epoch only
    synthetic_train: int = 1000
    synthetic_val: int = 200
    max_skipped: float = DEFAULT_MAX_SKIPPED  # share of a split's listed videos that may fail
    patience: int = 0  # evaluations without improvement of `monitor` before stopping; 0: off
    monitor: str = "top1"
    time_limit: str = ""  # wall-clock budget of this process ("2h30m"); "": none
    max_steps: int = 0  # optimizer steps in all; 0: epochs x steps per epoch
    init_from: str = ""  # a model (anything --model takes) whose weights start the run
    modality: str = "rgb"  # rgb | flow: the stream trained (issue 16, ispan_cli/nn/flow.py)
    flow_root: str = ""  # --modality flow: the folder of extracted flow (either layout)
    flow_length: int = 5  # L: flows stacked per segment, 2L input channels (TSN: 5)
    freeze_backbone: str = ""  # "all", or the last backbone stage held still; "": none
    lr_find: bool = False  # --lr auto: a learning-rate range test before training sets lr
    recipe: str = ""  # the recipe that set the defaults not given (engine/recipes.py)
    origins: dict[str, str] = field(default_factory=dict)  # setting -> where its value came from
    log: str = ""  # experiment trackers, comma-separated (engine/trackers.py)
    mlflow_uri: str = ""  # "": MLFLOW_TRACKING_URI, else RUN/mlruns
    experiment: str = ""  # tracker experiment (MLflow) or project (W&B); "": ispan
    run_name: str = ""  # tracker run name; "": the run folder's name
    command: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.lr_steps, list):
            object.__setattr__(self, "lr_steps", tuple(float(v) for v in self.lr_steps))
        checks = [
            (self.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
            (self.amp in AMP, f"--amp must be one of {', '.join(AMP)}"),
            (self.epochs >= 1, "--epochs must be at least 1"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.segments >= 1, "--segments must be at least 1"),
            (0 < self.lr < float("inf"), "--lr must be a positive number (or auto)"),
            (self.weight_decay >= 0, "--weight-decay must be non-negative"),
            (0 <= self.dropout < 1, "--dropout must be in [0, 1)"),
            (0 <= self.attention_warmup < 1, "--attention-warmup must be in [0, 1)"),
            (self.attention_lr >= 0, "--attention-lr must be non-negative"),
            (self.workers >= 0, "--workers must be non-negative"),
            (self.eval_every >= 1, "--eval-every must be at least 1"),
            (self.monitor in MONITORS, f"--monitor must be one of {', '.join(MONITORS)}"),
            (self.patience >= 0, "--patience must be non-negative (0: off)"),
            (self.max_steps >= 0, "--max-steps must be non-negative (0: off)"),
            (self.modality in MODALITIES, f"--modality must be one of {', '.join(MODALITIES)}"),
            (
                self.modality == "rgb" or bool(self.flow_root),
                "--modality flow needs --flow-root DIR (the flow `ispan flow extract` wrote)",
            ),
            (1 <= self.flow_length <= 64, "--flow-length must be in 1..64 (TSN uses 5)"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        check_fraction(self.max_skipped)
        parse_duration(self.time_limit)
        from ispan_cli.engine.trackers import parse_trackers  # torch-free

        parse_trackers(self.log)

    @property
    def time_limit_s(self) -> float | None:
        """--time-limit in seconds, None without one."""
        return parse_duration(self.time_limit)

    @property
    def use_partial_bn(self) -> bool:
        if self.partial_bn is None:
            return self.pretrained != "none" or bool(self.init_from)
        return self.partial_bn

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["lr_steps"] = list(self.lr_steps)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = {k.replace("-", "_"): v for k, v in data.items()}
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            import difflib

            # what a user may write: the run's own records (recipe, origins, command) are not
            settable = [k for k in valid if k not in _RECORDS]
            near = {k: difflib.get_close_matches(k, settable, 1, 0.6) for k in unknown}
            guesses = [f"{k} -> {m[0]}" for k, m in near.items() if m]
            hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
            raise UsageError(
                f"unknown training setting(s) {unknown}{hint}; valid: {', '.join(settable)}"
            )
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# TrainConfig fields the run writes for itself, never set by a user (--lr auto sets lr_find)
_RECORDS = ("lr_find", "recipe", "origins", "command")


def check_fraction(value: float) -> float:
    """``--max-skipped`` as given, if it is a fraction."""
    if not 0.0 <= value <= 1.0:
        raise UsageError(
            f"--max-skipped {value:g} is not a fraction between 0 and 1 (0.05 allows 5% of a "
            "split's videos to be skipped)"
        )
    return value


def parse_duration(text: str) -> float | None:
    """Seconds in ``"2h30m"``, ``"90m"``, ``"1d"``, ``"45s"`` or ``"3600"`` (seconds); None for
    ``""``."""
    text = text.strip().lower().replace(" ", "")
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        parts = _DURATION.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise UsageError(
                f"--time-limit {text!r} is not a duration; write e.g. 2h30m, 90m, 45s or 3600 "
                "(seconds)"
            ) from None
        seconds = sum(float(n) * _SECONDS[u] for n, u in parts)
    if not seconds > 0 or seconds == float("inf"):
        raise UsageError(f"--time-limit {text!r} must be a positive duration (e.g. 2h30m)")
    return seconds


# The ranges of the bounded settings (None: open). `ispan train`'s options take them from here
# and a --config TOML file is checked against them, so a file cannot pass what the command line
# refuses.
RANGES: dict[str, tuple[int | None, int | None]] = {
    "flow_length": (1, 64),
    "split": (1, 3),
    "segments": (1, None),
    "input_size": (16, None),
    "epochs": (1, None),
    "batch_size": (1, MAX_BATCH),
    "precise_bn": (0, None),
    "workers": (0, MAX_WORKERS),
    "eval_every": (1, None),
    "checkpoint_every": (0, None),
    "synthetic_train": (1, None),
    "synthetic_val": (0, None),
    "patience": (0, None),
    "max_steps": (0, None),
}


def check_ranges(data: dict[str, Any], where: str) -> None:
    """One error naming the first setting outside its range (``RANGES``)."""
    for key, (lo, hi) in RANGES.items():
        value = data.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            allowed = f"{lo}..{hi}" if hi is not None else f"at least {lo}"
            flag = "--" + key.replace("_", "-")
            raise UsageError(f"{where}: {key} = {value} is outside {allowed} (as {flag})")


def build_config(config_file: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the recipe for the run's situation (engine/recipes.py), then the TOML
    file (flat keys, or a ``[train]`` table), then ``overrides`` (the options given on the
    command line; None values are ignored). ``lr`` may be ``"auto"`` (a range test)."""
    from ispan_cli.engine.recipes import apply_recipe

    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if config_file is not None:
        where = f"--config {config_file}"
        given = {k.replace("-", "_"): v for k, v in read_toml(config_file).items()}
        data.update(check_types(_lr_auto(given, where), where))
        check_ranges(data, where)
        origins.update(dict.fromkeys(given, where))
    given = {k: v for k, v in overrides.items() if v is not None}
    data.update(_lr_auto(given, "--lr"))
    if str(data.get("pretrained", "")).startswith("hub:"):  # from --config too, not only the CLI
        from ispan_cli.importers import resolve_pretrained

        data["pretrained"] = resolve_pretrained(data["pretrained"])  # the cached model.safetensors
    origins.update(dict.fromkeys((k for k in given if k != "command"), "command line"))
    if data.get("lr_find"):
        origins["lr"] = "lr range test (--lr auto)"
        data.setdefault("lr", TrainConfig.lr)  # replaced by the range test's choice
    defaults = TrainConfig().to_dict()
    data, origins = apply_recipe(data, origins, defaults)
    return TrainConfig.from_dict({**data, "origins": origins})


def _lr_auto(given: dict[str, Any], where: str) -> dict[str, Any]:
    """``lr = "auto"`` as ``lr_find = True``; a number given as text (the command line) as a
    float."""
    lr = given.get("lr")
    if not isinstance(lr, str):
        return given
    given = dict(given)
    if lr.strip().lower() == "auto":
        del given["lr"]
        given["lr_find"] = True
        return given
    try:
        given["lr"] = float(lr)
    except ValueError:
        raise UsageError(f"{where}: lr must be a number or auto, got {lr!r}") from None
    return given


def explicit(origin: str | None) -> bool:
    """Whether a setting's origin is the user's own (command line or --config file)."""
    return origin is not None and (origin == "command line" or origin.startswith("--config"))


def check_types(data: dict[str, Any], where: str) -> dict[str, Any]:
    """``data`` if every value has its TrainConfig field's type (typer checks the options; a
    TOML file is checked here): ``epochs = "ten"`` or ``batch_size = 2.5`` is one line."""
    import math
    import types
    import typing

    hints = typing.get_type_hints(TrainConfig)
    names = {"int": "a whole number", "float": "a number", "bool": "true or false",
             "str": "a string", "tuple": "a list of numbers"}  # fmt: skip
    for raw_key, value in data.items():
        key = raw_key.replace("-", "_")
        if key not in hints:
            continue  # from_dict names unknown settings
        hint = hints[key]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        allowed = typing.get_args(hint) if union else (hint,)
        if value is None and type(None) in allowed:
            continue
        kinds = [t for t in allowed if t is not type(None)]
        ok = any(_has_type(value, t) for t in kinds)
        if ok and isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{where}: {raw_key} must be a finite number, got {value}")
        if not ok:
            wanted = " or ".join(names.get(getattr(t, "__name__", str(t)), str(t)) for t in kinds)
            raise UsageError(
                f"{where}: {raw_key} must be {wanted}, got {value!r} ({type(value).__name__})"
            )
    return data


def _has_type(value: Any, kind: Any) -> bool:
    import typing

    if typing.get_origin(kind) is tuple:
        return isinstance(value, (list, tuple)) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        )
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings in a TOML file."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"--config {path} does not exist")
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config {path} is not valid TOML ({exc})") from exc
    return dict(doc.get("train", doc))


def config_changes(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Settings that differ between a saved run and a resume request, excluding the ones a
    resume may change."""
    a, b = saved.to_dict(), new.to_dict()
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]]
