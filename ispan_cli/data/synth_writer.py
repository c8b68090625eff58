"""Writing the synthetic dataset as real video files: a ``folder`` dataset
(``OUT/{train,val}/<class>/<name>.mp4``) plus ``boxes.jsonl`` with every frame's target box."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ispan_cli.data import synthetic
from ispan_cli.errors import ISpanError, UsageError
from ispan_cli.terminal import visible


def write_synthetic(
    out: str | Path,
    train: int,
    val: int,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Renders and encodes ``train`` + ``val`` clips (H.264, near-lossless) into ``out``.

    The clips are exactly those of ``--dataset synthetic --split <seed>``. Returns videos per
    subset.
    """
    from ispan_cli.video.writer import write_video

    out = Path(out)
    if train + val == 0:  # wrote nothing and then failed on boxes.jsonl
        raise UsageError("--train 0 --val 0 writes no clips; give --train or --val above 0")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {visible(out)} is a file; give a new folder to write into")
    if out.exists() and any(out.iterdir()):
        raise ISpanError(f"{out} exists and is not empty; choose a new --out folder")
    above = next(p for p in out.absolute().parents if p.exists())
    if not above.is_dir():  # under a file: the first mkdir was a NotADirectoryError
        raise UsageError(f"--out {visible(out)} is under a file; give a new folder to write into")
    total, done = train + val, 0
    boxes = []
    for subset, count in (("train", train), ("val", val)):
        for index in range(count):
            clip = synthetic.make_clip(seed, subset, index)
            label = synthetic.LABELS[clip.label]
            rel = Path(subset) / label / f"{label}_{index:05d}.mp4"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            frames = clip.render(range(clip.spec.frames))
            write_video(out / rel, frames, clip.spec.fps, crf=12)
            boxes.append(
                {
                    "video": str(rel),
                    "label": label,
                    "boxes": [[round(v, 2) for v in clip.box(t)] for t in range(clip.spec.frames)],
                }
            )
            done += 1
            if progress:
                progress(done, total)
    (out / "boxes.jsonl").write_text("".join(json.dumps(b) + "\n" for b in boxes))
    return {"train": train, "val": val}
