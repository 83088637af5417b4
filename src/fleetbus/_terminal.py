"""Text the fleet's roles wrote, made safe to show in the admin's terminal.

What the admin's tools print (a task's message, an error, a dead letter's body and headers, an
agent's presence record) was written by a role, and any role may be prompt-injected. Printed
as it is, such text is a channel into the admin's terminal: an escape sequence sets the
window title, writes the clipboard (OSC 52), clears the screen or hides a line; rich markup
(``[link=...]``) becomes a hyperlink, and a stray ``[/]`` makes rich raise. :func:`safe_text`
is the one way the CLI shows such text: a ``rich.text.Text``, never parsed as markup, with
every character that is not printed as itself replaced by a visible escape.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator

from rich.text import Text

__all__ = ["ESCAPE_STYLE", "safe_json", "safe_text", "visible"]

ESCAPE_STYLE = "reverse"
"""How an escape stands out from text in a terminal (as ``less`` shows control characters);
in a pipe it is plain text."""

_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Unicode categories not printed as themselves: controls (C0, DEL, C1: ESC, CSI, OSC, BEL,
CR, ...), format characters (bidirectional overrides, zero-width characters, tag characters:
text that reorders or hides what the admin reads), lone surrogates (a JSON string may hold
one; writing it to a UTF-8 terminal raises) and the line and paragraph separators."""

_NOT_ASCII_TEXT = re.compile(r"[^\x20-\x7e]+")
"""Runs of characters that may be hidden; printable ASCII never is (the fast path)."""

_NOT_ASCII = re.compile(r"[^\x00-\x7e]+")
"""What may be hidden in a JSON document: its C0 characters are escapes or its own layout."""


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _hidden(ch: str, multiline: bool) -> bool:
    if multiline and ch in "\n\t":
        return False
    return unicodedata.category(ch) in _HIDDEN


def safe_text(value: object, *, multiline: bool = False, style: str = "") -> Text:
    """``value`` (``str()`` of it, if not text) as a ``Text`` safe to print to a terminal.

    Never parsed as rich markup: ``[/]`` and ``[link=...]`` are shown as written. Every
    control character (C0, DEL, C1), format character, lone surrogate and line separator is
    replaced by its Python escape, ``\\x1b`` / ``\\r`` / ``\\u202e`` / ``\\U000e0041``, in
    :data:`ESCAPE_STYLE`: an escape rather than U+FFFD because it says which character was
    there (what an admin looking at an attack wants to know), and it is still one line and
    plain ASCII. A literal ``\\x1b`` in the text looks the same: it is shown, never obeyed,
    which is what matters. With ``multiline`` (a body, a traceback) newlines and tabs are
    kept; a carriage return never is (it would let a line overwrite the one before).
    """
    text = value if isinstance(value, str) else str(value)
    out = Text(style=style)
    for piece, escaped in _pieces(text, multiline):
        out.append(piece, ESCAPE_STYLE if escaped else None)
    return out


def visible(text: str, *, multiline: bool = False) -> str:
    """``text`` with the characters :func:`safe_text` escapes written as those escapes, as a
    plain string (for a log line: a role's text in a handler's error reaches whoever reads the
    agent's log in a terminal)."""
    return "".join(piece for piece, _ in _pieces(text, multiline))


def _pieces(text: str, multiline: bool) -> Iterator[tuple[str, bool]]:
    """``text`` as runs of characters shown as themselves, and escapes (True)."""
    start = 0
    for run in _NOT_ASCII_TEXT.finditer(text):
        for offset, ch in enumerate(run.group(), run.start()):
            if _hidden(ch, multiline):
                yield text[start:offset], False
                yield _escape(ch), True
                start = offset + 1
    yield text[start:], False


def _json_escapes(run: re.Match[str]) -> str:
    return "".join(
        json.dumps(ch)[1:-1] if unicodedata.category(ch) in _HIDDEN else ch for ch in run.group()
    )


def safe_json(document: str) -> str:
    """A JSON document (``json.dumps(..., ensure_ascii=False)``) with each hidden character
    in its strings written as a JSON escape (``\\u009b``, ``\\ud800``): the same JSON to a
    program, inert in a terminal. ``json.dumps`` escapes the C0 controls itself, not DEL, C1,
    format characters or lone surrogates (which stdout cannot even encode)."""
    return _NOT_ASCII.sub(_json_escapes, document)
