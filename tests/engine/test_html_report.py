"""`ispan report`: the page is self-contained (every image a data URI that decodes as a PNG, no
script, no remote resource), its per-class table and confused pairs agree with an independent
computation, and hostile class names stay text."""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.engine.html_report import (
    confused_pairs,
    per_class,
    write_confusion_csv,
    write_report,
)
from ispan_cli.errors import ISpanError


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_data(self, data) -> None:
        self.text.append(data)


def read_page(path: Path) -> _Page:
    """The parsed page, after checking that it needs nothing from outside itself."""
    from PIL import Image

    page = _Page()
    text = path.read_text()
    page.feed(text)
    assert "script" not in page.tags and "http://" not in text and "https://" not in text
    for src in page.images:
        kind = "PNG" if src.startswith("data:image/png;base64,") else "JPEG"
        assert kind == "PNG" or src.startswith("data:image/jpeg;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == kind
        image.verify()
    return page


CLASSES = ("<script>alert(1)</script>", "b&c", "plain", "empty")


def _eval_folder(tmp_path: Path, confusion: np.ndarray) -> Path:
    folder = tmp_path / "eval"
    folder.mkdir()
    write_confusion_csv(folder / "confusion.csv", confusion, CLASSES)
    doc = {"model": "m", "dataset": "folder", "views": "K=8",
           "splits": {"1": {"top1": 0.5, "mean_class_accuracy": 0.4, "videos": 20}}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(doc))
    return folder


def test_tables_agree_with_numpy_and_names_stay_text(tmp_path: Path) -> None:
    confusion = np.array([[5, 3, 0, 0], [1, 2, 6, 0], [0, 0, 9, 0], [0, 0, 0, 0]])
    rows = per_class(confusion.tolist(), list(CLASSES))
    acc = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
    order = [i for i in np.argsort(acc, kind="stable") if confusion[i].sum()]
    assert [r[0] for r in rows] == [CLASSES[i] for i in order]
    assert [r[2] for r in rows] == pytest.approx([acc[i] for i in order])
    off = confusion - np.diag(np.diag(confusion))
    pairs = confused_pairs(confusion.tolist(), list(CLASSES))
    assert [(p[0], p[1], p[2]) for p in pairs] == [(CLASSES[1], CLASSES[2], 6),
                                                   (CLASSES[0], CLASSES[1], 3),
                                                   (CLASSES[1], CLASSES[0], 1)]  # fmt: skip
    assert sum(p[2] for p in pairs) == off.sum()

    path = write_report(_eval_folder(tmp_path, confusion))
    page = read_page(path)
    text = "".join(page.text)
    assert CLASSES[0] in text and "b&c" in text  # shown as text, not run as markup
    assert "Most confused pairs" in text and "Per-class accuracy, worst first" in text


def test_not_a_run_is_one_error(tmp_path: Path) -> None:
    with pytest.raises(ISpanError, match="neither a training run"):
        write_report(tmp_path)
