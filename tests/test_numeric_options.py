"""NaN and infinity in any float option of any command are a usage error, exit status 2: one
`error:` line, or typer's own usage message where the option's range refuses the value first.
They used to pass range-less options and fail much later as "a bug in ispan"."""

from __future__ import annotations

import inspect
import typing

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app

# the least each command needs to reach its own code (the check comes first, so these need not
# exist)
NEEDS = {
    "classify": ["clip.mp4"],
    "visualize": ["clip.mp4"],
    "evaluate": ["--dataset", "synthetic"],
    "models info": ["istpan_tiny"],
    "hub push": ["folder", "org/name"],
    "models import": ["ckpt.pth", "-o", "out"],
    "flow extract": ["clip.mp4", "-o", "out"],
    "fuse": ["a.jsonl", "b.jsonl"],
}


def _float_options() -> list[tuple[str, str]]:
    found = []

    def walk(typer_app, prefix: str) -> None:
        for info in typer_app.registered_commands:
            func = inspect.unwrap(info.callback)
            name = prefix + (info.name or func.__name__)
            for param, hint in typing.get_type_hints(func, include_extras=True).items():
                base = (
                    typing.get_args(hint)[0]
                    if typing.get_origin(hint) is typing.Annotated
                    else hint
                )
                if float in (typing.get_args(base) or (base,)):
                    found.append((name, "--" + param.replace("_", "-")))
        for group in typer_app.registered_groups:
            walk(group.typer_instance, prefix + group.name + " ")

    walk(app, "")
    return found


OPTIONS = _float_options()


def test_every_float_option_is_covered():
    assert len(OPTIONS) >= 20  # the introspection found them (it would pass vacuously if not)
    assert ("visualize", "--fps") in OPTIONS and ("train", "--lr") in OPTIONS


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize(("command", "option"), OPTIONS, ids=[" ".join(o) for o in OPTIONS])
def test_non_finite_values_are_a_usage_error(command, option, value):
    args = [*command.split(), *NEEDS.get(command, []), option, value]
    # wide: typer's usage-error box would wrap the message of a long command line
    result = CliRunner().invoke(app, args, env={"COLUMNS": "250"})
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (args, result.output)
    assert "this is a bug" not in result.output and "Traceback" not in result.output
    assert len(lines) == 1, lines  # every usage error is one line (app.ErrorRenderingGroup)
    if "Invalid value" in lines[0]:  # refused by the option's own range (NaN, -inf)
        assert lines[0].startswith(f"error: Invalid value for '{option}'"), lines
    else:
        assert lines == [f"error: {option} must be a finite number, got {float(value)}"], lines
