"""--init-from: weights by name and shape from a real model folder (through the same loader as
--model), the classifier kept, remapped by label name or initialised afresh, each reported;
--freeze-backbone holds the chosen stages still through a real training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ispan_cli.engine.init_from import freeze, frozen_modules, init_from
from ispan_cli.errors import UsageError
from ispan_cli.nn import create_model, save_model

LABELS = ("apple", "banana", "cherry")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    model = create_model("istpan_tiny", labels=LABELS)
    folder = tmp_path_factory.mktemp("source") / "model"
    save_model(model, folder)
    return folder, {k: v.clone() for k, v in model.state_dict().items()}


def _fresh(arch: str, labels: tuple[str, ...]) -> tuple[torch.nn.Module, dict]:
    torch.manual_seed(2)
    model = create_model(arch, labels=labels)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def test_same_labels_keep_everything(source) -> None:
    folder, weights = source
    model, _ = _fresh("istpan_tiny", LABELS)
    report = init_from(model, str(folder), LABELS)
    assert report.classifier == "kept" and report.initialised == [] and report.unused == []
    state = model.state_dict()
    assert set(report.loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(value, weights[key]), key
    assert report.sha256 and "classifier kept" in report.describe()


def test_shared_labels_are_remapped_by_name(source) -> None:
    folder, weights = source
    labels = ("cherry", "durian", "apple")
    model, before = _fresh("istpan_tiny", labels)
    report = init_from(model, str(folder), labels)
    assert report.classifier == "remapped"
    assert report.remapped_labels == ["cherry", "apple"] and report.new_labels == ["durian"]
    w, b = model.state_dict()["fc.weight"], model.state_dict()["fc.bias"]
    assert torch.equal(w[0], weights["fc.weight"][2]) and torch.equal(b[0], weights["fc.bias"][2])
    assert torch.equal(w[2], weights["fc.weight"][0]) and torch.equal(b[2], weights["fc.bias"][0])
    assert torch.equal(w[1], before["fc.weight"][1])  # durian: its fresh initialisation
    assert torch.equal(b[1], before["fc.bias"][1])
    assert "2 labels taken over, 1 new (durian)" in report.describe()


def test_no_shared_label_initialises_the_classifier(source) -> None:
    folder, weights = source
    model, before = _fresh("istpan_tiny", ("x", "y"))
    report = init_from(model, str(folder), ("x", "y"))
    assert report.classifier == "initialised"
    assert {"fc.weight", "fc.bias"} <= set(report.initialised)
    state = model.state_dict()
    assert torch.equal(state["fc.weight"], before["fc.weight"])
    key = "backbone.net.layer3.0.0.weight"
    assert torch.equal(state[key], weights[key])


def test_other_architecture_takes_what_fits(source) -> None:
    """A TSN from an ISTPAN: the backbone is loaded, the attention is the source's unused part."""
    folder, weights = source
    model, _ = _fresh("tsn_tiny", LABELS)
    report = init_from(model, str(folder), LABELS)
    assert report.unused and all(k.startswith("attention.") for k in report.unused)
    assert set(report.unused) == {k for k in weights if k.startswith("attention.")}
    assert report.classifier == "kept" and report.initialised == []
    assert f"{len(report.unused)} of the source's unused" in report.describe()


def test_freeze_backbone_stages_and_errors() -> None:
    model, _ = _fresh("istpan_tiny", LABELS)
    freeze(frozen_modules(model, "layer2"))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {
        n for n, _ in model.named_parameters()
        if n.startswith(("backbone.net.stem.", "backbone.net.layer1.", "backbone.net.layer2."))
    }  # fmt: skip
    model, _ = _fresh("istpan_tiny", LABELS)
    freeze(frozen_modules(model, "all"))
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"attention", "fc"}
    with pytest.raises(UsageError, match="stem, layer1, layer2, layer3, layer4"):
        frozen_modules(model, "layer9")


def test_a_run_from_a_model_folder_with_a_frozen_backbone(tmp_path: Path) -> None:
    """A real (in-process) training run: the card and train.log say what was loaded; the frozen
    stages end exactly as the source's, the rest has trained."""
    from ispan_cli.data.synthetic import LABELS as SYNTHETIC
    from ispan_cli.engine.launch import TrainOptions, run_training
    from tests.engine.runs import weights

    torch.manual_seed(1)
    start = create_model("istpan_tiny", labels=(*sorted(SYNTHETIC)[:3], "other"))
    save_model(start, tmp_path / "start")
    initial = {k: v.clone() for k, v in start.state_dict().items()}
    run = tmp_path / "run"
    settings = {"dataset": "synthetic", "arch": "istpan_tiny", "segments": 2, "input_size": 64,
                "batch_size": 8, "lr": 0.05, "dropout": 0.0, "workers": 0, "device": "cpu",
                "synthetic_train": 16, "synthetic_val": 4, "epochs": 1, "precise_bn": 0,
                "init_from": str(tmp_path / "start"), "freeze_backbone": "layer2",
                "output": str(run)}  # fmt: skip
    run_training(TrainOptions(settings=settings))
    trained = weights(run / "best")
    for key, value in trained.items():
        if key.startswith(("backbone.net.stem.", "backbone.net.layer1.", "backbone.net.layer2.")):
            assert torch.equal(value, initial[key]), key  # weights and BN statistics
    assert not torch.equal(trained["backbone.net.layer3.0.0.weight"],
                           initial["backbone.net.layer3.0.0.weight"])  # fmt: skip
    card = (run / "best" / "README.md").read_text()
    assert "## Initialised from" in card and "3 labels taken over, 2 new" in card, card
    assert "The backbone up to layer2 held still (--freeze-backbone layer2)" in card
    assert "classifier remapped by label name" in (run / "train.log").read_text()
