"""The sampling a model's weights promise is a type, written and read back by every loader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ispan_cli.errors import ISpanError
from ispan_cli.runtime.loading import load_model
from ispan_cli.video.sampling import SamplingSpec, TSNSampler
from ispan_cli.zoo import zoo_dir

PLACEHOLDER = zoo_dir() / "istpan-tiny-placeholder"  # its config.json has no "sampling"
SYNTHETIC = zoo_dir() / "istpan-tiny-synthetic"  # written in the model-folder vocabulary


@pytest.mark.parametrize(
    "doc, expected",
    [
        (None, SamplingSpec(8)),
        ({}, SamplingSpec(8)),
        ({"method": "tsn", "segments": 3, "test": "centre"}, SamplingSpec(3)),  # model folders
        ({"method": "tsn-centre", "segments": 5}, SamplingSpec(5)),  # older ONNX metadata
        ({"method": "tsn-random", "segments": 5}, SamplingSpec(5, test="random")),
        (SamplingSpec(6, train="centre").to_dict(), SamplingSpec(6, train="centre")),
    ],
)
def test_every_vocabulary_reads_back(doc, expected) -> None:
    assert SamplingSpec.from_dict(doc, segments=8) == expected


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ({"method": "slowfast"}, "method 'slowfast'"),
        ({"segments": 0}, "segments 0"),
        ({"segments": 2.5}, "segments 2.5"),
        ({"segments": True}, "segments True"),
        ({"segments": 10**9}, "1..1024"),
        ({"test": "middle"}, "test 'middle'"),
        (["tsn"], "must be an object"),
    ],
)
def test_bad_sampling_is_one_clear_error(doc, fragment) -> None:
    with pytest.raises(ISpanError, match="sampling") as info:
        SamplingSpec.from_dict(doc, segments=8)
    assert fragment in str(info.value)


def test_spec_builds_the_sampler_it_describes() -> None:
    spec = SamplingSpec(4)
    assert spec.sampler() == TSNSampler(4, "centre")
    assert spec.sampler(train=True, seed=3) == TSNSampler(4, "random", 3)
    assert spec.sampler(segments=6).segments == 6


def test_loaded_models_carry_their_sampling(tmp_path) -> None:
    assert load_model(str(SYNTHETIC), device="cpu").sampling == SamplingSpec(8)
    # no "sampling" in the file: TSN with the model's own K
    assert load_model(str(PLACEHOLDER), device="cpu").sampling == SamplingSpec(8)
    folder = tmp_path / "odd"
    shutil.copytree(SYNTHETIC, folder)
    doc = json.loads((folder / "config.json").read_text())
    doc["sampling"] = {"method": "tsn", "segments": 4, "test": "random"}
    (folder / "config.json").write_text(json.dumps(doc))
    assert load_model(str(folder), device="cpu").sampling == SamplingSpec(4, test="random")


def test_a_model_asking_for_unknown_sampling_is_refused_at_load(tmp_path) -> None:
    folder = tmp_path / "hostile"
    shutil.copytree(SYNTHETIC, folder)
    doc = json.loads((folder / "config.json").read_text())
    doc["sampling"] = {"method": "dense", "segments": 8}
    (folder / "config.json").write_text(json.dumps(doc))
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify", "--model", str(folder), "x.mp4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model "), done.stderr
    assert "sampling method 'dense'" in lines[0] and "Traceback" not in done.stderr
