"""JSON bodies: a body on the wire is one JSON object, UTF-8, compact."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fleetbus.errors import PayloadError

__all__ = ["compact", "decode", "decode_value", "encode", "mistyped", "shown", "typed"]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
"""Made once: ``json.dumps`` with these options builds an encoder per call."""


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if value in _INFINITE:
        raise ValueError(f"{number} is beyond the range of a float (it would read as Infinity)")
    return value


_INFINITE = (float("inf"), float("-inf"))
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite)
"""``json.loads``'s own, called on text: ``loads`` on bytes first guesses among UTF-8, -16
and -32 (a body is UTF-8; a leading byte order mark, as some Windows tools write, is let
pass as before), in twice the time. ``NaN`` and ``Infinity`` are refused, as encoding
refuses them, and so is a number beyond a float's range (``1e400``: Python reads it as
infinity, which encodes as ``Infinity``): they are not JSON, and a record holding one
would reach the readers that re-encode it (the admin's MCP tools, the dashboard) as text
their JSON parsers refuse."""
_SCAN: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]
"""The C scanner ``_DECODER.decode`` calls between its whitespace searches: a body as
fleetbus and other clients write it has no whitespace around it, and is then decoded in
0.8 instead of 1.3 µs (a meeting line)."""


def _unknown(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_MAKE_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # None without C speedups
_C_ENCODE: Callable[[Any, int], list[str]] | None = (
    _MAKE_C_ENCODER(
        None, _unknown, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _MAKE_C_ENCODER is not None
    else None
)
"""``_ENCODER``'s C encoder, made once (``JSONEncoder.encode`` makes one per call): 0.7 µs
of the 2.6 a task update takes. It keeps no markers for loops, which it would have to
empty after an error; a value that holds itself ends in ``RecursionError`` instead."""


def compact(value: Any) -> str:
    """``value`` as compact JSON, NaN refused (``TypeError`` / ``ValueError`` for what JSON
    cannot hold)."""
    if _C_ENCODE is None:  # Python without json's C speedups
        return _ENCODER.encode(value)
    try:
        return "".join(_C_ENCODE(value, 0))
    except RecursionError:
        raise ValueError("it holds itself, or is nested too deeply") from None


def encode(body: Mapping[str, Any], *, max_payload: int | None = None) -> bytes:
    """Encode ``body`` as compact JSON; refuse non-objects, NaN, unknown types, oversize."""
    if not isinstance(body, Mapping):
        raise PayloadError(f"a body must be a JSON object (a dict), got {type(body).__name__}")
    try:
        raw = compact(body if isinstance(body, dict) else dict(body)).encode()
    except UnicodeEncodeError as exc:
        raise PayloadError(f"body has text that is not valid Unicode: {exc.reason}") from None
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"body is not JSON-serialisable: {exc}") from None
    if max_payload is not None and len(raw) > max_payload:
        raise PayloadError(
            f"body is {len(raw)} bytes, over the server's max_payload of {max_payload} bytes"
        )
    return raw


def decode(raw: bytes) -> dict[str, Any]:
    """Decode a body; raise ``PayloadError`` saying where it is not a JSON object."""
    value = decode_value(raw)
    if not isinstance(value, dict):
        raise PayloadError(f"body must be a JSON object, got {type(value).__name__}")
    return value


def decode_value(raw: bytes) -> Any:
    """Decode any JSON value (an answer's); ``PayloadError`` saying where it is not JSON."""
    try:
        text = raw.decode()
        if text[:1] == "\ufeff":
            text = text[1:]
        try:  # the C scanner alone, for the usual body with nothing around it
            value, end = _SCAN(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # whitespace around it, or not JSON: the decoder says which
            value = _DECODER.decode(text)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise PayloadError("body is nested too deeply to decode") from None
    except ValueError as exc:  # a 5,000-digit integer, say: Python's int_max_str_digits
        raise PayloadError(f"body cannot be decoded: {exc}") from None
    return value


def fields_said(record: Any, names: Iterable[str]) -> dict[str, Any]:
    """``record``'s fields among ``names`` that say something (not None, not empty text): what a
    record carries on the wire. Field by field, not ``dataclasses.asdict``, which deep-copies
    every value for a dict that is encoded at once."""
    return {k: v for k in names if (v := getattr(record, k)) is not None and v != ""}


def typed(value: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a decoded JSON ``value`` is one of ``kinds``: exactly (a bool is not a number
    here, though Python's ``bool`` is an ``int``)."""
    return type(value) in kinds


def mistyped(body: Mapping[str, Any], types: Mapping[str, tuple[type, ...]]) -> str | None:
    """The first field of ``body`` (a record someone else wrote) that ``types`` names and its
    value is not one of them (``typed``); None when each present one is."""
    for key, value in body.items():  # a loop, not a generator's frame per field: read per record
        kinds = types.get(key)
        if kinds is not None and not typed(value, kinds):
            return key
    return None


def shown(value: Any, limit: int) -> Any:
    """A decoded JSON ``value`` as it is, or when its JSON text is longer than ``limit``
    characters, the start of that text and an ellipsis: what someone else wrote, where its
    size is not theirs to choose (a megabyte list of empty objects decodes to twenty times
    its size)."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    )
    return value if len(text) <= limit else text[:limit] + "..."
