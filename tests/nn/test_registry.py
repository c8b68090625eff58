"""Every registered variant: shape, backward, save -> load identity; registry errors; overhead."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ispan_cli.errors import ISpanError
from ispan_cli.nn import count_parameters, create_model, list_models, load_model, save_model


def test_registry_has_the_required_variants():
    required = {
        "istpan_resnet18",
        "istpan_resnet50",
        "istpan_resnet101",
        "istpan_inception",
        "tsn_resnet50",
        "istpan_tiny",
    }
    assert required <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_variant_shape_backward_and_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5)
    # small frames keep the big backbones fast; parameters do not depend on the input size
    size = 112 if "tiny" in name else 64
    x = torch.randn(2, 2, 3, size, size)
    model.train()
    logits = model(x)
    assert logits.shape == (2, 5)
    (F.cross_entropy(logits, torch.tensor([0, 4])) + model.auxiliary_loss()).backward()
    assert all(p.grad is not None for p in model.parameters())

    model.eval()
    save_model(model, tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert loaded.config == model.config
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_unknown_names_and_overrides_list_the_valid_choices():
    with pytest.raises(ISpanError, match="choose one of: istpan_inception, istpan_resnet101"):
        create_model("istpan_resnet51")
    with pytest.raises(ISpanError, match=r"unknown model option\(s\) \['segmentz'\]; valid: arch"):
        create_model("istpan_tiny", segmentz=8)


def test_labels_set_the_number_of_classes():
    model = create_model("istpan_tiny", labels=("walk", "run", "jump"))
    assert model.config.num_classes == 3
    assert model.fc.out_features == 3


def test_istpan_adds_less_than_one_percent_parameters_to_tsn():
    with torch.device("meta"):
        istpan = count_parameters(create_model("istpan_resnet50", num_classes=101))
        tsn = count_parameters(create_model("tsn_resnet50", num_classes=101))
    # per level d*C_j + d: 49 * (512 + 1024 + 2048) + 3 * 49
    assert istpan - tsn == 49 * (512 + 1024 + 2048) + 3 * 49
    assert (istpan - tsn) / tsn < 0.01


def test_tiny_forward_is_fast_on_cpu():
    import time

    model = create_model("istpan_tiny", num_classes=10).eval()
    x = torch.randn(1, 8, 3, 112, 112)
    with torch.no_grad():
        model(x)  # warm-up
        start = time.perf_counter()
        for _ in range(5):
            model(x)
    assert (time.perf_counter() - start) / 5 < 0.25  # tens of ms on 2 cores; generous for CI noise
