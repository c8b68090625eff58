"""`classify --resume` and list files, on real encoded list_videos with the bundled model.

Every run's records are compared with one uninterrupted run (timings aside): a resumed file must
hold exactly the records a single run writes, in the same order.
"""

from __future__ import annotations

import csv
import io
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.inference.conftest import classify, read_jsonl, strip_timings

_strip = strip_timings
_jsonl = read_jsonl
_classify = classify


def _csv_rows(text: str) -> list[dict]:
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        for key in ("decode_ms", "preprocess_ms", "model_ms"):
            row.pop(key)
    return rows


def test_resume_skips_what_is_there_and_appends_the_rest(list_videos, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    first = tmp_path / "first.txt"
    first.write_text("".join(f"{p}\n" for p in list_videos["inputs"][:4]))
    _classify(str(first), "-o", str(out), "-q", "--resume")
    assert len(_jsonl(out)) == 4
    before = out.read_bytes()
    result = _classify(f"@{list_videos['list']}", "-o", str(out), "--resume")  # @FILE: a list too
    assert out.read_bytes().startswith(before)  # appended, the old records untouched
    assert _strip(_jsonl(out)) == _strip(reference["jsonl"])
    assert "3 of 4 input(s) classified, 1 failed, 4 already in" in result.stderr
    again = _classify(str(list_videos["list"]), "-o", str(out), "--resume")
    assert again.exit_code == 0 and "0 of 0 input(s)" in again.stderr  # nothing left to do
    assert _strip(_jsonl(out)) == _strip(reference["jsonl"])


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_torn_last_line_is_dropped_with_a_note(list_videos, reference, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    full = (
        "".join(json.dumps(r) + "\n" for r in reference["jsonl"])
        if fmt == "jsonl"
        else reference["csv"]
    )
    lines = full.splitlines(keepends=True)
    out.write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])  # killed mid-line
    result = _classify(str(list_videos["list"]), "-o", str(out), "--resume")
    assert result.exit_code == 1  # the broken and missing inputs fail again... one of them
    assert "note: --resume dropped a torn last" in result.stderr
    assert "left by an interrupted run" in result.stderr
    if fmt == "jsonl":
        assert _strip(_jsonl(out)) == _strip(reference["jsonl"])
    else:
        assert _csv_rows(out.read_text()) == _csv_rows(reference["csv"])


def test_a_csv_record_cut_inside_a_quoted_field_is_torn_too(list_videos, reference, tmp_path):
    out = tmp_path / "out.csv"
    text = reference["csv"]
    cut = text.index('"{', text.index("\n") + 1) + 2  # inside the quoted settings cell
    # as if cut right after a newline inside a quoted field (a file name can hold one)
    out.write_text(text[:cut] + "\n")
    result = _classify(str(list_videos["list"]), "-o", str(out), "--resume")
    assert "note: --resume dropped a torn last record" in result.stderr
    assert _csv_rows(out.read_text()) == _csv_rows(reference["csv"])


@pytest.mark.parametrize(
    ("args", "listed"),
    [
        (["--topk", "3"], "topk: 5 in the file, 3 now"),
        (["--segments", "4"], "segments: 8 in the file, 4 now"),
        (["--crops", "3"], "crops: 1 in the file, 3 now"),
        (["--model", "istpan-tiny-placeholder"], "model: "),
    ],
)
def test_other_settings_are_refused_listing_the_differences(list_videos, tmp_path, args, listed):
    out = tmp_path / "out.jsonl"
    _classify(str(list_videos["paths"][0]), "-o", str(out), "-q", "--resume")
    before = out.read_bytes()
    result = _classify(str(list_videos["list"]), "-o", str(out), "--resume", *args)
    assert result.exit_code == 1
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert "written with other settings" in line and listed in line
    assert out.read_bytes() == before  # nothing written


def test_resume_needs_an_appendable_output(list_videos, tmp_path):
    result = _classify(str(list_videos["paths"][0]), "--resume", "-f", "jsonl")
    assert result.exit_code == 2 and "--resume needs --output" in result.stderr
    result = _classify(str(list_videos["paths"][0]), "--resume", "-o", str(tmp_path / "o.json"))
    assert result.exit_code == 2 and "not json" in result.stderr
    old = tmp_path / "old.jsonl"
    old.write_text('{"input": "a"}\n')
    result = _classify(str(list_videos["paths"][0]), "--resume", "-o", str(old))
    assert result.exit_code == 1 and "record 1: its records carry no settings" in result.stderr
    damaged = tmp_path / "damaged.jsonl"
    _classify(str(list_videos["paths"][0]), "-o", str(damaged), "-q")
    damaged.write_text(damaged.read_text() + "not json\n" + damaged.read_text())
    result = _classify(str(list_videos["paths"][0]), "--resume", "-o", str(damaged))
    assert result.exit_code == 1 and "line 2 of" in result.stderr
    assert "is not a classify record" in result.stderr


def test_timeline_mode_resumes_by_whole_videos(list_videos, tmp_path):
    args = ["--window", "0.4", "--stride", "0.4", "-q"]
    ref, out = tmp_path / "ref.jsonl", tmp_path / "out.jsonl"
    inputs = list(map(str, list_videos["paths"][:2]))
    _classify(*inputs, "-o", str(ref), *args)
    records = _jsonl(ref)
    first = sum(r["input"] == inputs[0] for r in records)
    assert first >= 2 and len(records) > first
    # killed after the first video and one window of the second
    out.write_text("".join(json.dumps(r) + "\n" for r in records[: first + 1]))
    result = _classify(*inputs, "-o", str(out), *args, "--resume")
    assert result.exit_code == 0, result.output
    assert "the 1 record(s) of the last input" in result.stderr
    assert _strip(_jsonl(out)) == _strip(records)


def _kill_at_random(
    cmd: list[str], out: Path, rng: random.Random, total: int, max_kills: int
) -> int:
    """Runs ``cmd`` until it finishes, SIGKILLing it at random points; returns the kills."""
    kills = 0
    while True:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        have = len(out.read_bytes().splitlines()) if out.exists() else 0
        target = rng.randint(have, total)  # kill once this many lines exist (or on time)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            lines = out.read_bytes().count(b"\n") if out.exists() else 0
            if lines >= target and kills < max_kills:
                time.sleep(rng.random() * 0.03)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                break
            time.sleep(0.002)
        if proc.poll() is None:
            proc.kill()
            raise AssertionError("classify did not finish")
        if proc.returncode in (0, 1):
            return kills


@pytest.mark.parametrize(
    ("seed", "max_kills"),
    [(0, 1), *(pytest.param(s, 4, marks=pytest.mark.slow) for s in (1, 2, 3, 4))],
)
def test_resume_after_sigkill_at_random_points(list_videos, reference, tmp_path, seed, max_kills):
    out = tmp_path / "out.jsonl"
    many = tmp_path / "many.txt"  # each input three times over: more records to kill among
    inputs = [p for _ in range(3) for p in list_videos["inputs"]]
    many.write_text("".join(f"{p}\n" for p in inputs))
    cmd = [sys.executable, "-m", "ispan_cli", "classify", str(many), "-o", str(out),
           "--resume", "-q", "--batch-size", "1", "--workers", "1"]  # fmt: skip
    kills = _kill_at_random(cmd, out, random.Random(seed), len(list_videos["inputs"]), max_kills)
    assert kills >= 1
    records = _jsonl(out)  # every line parses: no torn line is left behind
    # an input listed three times has one record: inputs are keyed by their string
    assert [r["input"] for r in records] == list_videos["inputs"]
    assert _strip(records) == _strip(reference["jsonl"])


def test_list_file_errors_are_records(list_videos, tmp_path):
    out = tmp_path / "out.jsonl"
    result = _classify(str(tmp_path / "absent.txt"), str(list_videos["paths"][0]), "-o", str(out))
    assert result.exit_code == 1
    records = _jsonl(out)
    assert "list file" in records[0]["error"] and "does not exist" in records[0]["error"]
    assert records[1]["error"] is None
