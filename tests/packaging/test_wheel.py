"""A normal (non-editable) install carries the default model: build the wheel, install it into a
fresh folder, classify from another working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VIDEO = ROOT / "tests" / "video" / "real" / "v_ApplyEyeMakeup_g01_c01.avi"


@pytest.mark.slow
def test_installed_wheel_classifies_with_the_bundled_model(tmp_path):
    dist, target, elsewhere = tmp_path / "dist", tmp_path / "site", tmp_path / "cwd"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)], check=True,
                   timeout=600, capture_output=True)  # fmt: skip
    (wheel,) = dist.glob("ispan-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "ispan_cli/_zoo/istpan-tiny-synthetic/model.safetensors" in names
    assert not any(n.startswith("models/") for n in names)  # no top-level `models` package
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, timeout=600, capture_output=True)  # fmt: skip
    # The installed copy must be the one imported (PYTHONPATH comes before the editable
    # install's finder), and no checkout beside it: run from an unrelated folder.
    env = {k: v for k, v in os.environ.items() if k != "ISPAN_MODELS_DIR"}
    env["PYTHONPATH"] = str(target)
    where = subprocess.run(
        [sys.executable, "-c", "import ispan_cli.zoo as z; print(z.__file__); print(z.zoo_dir())"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(target)) and where[1] == str(target / "ispan_cli" / "_zoo")
    done = subprocess.run(
        [sys.executable, "-m", "ispan_cli", "classify", str(VIDEO), "--format", "json", "-q"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)
    assert record["error"] is None and record["model"]["id"] == "istpan-tiny-synthetic"
