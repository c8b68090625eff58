"""Keeping native libraries' console output off the terminal, and reading it back.

onnxruntime and FFmpeg log from C++ straight to file descriptor 2; the doctor, the ONNX runtime
and int8 quantization all need that silenced and, for a provider that did not start, the reason
picked out of the log. Imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def quiet_native_output(sink: list[str] | None = None) -> Iterator[None]:
    """Keeps what libraries print (C++ logs on fd 2, Python prints) off the terminal.

    The text is appended to ``sink`` as one string when given. Redirects the file descriptors,
    not only ``sys.stdout``/``sys.stderr``, because onnxruntime and FFmpeg log from C++.
    """
    buffer = io.StringIO()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile() as tmp:
        saved: list[tuple[int, int]] = []
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(tmp.fileno(), fd)
            except OSError:  # no such descriptor (e.g. a daemon): nothing to silence there
                pass
        try:
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                yield
        finally:
            for fd, copy in saved:
                os.dup2(copy, fd)
                os.close(copy)
            if sink is not None:
                tmp.seek(0)
                sink.append(tmp.read().decode("utf-8", "replace") + buffer.getvalue())


def ort_failure_reason(text: str) -> str:
    """What onnxruntime's log says about why a provider did not start, in one short line."""
    text = _ANSI.sub("", text)
    library = re.search(r"with error: ([^\n]+)", text)  # the shared library that failed to load
    needs = re.search(r"(Require [^\n]+?)\.(?:\s|$)", text)  # e.g. cuDNN 9.* and CUDA 13.*
    if library or needs:
        return "; ".join(m.group(1).strip() for m in (library, needs) if m)
    other = re.search(r"(Please install [^\n,]+)|EP Error ([^\n]+)", text)
    return (other.group(1) or other.group(2)).strip() if other else ""
