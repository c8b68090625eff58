"""Running ``ispan`` as users do: the installed console script in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ISPAN = str(Path(sys.executable).with_name("ispan"))
# A small, fast synthetic run: 4 segments at 64 px (attention on a 4x4 map), no dropout.
FAST = [
    "--dataset", "synthetic", "--arch", "istpan_tiny", "--pretrained", "none",
    "--segments", "2", "--input-size", "64", "--batch-size", "8", "--lr", "0.01",
    "--dropout", "0", "--workers", "0", "--device", "cpu", "--quiet",
]  # fmt: skip


def ispan(
    *args: str, timeout: float = 300, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [ISPAN, *args], capture_output=True, text=True, timeout=timeout, env=env, **kw
    )
    if check and done.returncode != 0:
        raise AssertionError(f"ispan {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def popen(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([ISPAN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env)  # fmt: skip


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def metrics_rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
