"""Properties of the whole model: attention shape and norms, K-invariance, gradients, zeros."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ispan_cli.errors import ISpanError
from ispan_cli.nn import ModelConfig, PyramidAttention, create_model, interaction_loss


def _tiny(**overrides):
    torch.manual_seed(0)
    return create_model("istpan_tiny", num_classes=7, **overrides)


def _clip(b=2, k=4, size=112, seed=0):
    return torch.randn(b, k, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("temporal", ["stack", "per_frame"])
def test_fused_attention_is_nonnegative_with_unit_rows(temporal):
    model = _tiny(temporal=temporal).eval()
    with torch.no_grad():
        logits, maps = model.forward_with_attention(_clip(k=3))
    b, d, k, h, w = maps.fused.shape
    assert (b, d, k, h, w) == (2, 49, 3, 7, 7)
    assert logits.shape == (2, 7)
    assert maps.fused.min() >= 0
    # stack: one row over all K*H*W positions; per_frame: one row per frame over H*W
    rows = maps.fused.flatten(2) if temporal == "stack" else maps.fused.flatten(3)
    torch.testing.assert_close(rows.norm(dim=-1), torch.ones(rows.shape[:-1]))
    for level in maps.levels:  # each level's own softmax sums to one over the same positions
        sums = level.flatten(2).sum(-1) if temporal == "stack" else level.flatten(3).sum(-1)
        torch.testing.assert_close(sums, torch.ones_like(sums))


def test_stack_mode_is_invariant_to_segment_order():
    model = _tiny().eval()
    x = _clip(k=5)
    perm = torch.tensor([3, 0, 4, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x[:, perm]), rtol=1e-5, atol=1e-5)
        _, maps = model.forward_with_attention(x)
        _, maps_p = model.forward_with_attention(x[:, perm])
    # the attention moves with its segment
    torch.testing.assert_close(maps.fused[:, :, perm], maps_p.fused, rtol=1e-5, atol=1e-6)


def test_segments_see_each_other_in_stack_mode_only():
    # Changing one segment changes the attention on the others in stack mode (spatio-temporal),
    # but not in per_frame mode (purely spatial).
    x = _clip(k=3)
    y = x.clone()
    y[:, 0] = torch.randn_like(y[:, 0])
    for temporal, coupled in [("stack", True), ("per_frame", False)]:
        model = _tiny(temporal=temporal).eval()
        with torch.no_grad():
            a = model.forward_with_attention(x)[1].fused[:, :, 1:]
            b = model.forward_with_attention(y)[1].fused[:, :, 1:]
        assert (not torch.allclose(a, b, atol=1e-7)) == coupled, temporal


@pytest.mark.parametrize("k", [1, 3, 8, 25])
def test_one_set_of_parameters_runs_any_number_of_segments(k):
    model = _tiny().eval()
    with torch.no_grad():
        logits, maps = model.forward_with_attention(_clip(b=1, k=k))
    assert logits.shape == (1, 7)
    assert maps.fused.shape == (1, 49, k, 7, 7)
    assert torch.isfinite(logits).all()


def test_stack_and_per_frame_agree_for_a_single_segment():
    stack = _tiny().eval()
    per_frame = _tiny(temporal="per_frame").eval()
    per_frame.load_state_dict(stack.state_dict())
    x = _clip(k=1)
    with torch.no_grad():
        torch.testing.assert_close(stack(x), per_frame(x))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"temporal": "per_frame"},
        {"fusion": "weighted"},
        {"residual": True},
        {"pyramid": ("layer1", "layer2", "layer3"), "attention_layer": "layer3", "d": 196},
    ],
    ids=["stack", "per_frame", "weighted", "residual", "mid-network"],
)
def test_every_parameter_gets_a_gradient_from_ce_and_aux_losses(overrides):
    model = _tiny(dropout=0.0, **overrides).train()
    x, target = _clip(k=3), torch.tensor([1, 5])
    loss = F.cross_entropy(model(x), target) + model.auxiliary_loss()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_aux_losses_reach_the_attention_parameters():
    model = _tiny().train()
    model(_clip(k=3))
    model.auxiliary_loss().backward()
    for lin in model.attention.scores:
        assert lin.weight.grad.abs().sum() > 0


def test_aux_losses_follow_config_switches_and_weights():
    model = _tiny(beta=0.3, gamma=0.7).train()
    model(_clip(k=2))
    aux = model.auxiliary_losses()
    assert set(aux) == {"interaction", "diversity"}
    expected = 0.3 * aux["interaction"] + 0.7 * aux["diversity"]
    torch.testing.assert_close(model.auxiliary_loss(), expected)

    only_int = _tiny(diversity_loss=False).train()
    only_int(_clip(k=2))
    assert set(only_int.auxiliary_losses()) == {"interaction"}

    tsn = create_model("tsn_tiny", num_classes=7).train()
    tsn(_clip(k=2))
    assert tsn.auxiliary_losses() == {}
    assert tsn.auxiliary_loss().item() == 0.0


def test_aux_losses_are_those_of_the_last_training_pass():
    # per_frame with dropout off: the recorded interaction loss equals the loss recomputed from
    # the maps that forward_with_attention returns for the same pass.
    model = _tiny(temporal="per_frame", dropout=0.0).train()
    x = _clip(k=2)
    _, maps = model.forward_with_attention(x)
    recorded = model.auxiliary_losses()["interaction"]
    a = maps.fused.transpose(1, 2).flatten(0, 1).flatten(2)  # (B*K, d, H*W)
    frames = x.flatten(0, 1)
    feats = model.backbone.run(frames)[-1]  # train-mode BN: same batch statistics as the pass
    xi = feats.flatten(2).transpose(1, 2)  # (B*K, H*W, C)
    torch.testing.assert_close(recorded, interaction_loss(a, xi), rtol=1e-5, atol=1e-6)
    model.eval()
    with torch.no_grad():
        model(x)
    assert model.auxiliary_losses()  # an eval pass leaves the last training pass's record


def test_eval_passes_record_no_losses():
    model = _tiny().eval()
    model(_clip(k=2))
    assert model.auxiliary_losses() == {}


def test_residual_adds_the_segment_mean_of_the_attention_layer_input():
    plain = _tiny().eval()
    residual = _tiny(residual=True).eval()
    residual.load_state_dict(plain.state_dict())
    x = _clip(k=3)
    with torch.no_grad():
        delta = residual(x) - plain(x)
        f_i = plain.backbone.run(x.flatten(0, 1))[-1]  # (B*K, C, 7, 7)
        pooled = f_i.view(2, 3, *f_i.shape[1:]).mean(dim=(1, 3, 4))  # mean over K, H, W
        expected = pooled @ plain.fc.weight.T  # fc is linear: the bias cancels
    torch.testing.assert_close(delta, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sharpness", [0.0, 1.0, 30.0])
def test_output_norm_pools_with_weights_that_sum_to_one(sharpness):
    # every position of f_i holds the same vector v: a weighted mean of the positions is v
    # whatever the attention, while the paper's M = A X scales with how flat A's rows are
    torch.manual_seed(0)
    v = torch.randn(6)
    feats = [torch.randn(8, 4, 4, 4), v.view(1, 6, 1, 1).expand(8, 6, 2, 2).contiguous()]
    normed, paper = PyramidAttention([4, 6], d=3, output_norm=True), PyramidAttention([4, 6], d=3)
    paper.load_state_dict(normed.state_dict())
    with torch.no_grad():
        for layer in (normed, paper):
            layer.scores[0].weight.mul_(sharpness * 100)
        got, ref = normed(feats, segments=4), paper(feats, segments=4)
    torch.testing.assert_close(got.M.mean(1), v.expand(2, 6))
    flat = 16**0.5  # an L2-normalised row over P = 16 positions sums to sqrt(P) when flat
    row_sums = ref.A.sum(-1).mean(1, keepdim=True)  # (N, 1)
    torch.testing.assert_close(ref.M.mean(1), row_sums * v)
    if sharpness == 0.0:
        torch.testing.assert_close(row_sums, torch.full((2, 1), flat))
    else:
        assert (row_sums < 0.9 * flat).all(), row_sums


def test_model_folders_without_output_norm_load_as_trained():
    cfg = ModelConfig(backbone="tiny", input_size=112)
    assert cfg.output_norm is True  # new models
    data = cfg.to_dict()
    assert ModelConfig.from_dict(data).output_norm is True
    del data["output_norm"]  # a config.json written before the field existed
    assert ModelConfig.from_dict(data).output_norm is False


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_all_zero_input_gives_no_nan(mode):
    model = _tiny().train(mode == "train")
    x = torch.zeros(2, 4, 3, 112, 112, requires_grad=True)
    logits, maps = model.forward_with_attention(x)
    assert torch.isfinite(logits).all()
    assert torch.isfinite(maps.fused).all()
    if mode == "train":
        loss = F.cross_entropy(logits, torch.tensor([0, 1])) + model.auxiliary_loss()
        assert torch.isfinite(loss)
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"fusion": "mean"},
        {"fusion": "max"},
        {"resample": "max"},
        {"resample": "bilinear"},
        {"pyramid": ("layer4",)},
    ],
)
def test_config_variants_run(overrides):
    model = _tiny(**overrides).eval()
    with torch.no_grad():
        assert torch.isfinite(model(_clip(k=2))).all()


def test_config_json_round_trip_and_clear_errors():
    cfg = ModelConfig(backbone="resnet18", labels=tuple(f"c{i}" for i in range(101)))
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg and isinstance(again.pyramid, tuple)
    with pytest.raises(ISpanError, match="valid fields: arch, backbone"):
        ModelConfig.from_dict({**cfg.to_dict(), "colour": "red"})
    with pytest.raises(ISpanError, match="choose one of: sum, mean, max, weighted"):
        ModelConfig(fusion="product")
    with pytest.raises(ISpanError, match="3 labels for num_classes=101"):
        ModelConfig(labels=("a", "b", "c"))
    with pytest.raises(ISpanError, match="set d=196"):
        ModelConfig(pyramid=("layer2", "layer3"), attention_layer="layer3")
    with pytest.raises(ISpanError, match=r"last \(deepest\) pyramid layer"):
        ModelConfig(attention_layer="layer3")
    with pytest.raises(ISpanError, match="should be int"):
        ModelConfig(d="49")


def test_wrong_input_layout_is_a_clear_error():
    with pytest.raises(ISpanError, match=r"expected input \(B, K, 3, H, W\)"):
        _tiny()(torch.zeros(2, 3, 112, 112))
