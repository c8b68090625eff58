"""`--model runs/nope` where runs/ is a folder here: a Hub failure also says the folder is not.

`org/name` is a Hub repo unless a folder of that path exists, so a mistyped run folder used to
fail with only the Hub's error (a network one, offline), which does not say what went wrong.
"""

from __future__ import annotations

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.hub import resolve_model

DEAD = "http://127.0.0.1:9"  # nothing listens: the real client's connection is refused


def _error(spec: str, tmp_path) -> str:
    with pytest.raises(ISpanError) as info:
        resolve_model(spec, cache_dir=tmp_path / "cache", endpoint=DEAD, token=False, timeout=5)
    return str(info.value)


def test_a_missing_folder_under_a_local_folder_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("ucf-s1", "hmdb-s1"):
        (tmp_path / "runs" / name / "best").mkdir(parents=True)
    message = _error("runs/nope", tmp_path)
    assert message.startswith("cannot reach the Hub at " + DEAD)  # the Hub's own reason first
    assert message.endswith("(and there is no folder runs/nope here: runs/ holds hmdb-s1, ucf-s1)")


def test_a_hub_repo_with_no_folder_of_its_org_here_keeps_the_hubs_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = _error("someorg/model", tmp_path)
    assert message.startswith("cannot reach the Hub at " + DEAD) and "no folder" not in message
