"""The one preprocessing definition: spec round trip through config.json, and the numbers."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF

from ispan_cli.errors import ISpanError
from ispan_cli.nn import ModelConfig, create_model, read_config, save_model
from ispan_cli.video import PreprocessSpec, default_spec, preprocess, spec_from_config
from ispan_cli.video.preprocess import IMAGENET_MEAN, IMAGENET_STD, scaled_size


def test_default_spec_follows_the_model_input_size():
    assert default_spec(ModelConfig()) == PreprocessSpec(256, 224, 1, IMAGENET_MEAN, IMAGENET_STD)
    tiny = default_spec(ModelConfig(backbone="tiny", input_size=112))
    assert (tiny.resize, tiny.crop) == (128, 112)


def test_spec_lives_in_config_json_and_falls_back_to_the_default(tmp_path):
    torch.manual_seed(0)
    model = create_model("istpan_tiny")
    spec = PreprocessSpec(resize=144, crop=112, crops=3, mean=(0.5, 0.5, 0.5), std=(0.25,) * 3)
    save_model(model, tmp_path / "with", extra={"preprocessing": spec.to_dict()})
    config, doc = read_config(tmp_path / "with")
    assert spec_from_config(config, doc) == spec
    save_model(model, tmp_path / "without")
    config, doc = read_config(tmp_path / "without")
    assert "preprocessing" not in doc
    assert spec_from_config(config, doc) == default_spec(config)


def test_spec_rejects_what_it_cannot_do():
    with pytest.raises(ISpanError, match="unknown preprocessing field"):
        PreprocessSpec.from_dict({"resize": 256, "crop_size": 224})
    with pytest.raises(ISpanError, match="crops"):
        PreprocessSpec(crops=5)
    with pytest.raises(ISpanError, match="larger than"):
        PreprocessSpec(resize=200, crop=224)
    with pytest.raises(ISpanError, match="layout"):
        PreprocessSpec(layout="BCKHW")
    with pytest.raises(ISpanError, match="uint8"):
        preprocess(np.zeros((2, 256, 300, 3), np.float32), PreprocessSpec())


def test_centre_crop_and_normalisation_match_torchvision():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 128, 171, 3), dtype=np.uint8)  # short side already 128
    spec = PreprocessSpec(resize=128, crop=112)
    out = preprocess(frames, spec)
    assert out.shape == (1, 3, 3, 112, 112) and out.dtype == np.float32
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (K, 3, H, W)
    ref = TF.normalize(TF.center_crop(x, [112, 112]), list(IMAGENET_MEAN), list(IMAGENET_STD))
    np.testing.assert_allclose(out[0], ref.numpy(), atol=1e-5)


def test_resize_is_area_averaging_of_the_short_side():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 256, 342, 3), dtype=np.uint8)
    spec = PreprocessSpec(resize=128, crop=128, mean=(0, 0, 0), std=(1 / 255,) * 3)
    out = preprocess(frames, spec)  # values back in 0..255 units
    # exactly 2x smaller: each output pixel is the mean of a 2x2 block (centre crop of 171 wide)
    blocks = frames.reshape(2, 128, 2, 171, 2, 3).astype(np.float64).mean(axis=(2, 4))
    left = round((171 - 128) / 2)  # torchvision's rounding of the centre offset
    ref = blocks[:, :, left : left + 128].transpose(0, 3, 1, 2)
    assert np.abs(out[0] - ref).max() <= 1.0  # rounding to uint8 after averaging
    assert scaled_size(342, 256, 128) == (171, 128) and scaled_size(240, 320, 128) == (128, 171)


def _coords_frame(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx, yy, np.zeros_like(xx)], axis=-1).astype(np.uint8)[None]  # R=x, G=y


def _crop_origins(out: np.ndarray) -> list[tuple[int, int, bool]]:
    """(top, left, flipped) of each crop, read from the R=x, G=y pixel values."""
    res = []
    for crop in out[:, 0]:  # (3, S, S) in 0..255 units
        x0, x1, y0 = (
            round(float(crop[0, 0, 0])),
            round(float(crop[0, 0, -1])),
            round(float(crop[1, 0, 0])),
        )
        res.append((y0, min(x0, x1), x0 > x1))
    return res


def test_three_and_ten_crops_are_where_the_spec_says():
    identity = {"mean": (0, 0, 0), "std": (1 / 255,) * 3}
    out3 = preprocess(_coords_frame(100, 160), PreprocessSpec(100, 100, crops=3, **identity))
    assert out3.shape == (3, 1, 3, 100, 100)
    assert _crop_origins(out3) == [(0, 30, False), (0, 0, False), (0, 60, False)]
    tall = preprocess(_coords_frame(160, 100), PreprocessSpec(100, 100, crops=3, **identity))
    assert _crop_origins(tall) == [(30, 0, False), (0, 0, False), (60, 0, False)]
    out10 = preprocess(_coords_frame(120, 150), PreprocessSpec(120, 100, crops=10, **identity))
    five = [(10, 25), (0, 0), (0, 50), (20, 0), (20, 50)]
    assert _crop_origins(out10) == [(y, x, False) for y, x in five] + [
        (y, x, True) for y, x in five
    ]
    np.testing.assert_array_equal(out10[5], out10[0][..., ::-1])  # flip of the centre crop


def test_importing_preprocessing_needs_no_torch_av_or_opencv():
    code = (
        "import sys, numpy as np\n"
        "from ispan_cli.video.preprocess import PreprocessSpec, preprocess\n"
        "import ispan_cli.video\n"
        "preprocess(np.zeros((2, 256, 256, 3), np.uint8), PreprocessSpec())\n"
        "print(sorted(m for m in ('torch', 'av', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
