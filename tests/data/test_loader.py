"""DataLoader workers must not inherit a decoder left for the garbage collector: freed in the
forked child, FFmpeg's frame threads are gone and the child waits for them forever (the epoch
hung with `train --log mlflow --workers 2`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, sys
import av
from tests.video.videogen import write_pattern_video
from torch.utils.data import DataLoader
from ispan_cli.data.loader import data_loader

video = write_pattern_video(sys.argv[2], "libx264", 48, width=320, height=240)
gc.disable()  # the cycle below must still be there at the fork
container = av.open(str(video))
stream = container.streams.video[0]
stream.thread_type = "FRAME"
stream.thread_count = 4
for i, frame in enumerate(container.decode(stream)):
    if i > 10:
        break
box = [container, stream, frame]
box.append(box)  # only the collector can free it now
del container, stream, frame, box


class Collecting:
    def __len__(self):
        return 2

    def __getitem__(self, i):
        gc.collect()  # in the worker: what any allocation may trigger
        return i


make = data_loader if sys.argv[1] == "ours" else DataLoader
print(list(make(Collecting(), num_workers=2, batch_size=None)), flush=True)
"""


def _probe(kind: str, tmp_path: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, kind, str(tmp_path / "v.mp4")],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip


def test_workers_start_from_a_process_without_garbage(tmp_path):
    done = _probe("ours", tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1]"


@pytest.mark.slow
def test_the_plain_loader_hangs_on_the_same_garbage(tmp_path):
    """The reason for data_loader: the same script with torch's DataLoader never ends."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE, "plain", str(tmp_path / "v.mp4")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True,
    )  # fmt: skip
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the hung workers too
        proc.communicate()
