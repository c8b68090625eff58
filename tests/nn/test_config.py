"""ModelConfig's own checks, beyond what the registry tests reach."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.nn.config import ModelConfig


def test_a_field_of_a_type_the_check_does_not_know_is_a_clear_error():
    # a developer adds a field with a new type and forgets the check: one line that says where
    @dataclass(frozen=True)
    class Extended(ModelConfig):
        crop_boxes: dict = field(default_factory=dict)

    with pytest.raises(ISpanError, match=r"crop_boxes has type dict.*_TYPE_CHECKS"):
        Extended()


def test_a_value_of_the_wrong_type_names_the_field():
    with pytest.raises(ISpanError, match=r"config field d should be int, got 'many'"):
        ModelConfig(d="many")  # type: ignore[arg-type]
