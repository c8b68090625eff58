"""train's command line: its choices are the library's tuples, its --help defaults are
TrainConfig's, and the options reach the library as one TrainOptions."""

from __future__ import annotations

import dataclasses
import re

import pytest
from typer.testing import CliRunner

from ispan_cli.commands import train as train_cmd
from ispan_cli.engine.config import AMP, MONITORS, SCHEDULES, TrainConfig, parse_duration
from ispan_cli.engine.launch import TrainOptions
from ispan_cli.errors import UsageError


@pytest.mark.parametrize(
    "enum, values",
    [(train_cmd.Schedule, SCHEDULES), (train_cmd.Amp, AMP), (train_cmd.Monitor, MONITORS)],
    ids=["schedule", "amp", "monitor"],
)
def test_train_choices_are_the_library_tuples(enum, values) -> None:
    assert tuple(m.value for m in enum) == values


def _help() -> str:
    import typer

    app = typer.Typer()
    app.command()(train_cmd.train)
    app.command("other")(lambda: None)  # two commands: `train` stays a subcommand
    done = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "400"})
    assert done.exit_code == 0, done.output
    return re.sub(r"\s+", " ", done.output.replace("│", " "))


def test_help_defaults_are_train_config_defaults() -> None:
    text = _help()
    d = TrainConfig()
    for option, shown in [
        ("--epochs", d.epochs),
        ("--weight-decay", f"{d.weight_decay:g}"),
        ("--batch-size", d.batch_size),
        ("--segments", d.segments),
        ("--precise-bn", d.precise_bn),
        ("--monitor", d.monitor),
        ("--output", d.output),
    ]:
        # the first default shown after the option's name is its own
        row = text.split(f" {option} ", 1)[1]
        assert row.split("[default: ", 1)[1].startswith(f"{shown}]"), (option, row[:200])
    assert "[ours]" in text  # rich markup would swallow it unescaped
    from ispan_cli.engine.recipes import RECIPES

    lr = text.split(" --lr ", 1)[1].split("[default: ", 1)[1]
    for name, recipe in RECIPES.items():
        assert f"{recipe.values['lr']:g} {name}" in lr.split("]", 1)[0], lr[:200]


def test_every_setting_option_is_a_config_field() -> None:
    """The command passes its parameters to TrainConfig by name: each one that is not a launch
    or display option must be a field, or it would be dropped silently."""
    import inspect

    launch = {"config", "resume", "force", "gpus", "devices", "nnodes", "node_rank",
              "rdzv_endpoint", "quiet"}  # fmt: skip
    params = set(inspect.signature(train_cmd.train).parameters) - launch
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert params <= fields, params - fields


def test_train_options_build_the_config(tmp_path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("epochs = 7\nlr = 0.5\n")
    options = TrainOptions(settings={"lr": 0.02, "seed": None}, config_file=toml, gpus=2)
    cfg = options.config()
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.device) == (7, 0.02, 0, "cuda")
    assert options.nprocs == 2
    with pytest.raises(UsageError, match="not both"):
        TrainOptions(gpus=2, devices=2)


def test_parse_duration() -> None:
    assert parse_duration("2h30m") == 9000
    assert parse_duration("1d") == 86400
    assert parse_duration("45s") == 45
    assert parse_duration("3600") == 3600
    assert parse_duration("1.5h") == 5400
    assert parse_duration("") is None
    for bad in ("2x", "h", "0", "-5", "nan", "2h 30q"):
        with pytest.raises(UsageError, match="--time-limit"):
            parse_duration(bad)
    with pytest.raises(UsageError, match="--time-limit"):
        TrainConfig(time_limit="soon")
