"""Root Typer app: global options and the one place that renders user-facing errors.

Nothing here imports torch: ``ispan --help`` must stay fast. Command modules import heavy
libraries inside their bodies.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import signal
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from ispan_cli import __version__
from ispan_cli.errors import ISpanError, UsageError

DEBUG_ENV = "ISPAN_DEBUG"
_debug_flag = False  # set by --debug for this invocation


def _debug_enabled() -> bool:
    return _debug_flag or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _print_error(message: str) -> None:
    # One line on stderr: a newline in a file name cannot forge a second line, and escape
    # sequences in names or server text are shown, not obeyed. No rich markup is interpreted.
    from ispan_cli.terminal import one_line

    typer.echo(f"error: {one_line(message)}", err=True)


# click's UsageError (BadParameter's base), whether typer vendors click or uses the package
_CLICK_USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class ErrorRenderingGroup(TyperGroup):
    """Turns exceptions from any subcommand into one line on stderr and an exit status."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        # `ispan evaluate fuse A B` is `ispan fuse A B`: evaluate is one command (it scores a
        # dataset), fusing saved scores its companion under the name people look for
        words = [i for i, a in enumerate(args) if not a.startswith("-")]
        if len(words) >= 2 and args[words[0]] == "evaluate" and args[words[1]] == "fuse":
            args = args[: words[0]] + args[words[0] + 1 :]
        return super().parse_args(ctx, args)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ISpanError as exc:
            if _debug_enabled():
                raise
            _print_error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # the reader of our stdout went away (`ispan classify ... | head`): stop quietly,
            # with the shell's status for SIGPIPE; silence the flush at interpreter exit
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except _CLICK_USAGE_ERROR as exc:  # a bad option value, a missing argument, ...
            if _debug_enabled() or type(exc).__name__ == "NoArgsIsHelpError":  # shows help
                raise
            # one line like every other error, not click's box of usage, hint and framed text
            where = f" ({exc.ctx.command_path} -h shows the options)" if exc.ctx else ""
            _print_error(f"{exc.format_message()}{where}")
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug of ours: say so, without a traceback
            # usage errors (typer.TyperException) keep typer's own rendering and exit status 2
            if isinstance(exc, typer.TyperException) or _debug_enabled():
                raise
            _print_error(
                f"unexpected {type(exc).__name__}: {exc} "
                "(this is a bug in ispan; rerun with --debug for the traceback and report it)"
            )
            raise typer.Exit(1) from None


app = typer.Typer(
    name="ispan",
    cls=ErrorRenderingGroup,
    help="Video action classification with Interaction-aware Spatio-temporal Pyramid "
    "Attention Networks (ISTPAN).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"ispan {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")
    ] = False,
) -> None:
    """ispan: classify actions in videos with ISTPAN models."""
    global _debug_flag
    _debug_flag = debug
    _show_library_warnings()


class _WarningLines(logging.Handler):
    """Library warnings (e.g. a folder a video search could not read) as one escaped
    ``warning:`` line each on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        from ispan_cli.terminal import one_line

        typer.echo(f"warning: {one_line(record.getMessage())}", err=True)


def _show_library_warnings() -> None:
    logger = logging.getLogger("ispan.files")
    if not any(isinstance(h, _WarningLines) for h in logger.handlers):
        logger.addHandler(_WarningLines(logging.WARNING))
        logger.propagate = False


def _register() -> None:
    from ispan_cli.commands import (
        benchmark,
        classify,
        doctor,
        evaluate_fuse,
        frames,
        models,
        probe,
        visualize,
    )
    from ispan_cli.commands import data as data_cmd
    from ispan_cli.commands import evaluate as evaluate_cmd
    from ispan_cli.commands import export as export_cmd
    from ispan_cli.commands import flow as flow_cmd
    from ispan_cli.commands import hub as hub_cmd
    from ispan_cli.commands import merge as merge_cmd
    from ispan_cli.commands import report as report_cmd
    from ispan_cli.commands import train as train_cmd

    app.command("classify", no_args_is_help=True)(classify.classify)
    app.command("probe")(probe.probe)
    app.command("frames")(frames.frames)
    app.add_typer(models.app, name="models")
    app.command("doctor")(doctor.doctor)
    app.command("train")(train_cmd.train)
    app.command("report", no_args_is_help=True)(report_cmd.report)
    app.command("evaluate", no_args_is_help=True)(evaluate_cmd.evaluate)
    # also spelled `ispan evaluate fuse` (ErrorRenderingGroup.parse_args)
    app.command("fuse", no_args_is_help=True)(evaluate_fuse.fuse)
    app.add_typer(data_cmd.app, name="data")
    app.add_typer(hub_cmd.app, name="hub")
    app.add_typer(flow_cmd.app, name="flow")
    app.command("export")(export_cmd.export)
    app.command("visualize", no_args_is_help=True)(visualize.visualize)
    app.command("benchmark")(benchmark.benchmark)
    app.command("merge", no_args_is_help=True)(merge_cmd.merge)


def _finite_numbers(func):
    """Wraps a command so that NaN and infinity in any float option are a usage error: they
    pass typer's range checks (NaN compares false) and broke the work much later."""

    @functools.wraps(func)
    def checked(**kwargs):
        for name, value in kwargs.items():
            for x in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(x, float) and not math.isfinite(x):
                    flag = "--" + name.replace("_", "-")  # the options' names follow this rule
                    raise UsageError(f"{flag} must be a finite number, got {x}")
        return func(**kwargs)

    return checked


def _check_numbers_everywhere(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.callback = _finite_numbers(info.callback)
    for group in typer_app.registered_groups:
        _check_numbers_everywhere(group.typer_instance)


def _reflow(doc: str | None) -> str | None:
    """A docstring as help text: paragraphs kept, the source's line breaks inside one joined
    (typer prints them as they are, so help broke mid-sentence at the source's line width)."""
    if not doc:
        return doc
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


def _reflow_help_everywhere(typer_app: typer.Typer) -> None:
    for info in typer_app.registered_commands:
        info.help = _reflow(info.help or info.callback.__doc__)
    for group in typer_app.registered_groups:
        sub = group.typer_instance
        sub.info.help = _reflow(sub.info.help)
        _reflow_help_everywhere(sub)


_register()
_check_numbers_everywhere(app)
_reflow_help_everywhere(app)


INTERRUPTED = 130  # the shell's status for a process ended by SIGINT


def main() -> None:
    """Console-script entry point (``ispan``)."""
    try:
        app()
    except KeyboardInterrupt:  # outside a command's body: while starting up
        typer.echo("interrupted", err=True)
        _exit_now(INTERRUPTED)
    except SystemExit as exc:
        if exc.code == INTERRUPTED:
            _exit_now(INTERRUPTED)
        # The command is done and its output written: a Ctrl-C now would only turn the way out
        # (joining threads, atexit handlers) into a traceback and a death by signal.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise
    except ISpanError as exc:  # raised outside a subcommand (rare): still one line
        if _debug_enabled():
            raise
        _print_error(str(exc))
        sys.exit(exc.exit_code)


def _exit_now(code: int) -> None:
    """Ends the process at once after Ctrl-C, with what was written flushed: not waiting for
    decoding threads or data-loader workers to wind down (each would take its time, and a
    second Ctrl-C during that wait printed their tracebacks)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.shutdown()  # flushes file logs such as a run's train.log
    for stream in (sys.stdout, sys.stderr):
        # a closed or broken pipe: nothing more to deliver
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
