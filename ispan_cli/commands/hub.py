"""``ispan hub push``: upload a model folder with its card to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ispan_cli.commands.options import TimeoutOpt

app = typer.Typer(help="The Hugging Face Hub: upload model folders.", no_args_is_help=True)


@app.command("push", no_args_is_help=True)
def push(
    model_dir: Annotated[
        Path, typer.Argument(help="Model folder (config.json, model.safetensors, README.md).")
    ],
    repo: Annotated[str, typer.Argument(help="Hub repo org/name (created if missing).")],
    revision: Annotated[
        str | None,
        typer.Option(
            "--revision", help="Branch to commit to (created if missing) [default: main]."
        ),
    ] = None,
    private: Annotated[bool, typer.Option("--private", help="Create the repo as private.")] = False,
    message: Annotated[str | None, typer.Option("--message", help="Commit message.")] = None,
    timeout: TimeoutOpt = None,
) -> None:
    """Upload MODEL_DIR to the Hub repo org/name; prints the commit URL.

    Only config.json, model.safetensors and README.md go up, and only as regular files of
    MODEL_DIR: a symbolic link is refused, whatever it points at.
    """
    from ispan_cli.hub_http import printable
    from ispan_cli.hub_push import push_model

    pushed = push_model(
        model_dir, repo, revision=revision, private=private, message=message, timeout=timeout
    )
    # the commit hash and URL come from the server: printed without escape sequences
    typer.echo(
        f"pushed {pushed.files} file(s) to {pushed.repo_id}@{pushed.revision}: "
        f"commit {printable(pushed.commit, 80)}"
    )
    typer.echo(printable(pushed.url, 400))
