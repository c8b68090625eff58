"""Every field of a model folder's config.json is validated where it is read (issue 13): one
``error:`` line naming the field and what is allowed, never "a bug in ispan", never NaN scores.

The folders are copies of the bundled tiny model with one field changed, loaded by the one
loader every command uses; a few go through ``ispan classify`` end to end.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import fields
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.errors import ISpanError
from ispan_cli.nn.config import _TYPE_CHECKS, ModelConfig
from ispan_cli.zoo import zoo_dir

VIDEO = Path(__file__).parents[2] / "samples" / "demo.mp4"
NAN = float("nan")


def _folder(tmp_path: Path, edit) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(zoo_dir() / "istpan-tiny-synthetic", folder)
    doc = json.loads((folder / "config.json").read_text())
    edit(doc)
    # json.dumps writes NaN and Infinity as the bare tokens Python's json.loads accepts
    (folder / "config.json").write_text(json.dumps(doc))
    return folder


def _load_error(folder: Path) -> str:
    """The error of the one loader every command uses (runtime.loading.load_model)."""
    from ispan_cli.runtime.loading import load_model

    with pytest.raises(ISpanError) as caught:
        load_model(str(folder), device="cpu")
    return str(caught.value)


def _classify_error(folder: Path) -> str:
    result = CliRunner().invoke(app, ["classify", str(VIDEO), "--model", str(folder), "-f", "json"])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert "this is a bug" not in result.stderr and "Traceback" not in result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert result.stdout.strip() == ""  # no record at all, so no NaN score
    return lines[0]


PREPROCESSING = [
    ("mean", ["a", 0.4, 0.4], "preprocessing mean must be 3 finite numbers"),
    ("mean", [NAN, 0.4, 0.4], "preprocessing mean must be 3 finite numbers"),
    ("mean", [0.4, 0.4], "preprocessing mean must be 3 finite numbers"),
    ("mean", [5.0, 0.4, 0.4], "preprocessing mean must be in [0, 1]"),
    ("mean", "0.5", "preprocessing mean must be 3 finite numbers"),
    ("std", [NAN, NAN, NAN], "preprocessing std must be 3 finite numbers"),
    ("std", [float("inf")] * 3, "preprocessing std must be 3 finite numbers"),
    ("std", [0, 0.2, 0.2], "preprocessing std must be in [0.001, 1000]"),
    ("std", [-0.2, 0.2, 0.2], "preprocessing std must be in [0.001, 1000]"),
    ("std", [1e-30] * 3, "preprocessing std must be in [0.001, 1000]"),
    ("std", [0.2, 0.2, 0.2, 0.2], "preprocessing std must be 3 finite numbers"),
    ("std", [True, 0.2, 0.2], "preprocessing std must be 3 finite numbers"),
    ("resize", 40000, "preprocessing resize must be a whole number of pixels in [1, 2048]"),
    ("resize", 128.5, "preprocessing resize must be a whole number of pixels in [1, 2048]"),
    ("resize", 0, "preprocessing resize must be a whole number of pixels in [1, 2048]"),
    ("crop", 129, "preprocessing crop 129 is larger than the resized short side 128"),
    ("crop", -1, "preprocessing crop must be a whole number of pixels in [1, 2048]"),
    ("crops", 2, "preprocessing crops must be one of (1, 3, 10)"),
    ("crops", 1.0, "preprocessing crops must be one of (1, 3, 10)"),
    ("layout", "BCKHW", "preprocessing layout 'BCKHW' is not supported"),
    ("colour", "rgb", "unknown preprocessing field(s) ['colour']"),
]


@pytest.mark.parametrize(("field", "value", "message"), PREPROCESSING)
def test_a_bad_preprocessing_field_is_one_error_line(tmp_path, field, value, message):
    folder = _folder(tmp_path, lambda doc: doc["preprocessing"].update({field: value}))
    assert message in _load_error(folder)


MODEL = [
    ("num_segments", 0, "config field num_segments must be in [1, 1024]"),
    ("num_segments", 10**18, "config field num_segments must be in [1, 1024]"),
    ("num_segments", 8.0, "config field num_segments should be int"),
    ("num_classes", 4, "5 labels for num_classes=4"),
    ("num_classes", 10**7, "config field num_classes must be in [1, 100000]"),
    ("labels", ["a", "b"], "2 labels for num_classes=5"),
    ("labels", [1, 2, 3, 4, 5], "config field labels should be tuple[str, ...]"),
    ("d", 10**8, "config field d must be in [1, 16384]"),
    ("d", NAN, "config field d should be int"),
    ("input_size", 40000, "config field input_size must be at most 2048"),
    ("beta", NAN, "config field beta must be a finite number"),
    ("gamma", float("inf"), "config field gamma must be a finite number"),
    ("dropout", NAN, "config field dropout must be a finite number"),
    ("backbone", "resnet9000", "unknown backbone 'resnet9000'"),
    ("pyramid", "layer4", "config field pyramid should be tuple[str, ...]"),
]


@pytest.mark.parametrize(("field", "value", "message"), MODEL)
def test_a_bad_model_field_is_one_error_line(tmp_path, field, value, message):
    folder = _folder(tmp_path, lambda doc: doc["model"].update({field: value}))
    assert message in _load_error(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda doc: doc.update(model=None), 'the "model" section of the config must be an object'),
        (
            lambda doc: doc.update(model=[1, 2]),
            'the "model" section of the config must be an object',
        ),
        (lambda doc: doc.update(preprocessing=[1]), '"preprocessing" in config.json must be'),
        (lambda doc: doc.update(format_version="1"), '"format_version" must be a whole number'),
        (lambda doc: doc.update(format_version=99), "newer than this ispan understands"),
    ],
)
def test_a_bad_config_document_is_one_error_line(tmp_path, edit, message):
    assert message in _load_error(_folder(tmp_path, edit))


@pytest.mark.parametrize(
    ("section", "field", "value", "message"),
    [
        ("preprocessing", "std", [NAN] * 3, "preprocessing std must be 3 finite numbers"),
        ("preprocessing", "mean", ["a", 0.4, 0.4], "preprocessing mean must be 3 finite numbers"),
        ("preprocessing", "resize", 40000, "preprocessing resize must be a whole number"),
        ("model", "num_segments", 0, "config field num_segments must be in [1, 1024]"),
    ],
)
def test_classify_refuses_the_folder_in_one_line(tmp_path, section, field, value, message):
    folder = _folder(tmp_path, lambda doc: doc[section].update({field: value}))
    assert message in _classify_error(folder)


def test_sizes_within_the_bounds_are_checked_against_the_weights(tmp_path):
    from ispan_cli.nn import load_model

    for field, value in (("d", 64), ("num_classes", 100_000)):
        folder = _folder(tmp_path / field, lambda doc, f=field, v=value: doc["model"].update(
            {f: v, "labels": []}))  # fmt: skip
        with pytest.raises(ISpanError, match=r"does not match its config\.json"):
            load_model(folder)


def test_the_untouched_folder_classifies(tmp_path):
    # the control: the copies above fail only because of the field each one changes
    folder = _folder(tmp_path, lambda doc: None)
    result = CliRunner().invoke(app, ["classify", str(VIDEO), "--model", str(folder), "-f", "json"])
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    scores = [entry["score"] for entry in record["topk"]]
    assert scores and all(0.0 <= s <= 1.0 for s in scores)


def test_every_field_type_has_a_check():
    # a field added with a new type must fail here, not in a user's hands
    unknown = {f.name: f.type for f in fields(ModelConfig) if str(f.type) not in _TYPE_CHECKS}
    assert not unknown
