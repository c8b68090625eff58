"""An imported folder is an ordinary model folder: ``evaluate``, ``benchmark`` and ``hub push``
take it unchanged (issue 14). One small import (ResNet-18 TSN, two classes, K = 2) serves all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ispan_cli.importers import ImportOptions, import_model
from tests.importers.fixtures import (
    mmaction2_state_dict,
    reference_logits,
    save_mmaction2_checkpoint,
    torchvision_tsn,
)
from tests.video.videogen import write_pattern_video

CLASSES = ("clap", "wave")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, tuple]:
    """(the imported folder, the independent torchvision TSN it came from)."""
    root = tmp_path_factory.mktemp("imported")
    net, fc = torchvision_tsn(18, len(CLASSES), seed=11)
    path = save_mmaction2_checkpoint(root / "tsn.pth", mmaction2_state_dict(net, fc), CLASSES)
    out = root / "tsn"
    import_model(ImportOptions(source=str(path), output=out, segments=2))
    return out, (net, fc)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """A folder dataset that is a test set: val/<class>/<video>, two small videos per class."""
    root = tmp_path_factory.mktemp("videos")
    for c, name in enumerate(CLASSES):
        (root / "val" / name).mkdir(parents=True)
        for i in range(2):
            write_pattern_video(root / "val" / name / f"v{i}.mp4", "mpeg4", 12 + 4 * c + i, 64, 48)
    return root


def test_evaluate_scores_an_imported_folder(imported, videos, tmp_path):
    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate
    from ispan_cli.engine.fusion import read_scores
    from ispan_cli.nn import read_config
    from ispan_cli.video.clip import load_clip
    from ispan_cli.video.preprocess import spec_from_config

    folder, (net, fc) = imported
    out = tmp_path / "eval"
    options = EvaluateOptions("folder", str(folder), str(videos), workers=0, device="cpu",
                              output=out)  # fmt: skip
    split = evaluate(options).to_dict()["splits"]["1"]
    scores = read_scores(out)
    assert split["videos"] == 4 and len(scores.videos) == 4
    # each video's logits are the independent TSN's on the clip ispan's pipeline makes
    spec = spec_from_config(*read_config(folder))
    for video, logits in zip(scores.videos, scores.logits, strict=True):
        path = video if Path(video).is_file() else videos / "val" / video
        clip = torch.from_numpy(load_clip(str(path), 2, spec, "pyav").data)
        expected = reference_logits(net, fc, clip)[0].numpy()
        assert np.allclose(logits, expected, atol=1e-3), (video, logits, expected)
    assert split["top1"] == pytest.approx(float(np.mean(scores.logits.argmax(1) == scores.labels)))


@pytest.mark.slow  # timed runs of a ResNet-18; evaluate covers the folder in the default suite
def test_benchmark_runs_an_imported_folder(imported):
    from ispan_cli.bench.run import BenchmarkOptions, run_benchmark
    from ispan_cli.nn import read_config

    folder, _ = imported
    options = BenchmarkOptions(model=str(folder), runtimes=("torch",), device="cpu", count=1,
                               seconds=0.4, workers=0)  # fmt: skip
    result = run_benchmark(options).to_dict()
    config, _ = read_config(folder)
    assert (result["segments"], result["input_size"]) == (config.num_segments, config.input_size)
    (run,) = result["runtimes"]
    assert run["runtime"] == "torch" and run["end_to_end_videos_per_s"] > 0


@pytest.mark.slow  # starts the Hub server and uploads ~45 MB
def test_hub_push_uploads_an_imported_folder(imported, hub_server, monkeypatch):
    from huggingface_hub import constants

    from ispan_cli.hub_push import push_model
    from tests.hub.conftest import free_port
    from tests.hub.upload_server import UploadServer, git

    folder, _ = imported
    with UploadServer(hub_server.mirrors, free_port()) as upload, monkeypatch.context() as patch:
        patch.setattr(constants, "ENDPOINT", upload.endpoint)
        pushed = push_model(folder, "acme/imported-tsn", message="imported TSN")
    repo = hub_server.mirrors / "models" / "acme" / "imported-tsn"
    listed = sorted(git(repo, "ls-tree", "--name-only", pushed.commit).split())
    assert listed == ["README.md", "config.json", "model.safetensors"]
    for name in listed:  # byte for byte, the model card saying ispan did not measure it too
        shown = ["git", "-C", str(repo), "show", f"{pushed.commit}:{name}"]
        import subprocess

        assert (
            subprocess.run(shown, capture_output=True, check=True).stdout
            == (folder / name).read_bytes()
        ), name
    assert "ispan has not measured" in (folder / "README.md").read_text()
