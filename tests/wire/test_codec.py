"""The JSON codec: a body is one JSON object, compact UTF-8; every refusal is a PayloadError."""

from __future__ import annotations

import json
import math
from datetime import datetime
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetbus.errors import PayloadError
from fleetbus.wire.answers import parse_answer
from fleetbus.wire.codec import decode, encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)


@given(json_objects)
def test_round_trip(body: dict[str, Any]) -> None:
    assert decode(encode(body)) == body


@given(json_objects)
def test_encoding_is_compact_utf8_json(body: dict[str, Any]) -> None:
    raw = encode(body)
    assert json.loads(raw.decode("utf-8")) == body
    assert raw == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@given(json_objects)
def test_a_body_exactly_at_max_payload_fits(body: dict[str, Any]) -> None:
    size = len(encode(body))
    assert encode(body, max_payload=size) == encode(body)
    with pytest.raises(PayloadError, match=f"body is {size} bytes"):
        encode(body, max_payload=size - 1)


def test_seed_task_body() -> None:
    body = {
        "task_id": "task-001",
        "title": "Implement pagination for /api/users",
        "context": {"spec_url": "/docs/api/users-pagination.md", "related_pr": "#142"},
    }
    assert decode(encode(body)) == body
    assert encode({"a": 1, "b": [1, 2]}) == b'{"a":1,"b":[1,2]}'
    assert encode({"name": "Zoë"}) == '{"name":"Zoë"}'.encode()


def test_any_mapping_is_a_body() -> None:
    assert encode(MappingProxyType({"a": 1})) == b'{"a":1}'


@pytest.mark.parametrize(
    ("body", "kind"), [([1, 2], "list"), ("text", "str"), (None, "NoneType"), (3, "int")]
)
def test_encode_refuses_non_objects(body: Any, kind: str) -> None:
    with pytest.raises(PayloadError, match="must be a JSON object") as info:
        encode(body)
    assert kind in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_refuses_nan_and_infinity(value: float) -> None:
    with pytest.raises(PayloadError, match="not JSON-serialisable"):
        encode({"score": value})


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "[1, NaN]"])
def test_decode_refuses_nan_and_infinity(text: str) -> None:
    """Python's json takes them; they are not JSON, and a role's record holding one reached
    the admin's MCP tools, which wrote it back out as text no JSON parser takes."""
    with pytest.raises(PayloadError, match="is not JSON"):
        decode(f'{{"percent": {text}}}'.encode())


@pytest.mark.parametrize("text", ["1e400", "-1E999", "[0.5, 2e308]"])
def test_decode_refuses_numbers_beyond_a_float(text: str) -> None:
    """Python's json reads them as infinity, past the NaN check: re-encoded by the admin's
    tools, they came out as ``Infinity``."""
    with pytest.raises(PayloadError, match="beyond the range of a float"):
        decode(f'{{"percent": {text}}}'.encode())
    assert decode(b'{"percent": 1.7e308, "small": 1e-400}') == {"percent": 1.7e308, "small": 0.0}


def _refused(constant: str) -> None:
    raise ValueError(constant)


def _finite(number: str) -> float:
    if math.isinf(value := float(number)):
        raise ValueError(number)
    return value


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"when": datetime(2026, 5, 10)}, "datetime"),
        ({"obj": object()}, "object"),
        ({"nested": {"s": {1, 2}}}, "set"),
        ({(1, 2): "tuple key"}, "tuple"),
        ({"raw": b"bytes"}, "bytes"),
    ],
)
def test_encode_refuses_what_json_cannot_hold(body: dict[Any, Any], named: str) -> None:
    with pytest.raises(PayloadError, match="not JSON-serialisable") as info:
        encode(body)
    assert named in str(info.value)


def test_a_body_that_holds_itself_is_refused_and_the_next_one_encodes() -> None:
    body: dict[str, Any] = {"task": "t-1", "path": []}
    body["path"].append(body)
    with pytest.raises(PayloadError, match="holds itself"):
        encode(body)
    # Nothing of the failed encode is left behind for the next (an encoder that kept the
    # objects it was inside would take a new one at the same address for a loop).
    body["path"].clear()
    assert encode(body) == b'{"task":"t-1","path":[]}'


def test_encode_refuses_oversize() -> None:
    body = {"diff": "x" * 2000}
    with pytest.raises(PayloadError) as info:
        encode(body, max_payload=1024)
    assert "2011 bytes" in str(info.value)
    assert "max_payload of 1024 bytes" in str(info.value)


def test_oversize_counts_bytes_not_characters() -> None:
    body = {"s": "é" * 10}  # {"s":""} is 8 bytes; 10 characters add 20 more
    assert len(encode(body)) == 28
    with pytest.raises(PayloadError, match="body is 28 bytes"):
        encode(body, max_payload=27)


def test_encode_refuses_lone_surrogates() -> None:
    with pytest.raises(PayloadError):
        encode({"text": "\ud800"})


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b'{"a": }', "line 1 column 7"),
        (b'{\n  "a": 1,\n  "b": ,\n}', "line 3 column 8"),
        (b"", "line 1 column 1"),
        (b"{'a': 1}", "line 1 column 2"),
        (b'{"a": 1} trailing', "line 1 column 10"),
    ],
)
def test_decode_invalid_json_says_where(raw: bytes, where: str) -> None:
    with pytest.raises(PayloadError, match="body is not JSON") as info:
        decode(raw)
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"[1, 2]", "list"), (b'"text"', "str"), (b"null", "NoneType"), (b"42", "int")],
)
def test_decode_refuses_non_objects(raw: bytes, kind: str) -> None:
    with pytest.raises(PayloadError, match="must be a JSON object") as info:
        decode(raw)
    assert kind in str(info.value)


def test_decode_refuses_invalid_utf8() -> None:
    with pytest.raises(PayloadError, match=r"not UTF-8 \(byte 6\)"):
        decode(b'{"a":"\xff"}')


def test_decode_accepts_a_plain_nats_pub_body() -> None:
    # what `nats pub genbrain.agents.backend.tasks '{...}'` sends: pretty, with spaces
    raw = b'{\n  "task_id": "task-001",\n  "priority": "high"\n}'
    assert decode(raw) == {"task_id": "task-001", "priority": "high"}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        ('{"a": 1}'.encode("utf-32-le"), "not JSON"),
    ],
)
def test_decode_takes_utf8_only(raw: bytes, error: str) -> None:
    # json.loads on bytes would take each of these: the wire contract says UTF-8
    with pytest.raises(PayloadError, match=error):
        decode(raw)


def test_decode_lets_a_utf8_byte_order_mark_pass() -> None:
    # what PowerShell's `Set-Content -Encoding utf8` writes before the text
    assert decode('{"a": "ü"}'.encode("utf-8-sig")) == {"a": "ü"}


@given(
    st.binary(max_size=64)
    | st.from_regex(rb"\A\s*\{.{0,40}\}\s*\Z")
    | st.from_regex(rb"\A\{.{0,40}\}.{0,4}\Z")
    | st.builds(
        lambda before, body, after: before + json.dumps(body).encode() + after,
        st.sampled_from([b"", b" ", b"\n", b"\xef\xbb\xbf"]),
        json_objects,
        st.sampled_from([b"", b" ", b"\r\n", b"x", b"}", b"{}"]),
    )
)
def test_decode_takes_what_json_takes_from_utf8_text(raw: bytes) -> None:
    try:
        text = raw.decode().removeprefix("\ufeff")
        expected = json.loads(text, parse_constant=_refused, parse_float=_finite)
    except json.JSONDecodeError as exc:  # said where, as the whole decoder says it
        with pytest.raises(PayloadError) as refused:
            decode(raw)
        assert f"at line {exc.lineno} column {exc.colno}" in str(refused.value)
        return
    except (UnicodeDecodeError, ValueError):
        with pytest.raises(PayloadError):
            decode(raw)
        return
    if isinstance(expected, dict):
        assert decode(raw) == expected
    else:
        with pytest.raises(PayloadError, match="must be a JSON object"):
            decode(raw)


@pytest.mark.parametrize("text", ['{"verdict": NaN}', "Infinity", "[1, -Infinity]"])
def test_an_answer_with_nan_or_infinity_is_not_an_answer(text: str) -> None:
    """An agent answered with NaN: the asker took it, and `fleetbus ask` and the MCP ask tool
    wrote it back out as text no JSON parser takes."""
    with pytest.raises(PayloadError, match="the answer is not JSON"):
        parse_answer(text.encode(), {"Fleet-Status": "ok"})
    assert parse_answer(b'{"verdict": 1.5}', {"Fleet-Status": "ok"}) == (True, {"verdict": 1.5})
