"""Every `ispan train` option says what it does, not only its default (--epochs, --schedule,
--weight-decay, --momentum and --seed said only "[default: ...]")."""

from __future__ import annotations

import re

import typer.main

from ispan_cli.app import app


def test_every_train_option_has_a_description() -> None:
    train = typer.main.get_command(app).commands["train"]
    bare = []
    for param in train.params:
        words = re.sub(r"\[default:[^\]]*\]\.?", "", param.help or "").strip()
        if len(words) < 6:
            bare.append(param.opts[0])
    assert not bare, bare
    schedule = next(p for p in train.params if "--schedule" in p.opts)
    assert "x0.1" in schedule.help and "0.5, 0.75" in schedule.help  # the step milestones
