"""The one ending every command shares: its result as JSON (``--format json``) or for people."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import typer

from ispan_cli.commands.options import OutputFormat


class Result(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=Result)


def emit(result: R | dict[str, Any], fmt: OutputFormat, render: Callable[[Any], None]) -> None:
    """``result.to_dict()`` (or a dict as it is) as indented JSON on stdout, or
    ``render(result)`` for a terminal.

    JSON output is exact (never escaped for the terminal); ``render`` escapes what it prints.
    """
    if fmt == OutputFormat.json:
        doc = result if isinstance(result, dict) else result.to_dict()
        typer.echo(json.dumps(doc, indent=2))
    else:
        render(result)
