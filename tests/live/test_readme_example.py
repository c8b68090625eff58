"""The README's Python API example runs as written (from the repository root)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _example() -> str:
    text = (ROOT / "README.md").read_text()
    marker = "<!-- tested: tests/live/test_readme_example.py runs this block -->"
    after = text.split(marker, 1)[1]
    return re.search(r"```python\n(.*?)```", after, re.S).group(1)


@pytest.mark.slow
def test_readme_classifier_example_runs():
    code = _example()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    label, score = lines[0].rsplit(" ", 1)
    assert label.startswith("synthetic-") and 0 < float(score) <= 1
    from ispan_cli.video.decoder import probe

    seconds = probe(ROOT / "samples" / "demo.mp4").duration
    count, first = lines[1].split(" ", 1)
    assert int(count) == max(1, round(seconds))  # 1 s windows over the demo clip
    assert first.startswith("{'index': 0, 'start': 0.0, 'end': 1.0")
    assert lines[2] == "[1, 3, 5, 7, 9, 11, 13, 15]"  # 8 segment centres of 16 frames
