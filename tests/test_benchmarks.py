"""The benchmark scripts run and report figures consistent with independent counts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_model_cost_reports_the_attention_share():
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "model_cost.py"),
            "--model",
            "istpan_tiny",
            "--size",
            "112",
            "--repeats",
            "2",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    # d * C_j + d per level, tiny's layer2-4 have 32, 64, 128 channels
    assert doc["attention_parameters"] == 49 * (32 + 64 + 128) + 3 * 49
    assert 0 < doc["attention_gflops"] < doc["gflops"]
    assert doc["attention_time_share"] == doc["attention_ms"] / doc["forward_ms"]
