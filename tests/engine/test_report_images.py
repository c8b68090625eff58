"""The report's pictures: the sample frames of the most confused pairs are frames of the videos
the folder records (real encoded files, identified by colour), chosen as the confusion says; a
missing or unreadable video leaves the page with the reason in its place (no hang on a FIFO, no
request for a URL); the attention sheet is drawn by the viz code for the evaluated model and
agrees with evaluate's own predictions; hostile names and paths stay text."""

from __future__ import annotations

import base64
import io
import json
import os
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.engine.html_report import write_confusion_csv, write_report
from ispan_cli.engine.report_images import SHEET_SHORT, Reading, Video, sample_frame
from ispan_cli.video.writer import write_video
from tests.engine.test_html_report import read_page


class _Figures(HTMLParser):
    """Each <figure> of each <section>: (section id, img src or None, missing text, caption)."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.section = ""
        self._in: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id", "")
        elif tag == "figure":
            self.figures.append({"section": self.section, "src": None, "missing": "",
                                 "caption": ""})  # fmt: skip
        elif tag == "img" and self.figures:
            self.figures[-1]["src"] = a["src"]
        elif tag in ("p", "figcaption") and self.figures:
            self._in = "missing" if tag == "p" else "caption"

    def handle_endtag(self, tag) -> None:
        if tag in ("p", "figcaption", "figure"):
            self._in = None

    def handle_data(self, data) -> None:
        if self._in:
            self.figures[-1][self._in] += data


def figures(path: Path, section: str) -> list[dict]:
    read_page(path)  # self-contained, every image decodes
    parser = _Figures()
    parser.feed(path.read_text())
    return [f for f in parser.figures if f["section"] == section]


def decoded(src: str) -> np.ndarray:
    from PIL import Image

    assert src.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}


def _video(path: Path, colour: str) -> str:
    frame = np.empty((48, 64, 3), np.uint8)
    frame[:] = COLOURS[colour]
    write_video(path, [frame] * 8, 8.0)
    return str(path)


def _colour(image: np.ndarray) -> str:
    mean = image.reshape(-1, 3).mean(0)
    name = min(COLOURS, key=lambda c: np.abs(mean - COLOURS[c]).sum())
    assert np.abs(mean - COLOURS[name]).max() < 15, mean  # a solid frame of that colour
    return name


A, B, C = "<script>alert(1)</script>", "b\"q'uote & <i>", "plain"


def _eval_folder(folder: Path, rows: list[tuple[str, str, str]], model: str) -> Path:
    """An ``evaluate --output`` folder as evaluate writes it, for ``rows`` (video, true,
    predicted) over the classes A, B, C."""
    classes = (A, B, C)
    folder.mkdir(parents=True, exist_ok=True)
    confusion = np.zeros((3, 3), int)
    for _, true, predicted in rows:
        confusion[classes.index(true), classes.index(predicted)] += 1
    write_confusion_csv(folder / "confusion.csv", confusion, classes)
    lines = [json.dumps({"video": v, "label": t, "predicted": p}) + "\n" for v, t, p in rows]
    (folder / "video_scores.jsonl").write_text("".join(lines))
    split = {"top1": 0.5, "mean_class_accuracy": 0.5, "videos": len(rows)}
    doc = {"model": model, "dataset": "folder", "views": "K=2", "splits": {"1": split}}
    (folder / "metrics.json").write_text(json.dumps(doc))
    return folder


def test_pair_frames_are_frames_of_the_confused_videos(tmp_path: Path) -> None:
    """Pair (A -> B): the A video that was predicted B (not the other A video) and a B video;
    pair (C -> A): C's only video is gone (said in its place), and an A video predicted A."""
    red = _video(tmp_path / "a1.mp4", "red")
    green = _video(tmp_path / "x \"q\" 'y' <b>.mp4", "green")
    blue = _video(tmp_path / "b1.mp4", "blue")
    gone = str(tmp_path / "c1.mp4")
    rows = [(red, A, A), (green, A, B), (blue, B, B), (gone, C, A)]
    folder = _eval_folder(tmp_path / "eval", rows, str(tmp_path / "no-model-here"))
    page = write_report(folder)
    shown = figures(page, "pairs")
    assert len(shown) == 4  # two pairs, two classes each
    assert [_colour(decoded(f["src"])) for f in (shown[0], shown[1], shown[3])] == [
        "green", "blue", "red"]  # fmt: skip
    assert shown[0]["caption"] == f"{A}, predicted as {B}: {green}"  # the path as text, quotes too
    assert shown[2]["src"] is None and shown[2]["missing"] == f"frame missing: {gone}: no such file"
    text = page.read_text()
    assert "<script>" not in text and "<b>" not in text and "<i>" not in text
    # the model cannot be loaded: the sheet says so and the page is still written
    note = "".join(read_page(page).text)
    assert f"No attention sheet: the model {tmp_path / 'no-model-here'} could not be loaded" in note


def test_unreadable_videos_are_named_with_their_reason(tmp_path: Path) -> None:
    """Garbage, a folder, a FIFO (would block a reader) and a URL (would be a request): each a
    missing frame with its reason, quickly."""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_text("not a video\n" * 50)
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    start = time.monotonic()
    cases = {
        str(garbage): "",
        str(tmp_path): "not a regular file",
        str(fifo): "not a regular file",
        "http://127.0.0.1:9/clip.mp4": "not a local file; the report reads local videos only",
    }
    for path, reason in cases.items():
        got = sample_frame(Video(path, "x"), "x", Reading())
        assert got.jpeg is None and got.missing.startswith(f"frame missing: {path}: ")
        assert got.missing.endswith(reason) and len(got.missing) > len(f"frame missing: {path}: ")
    assert time.monotonic() - start < 10


def test_run_frames_are_the_synthetic_clips_centre_frames(tmp_path: Path) -> None:
    """A run folder without weights: the validation videos are listed again from its settings
    (synthetic, seed = split 3), each sample frame is its clip's centre frame, and the sheet
    says that there is no best model."""
    from ispan_cli.data import synthetic

    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    settings = {"dataset": "synthetic", "split": 3, "synthetic_train": 0, "synthetic_val": 10}
    (run / "best" / "config.json").write_text(json.dumps({"training": settings}))
    confusion = np.eye(5, dtype=int) * 2
    confusion[1, 1], confusion[1, 4] = 1, 1  # class 1 -> class 4 once
    write_confusion_csv(run / "val_confusion.csv", confusion, synthetic.LABELS)
    page = write_report(run)
    left, right = figures(page, "pairs")
    # the first video of each class: index = label; 32 frames, K=1: the centre is frame 16
    for fig, index in ((left, 1), (right, 4)):
        expected = synthetic.make_clip(3, "val", index).render([16])[0].astype(float)
        assert np.abs(decoded(fig["src"]).astype(float) - expected).mean() < 6
        assert fig["caption"].endswith(f"synthetic:val:{index}")
    assert "No attention sheet: the run has no best model folder" in "".join(read_page(page).text)


def test_evaluate_report_has_the_attention_of_four_clips(tmp_path: Path) -> None:
    """`evaluate --output` ends with report.html, its class names from the evaluated data; with
    the zoo model, four clips of different classes, each a sheet of its K=8 rendered frames (4 a
    line), the prediction in each caption that of evaluate."""
    from ispan_cli.data.synthetic import LABELS
    from ispan_cli.engine.evaluate_options import EvaluateOptions
    from ispan_cli.engine.evaluation import evaluate

    out = tmp_path / "eval"
    evaluate(EvaluateOptions(dataset="synthetic", synthetic_sizes=(1, 5), workers=0, output=out))
    text = "".join(read_page(out / "report.html").text)
    assert "Per-class accuracy, worst first" in text
    assert all(name in text for name in LABELS)
    sheets = figures(out / "report.html", "attention")
    scored = {
        r["video"]: r
        for r in map(json.loads, (out / "video_scores.jsonl").read_text().split("\n")[:-1])
    }
    assert len(sheets) == 4
    labels = set()
    for sheet in sheets:
        image = decoded(sheet["src"])
        assert image.shape == (2 * (SHEET_SHORT + 2), 4 * SHEET_SHORT, 3)  # 128x128 clips
        video = sheet["caption"].split(" ")[0]
        row = scored[video]
        assert sheet["caption"].startswith(
            f"{video} ({row['label']}), predicted {row['predicted']} ("
        )
        labels.add(row["label"])
    assert len(labels) == 4


@pytest.mark.parametrize("kind", ["train", "evaluate"])
def test_a_folder_that_is_not_complete_is_one_error(tmp_path: Path, kind: str) -> None:
    from ispan_cli.errors import ISpanError

    name = "metrics.jsonl" if kind == "train" else "metrics.json"
    (tmp_path / name).write_text("{not json")
    with pytest.raises(ISpanError, match=name):
        write_report(tmp_path)


def test_the_command_says_it_in_one_line(tmp_path: Path) -> None:
    from tests.engine.runs import ispan

    (tmp_path / "metrics.json").write_text(json.dumps(["not", "a", "mapping"]))
    done = ispan("report", str(tmp_path), check=False, timeout=60)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {tmp_path / 'metrics.json'} is not as")
