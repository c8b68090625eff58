"""The two Hub routes of issue 14 against a real Hub server (olah on 127.0.0.1, tests/hub):
``ispan models import hub:org/name`` (safetensors only: a repo holding only a pickle is refused
and the pickle never downloaded) and ``train --pretrained hub:org/name`` (a timm-layout ResNet as
the ImageNet backbone), from the command line and from a ``--config`` TOML."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ispan_cli.nn import load_model
from tests.hub.upload_server import git
from tests.importers.fixtures import (
    mmaction2_state_dict,
    reference_logits,
    save_mmaction2_checkpoint,
    torchvision_tsn,
)

ROOT = Path(__file__).resolve().parents[2]
ORG = "acme"


def _repo(server, name: str, files: dict[str, Path]) -> str:
    """A model repo ``acme/<name>`` holding ``files`` (repo path -> local file); its commit."""
    repo = server.mirrors / "models" / ORG / name
    if not repo.exists():
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        for path, source in files.items():
            (repo / path).write_bytes(source.read_bytes())
        (repo / "README.md").write_text(f"---\nlicense: mit\n---\n# {name}\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", name)
    return git(repo, "rev-parse", "HEAD")


def _ispan(server, home: Path, *args: str) -> subprocess.CompletedProcess:
    env = server.clean_env(home, OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )  # fmt: skip


@pytest.mark.slow  # two subprocesses (the Hub client reads HF_ENDPOINT at import)
def test_import_from_a_hub_repo_and_no_pickle_from_the_hub(hub_server, tmp_path):
    # an MMAction2 TSN published as safetensors, in MMAction2's key names
    net, fc = torchvision_tsn(18, 4, seed=7)
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in mmaction2_state_dict(net, fc).items()}, str(weights))
    commit = _repo(hub_server, "tsn-r18-safetensors", {"model.safetensors": weights})
    labels = tmp_path / "labels.txt"
    labels.write_text("wave\nclap\njump\nrun\n")
    home, out = tmp_path / "home", tmp_path / "imported"
    done = _ispan(hub_server, home, "models", "import", f"hub:{ORG}/tsn-r18-safetensors",
                  "-o", str(out), "--labels", str(labels), "--output-format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    source = json.loads(done.stdout)["source"]
    assert (source["hub"], source["revision"], source["format"]) == (
        f"{ORG}/tsn-r18-safetensors", commit, "mmaction2",
    )  # fmt: skip
    model = load_model(out).eval()
    assert model.config.labels == ("wave", "clap", "jump", "run")
    clips = torch.randn(1, 2, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        probs = model(clips).softmax(-1)
    assert (probs - reference_logits(net, fc, clips).softmax(-1)).abs().max() < 1e-5

    # the same checkpoint as a .pth only: refused, and the pickle is never fetched
    pth = save_mmaction2_checkpoint(tmp_path / "tsn.pth", mmaction2_state_dict(net, fc))
    _repo(hub_server, "tsn-r18-pickle", {"tsn_r18.pth": pth})
    refused = _ispan(hub_server, home, "models", "import", f"hub:{ORG}/tsn-r18-pickle",
                     "-o", str(tmp_path / "no"))  # fmt: skip
    assert refused.returncode != 0 and refused.stderr.count("error:") == 1, refused.stderr
    assert "no model.safetensors" in refused.stderr and "pickle" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "no").exists()
    assert not list(home.rglob("*.pth"))  # nothing of the pickle reached the Hub cache


def _timm_repo(server, tmp_path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """A timm ResNet-18 repo (torchvision key names, fc of 1000 classes), random weights."""
    net, fc = torchvision_tsn(18, 1000, seed=9)
    state = {**net.state_dict(), "fc.weight": fc.weight, "fc.bias": fc.bias}
    weights = tmp_path / "timm.safetensors"
    save_file({k: v.detach().contiguous() for k, v in state.items()}, str(weights))
    _repo(server, "resnet18.random_in1k", {"model.safetensors": weights})
    return f"hub:{ORG}/resnet18.random_in1k", load_file(str(weights))


TRAIN = ["train", "--dataset", "synthetic", "--arch", "tsn_resnet18", "--segments", "2",
         "--input-size", "64", "--batch-size", "4", "--synthetic-train", "4",
         "--synthetic-val", "4", "--epochs", "1", "--workers", "0", "--device", "cpu",
         "--freeze-backbone", "all", "--quiet"]  # fmt: skip


def _backbone_is(run: Path, expected: dict[str, torch.Tensor]) -> None:
    # --freeze-backbone all holds weights and BN statistics still: the saved backbone is the
    # Hub file's, tensor for tensor
    state = load_file(str(run / "best" / "model.safetensors"))
    backbone = {k.removeprefix("backbone.net."): v for k, v in state.items()
                if k.startswith("backbone.net.")}  # fmt: skip
    assert backbone.keys() == {k for k in expected if not k.startswith("fc.")}
    for key, value in backbone.items():
        assert torch.equal(value, expected[key]), key


@pytest.mark.slow  # a ResNet-18 training run in a subprocess
def test_train_pretrained_from_a_hub_repo(hub_server, tmp_path):
    spec, expected = _timm_repo(hub_server, tmp_path)
    run = tmp_path / "run"
    done = _ispan(hub_server, tmp_path / "home", *TRAIN, "--pretrained", spec, "--output", str(run))
    assert done.returncode == 0, done.stderr
    _backbone_is(run, expected)


@pytest.mark.slow  # a ResNet-18 training run in a subprocess
def test_train_pretrained_hub_in_a_config_file(hub_server, tmp_path):
    spec, expected = _timm_repo(hub_server, tmp_path)
    config = tmp_path / "train.toml"
    config.write_text(f'pretrained = "{spec}"\n')
    run = tmp_path / "run"
    done = _ispan(hub_server, tmp_path / "home", *TRAIN, "--config", str(config),
                  "--output", str(run))  # fmt: skip
    assert done.returncode == 0, done.stderr
    _backbone_is(run, expected)
