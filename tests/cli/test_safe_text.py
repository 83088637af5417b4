"""safe_text: whatever a role wrote, the terminal gets text: no control reaches it, no markup
is read."""

from __future__ import annotations

import io
import json
import re
import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from fleetbus._terminal import safe_json, safe_text

from .conftest import Invoke

HIDDEN = {"Cc", "Cf", "Cs", "Zl", "Zp"}
SGR = re.compile(r"\x1b\[[0-9;]*m")
"""rich's own styles: the only escape sequences a terminal may get."""

FRAGMENTS = ["[/]", "[link=https://evil.example]", "[bold]", "[/link]", ":smile:", "\\x1b"]
FRAGMENTS += ["\x1b]52;c;eA==\x07", "\x1b[2J", "\x9b31m", "\r", "\n", "\t", "\u202e", "\u2028"]
texts = st.lists(st.one_of(st.characters(exclude_categories=()), st.sampled_from(FRAGMENTS))).map(
    "".join
)
"""Any text (lone surrogates too: a JSON string may hold one), rich with markup and escapes."""


def hidden(ch: str, multiline: bool = False) -> bool:
    return unicodedata.category(ch) in HIDDEN and not (multiline and ch in "\n\t")


def rendered(text: str, *, multiline: bool = False, terminal: bool = False) -> str:
    out = io.StringIO()
    colours = "truecolor" if terminal else None
    console = Console(file=out, width=10_000, force_terminal=terminal, color_system=colours)
    console.print(safe_text(text, multiline=multiline), soft_wrap=True)
    return out.getvalue()


@given(texts, st.booleans())
def test_each_hidden_character_is_shown_as_its_python_escape(text: str, multiline: bool) -> None:
    expected = "".join(repr(ch)[1:-1] if hidden(ch, multiline) else ch for ch in text)
    assert safe_text(text, multiline=multiline).plain == expected


@given(texts, st.booleans())
def test_no_control_reaches_a_pipe_or_a_terminal(text: str, multiline: bool) -> None:
    piped = rendered(text, multiline=multiline)
    assert piped.endswith("\n")
    assert not [ch for ch in piped[:-1] if hidden(ch, multiline)], piped
    styled = SGR.sub("", rendered(text, multiline=multiline, terminal=True))
    assert not [ch for ch in styled[:-1] if hidden(ch, multiline)], styled


@given(texts.map(lambda text: "".join(ch for ch in text if not hidden(ch))))
def test_markup_is_shown_as_written(text: str) -> None:
    assert rendered(text) == text + "\n"


def test_an_attack_as_the_admin_sees_it() -> None:
    attack = "\x1b]0;title\x07[link=https://evil.example]re-auth[/link] \x1b[2J[/]\r\n"
    shown = r"\x1b]0;title\x07[link=https://evil.example]re-auth[/link] \x1b[2J[/]\r\n"
    assert rendered(attack) == shown + "\n"
    assert rendered(attack, multiline=True) == shown[:-2] + "\n\n"


def test_an_error_line_is_text(invoke: Invoke) -> None:
    result = invoke("tasks", "--since", "[/]x\x1b[2J")
    assert result.exit_code == 2
    assert result.stderr.startswith(r"error: --since: '[/]x\x1b[2J' is not a duration")


values = st.recursive(
    st.none() | st.booleans() | st.integers() | texts,
    lambda inner: st.lists(inner) | st.dictionaries(texts, inner),
    max_leaves=10,
)


@given(values, st.sampled_from([None, 2]))
def test_json_output_is_exact_and_inert(value: object, indent: int | None) -> None:
    document = safe_json(json.dumps(value, indent=indent, ensure_ascii=False))
    assert json.loads(document) == value
    assert not [ch for ch in document if hidden(ch) and ch != "\n"], document
