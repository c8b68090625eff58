"""Checks that need a CUDA device (pytest -m gpu on a GPU machine; skipped elsewhere)."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.nn import create_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_model_on_cuda_matches_cpu():
    torch.manual_seed(0)
    model = create_model("istpan_resnet18", num_classes=11).eval()
    x = torch.randn(2, 4, 3, 224, 224)
    with torch.no_grad():
        cpu_logits = model(x)
        gpu_logits = model.cuda()(x.cuda()).cpu()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(x.cuda()).float().cpu()
    torch.testing.assert_close(gpu_logits, cpu_logits, rtol=1e-3, atol=1e-3)
    assert torch.isfinite(bf16).all()
    assert (bf16.argmax(1) == cpu_logits.argmax(1)).float().mean() >= 0.5


def test_classify_on_cuda_names_the_device_and_agrees_with_cpu():
    from pathlib import Path

    import numpy as np

    from benchmarks.synth_videos import encode

    runner = CliRunner()
    video = encode(Path("/tmp/ispan_gpu_test.mp4"), 2.0, 320, 240, "libx264")
    out = {}
    for device, precision in [("cpu", "fp32"), ("cuda", "fp32"), ("cuda", "bf16")]:
        result = runner.invoke(
            app,
            [
                "classify",
                str(video),
                "-f",
                "json",
                "-q",
                "--device",
                device,
                "--precision",
                precision,
            ],
        )
        assert result.exit_code == 0, result.output
        out[(device, precision)] = json.loads(result.stdout)[0]
    assert out[("cuda", "fp32")]["device"].startswith("cuda:0")
    cpu = [t["score"] for t in out[("cpu", "fp32")]["topk"]]
    gpu = [t["score"] for t in out[("cuda", "fp32")]["topk"]]
    np.testing.assert_allclose(gpu, cpu, atol=1e-4)
    assert out[("cuda", "bf16")]["precision"] == "bf16"
