"""Input expansion: files, folders, globs and stdin lists become video paths, lazily."""

from __future__ import annotations

import io

from ispan_cli.inference.inputs import InputItem, expand_inputs


def _tree(root):
    (root / "a" / "deep").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for rel in ["a/x.mp4", "a/deep/y.AVI", "a/notes.md", "b.mkv", ".hidden/z.mp4", "c.webm"]:
        (root / rel).write_bytes(b"\0")
    return root


def test_folders_are_searched_recursively_by_extension(tmp_path):
    root = _tree(tmp_path)
    got = [i.path for i in expand_inputs([str(root)])]
    assert got == [str(root / p) for p in ["a/deep/y.AVI", "a/x.mp4", "b.mkv", "c.webm"]]


def test_globs_files_and_missing_paths(tmp_path):
    root = _tree(tmp_path)
    got = list(
        expand_inputs(
            [str(root / "**" / "*.mp4"), str(root / "a" / "notes.md"), str(root / "missing.mp4")]
        )
    )
    assert got == [
        InputItem(str(root / "a" / "x.mp4")),
        InputItem(str(root / "a" / "notes.md")),  # named explicitly: used as is
        InputItem(str(root / "missing.mp4")),
    ]  # the decoder reports it


def test_inputs_that_name_no_video_become_error_items(tmp_path):
    (tmp_path / "empty").mkdir()
    got = list(expand_inputs([str(tmp_path / "empty"), str(tmp_path / "*.nothing")]))
    assert [i.error is not None for i in got] == [True, True]
    assert "holds no video files" in got[0].error
    assert "matches no files" in got[1].error


def test_stdin_list_is_read_lazily(tmp_path):
    root = _tree(tmp_path)

    class Lines:
        """A text stream that counts the lines handed out."""

        consumed = 0

        def __init__(self, text):
            self.lines = io.StringIO(text).readlines()

        def __iter__(self):
            for line in self.lines:
                Lines.consumed += 1
                yield line

    stdin = Lines(f"{root / 'b.mkv'}\n\n{root / 'a'}\n{root / 'c.webm'}\n")
    items = expand_inputs(["-"], stdin=stdin)
    assert next(items).path == str(root / "b.mkv")
    assert Lines.consumed == 1  # the rest is not read until needed
    rest = [i.path for i in items]
    assert rest == [str(root / "a/deep/y.AVI"), str(root / "a/x.mp4"), str(root / "c.webm")]
