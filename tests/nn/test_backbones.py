"""Backbones: stage outputs equal torchvision's own modules; pretrained weights from a path."""

from __future__ import annotations

import urllib.request

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from ispan_cli.errors import ISpanError
from ispan_cli.nn.backbones import Backbone
from ispan_cli.nn.specs import BACKBONES


@pytest.mark.parametrize("name", list(BACKBONES))
def test_stage_channels_and_strides_match_the_spec(name):
    with torch.device("meta"):
        outs = Backbone(name).run(torch.empty(1, 3, 224, 224))
    spec = BACKBONES[name]
    assert [o.shape[1] for o in outs] == list(spec.channels)
    assert [224 // o.shape[-1] for o in outs] == list(spec.strides)


@pytest.mark.parametrize(
    ("name", "last_module", "kwargs"),
    [
        ("resnet18", "layer4", {}),
        (
            "googlenet",
            "inception5b",
            {"aux_logits": False, "transform_input": True, "init_weights": True},
        ),
    ],
)
def test_stages_reproduce_torchvision_features(name, last_module, kwargs):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None, **kwargs).eval()
    ours = Backbone(name).eval()
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith("fc.")}
    ours.net.load_state_dict(state)
    captured = {}
    getattr(reference, last_module).register_forward_hook(
        lambda m, i, o: captured.__setitem__("out", o)
    )
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        reference(x)
        torch.testing.assert_close(ours.run(x)[-1], captured["out"])


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_pretrained_path_loads_a_torchvision_state_dict(tmp_path, suffix):
    torch.manual_seed(1)
    state = torchvision.models.resnet18(weights=None).state_dict()  # includes fc.*: ignored
    path = tmp_path / f"r18{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": state}, path)  # a common checkpoint wrapper
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    backbone = Backbone("resnet18", pretrained=path)
    loaded = backbone.net.state_dict()
    for key, value in loaded.items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)


def test_pretrained_path_for_the_wrong_backbone_is_refused(tmp_path):
    path = tmp_path / "r34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    with pytest.raises(ISpanError, match="does not fit backbone resnet18: unexpected"):
        Backbone("resnet18", pretrained=path)
    with pytest.raises(ISpanError, match="not found; pass imagenet, none, or a path"):
        Backbone("resnet18", pretrained=tmp_path / "missing.pth")


def test_imagenet_download_failure_says_what_to_do(tmp_path, monkeypatch):
    # Route downloads to a closed loopback port: fails at once, sends nothing off the machine.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    try:
        with pytest.raises(
            ISpanError,
            match=r"could not download https://\S+resnet18\S+ .*; pass "
            r"--pretrained PATH to a local state dict",
        ):
            Backbone("resnet18", pretrained="imagenet")
    finally:  # torch.hub's urlopen kept an opener built with this dead proxy for the process
        urllib.request.install_opener(None)
    with pytest.raises(ISpanError, match="tiny has no ImageNet weights"):
        Backbone("tiny", pretrained="imagenet")
