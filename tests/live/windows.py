"""What every live-source test checks of its first windows, whatever the protocol: they arrive
while the stream runs, in order (a skipped window is counted by the next record), each within a
window's length of its last frame's arrival (timed by the test, not taken from the record)."""

from __future__ import annotations

import itertools
import time

from ispan_cli.inference.live import LiveOptions, run_live
from tests.video.videogen import read_index


class FrameLog:
    """``on_frame`` for run_live: the index each frame's pixels encode, and when it arrived."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}  # frame number -> the index its pixels encode
        self.arrived: list[float] = []  # wall clock of each frame's arrival

    def __call__(self, frame, t, fps) -> None:
        self.seen[frame.number] = read_index(frame.image)
        self.arrived.append(frame.arrived)


def first_windows(clf, url: str, window: float, last: int, frames: FrameLog) -> list[dict]:
    """Windows 0..``last`` of ``url`` (stride 1 s), each stamped with when it was received."""
    records = []
    live = LiveOptions(window=window, stride=1.0, timeout=10)
    for record in run_live(clf.predictor, url, clf.options, live, frames):
        assert record["error"] is None, record
        records.append({**record, "received": time.time()})
        if record["window"]["index"] >= last:
            break
    return records


def check_in_order_and_on_time(
    records: list[dict], frames: FrameLog, window: float, fps: int, last: int
) -> None:
    indices = [r["window"]["index"] for r in records]
    assert indices[0] == 0 and indices[-1] == last
    # in order; a window is only ever skipped when the model was busy (a loaded machine), and
    # then the next record counts it
    for a, b in itertools.pairwise(records):
        assert b["window"]["index"] - a["window"]["index"] - 1 == b["live"]["dropped_windows"]
    for r in records:
        end = round(r["window"]["end"] * fps) - 1
        got = frames.arrived[end]
        assert r["received"] - got < window, (r["window"], r["received"], got)
    numbers = sorted(frames.seen)
    assert numbers == list(range(len(numbers)))  # no frame lost
