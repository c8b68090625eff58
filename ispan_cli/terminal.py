"""Untrusted text on a terminal: file names, model labels, server and decoder messages.

A file name or a label can hold escape sequences (clear the screen, set the window title, hide
a hyperlink), a newline that forges a second ``error:`` line, Unicode direction overrides that
reorder what is shown, or rich markup (``[bold red]``, ``[/]``, which even crashes a table).
Everything printed *for people* goes through :func:`visible` (control characters shown as
escapes such as ``\\x1b``) and, where rich renders it, :func:`markup` or :func:`text`. JSON and
CSV output stays exact: machines get the bytes as they are.

Imports nothing heavy: rich is imported only by the functions that return rich objects.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the invisible formatting characters that reorder or hide text
# (bidirectional overrides and isolates, zero-width characters, the BOM).
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _show(match: re.Match) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, limit: int | None = None) -> str:
    """``value`` as one line of plain text with every control character made visible;
    ``limit``: at most this many characters (an ellipsis marks the cut)."""
    shown = _HIDDEN.sub(_show, str(value))
    if limit is not None and len(shown) > limit:
        shown = shown[: max(limit - 1, 0)] + "…"
    return shown


def one_line(value: object) -> str:
    """A message for an ``error:`` or ``warning:`` line: whitespace runs (newlines included)
    become one space, other control characters are made visible."""
    return visible(" ".join(str(value).split()))


def markup(value: object, limit: int | None = None) -> str:
    """:func:`visible`, with rich markup escaped: safe inside an f-string that rich renders."""
    from rich.markup import escape

    return escape(visible(value, limit))


def text(value: object, style: str = "", limit: int | None = None):
    """A rich ``Text`` of :func:`visible` (never parsed as markup): for table cells, titles."""
    from rich.text import Text

    return Text(visible(value, limit), style=style)
