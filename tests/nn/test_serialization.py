"""Model folders: strict keys, refusal of pickles, clear errors for broken folders."""

from __future__ import annotations

import json
import os
import pickle
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

from ispan_cli.errors import ISpanError
from ispan_cli.nn import create_model, load_model, read_config, save_model
from ispan_cli.nn.backbones import read_state_dict


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    model = create_model("istpan_tiny", labels=("a", "b", "c")).eval()
    save_model(model, tmp_path / "m", extra={"preprocessing": {"crop_size": 112}})
    return tmp_path / "m"


def test_folder_layout_and_config_document(folder):
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "model.safetensors"):  # not the 0600 of a temporary file
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~umask
    doc = json.loads((folder / "config.json").read_text())
    assert doc["format"] == "ispan" and doc["format_version"] == 1
    assert doc["model"]["labels"] == ["a", "b", "c"]
    assert doc["preprocessing"] == {"crop_size": 112}  # extra sections are kept
    config, whole = read_config(folder)
    assert config.labels == ("a", "b", "c") and whole == doc


def _rewrite_weights(folder, edit):
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))


def test_missing_key_is_refused(folder):
    _rewrite_weights(folder, lambda s: s.pop("fc.bias"))
    with pytest.raises(ISpanError, match=r"missing 1 key\(s\) e.g. \['fc.bias'\]"):
        load_model(folder)


def test_unexpected_key_is_refused(folder):
    _rewrite_weights(folder, lambda s: s.update(extra=torch.zeros(1)))
    with pytest.raises(ISpanError, match=r"unexpected 1 key\(s\) e.g. \['extra'\]"):
        load_model(folder)


def test_config_and_weights_must_agree(folder):
    doc = json.loads((folder / "config.json").read_text())
    doc["model"]["num_classes"], doc["model"]["labels"] = 4, []
    (folder / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ISpanError, match=r"wrong shapes: \['fc.bias \(3,\) != \(4,\)'"):
        load_model(folder)


class _Exploit:
    """Unpickling this creates a marker file: proof that pickled code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_weights_are_refused_and_never_executed(folder, tmp_path):
    marker = tmp_path / "pwned"
    (folder / "model.safetensors").unlink()
    with open(folder / "pytorch_model.bin", "wb") as fh:
        pickle.dump(_Exploit(marker), fh)
    with pytest.raises(ISpanError, match="pickle weights are refused"):
        load_model(folder)
    assert not marker.exists()
    # a local backbone state dict goes through weights_only=True: refused, not run
    with pytest.raises(ISpanError, match="could not read"):
        read_state_dict(folder / "pytorch_model.bin")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"model": {}}', "is not an ispan config"),
        ('{"format": "ispan", "format_version": 99, "model": {}}', "upgrade ispan"),
    ],
)
def test_broken_config_is_a_clear_error(folder, content, message):
    (folder / "config.json").write_text(content)
    with pytest.raises(ISpanError, match=message):
        load_model(folder)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ISpanError, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ISpanError, match=r"has no config\.json"):
        load_model(tmp_path)


def test_truncated_weights_are_a_clear_error(folder):
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ISpanError, match="not a readable safetensors file"):
        load_model(folder)


def test_save_is_atomic_when_writing_fails(folder, monkeypatch):
    before = (folder / "model.safetensors").read_bytes()
    model = create_model("istpan_tiny", labels=("a", "b", "c"))

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", explode)
    with pytest.raises(OSError):
        save_model(model, folder)
    assert (folder / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def test_the_header_check_builds_shapes_only(folder):
    """The meta-device skeleton must not run torch.nn.init's fills: their meta kernels import
    torch._dynamo (2.4 s of CPU in every process that loads a model). A fresh interpreter,
    since another test may have imported it already."""
    import subprocess
    import sys

    code = (
        "import sys, torch\n"
        "from ispan_cli.nn import read_config\n"
        "from ispan_cli.nn.serialization import check_against_header\n"
        f"config, _ = read_config({str(folder)!r})\n"
        f"check_against_header(config, __import__('pathlib').Path({str(folder)!r}) "
        "/ 'model.safetensors')\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
