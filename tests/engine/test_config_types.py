"""A TOML training config with a wrong type is one `error:` line naming the setting, not a
crash inside the trainer (exit 2, nothing trained)."""

from __future__ import annotations

import pytest

from tests.engine.runs import ispan


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('epochs = "ten"', "epochs must be a whole number, got 'ten' (str)"),
        ("seed = 1.5", "seed must be a whole number, got 1.5 (float)"),
        ("batch_size = 2.5", "batch_size must be a whole number, got 2.5 (float)"),
        ("lr = nan", "lr must be a finite number, got nan"),
        ("deterministic = 1", "deterministic must be true or false, got 1 (int)"),
        ('lr_steps = ["a"]', "lr_steps must be a list of numbers"),
        ("[train]\nworkers = true", "workers must be a whole number, got True (bool)"),
    ],
)
def test_wrong_types_in_a_config_file(toml, expected, tmp_path):
    config = tmp_path / "run.toml"
    config.write_text(toml + "\n")
    done = ispan("train", "--config", str(config), "--dataset", "synthetic", "--output",
                 str(tmp_path / "run"), check=False)  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0] == f"error: --config {config}: {expected}" or (
        lines[0].startswith(f"error: --config {config}: {expected}")
    )
    assert not (tmp_path / "run").exists()


def test_integers_are_numbers_where_floats_are_wanted(tmp_path):
    from ispan_cli.engine.config import build_config

    config = tmp_path / "run.toml"
    config.write_text("lr = 1\nepochs = 3\ninput_size = 64\n")
    cfg = build_config(config, {})
    assert (cfg.lr, cfg.epochs, cfg.input_size) == (1, 3, 64)
