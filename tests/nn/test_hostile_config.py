"""Sizes in an untrusted config.json are checked against the weights' safetensors header before
anything of that size is built: "d": 1e8 took 13.6 GB and 65 s before failing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from ispan_cli.zoo import zoo_dir


# Past the documented bounds (ispan_cli/limits.py) the config itself is refused; within them a
# size that disagrees with the weights is refused by the header check
# (tests/nn/test_config_fields.py).
@pytest.mark.parametrize(
    ("field", "value"),
    [("d", 100_000_000), ("num_classes", 10_000_000)],
)
def test_an_oversized_config_is_refused_without_allocating(field, value, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(zoo_dir() / "istpan-tiny-placeholder", folder)
    doc = json.loads((folder / "config.json").read_text())
    doc["model"][field] = value
    if field == "num_classes":
        doc["model"]["labels"] = []
    (folder / "config.json").write_text(json.dumps(doc))
    code = (
        "import resource, sys\n"
        "from ispan_cli.errors import ISpanError\n"
        "from ispan_cli.nn import load_model\n"
        "try:\n"
        f"    load_model({str(folder)!r})\n"
        "except ISpanError as exc:\n"
        "    print(exc)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    message, peak_mb = done.stdout.strip().splitlines()
    if value > 100_000:
        assert f"config field {field} must be in [1, " in message, message
    else:
        assert "does not match its config.json" in message and "wrong shapes" in message
    # importing torch alone peaks at 0.6-1.6 GB here; the model would need over 5 GB
    assert int(peak_mb) < 3000, f"peak RSS {peak_mb} MB"
