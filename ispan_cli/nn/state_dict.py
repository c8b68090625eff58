"""Comparing a state dict with the one a module expects: the words every strict load reports.

On its own so the backbones (pretrained weights) and the model folders share it without the
backbones importing the model-folder code that builds the model from them.
"""

from __future__ import annotations


def state_dict_problems(expected: dict, state: dict) -> list[str]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected``, described."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"wrong shapes: {wrong[:3]}")
    return problems
