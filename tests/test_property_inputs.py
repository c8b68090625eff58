"""Property test (issue 13): NaN, infinity, -1, 0 and huge values (1e30, 10**18) fed to every
numeric CLI option of every command, every numeric field of a model folder's config.json and
every numeric setting of a train TOML give one ``error:`` line without "this is a bug" and
without a traceback, or a normal result where the value is legitimately valid.

Options are found from the typer app itself (the commands' signatures and their click
parameters), so an option added later is covered without touching this file: it fails
``test_every_value_an_option_accepts_is_accounted_for`` until its range is declared or the value
is listed below with its reason. NaN and infinity in float options: tests/test_numeric_options.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import shutil
import time
import typing

import pytest
import typer
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.errors import ISpanError

HUGE = {int: 10**18, float: 1e30}
VALUES = {  # the value classes fed to every numeric option
    int: {"negative": -1, "zero": 0, "huge": HUGE[int]},
    float: {"negative": -1.0, "zero": 0.0, "huge": HUGE[float]},
}


def numeric_options() -> list[tuple[str, str, type, object]]:
    """(command, --flag, int or float, the click parameter) for every numeric option."""
    found = []

    def leaves(command, prefix):
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from leaves(sub, [*prefix, name])
        else:
            yield " ".join(prefix), command

    for name, command in leaves(typer.main.get_command(app), []):
        hints = typing.get_type_hints(inspect.unwrap(command.callback), include_extras=True)
        for param in command.params:
            hint = hints.get(param.name)
            if hint is None or not any(o.startswith("--") for o in param.opts):
                continue
            base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
            args = typing.get_args(base) or (base,)
            kind = float if float in args else int if int in args else None
            if kind is not None:
                found.append((name, max(param.opts, key=len), kind, param))
    return found


OPTIONS = numeric_options()


def _refused_by_range(param, value) -> bool:
    return (param.min is not None and value < param.min) or (
        param.max is not None and value > param.max
    )


# Values an option's range lets through, each with the reason it is fine. "*" matches every
# command. Three kinds: legitimately valid; refused in the command body with one error line
# (the slow test below runs them); or a known gap, accepted with no bound yet, named for its
# owner (commands/train.py, engine/config.py, commands/classify.py, commands/data.py, ...).
LEGIT = {
    ("*", "--workers", "zero"): "0 decodes in the calling thread",
    ("*", "--stream", "zero"): "stream 0 is the first stream",
    ("*", "--stream", "huge"): "the decoder refuses a stream the file lacks, listing those it has",
    ("*", "--timeout", "huge"): "waiting as long as it takes is the user's choice",
    ("*", "--topk", "huge"): "top-k lists at most the model's classes",
    ("*", "--threads", "zero"): "0 lets ONNX Runtime choose",
    ("*", "--seed", "zero"): "any seed is a seed",
    ("*", "--seed", "huge"): "any seed is a seed",
    ("*", "--merge-wait", "zero"): "do not wait for other shards",
    ("*", "--merge-wait", "huge"): "wait as long as other shards take",
    ("*", "--reconnect", "zero"): "no reconnection",
    ("*", "--max-latency", "zero"): "0 means no latency bound",
    ("*", "--max-latency", "huge"): "no practical latency bound",
    ("*", "--precise-bn", "zero"): "0 switches precise BN off",
    ("*", "--checkpoint-every", "zero"): "0 writes checkpoints at the end only",
    ("*", "--patience", "zero"): "0 switches early stopping off",
    ("*", "--patience", "huge"): "never stop early",
    ("*", "--max-steps", "zero"): "0 means no step limit",
    ("*", "--max-steps", "huge"): "no step limit",
    ("*", "--eval-every", "huge"): "evaluate at the end only",
    ("*", "--checkpoint-every", "huge"): "checkpoint at the end only",
    ("*", "--epochs", "huge"): "training is stopped by --max-steps, --time-limit or Ctrl-C",
    ("*", "--synthetic-val", "zero"): "no validation videos",
    ("*", "--node-rank", "zero"): "the first node",
    ("*", "--alpha", "zero"): "an invisible overlay",
    ("*", "--short-side", "zero"): "0 keeps the video's own size",
    ("*", "--train", "zero"): "an empty training subset",
    ("*", "--val", "zero"): "an empty validation subset",
    ("*", "--weight-decay", "zero"): "no weight decay",
    ("*", "--momentum", "zero"): "plain SGD",
    ("*", "--dropout", "zero"): "no dropout",
    ("*", "--beta", "zero"): "the interaction loss switched off by weight",
    ("*", "--gamma", "zero"): "the diversity loss switched off by weight",
    ("*", "--warmup-epochs", "zero"): "no warm-up",
    ("*", "--attention-warmup", "zero"): "no attention warm-up",
    ("*", "--max-skipped", "zero"): "no video may be skipped",
    ("*", "--count", "huge"): "benchmark stops at --seconds",
    ("*", "--seconds", "huge"): "benchmark stops at --count",
}
BODY = {  # refused by the command's own check, with one error line naming the option
    ("*", "--window", "negative"): "--window and --stride must be positive seconds",
    ("*", "--window", "zero"): "--window and --stride must be positive seconds",
    ("*", "--stride", "negative"): "--window and --stride must be positive seconds",
    ("*", "--stride", "zero"): "--window and --stride must be positive seconds",
    ("*", "--stride", "huge"): "one window",
    ("*", "--window", "huge"): "longer than the video: one window",
    ("visualize", "--fps", "negative"): "--fps must be positive",
    ("visualize", "--fps", "zero"): "--fps must be positive",
    ("train", "--devices", "huge"): "at most 256 processes (10**18 took 10 GB and counting)",
}
GAPS = {  # accepted with no bound at the boundary yet: the owner of the option should add one
    ("*", "--reconnect", "huge"): "no upper bound",
    (
        "train",
        "--segments",
        "huge",
    ): "ModelConfig refuses it (at most 1024) when the model is built",
    ("data check", "--segments", "huge"): "no upper bound; the sampler is asked for that many",
    ("models import", "--segments", "huge"): "ModelConfig refuses it when the folder is written",
    ("train", "--input-size", "huge"): "ModelConfig refuses it (at most 2048) at model build",
    ("train", "--synthetic-train", "huge"): "no upper bound on generated videos",
    ("train", "--synthetic-val", "huge"): "no upper bound on generated videos",
    ("evaluate", "--synthetic-val", "huge"): "no upper bound on generated videos",
    ("data synth", "--train", "huge"): "no upper bound on generated videos",
    ("data synth", "--val", "huge"): "no upper bound on generated videos",
    ("*", "--seed", "negative"): "no lower bound (NumPy refuses negative seeds)",
    ("train", "--gpus", "huge"): "no upper bound; the launcher finds fewer GPUs",
    ("train", "--nnodes", "huge"): "no upper bound",
    ("train", "--node-rank", "huge"): "not checked against --nnodes at the boundary",
    ("train", "--precise-bn", "huge"): "no upper bound on batches",
    ("export", "--opset", "huge"): "no upper bound; the exporter refuses unknown opsets",
    ("visualize", "--fps", "huge"): "no upper bound",
    ("visualize", "--short-side", "huge"): "no upper bound (frames --short-side has 8192)",
    ("flow extract", "--bound", "huge"): "no upper bound",
    **{
        ("train", flag, which): "train float settings have no range (engine/config.py)"
        for flag in (
            "--lr",
            "--warmup-epochs",
            "--weight-decay",
            "--momentum",
            "--dropout",
            "--beta",
            "--gamma",
            "--attention-warmup",
            "--attention-lr",
            "--max-skipped",
        )
        for which in ("negative", "zero", "huge")
    },
    ("evaluate", "--max-skipped", "negative"): "no range",
    ("evaluate", "--max-skipped", "huge"): "no range",
}


def _listed(table: dict, command: str, flag: str, which: str) -> bool:
    return (command, flag, which) in table or ("*", flag, which) in table


def _accepted_cases() -> list[tuple[str, str, str, object]]:
    return [
        (command, flag, which, value)
        for command, flag, kind, param in OPTIONS
        for which, value in VALUES[kind].items()
        if not _refused_by_range(param, value)
    ]


def test_the_options_were_found():
    flags = {(command, flag) for command, flag, _, _ in OPTIONS}
    assert len(OPTIONS) >= 60  # it would pass vacuously otherwise
    assert {("classify", "--segments"), ("train", "--lr"), ("frames", "--short-side")} <= flags


def test_every_value_an_option_accepts_is_accounted_for():
    unknown = [
        f"{command} {flag} {value} ({which})"
        for command, flag, which, value in _accepted_cases()
        if not any(_listed(t, command, flag, which) for t in (LEGIT, BODY, GAPS))
    ]
    assert not unknown, (
        "declare a range on these options (typer.Option(min=..., max=...)), or list the value "
        f"in LEGIT, BODY or GAPS with its reason: {unknown}"
    )


def test_the_tables_list_nothing_a_range_already_refuses():
    accepted = {(c, f, w) for c, f, w, _ in _accepted_cases()}
    flags = {(c, f) for c, f, _, _ in OPTIONS}
    for table in (LEGIT, BODY, GAPS):
        for command, flag, which in table:
            if command != "*":
                assert (command, flag) in flags, (command, flag)
                assert (command, flag, which) in accepted, f"{command} {flag} {which}: refused"
            else:
                assert any(f == flag and w == which for _, f, w in accepted), (flag, which)


# What each command needs to reach its body; paths that do not exist make it stop right after
# its options are checked, so every case is quick (values legitimately valid meet that error).
NEEDS = {
    "classify": ["/nonexistent/clip.mp4", "--model", "/nonexistent/model"],
    "visualize": ["/nonexistent/clip.mp4", "--model", "/nonexistent/model"],
    "probe": ["/nonexistent/clip.mp4"],
    "frames": ["/nonexistent/clip.mp4"],
    "evaluate": ["--dataset", "folder", "--data-root", "/nonexistent"],
    "train": ["--dataset", "folder", "--data-root", "/nonexistent", "--output", "/nonexistent/r"],
    "export": ["--onnx", "--model", "/nonexistent/m", "-o", "/nonexistent/x.onnx"],
    "benchmark": ["/nonexistent/clip.mp4", "--model", "/nonexistent/model"],
    "models info": ["/nonexistent/m"],
    "models import": ["/nonexistent/ck.pth", "-o", "/nonexistent/out"],
    "data synth": ["/nonexistent/out"],
    "data check": ["--dataset", "folder", "--data-root", "/nonexistent"],
    "hub push": ["/nonexistent/folder", "org/name"],
    "flow extract": ["/nonexistent/clip.mp4", "-o", "/nonexistent/flow"],
}


def _clean(result, took: float) -> None:
    out = result.output
    assert "this is a bug" not in out and "Traceback" not in out, out
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 1, 2), result.exit_code
    if result.exit_code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 or "Usage:" in result.stderr, result.stderr
    assert took < 60, f"{took:.1f} s"  # generous: the slow run shares the machine


ALL = [
    (command, flag, value)
    for command, flag, kind, _ in OPTIONS
    for value in [*VALUES[kind].values(), *((math.nan, math.inf) if kind is float else ())]
]


@pytest.mark.slow
@pytest.mark.parametrize(("command", "flag", "value"), ALL, ids=[f"{c} {f} {v}" for c, f, v in ALL])
def test_every_numeric_option_value_is_one_clean_line(command, flag, value):
    start = time.monotonic()
    args = [*command.split(), *NEEDS.get(command, []), flag, str(value)]
    result = CliRunner().invoke(app, args)
    _clean(result, time.monotonic() - start)
    assert "No such option" not in result.output


@pytest.mark.parametrize("value", [-1, 0, 10**18])
@pytest.mark.parametrize(("command", "flag"), [("frames", "--segments"), ("frames", "--stream")])
def test_frames_options_on_a_real_video(command, flag, value, tmp_path):
    # a cheap command on a real file: an accepted value gives a normal result
    from pathlib import Path

    video = Path(__file__).parent.parent / "samples" / "demo.mp4"
    start = time.monotonic()
    result = CliRunner().invoke(app, [command, str(video), flag, str(value), "-f", "json"])
    _clean(result, time.monotonic() - start)
    if result.exit_code == 0:
        assert (flag, value) == ("--stream", 0)
        assert json.loads(result.stdout)["num_frames"] > 0


# -- config.json: every numeric field of the model and preprocessing sections -------------------
def _numeric_fields(cls) -> list[tuple[str, type]]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        if int in args or float in args:
            out.append((f.name, float if float in args else int))
        elif any(typing.get_args(a) and float in typing.get_args(a) for a in [hints[f.name]]):
            out.append((f.name, "floats"))  # mean, std: three floats
    return out


def _config_cases():
    from ispan_cli.nn.config import ModelConfig
    from ispan_cli.video.preprocess import PreprocessSpec

    cases = []
    for section, cls in (("model", ModelConfig), ("preprocessing", PreprocessSpec)):
        for name, kind in _numeric_fields(cls):
            for value in (math.nan, math.inf, -1, 0, 1e30, 10**18):
                if kind == "floats":
                    value = [value] * 3
                cases.append((section, name, value))
    return cases


CONFIG_CASES = _config_cases()
# legitimately valid values of config.json fields
CONFIG_LEGIT = {
    ("model", "dropout", 0): "no dropout",
    ("model", "beta", 0): "no interaction loss",
    ("model", "gamma", 0): "no diversity loss",
    ("model", "beta", 1e30): "a loss weight only matters in training, where NaN losses stop it",
    ("model", "gamma", 1e30): "a loss weight only matters in training, where NaN losses stop it",
    ("model", "beta", 10**18): "as 1e30",
    ("model", "gamma", 10**18): "as 1e30",
    ("preprocessing", "mean", (0,) * 3): "no mean subtraction",
}

CONFIG_GAPS: dict = {}  # accepted with no bound yet: none


def test_config_fields_were_found():
    names = {(s, n) for s, n, _ in CONFIG_CASES}
    assert {("model", "d"), ("model", "num_segments"), ("preprocessing", "std")} <= names
    assert {("preprocessing", "resize"), ("model", "beta")} <= names


@pytest.mark.parametrize(("section", "name", "value"), CONFIG_CASES)
def test_every_numeric_config_field_is_checked(section, name, value, tmp_path):
    from ispan_cli.nn import read_config
    from ispan_cli.video import spec_from_config
    from ispan_cli.zoo import zoo_dir

    folder = tmp_path / "model"
    shutil.copytree(
        zoo_dir() / "istpan-tiny-synthetic", folder, ignore=lambda *_: ["model.safetensors"]
    )
    doc = json.loads((folder / "config.json").read_text())
    doc[section][name] = value
    (folder / "config.json").write_text(json.dumps(doc))
    key = (section, name, tuple(value) if isinstance(value, list) else value)
    try:
        config, read = read_config(folder)
        spec_from_config(config, read)
    except ISpanError as exc:
        assert name in str(exc) and "\n" not in str(exc), str(exc)
        assert key not in CONFIG_LEGIT and key not in CONFIG_GAPS
        return
    assert key in CONFIG_LEGIT or key in CONFIG_GAPS, f"{section}.{name} = {value} was accepted"


# -- train TOML: every numeric setting --------------------------------------------------------
def _toml_cases():
    from ispan_cli.engine.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    cases = []
    for f in dataclasses.fields(TrainConfig):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        if bool in args:
            continue
        kind = float if float in args else int if int in args else None
        if kind is None:
            continue
        for text in (
            ["nan", "inf", "-1.0", "0.0", "1e30"] if kind is float else ["-1", "0", str(10**18)]
        ):
            cases.append((f.name, text))
    return cases


TOML_CASES = _toml_cases()


TRAIN_OPTIONS = {flag: param for command, flag, _, param in OPTIONS if command == "train"}


@pytest.mark.parametrize(("name", "text"), TOML_CASES)
def test_every_numeric_train_setting_is_an_error_or_what_the_option_allows(name, text, tmp_path):
    from ispan_cli.engine.config import build_config

    path = tmp_path / "run.toml"
    path.write_text(f"{name} = {text}\n")
    flag = "--" + name.replace("_", "-")
    try:
        config = build_config(path, {"dataset": "synthetic"})
    except ISpanError as exc:
        message = str(exc)
        assert "\n" not in message and (name in message or flag in message), message
        return
    # accepted: a TOML file must not let through what the command line refuses (the values
    # the option's range accepts are accounted for in LEGIT, BODY and GAPS above)
    value = getattr(config, name)
    param = TRAIN_OPTIONS.get(flag)
    if param is not None and not (isinstance(value, float) and math.isnan(value)):
        assert not _refused_by_range(param, value), f"{name} = {text} passes the TOML, not {flag}"
