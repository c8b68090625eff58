"""Model specs that need no server: folders, zoo names, and what is not a model at all."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.hub import parse_hub_spec, resolve_model
from ispan_cli.model_folder import sha256_file
from ispan_cli.nn import create_model, save_model


@pytest.fixture
def zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("ISPAN_MODELS_DIR", str(tmp_path / "zoo"))
    torch.manual_seed(0)
    save_model(create_model("istpan_tiny", labels=("a", "b")), tmp_path / "zoo" / "demo")
    return tmp_path / "zoo"


def test_a_zoo_name_resolves_to_its_folder(zoo):
    got = resolve_model("demo")
    assert (got.source, got.model_id, got.path, got.revision) == ("zoo", "demo", zoo / "demo", None)
    assert got.sha256 == sha256_file(zoo / "demo" / "model.safetensors")
    assert got.display == "demo"


def test_a_folder_path_resolves_to_itself(zoo, monkeypatch):
    got = resolve_model(str(zoo / "demo"))
    assert (got.source, got.path, got.model_id) == ("folder", zoo / "demo", str(zoo / "demo"))
    # an existing relative folder that also looks like org/name is a folder, not a Hub repo
    monkeypatch.chdir(zoo.parent)
    assert resolve_model("zoo/demo").source == "folder"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_model", r"no model 'no_such_model': not a folder, not in the zoo .*org/name"),
        ("./missing", r"model folder ./missing does not exist"),
        ("a/b/c", r"no model 'a/b/c'"),
    ],
)
def test_what_is_not_a_model_says_so(zoo, spec, message):
    with pytest.raises(ISpanError, match=message):
        resolve_model(spec)


def test_local_pickle_weights_are_refused(zoo):
    folder = zoo / "demo"
    (folder / "model.safetensors").rename(folder / "weights.pt")
    with pytest.raises(
        ISpanError, match=r"has no model.safetensors; it has weights.pt, but pickle"
    ):
        resolve_model("demo")


def test_a_folder_of_another_library_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "videomae"}')
    with pytest.raises(ISpanError, match=r'is not an ispan model: its config\.json lacks "format"'):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("acme/tiny", ("acme/tiny", None)),
        ("acme/tiny@v1.0", ("acme/tiny", "v1.0")),
        ("acme/tiny@refs/pr/1", ("acme/tiny", "refs/pr/1")),
        ("Org-1/model_name.v2@" + "ab" * 20, ("Org-1/model_name.v2", "ab" * 20)),
        ("tiny", None),
        ("a/b/c", None),
        ("acme/tiny@", None),
        ("acme/tiny@a@b", None),
        ("-acme/tiny", None),
        ("acme/..", None),
    ],
)
def test_hub_spec_syntax(spec, parsed):
    assert parse_hub_spec(spec) == parsed


def test_importing_hub_imports_neither_torch_nor_huggingface_hub():
    code = (
        "import sys, ispan_cli.hub; "
        "print(sorted(m for m in ('torch', 'huggingface_hub', 'safetensors') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
