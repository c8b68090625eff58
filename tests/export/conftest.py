"""Shared fixtures: the default model exported once per session, and real encoded videos."""

from __future__ import annotations

from pathlib import Path

import pytest

from ispan_cli.zoo import zoo_dir
from tests.video.videogen import write_pattern_video

# The export and visualize tests use the untrained placeholder: its moderate logits keep
# absolute tolerances meaningful, and a perturbed copy of it changes the probabilities (the
# trained default model's saturated softmax hides small perturbations).
MODEL = "istpan-tiny-placeholder"
DEFAULT_DIR = zoo_dir() / MODEL


@pytest.fixture(scope="session")
def export_videos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("export-videos")
    # short side 128 = the default model's resize, so decoders need not scale
    return [
        write_pattern_video(root / f"clip{i}.mp4", "libx264", n, width=170, height=128)
        for i, n in enumerate([40, 61])
    ]


@pytest.fixture(scope="session")
def exported(tmp_path_factory, export_videos) -> dict[str, Path]:
    """The default model exported without and with attention outputs (verified on a video)."""
    from ispan_cli.export.run import ExportOptions, run_export

    root = tmp_path_factory.mktemp("exported")
    plain = run_export(
        ExportOptions(model=MODEL, output=root / "plain.onnx", verify_video=export_videos[0])
    )
    folder = root / "with-attention"
    folder.mkdir()
    attention = run_export(ExportOptions(model=MODEL, output=folder, with_attention=True))
    return {"plain": plain.path, "attention": attention.path, "folder": folder}
