"""A --config TOML file with a misspelt key: the error names the setting meant, and lists only
settings a user can write (not the run's own records: origins, command, recipe, lr_find)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ispan_cli.engine.config import build_config
from ispan_cli.errors import UsageError


def test_a_misspelt_config_key_suggests_the_setting(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('dataset = "synthetic"\nbatch = 4\nepoch = 3\nzzz = 1\n')
    with pytest.raises(UsageError) as caught:
        build_config(toml, {})
    message = str(caught.value)
    assert "(did you mean batch -> batch_size, epoch -> epochs?)" in message
    valid = message.split("valid: ")[1].split(", ")
    assert "batch_size" in valid and "data_root" in valid
    assert not {"origins", "command", "recipe", "lr_find"} & set(valid)
