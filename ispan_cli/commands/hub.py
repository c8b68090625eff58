"""``ispan hub push``: upload a model folder with its card to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
) -> None:
    """Upload MODEL_DIR to the Hub repo org/name; prints the commit URL."""
    from ispan_cli.hub import push_model

    pushed = push_model(model_dir, repo, revision=revision, private=private, message=message)
    typer.echo(
        f"pushed {pushed.files} file(s) to {pushed.repo_id}@{pushed.revision}: "
        f"commit {pushed.commit}"
    )
    typer.echo(pushed.url)
