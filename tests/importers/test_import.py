"""`ispan models import` on MMAction2-layout fixtures: the numbers match an independent TSN."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.importers import ImportOptions, import_model
from ispan_cli.importers.labels import label_set
from ispan_cli.nn import load_model, read_config
from ispan_cli.video.sampling import SamplingSpec
from tests.importers.fixtures import (
    mmaction2_state_dict,
    reference_logits,
    save_mmaction2_checkpoint,
    torchvision_tsn,
)

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / "tests" / "video" / "real" / "v_ApplyEyeMakeup_g01_c01.avi"
CLASSES = tuple(f"action-{i}" for i in range(7))


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    net, fc = torchvision_tsn(18, len(CLASSES))
    folder = tmp_path_factory.mktemp("ckpt")
    path = save_mmaction2_checkpoint(folder / "tsn_r18.pth", mmaction2_state_dict(net, fc), CLASSES)
    return net, fc, path


def _ispan(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ispan_cli", *args], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def test_fixture_has_mmaction2_key_names(r18):
    # the names mmaction2's ResNet/ConvModule and TSNHead give, spelled out
    from ispan_cli.importers.run import _read

    state, meta = _read(r18[2])
    for key in (
        "backbone.conv1.conv.weight",
        "backbone.conv1.bn.running_var",
        "backbone.layer1.0.conv2.bn.weight",
        "backbone.layer2.0.downsample.conv.weight",
        "backbone.layer2.0.downsample.bn.num_batches_tracked",
        "cls_head.fc_cls.bias",
    ):
        assert key in state
    assert meta["iter"] == 123456 and meta["dataset_meta"]["classes"] == CLASSES


@pytest.mark.parametrize("arch", ["tsn", "istpan"])
def test_import_predicts_what_the_tsn_predicts(r18, tmp_path, arch):
    net, fc, path = r18
    import_model(ImportOptions(source=str(path), output=tmp_path / arch, arch=arch))
    config, doc = read_config(tmp_path / arch)
    assert config.arch == arch and config.backbone == "resnet18" and config.labels == CLASSES
    assert doc["preprocessing"]["mean"] == pytest.approx([0.485, 0.456, 0.406], abs=1e-6)
    assert doc["preprocessing"]["std"] == pytest.approx([0.229, 0.224, 0.225], abs=1e-6)
    assert doc["source"]["format"] == "mmaction2" and len(doc["source"]["sha256"]) == 64
    assert doc["sampling"] == SamplingSpec(config.num_segments).to_dict()  # the one sampling type
    model = load_model(tmp_path / arch)
    clips = torch.randn(1, 2, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        probs = model(clips).softmax(-1)
    ref = reference_logits(net, fc, clips).softmax(-1)
    tolerance = 1e-5 if arch == "tsn" else 1e-3  # the bound for the new attention
    assert (probs - ref).abs().max().item() < tolerance
    card = (tmp_path / arch / "README.md").read_text()
    assert "ispan has not measured" in card


def test_reduce_payload_never_runs(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create the file when unpickled

    net, fc = torchvision_tsn(18, 3, seed=2)
    path = save_mmaction2_checkpoint(
        tmp_path / "evil.pth", mmaction2_state_dict(net, fc), payload=Payload()
    )
    import_model(ImportOptions(source=str(path), output=tmp_path / "out", labels=_file(tmp_path)))
    assert not marker.exists()
    assert load_model(tmp_path / "out").config.num_classes == 3


def _file(tmp_path: Path, n: int = 3) -> str:
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(n)))
    return str(labels)


def test_legacy_0x_checkpoint_and_flow_channels(tmp_path):
    # 0.x: the pre-zip pickle format, mmcv meta; a flow stream: 2L = 10 input channels
    net, fc = torchvision_tsn(18, 4, in_channels=10, seed=3)
    path = save_mmaction2_checkpoint(
        tmp_path / "flow.pth", mmaction2_state_dict(net, fc), version=0
    )
    import_model(
        ImportOptions(source=str(path), output=tmp_path / "flow", labels=_file(tmp_path, 4))
    )
    config, doc = read_config(tmp_path / "flow")
    assert config.in_channels == 10 and doc["source"]["modality"] == "flow"
    clips = torch.randn(1, 2, 10, 112, 112, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = load_model(tmp_path / "flow")(clips).softmax(-1)
    assert (out - reference_logits(net, fc, clips).softmax(-1)).abs().max() < 1e-5


@pytest.mark.parametrize(
    "depth", [34, *(pytest.param(d, marks=pytest.mark.slow) for d in (50, 101))]
)
def test_depth_is_read_from_the_keys(depth):
    from ispan_cli.importers.layouts import convert

    net, fc = torchvision_tsn(depth, 5)
    converted = convert(mmaction2_state_dict(net, fc), "mmaction2", "fixture")
    assert converted.depth == depth and converted.num_classes == 5
    assert converted.backbone.keys() == net.state_dict().keys()


def test_shipped_label_lists():
    k400, ucf, hmdb = label_set("kinetics400"), label_set("ucf101"), label_set("hmdb51")
    assert (len(k400), len(set(k400))) == (400, 400)
    assert (k400[0], k400[-1]) == ("abseiling", "zumba")
    assert (len(ucf), ucf[0], ucf[-1]) == (101, "ApplyEyeMakeup", "YoYo")
    assert (len(hmdb), hmdb[0], hmdb[-1]) == (51, "brush_hair", "wave")


def test_errors_name_what_to_change(r18, tmp_path):
    _, _, path = r18
    with pytest.raises(ISpanError, match=r"101 names but the checkpoint's classifier has 7 class"):
        import_model(ImportOptions(source=str(path), output=tmp_path / "a", labels="ucf101"))
    assert not (tmp_path / "a").exists()
    odd = tmp_path / "odd.pth"
    torch.save({"state_dict": {"encoder.w": torch.ones(2)}}, odd)
    with pytest.raises(ISpanError, match=r"encoder\.w.*known formats: mmaction2, timm"):
        import_model(ImportOptions(source=str(odd), output=tmp_path / "b"))


@pytest.mark.slow  # a subprocess that imports torch
def test_errors_are_one_line(r18, tmp_path):
    _, _, path = r18
    wrong = _ispan("models", "import", str(path), "-o", str(tmp_path / "a"), "--labels", "ucf101")
    assert wrong.returncode != 0 and wrong.stderr.count("error:") == 1
    assert "101 names" in wrong.stderr and "7 classes" in wrong.stderr
    assert "Traceback" not in wrong.stderr


@pytest.mark.slow  # about a minute: two subprocesses, an ONNX export and its verification
def test_classify_and_export_work_on_an_imported_folder(r18, tmp_path):
    _, _, path = r18
    out = tmp_path / "tsn"
    done = _ispan("models", "import", str(path), "-o", str(out), "--segments", "3",
                  "--output-format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["num_classes"] == len(CLASSES)
    run = _ispan("classify", str(VIDEO), "--model", str(out), "--format", "json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    record = doc[0] if isinstance(doc, list) else doc
    assert record["topk"][0]["label"] in CLASSES, record
    assert sum(t["score"] for t in record["topk"]) == pytest.approx(1.0, abs=1e-3)  # 5 of 7
    onnx = _ispan("export", "--onnx", "--model", str(out), "-o", str(tmp_path / "m.onnx"))
    assert onnx.returncode == 0, onnx.stderr
    assert (tmp_path / "m.onnx").is_file()


def test_timm_safetensors_as_backbone(tmp_path):
    from safetensors.torch import save_file

    from ispan_cli.nn import create_model

    net, fc = torchvision_tsn(18, 1000, seed=5)
    state = {**net.state_dict(), "fc.weight": fc.weight, "fc.bias": fc.bias}
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(weights))
    model = create_model("tsn_resnet18", num_classes=3, pretrained=str(weights))
    for key, value in net.state_dict().items():
        assert torch.equal(model.backbone.net.state_dict()[key], value)
    imported = import_model(ImportOptions(source=str(weights), output=tmp_path / "im"))
    assert (
        imported.num_classes == 1000
        and read_config(tmp_path / "im")[1]["source"]["format"] == "timm"
    )
