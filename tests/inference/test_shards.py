"""Sharding: shares of the inputs from --shard or the launcher's environment, part files, and
their merge back into exactly what one process writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ispan_cli.app import app
from ispan_cli.errors import UsageError
from ispan_cli.inference.merge import done_path, merge_parts, part_path
from ispan_cli.inference.shards import Shard, detect_shard, parse_shard
from ispan_cli.outputs import exclusive
from tests.inference.conftest import read_jsonl as _jsonl
from tests.inference.conftest import strip_timings as _strip

runner = CliRunner()


def test_shares_are_every_nth_input_and_cover_each_once():
    items = list(range(23))
    shares = [list(Shard(i, 4).take(items)) for i in range(4)]
    assert shares[1] == [1, 5, 9, 13, 17, 21]
    assert sorted(x for s in shares for x in s) == items


@pytest.mark.parametrize(
    ("env", "want"),
    [
        ({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, Shard(3, 8, "torchrun", 1)),
        ({"RANK": "0", "WORLD_SIZE": "1"}, None),  # one process: not sharded
        (
            {"SLURM_PROCID": "5", "SLURM_NTASKS": "6", "SLURM_STEP_ID": "0", "SLURM_LOCALID": "2"},
            Shard(5, 6, "slurm", 2),
        ),
        (
            {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "8"},
            Shard(1, 4, "slurm"),
        ),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "6"}, None),  # a batch script, not an srun step
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "6", "SLURM_STEP_ID": "4294967294"}, None),
        ({}, None),
    ],
)
def test_the_launcher_environment_names_the_shard(env, want):
    assert detect_shard(None, env) == want


def test_shard_option_wins_and_bad_values_say_what_to_give():
    assert detect_shard("2/5", {"RANK": "1", "WORLD_SIZE": "2"}) == Shard(2, 5)
    assert parse_shard("0/1") == Shard(0, 1)
    for bad, said in [("3", "is not I/N"), ("5/5", "0..4"), ("a/b", "I/N"), ("1/0", "0..0")]:
        with pytest.raises(UsageError, match=said):
            parse_shard(bad)
    with pytest.raises(UsageError, match=r"RANK=9 is not in 0\.\.1"):
        detect_shard(None, {"RANK": "9", "WORLD_SIZE": "2"})


def _shard(list_videos, out: Path, spec: str, *extra: str):
    return runner.invoke(
        app, ["classify", str(list_videos["list"]), "-o", str(out), "--shard", spec, *extra]
    )


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_shards_by_hand_merge_into_the_single_process_output(list_videos, reference, tmp_path, fmt):
    out = tmp_path / f"out.{fmt}"
    for i in range(3):
        result = _shard(list_videos, out, f"{i}/3", "--batch-size", "2")
        part = part_path(out, i, 3)
        if i < 2:  # not all parts yet: the part stays, complete
            assert part.is_file() and done_path(part).is_file() and not out.exists()
            assert "the last shard to finish merges" in result.stderr
    assert "merged 3 parts" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # parts, markers removed
    if fmt == "jsonl":
        assert _strip(_jsonl(out)) == _strip(reference["jsonl"])
    else:
        assert out.read_text().count("\n") == reference["csv"].count("\n")
        assert out.read_text().splitlines()[0] == reference["csv"].splitlines()[0]


def test_ispan_merge_for_array_jobs_and_its_checks(list_videos, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    _shard(list_videos, out, "0/2")
    result = runner.invoke(app, ["merge", str(out)])
    assert result.exit_code == 1 and "1 of 2 parts" in result.stderr and "shards 1" in result.stderr
    with exclusive(out):  # another process is merging: this shard leaves it
        _shard(list_videos, out, "1/2")
    assert not out.exists() and done_path(part_path(out, 1, 2)).is_file()
    result = runner.invoke(app, ["merge", str(out), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "output": str(out), "parts": 2, "records": len(reference["jsonl"]), "format": "jsonl"
    }  # fmt: skip
    assert _strip(_jsonl(out)) == _strip(reference["jsonl"])
    result = runner.invoke(app, ["merge", str(out)])
    assert result.exit_code == 1 and "no part files" in result.stderr


def _parts(tmp_path: Path, shares: list[list[str]]) -> Path:
    out = tmp_path / "o.jsonl"
    for i, lines in enumerate(shares):
        part = part_path(out, i, len(shares))
        part.write_text("".join(f"{line}\n" for line in lines))
        done_path(part).write_text(json.dumps({"records": len(lines), "format": "jsonl"}))
    return out


def test_merge_interleaves_in_input_order_and_refuses_parts_that_do_not_fit(tmp_path):
    out = _parts(tmp_path, [["0", "3", "6"], ["1", "4"], ["2", "5"]])
    assert merge_parts(out).records == 7
    assert out.read_text().split() == [str(i) for i in range(7)]
    bad = _parts(
        tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, [["0"], ["1", "3", "5"]]
    )
    with pytest.raises(Exception, match="past the end"):
        merge_parts(bad)
    assert part_path(bad, 0, 2).exists()  # nothing removed, nothing written
    assert not bad.exists()


def test_a_killed_shard_resumes_its_own_part(list_videos, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    _shard(list_videos, out, "1/2")
    part = part_path(out, 1, 2)
    text = part.read_text()
    part.write_text(text[: len(text) - 40])  # killed while writing its last record
    done_path(part).unlink()
    result = _shard(list_videos, out, "1/2", "--resume")
    assert "dropped a torn last line" in result.stderr
    _shard(list_videos, out, "0/2", "--resume")
    assert _strip(_jsonl(out)) == _strip(reference["jsonl"])


def test_sharding_needs_a_line_format_output(list_videos, tmp_path):
    listing = str(list_videos["list"])
    result = runner.invoke(app, ["classify", listing, "--shard", "0/2", "-f", "jsonl"])
    assert result.exit_code == 2 and "needs --output" in result.stderr
    out = str(tmp_path / "a.jsonl")
    result = runner.invoke(app, ["classify", listing, "--shard", "0/2", "-o", out, "--window", "1"])
    assert result.exit_code == 2 and "not sharded" in result.stderr


@pytest.mark.slow
def test_two_processes_under_torchrun_equal_one_process(list_videos, reference, tmp_path):
    out = tmp_path / "out.jsonl"
    good = tmp_path / "good.txt"  # no failing input: torchrun reports a status of 1 at length
    good.write_text("".join(f"{p}\n" for p in list_videos["paths"]))
    torchrun = Path(sys.executable).with_name("torchrun")
    ispan = Path(sys.executable).with_name("ispan")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE"))}
    result = subprocess.run(
        [str(torchrun), "--nproc-per-node", "2", "--no-python", str(ispan), "classify",
         str(good), "-o", str(out), "--device", "cpu"],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "shard 0/2 (torchrun)" in result.stderr and "shard 1/2 (torchrun)" in result.stderr
    assert "merged 2 parts" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, good.name])
    want = [r for r in reference["jsonl"] if r["error"] is None]
    assert _strip(_jsonl(out)) == _strip(want)
