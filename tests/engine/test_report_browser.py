"""The report opened in a real headless Chromium (Playwright driving the system's Chromium):
the pages that a real `ispan train` and `ispan evaluate --output` wrote, on a folder dataset of
real encoded videos whose class and file names are hostile (markup, quotes), render their
sections with no console message, no script error, no dialog, no request beyond the file itself
(blocked and recorded if there were one) and every image decoded (naturalWidth > 0).

Needs `pip install playwright` (its wheel carries the driver; no `playwright install`) and a
Chromium (`apt-get install chromium`, or ISPAN_CHROMIUM=/path/to/chrome); skipped without them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from ispan_cli.video.writer import write_video
from tests.engine.runs import ispan

pytestmark = pytest.mark.browser

# an unescaped class name would be an <img> that requests "x" and opens a dialog
CLASSES = ("<img src=x onerror=alert(1)>", 'it\'s "quoted" & <i>', "plain")
COLOURS = ((220, 40, 40), (40, 200, 60), (40, 60, 220))
SECTIONS = ["figures", "curves", "confusion", "per-class", "pairs", "attention", "command",
            "settings"]  # fmt: skip


def _chromium() -> str | None:
    # Debian's /usr/bin/chromium is a shell wrapper around /usr/lib/chromium/chromium
    for name in (os.environ.get("ISPAN_CHROMIUM"), "/usr/lib/chromium/chromium", "chromium",
                 "chromium-browser", "chrome"):  # fmt: skip
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs `pip install playwright`")
    executable = _chromium()
    if executable is None:
        pytest.skip("needs Chromium (`apt-get install chromium`, or ISPAN_CHROMIUM=PATH)")
    with sync_api.sync_playwright() as p:
        # --no-sandbox: Chromium refuses its sandbox as root, as in containers
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


@dataclass
class Seen:
    sections: list[str]
    images: list[dict]
    text: str
    console: list[str]
    errors: list[str]
    requests: list[str]
    blocked: list[str]
    dialogs: list[str]


def open_page(browser, path: Path) -> Seen:
    """Opens ``path`` and records what the page did; any request but the file is blocked."""
    page = browser.new_page()
    url = path.resolve().as_uri()
    seen = Seen([], [], "", [], [], [], [], [])
    page.on("console", lambda m: seen.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("requestfailed", lambda r: seen.blocked.append(r.url))
    page.on("dialog", lambda d: (seen.dialogs.append(d.message), d.dismiss()))

    def route(r) -> None:
        if r.request.url == url:
            r.continue_()
        else:
            r.abort()

    page.route("**/*", route)
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    seen.sections = page.eval_on_selector_all("section", "s => s.map(e => e.id)")
    seen.images = page.eval_on_selector_all(
        "img",
        "s => s.map(i => ({complete: i.complete, width: i.naturalWidth, alt: i.alt, "
        "section: i.closest('section').id}))",
    )
    seen.text = page.inner_text("body")
    page.close()
    return seen


def check_clean(seen: Seen) -> None:
    assert seen.console == [] and seen.errors == [] and seen.dialogs == []
    assert len(seen.requests) == 1 and seen.blocked == []  # the file itself, nothing else
    assert seen.images and all(i["complete"] and i["width"] > 0 for i in seen.images)
    for name in CLASSES:  # shown as text, never run as markup
        assert name in seen.text


@pytest.fixture(scope="module")
def hostile_runs(tmp_path_factory):
    """A folder dataset (3 classes, 2 training and 2 validation videos each, file names with
    quotes), a one-epoch training run on it and its `evaluate --output`."""
    root = tmp_path_factory.mktemp("hostile")
    data = root / "data"
    rng = np.random.default_rng(0)
    for subset, n in (("train", 2), ("val", 2)):
        for c, (name, colour) in enumerate(zip(CLASSES, COLOURS, strict=True)):
            folder = data / subset / name
            folder.mkdir(parents=True)
            for i in range(n):
                frames = np.empty((8, 48, 64, 3), np.uint8)
                frames[:] = colour
                frames += rng.integers(0, 20, frames.shape, dtype=np.uint8)
                for t in range(8):  # a moving square: something to attend to
                    frames[t, 10:26, 4 + 5 * t : 20 + 5 * t] = 255 - 60 * c
                write_video(folder / f"clip \"{i}\" 'x'.mp4", list(frames), 8.0)
    run, evaluated = root / "run", root / "eval"
    common = ["--dataset", "folder", "--data-root", str(data), "--workers", "0",
              "--device", "cpu"]  # fmt: skip
    ispan("train", *common, "--arch", "istpan_tiny", "--pretrained", "none", "--segments", "2",
          "--input-size", "64", "--batch-size", "3", "--lr", "0.01", "--dropout", "0",
          "--epochs", "1", "--precise-bn", "0", "--quiet", "--output", str(run))  # fmt: skip
    ispan("evaluate", *common, "--model", str(run / "best"), "--output", str(evaluated))
    return run, evaluated


def test_train_report_renders_in_chromium(browser, hostile_runs) -> None:
    run, _ = hostile_runs
    seen = open_page(browser, run / "report.html")
    check_clean(seen)
    assert seen.sections == SECTIONS
    sheets = [i for i in seen.images if i["section"] == "attention"]
    assert len(sheets) == 3  # one validation clip per class (fewer than 4 classes)
    assert "ispan train --dataset folder" in seen.text


def test_evaluate_report_renders_in_chromium(browser, hostile_runs, tmp_path: Path) -> None:
    _, evaluated = hostile_runs
    seen = open_page(browser, evaluated / "report.html")
    check_clean(seen)
    assert seen.sections == [s if s != "curves" else "confusion-plot" for s in SECTIONS]
    assert any(i["alt"] == "Confusion matrix" for i in seen.images)
    # a validation video gone: its frame (if shown) and its attention say so, the page renders
    pages = open_page(browser, _without_a_video(evaluated, tmp_path))
    check_clean(pages)
    assert "attention not drawn: " in pages.text and ": no such file" in pages.text


def _without_a_video(evaluated: Path, tmp_path: Path) -> Path:
    """The evaluation folder again, with the first scored video moved away."""
    import json

    copy = tmp_path / "eval"
    shutil.copytree(evaluated, copy)
    first = json.loads((copy / "video_scores.jsonl").read_text().splitlines()[0])["video"]
    gone = Path(first)
    moved = tmp_path / "moved.mp4"
    shutil.move(gone, moved)
    try:
        out = ispan("report", str(copy))
        assert "wrote" in out.stderr
    finally:
        shutil.move(moved, gone)
    return copy / "report.html"


def test_hostile_labels_and_paths_stay_text_in_chromium(browser, tmp_path: Path) -> None:
    """A script as a class name, quotes and markup in a path, a missing video: no dialog, no
    script run, the names shown as they are."""
    from tests.engine.test_report_images import A, B, C, _eval_folder, _video

    red = _video(tmp_path / "a1.mp4", "red")
    green = _video(tmp_path / "x \"q\" 'y' <b>.mp4", "green")
    gone = str(tmp_path / "c1.mp4")
    rows = [(red, A, A), (green, A, B), (red, B, B), (gone, C, A)]
    folder = _eval_folder(tmp_path / "eval", rows, str(tmp_path / "no-model"))
    seen = open_page(browser, Path(ispan("report", str(folder)).stderr.split()[-1]))
    assert seen.errors == [] and seen.dialogs == [] and seen.console == []
    assert len(seen.requests) == 1 and seen.blocked == []
    assert all(i["complete"] and i["width"] > 0 for i in seen.images)
    assert A in seen.text and B in seen.text and green in seen.text
    assert f"frame missing: {gone}: no such file" in seen.text
