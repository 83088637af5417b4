"""Helpers for the dashboard's tests."""

from __future__ import annotations

import asyncio
import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def http_get(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    read: bool = True,
) -> Answer:
    """One request, no redirects followed; ``read=False`` for a stream (headers only)."""

    def request() -> Answer:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            conn.request(method, path or "/", body=body, headers=headers or {})
            response = conn.getresponse()
            got = response.read() if read or response.status != 200 else b""
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, got)
        finally:
            conn.close()

    return await asyncio.to_thread(request)
