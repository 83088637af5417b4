"""Answers to asks: the body is the handler's JSON value; ``Fleet-Status`` says ok or error.

    ok:    headers {Fleet-Status: ok}                          body: the value as JSON
    error: headers {Fleet-Status: error, Fleet-Error: text}    body: {"error": text}

A reply without ``Fleet-Status`` is not an answer (a stream's PubAck, say) and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fleetbus.errors import PayloadError
from fleetbus.wire import headers as h
from fleetbus.wire.codec import compact, decode_value

__all__ = ["encode_answer", "encode_error", "parse_answer"]


def encode_answer(value: Any) -> tuple[bytes, dict[str, str]]:
    try:
        data = compact(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"the answer is not JSON-serialisable: {exc}") from None
    return data.encode(), {h.STATUS: "ok"}


def encode_error(error: str) -> tuple[bytes, dict[str, str]]:
    text = " ".join(error.split())[:2000]
    return json.dumps({"error": text}).encode(), {h.STATUS: "error", h.ERROR: text}


def parse_answer(data: bytes, headers: Mapping[str, str] | None) -> tuple[bool, Any]:
    """``(True, value)`` for an answer, ``(False, error text)`` for an error answer."""
    status = (headers or {}).get(h.STATUS)
    if status == "error":
        return False, (headers or {}).get(h.ERROR, "unknown error")
    if status != "ok":
        raise PayloadError("the reply is not a fleetbus answer (no Fleet-Status header)")
    if not data:
        return True, None
    try:
        return True, decode_value(data)  # NaN and Infinity are not JSON either
    except PayloadError as exc:
        raise PayloadError(f"the answer is not JSON: {exc}") from None
