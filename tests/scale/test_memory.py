"""A list of a million inputs streams: memory does not grow with the list's length.

Real subprocesses of `ispan classify` over generated lists of paths that do not exist (each gets
its error record); the peak RSS of a long list is compared with that of a short one. Holding the
list (InputItems) would add about 250 bytes an input, the records several KB an input.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("rss_runner.py")
ROOT = Path(__file__).resolve().parents[2]


def _peak_rss_mb(tmp_path: Path, lines: int) -> tuple[float, int]:
    listing = tmp_path / f"list{lines}.txt"
    with open(listing, "w") as fh:
        fh.writelines(f"{tmp_path}/absent/{i:07d}.mp4\n" for i in range(lines))
    out = tmp_path / f"out{lines}.jsonl"
    done = subprocess.run(
        [sys.executable, str(RUNNER), "classify", str(listing), "-o", str(out), "-q",
         "--device", "cpu"],
        capture_output=True, text=True, timeout=3600, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 1  # every input failed, and said so
    peak = next(ln for ln in done.stderr.splitlines() if ln.startswith("PEAK_RSS_KB"))
    errors = sum(ln.startswith("error: ") for ln in done.stderr.splitlines())
    with open(out, "rb") as fh:
        records = sum(1 for _ in fh)
    assert records == errors == lines  # one error record (and one error line) per input
    return int(peak.split()[1]) / 1024, records


def _check_flat(tmp_path: Path, short: int, long: int, allowed_mb: float) -> None:
    small, _ = _peak_rss_mb(tmp_path, short)
    large, _ = _peak_rss_mb(tmp_path, long)
    # what holding the list alone would add: about 250 bytes an input
    assert large - small < allowed_mb, (small, large)


def test_a_long_list_costs_no_more_memory_than_a_short_one(tmp_path):
    # 30k inputs held in memory: ~7.5 MB; the allowance covers one resize of Python's table of
    # interned strings (pathlib interns path parts), seen once near 35k inputs
    _check_flat(tmp_path, 1_000, 30_000, allowed_mb=5.0)


@pytest.mark.slow
def test_a_million_line_list_streams(tmp_path):
    _check_flat(tmp_path, 1_000, 1_000_000, allowed_mb=20.0)  # held: ~250 MB
