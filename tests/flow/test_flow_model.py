"""The flow stream's model: every registered variant has one, cross-modality pre-training of its
first convolution, and the FlowSpec that travels with the weights (config.json and ONNX)."""

from __future__ import annotations

import json

import pytest
import torch

from ispan_cli.errors import ISpanError
from ispan_cli.nn import create_model, list_models, save_model
from ispan_cli.nn.flow import FIRST_CONV, FLOW_DROPOUT, cross_modality
from ispan_cli.video.flow_spec import QUANTISATION, FlowSpec, check_flow_fits


def _first_conv(model) -> torch.Tensor:
    return model.backbone.net.state_dict()[FIRST_CONV[model.config.backbone]]


FAST = ("istpan_tiny", "tsn_tiny")


@pytest.mark.parametrize(
    "name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in list_models()]
)
def test_every_variant_has_a_flow_stream_with_the_rgb_attention(name):
    torch.manual_seed(0)
    rgb = create_model(name, num_classes=4)
    flow = create_model(name, num_classes=4, modality="flow", flow_length=3)
    assert flow.config.in_channels == 6 and flow.config.dropout == FLOW_DROPOUT
    w = _first_conv(flow)
    assert w.shape[1] == 6 and w.shape[0] == _first_conv(rgb).shape[0]
    # everything but the first convolution has the RGB model's shapes: attention unchanged
    key = "backbone.net." + FIRST_CONV[rgb.config.backbone]
    shapes = {k: v.shape for k, v in rgb.state_dict().items() if k != key}
    assert shapes == {k: v.shape for k, v in flow.state_dict().items() if k != key}


def test_tiny_flow_model_runs_on_2l_channels():
    model = create_model("istpan_tiny", num_classes=3, modality="flow").eval()
    logits = model(torch.randn(2, 3, 10, 112, 112))
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    with pytest.raises(ISpanError, match=r"expected input \(B, K, 10, H, W\)"):
        model(torch.randn(2, 3, 3, 112, 112))


def test_an_explicit_dropout_wins_over_the_flow_default():
    model = create_model("tsn_tiny", num_classes=3, modality="flow", dropout=0.3)
    assert model.config.dropout == 0.3
    with pytest.raises(ISpanError, match="unknown modality 'depth'"):
        create_model("tsn_tiny", modality="depth")


@pytest.mark.parametrize(
    "name",
    ["istpan_tiny"]  # torchvision backbones: slow (seconds each to build)
    + [pytest.param(n, marks=pytest.mark.slow) for n in ("istpan_resnet18", "istpan_inception")],
)
def test_cross_modality_init_is_the_rgb_mean_replicated(tmp_path, name):
    torch.manual_seed(1)
    rgb = create_model(name, num_classes=4)
    path = tmp_path / "rgb.pt"
    torch.save(rgb.backbone.net.state_dict(), path)
    flow = create_model(name, num_classes=4, pretrained=str(path), modality="flow")
    w_rgb, w_flow = _first_conv(rgb), _first_conv(flow)
    # by hand: channel c of output o is (w[o,0] + w[o,1] + w[o,2]) / 3 for every c of the 10
    o, _, kh, kw = w_rgb.shape
    for out in (0, o // 2, o - 1):
        for c in range(10):
            for i in range(kh):
                for j in range(kw):
                    expected = (w_rgb[out, 0, i, j] + w_rgb[out, 1, i, j] + w_rgb[out, 2, i, j]) / 3
                    assert abs(float(w_flow[out, c, i, j]) - float(expected)) < 1e-6
    # every other tensor of the backbone is the RGB one as loaded
    key = FIRST_CONV[rgb.config.backbone]
    rgb_state, flow_state = rgb.backbone.net.state_dict(), flow.backbone.net.state_dict()
    assert all(torch.equal(v, flow_state[k]) for k, v in rgb_state.items() if k != key)


def test_cross_modality_refuses_weights_that_are_not_rgb():
    with pytest.raises(ISpanError, match="RGB convolution weights"):
        cross_modality(torch.zeros(8, 4, 3, 3), 10)


def test_flow_spec_round_trip_and_refusals():
    spec = FlowSpec("dis", 15.0, "uv", 128, False, (("preset", "medium"),), 4, 127.5, 100.0)
    doc = json.loads(json.dumps(spec.to_dict()))
    assert FlowSpec.from_dict(doc) == spec and doc["quantisation"] == QUANTISATION
    # a flow.json of the first version (no length/mean/std): TSN's
    old = {k: v for k, v in doc.items() if k not in ("length", "mean", "std")}
    assert FlowSpec.from_dict(old).length == 5 and FlowSpec.from_dict(old).std == 128.0
    for bad, match in [
        ({**doc, "quantisation": "q = v"}, "not ispan's"),
        ({**doc, "method": "farneback"}, "not one ispan knows"),
        ({**doc, "length": 0}, "length L must be"),
        ({**doc, "bound": -1}, "bound must be a positive"),
        ([1], "must be an object"),
    ]:
        with pytest.raises(ISpanError, match=match):
            FlowSpec.from_dict(bad)


def test_flow_made_another_way_is_refused_in_one_line():
    model = FlowSpec("tvl1", 20.0, short_side=256)
    check_flow_fits(model, FlowSpec("tvl1", 20.0, "uv", None, True), "v.mp4")  # layout: fine
    with pytest.raises(ISpanError) as err:
        check_flow_fits(model, FlowSpec("dis", 15.0, short_side=128), "v.mp4")
    message = str(err.value)
    assert "\n" not in message
    for part in ("method dis", "bound 15", "short side 128", "--method tvl1 --bound 20"):
        assert part in message


def _flow_folder(tmp_path, spec: FlowSpec, channels: int | None = None):
    from ispan_cli.video.preprocess import PreprocessSpec

    model = create_model("tsn_tiny", num_classes=3, modality="flow", flow_length=spec.length)
    if channels is not None:
        model = create_model("tsn_tiny", num_classes=3, in_channels=channels)
    extra = {"flow": spec.to_dict(), "preprocessing": PreprocessSpec(128, 112).to_dict()}
    return model, save_model(model.eval(), tmp_path / "flow_model", extra=extra)


@pytest.mark.slow  # an ONNX export: ~10 s on a loaded CPU
def test_the_spec_travels_in_config_json_and_the_onnx_metadata(tmp_path):
    pytest.importorskip("onnxruntime")
    from ispan_cli.export.graph import DEFAULT_OPSET, export_onnx, output_names
    from ispan_cli.runtime.loading import load_model
    from ispan_cli.runtime.onnx_format import OnnxModelInfo

    spec = FlowSpec("dis", 20.0, length=2, short_side=128)
    _, folder = _flow_folder(tmp_path, spec)
    loaded = load_model(str(folder), device="cpu")
    assert loaded.flow == spec and loaded.in_channels == 4
    info = OnnxModelInfo(
        config=loaded.document,
        identity=loaded.identity,
        outputs=output_names(loaded.model, False),
        precision="fp32",
        sampling=loaded.sampling.to_dict(),
        opset=DEFAULT_OPSET,
    )
    export_onnx(loaded.model, tmp_path / "flow.onnx", info)
    onnx_loaded = load_model(str(tmp_path / "flow.onnx"), runtime="onnx", device="cpu")
    assert onnx_loaded.flow == spec
    clips = torch.randn(1, 3, 4, 112, 112)
    with torch.no_grad():
        expected = loaded.model(clips).numpy()
    got = onnx_loaded.session.logits(clips.numpy())
    assert abs(got - expected).max() < 1e-4


def test_an_rgb_model_has_no_flow_and_an_inconsistent_section_is_one_error(tmp_path):
    from ispan_cli.runtime.loading import load_model

    rgb = save_model(create_model("tsn_tiny", num_classes=3), tmp_path / "rgb")
    assert load_model(str(rgb), device="cpu").flow is None
    _, folder = _flow_folder(tmp_path, FlowSpec(length=5), channels=6)
    with pytest.raises(ISpanError, match=r"L=5 \(2L = 10 channels\) but the model takes 6"):
        load_model(str(folder), device="cpu")


def test_an_imported_mmaction2_flow_model_gets_tsn_flow_spec(tmp_path):
    from ispan_cli.importers import ImportOptions, import_model
    from ispan_cli.runtime.loading import load_model
    from tests.importers.fixtures import (
        mmaction2_state_dict,
        save_mmaction2_checkpoint,
        torchvision_tsn,
    )

    net, fc = torchvision_tsn(18, 4, in_channels=10, seed=3)
    # version=0: the legacy pickle format, as tests/importers reads flow checkpoints
    path = save_mmaction2_checkpoint(
        tmp_path / "flow.pth", mmaction2_state_dict(net, fc), version=0
    )
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(4)))
    out = tmp_path / "imported"
    import_model(ImportOptions(source=str(path), output=out, labels=str(labels)))
    loaded = load_model(str(out), device="cpu")
    assert loaded.flow == FlowSpec("tvl1", 20.0, length=5, mean=128.0, std=128.0)
    assert loaded.preprocessing.crop == loaded.config.input_size


def test_train_settings_for_the_flow_stream():
    from ispan_cli.engine.config import MODALITIES, build_config
    from ispan_cli.errors import UsageError
    from ispan_cli.nn import flow

    assert MODALITIES == flow.MODALITIES  # the torch-free copy the CLI lists
    # fine-tuning a flow stream from ImageNet: TSN's flow dropout 0.7, unless given
    cfg = build_config(None, {"modality": "flow", "flow_root": "f", "pretrained": "imagenet"})
    assert cfg.dropout == FLOW_DROPOUT and "flow stream" in cfg.origins["dropout"]
    given = build_config(None, {"modality": "flow", "flow_root": "f", "dropout": 0.5})
    assert given.dropout == 0.5
    assert build_config(None, {"pretrained": "imagenet"}).dropout == 0.8  # RGB unchanged
    with pytest.raises(UsageError, match="--modality flow needs --flow-root"):
        build_config(None, {"modality": "flow"})


@pytest.mark.slow  # an ONNX export and its verification
def test_ispan_export_verifies_a_flow_model_on_its_own_flow(tmp_path):
    pytest.importorskip("onnxruntime")
    from ispan_cli.export.run import ExportOptions, run_export
    from ispan_cli.runtime.loading import load_model

    spec = FlowSpec("dis", 20.0, length=2)
    _, folder = _flow_folder(tmp_path, spec)
    result = run_export(ExportOptions(model=str(folder), output=tmp_path / "flow.onnx"))
    assert result.verify.passed and len(result.verify.frame_indices) == 8  # K stacks
    assert load_model(str(tmp_path / "flow.onnx"), runtime="onnx", device="cpu").flow == spec


def test_a_flow_stream_starts_from_a_trained_rgb_model_by_cross_modality(tmp_path):
    from ispan_cli.engine.init_from import init_from

    torch.manual_seed(3)
    rgb = create_model("istpan_tiny", labels=("a", "b", "c"))
    folder = save_model(rgb.eval(), tmp_path / "rgb")
    flow = create_model("istpan_tiny", labels=("a", "b", "c"), modality="flow")
    report = init_from(flow, str(folder), ("a", "b", "c"))
    key = "backbone.net." + FIRST_CONV["tiny"]
    assert key in report.loaded and not report.initialised
    w = rgb.state_dict()[key]
    assert torch.allclose(flow.state_dict()[key], w.mean(1, keepdim=True).repeat(1, 10, 1, 1))
    assert torch.equal(flow.state_dict()["fc.weight"], rgb.state_dict()["fc.weight"])
