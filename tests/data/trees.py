"""Fixture trees in the exact UCF101 and HMDB51 layouts, with tiny real encoded videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ispan_cli.video.writer import write_video

# classInd order on purpose not alphabetical: labels must follow classInd.txt, not sorting
UCF_CLASSES = ("PlayingCello", "ApplyEyeMakeup", "Biking")
HMDB_CLASSES = ("brush_hair", "cartwheel", "wave")


def tiny_video(path: Path, seed: int, frames: int = 6, size: int = 32) -> Path:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    clip = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
    write_video(path, clip, fps=10, crf=30)
    return path


def ucf_tree(root: Path, groups: int = 3, clips: int = 2) -> Path:
    """``root/UCF-101/<Class>/v_<Class>_gXX_cYY.avi`` + ``root/ucfTrainTestlist/``. Split N
    tests on group N (as the official lists do with groups 1-7, 8-14, 15-21)."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(UCF_CLASSES, 1)))
    seed = 0
    entries = []
    for ci, cls in enumerate(UCF_CLASSES):
        for g in range(1, groups + 1):
            for c in range(1, clips + 1):
                rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
                tiny_video(root / "UCF-101" / rel, seed)
                seed += 1
                entries.append((rel, ci + 1, g))
    for split in (1, 2, 3):
        train = [f"{rel} {label}\n" for rel, label, g in entries if g != split]
        test = [f"{rel}\n" for rel, _, g in entries if g == split]
        (lists / f"trainlist0{split}.txt").write_text("".join(train))
        (lists / f"testlist0{split}.txt").write_text("".join(test))
    return root


def hmdb_tree(root: Path, videos: int = 4) -> Path:
    """``root/<class>/<video>.avi`` + ``root/testTrainMulti_7030_splits/<class>_test_splitN.txt``:
    in split N video N-1 is the test video, the last one is unused (0), the rest train."""
    lists = root / "testTrainMulti_7030_splits"
    lists.mkdir(parents=True)
    seed = 100
    for cls in HMDB_CLASSES:
        names = [f"{cls}_clip_{v}_f_nm_np1_fr_med_{v}.avi" for v in range(videos)]
        for name in names:
            tiny_video(root / cls / name, seed)
            seed += 1
        for split in (1, 2, 3):
            flags = [
                "2" if v == split - 1 else "0" if v == videos - 1 else "1" for v in range(videos)
            ]
            (lists / f"{cls}_test_split{split}.txt").write_text(
                "".join(f"{n} {f} \n" for n, f in zip(names, flags, strict=True))
            )
    return root
