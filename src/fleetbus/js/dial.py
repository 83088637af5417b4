"""Reaching a server the first time: whether anything listens there, nats-py's first
connection given up on time or on a refused login, and what a failure says to do."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from nats.aio.client import Client
from nats.errors import NoServersError

from fleetbus.errors import ConnectError

__all__ = ["failure", "first_connection", "hint", "reachable", "refused_login"]


def refused_login(error: str) -> bool:
    """Whether nats-py's ``error`` is the server refusing the login (``'Authorization
    Violation'``: the credentials are wrong, and trying again will not change that). Not
    ``'Authorization Timeout'``: a client too slow to log in, which may do better next time."""
    return "authorization violation" in error.lower()


async def reachable(servers: Sequence[str], timeout: float, shown: str) -> None:
    """Fail fast, with the real reason, when no server even accepts a TCP connection
    (``shown``: the servers as an error may name them, without credentials)."""
    reasons: list[str] = []
    for url in servers:
        split = urlsplit(url)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(split.hostname, split.port or 4222), timeout=timeout
            )
        except ConnectionRefusedError:
            reasons.append(f"{split.hostname}:{split.port} refused the connection")
            continue
        except (OSError, TimeoutError) as exc:
            reasons.append(f"{split.hostname}:{split.port}: {exc or 'timed out'}")
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise ConnectError(
        shown, f"{'; '.join(reasons)} (is `fleetbus up` running, or is --server right?)"
    )


async def first_connection(
    options: dict[str, Any], refused: asyncio.Future[None], timeout: float
) -> Client:
    """nats-py's first connection. With reconnect-forever nats-py retries it forever too: it
    is given up after ``timeout``, or as soon as ``refused`` is set (every server refused the
    login, which nats-py would retry until then), with ``TimeoutError`` either way; the
    client given up on is closed."""
    nc = Client()
    attempt = asyncio.ensure_future(nc.connect(**options))
    try:
        await asyncio.wait((attempt, refused), timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not attempt.done():
            attempt.cancel()
            with contextlib.suppress(BaseException):
                await attempt
            with contextlib.suppress(Exception):
                await nc.close()
    if attempt.cancelled():
        raise TimeoutError
    attempt.result()  # nats-py's own error, if it gave up itself
    return nc


def failure(exc: Exception, errors: Sequence[str], refused: bool, timeout: float) -> str:
    """Why the first connection failed with ``exc``, from what nats-py reported meanwhile
    (``errors``); ``refused``: every server refused the login."""
    if not isinstance(exc, NoServersError | TimeoutError):
        return hint(str(exc) or type(exc).__name__)
    # The server refusing the login says more than the reset that follows it.
    refusals = [e for e in errors if refused_login(e)]
    said = (refusals or list(errors) or ["is --server right?"])[-1]
    if refused:
        return hint(f"the server refused the login ({said})")
    if refusals:
        return hint(f"the server refused the login, tried for {timeout:g}s ({said})")
    return hint(f"no server answered within {timeout:g}s ({said})")


def hint(reason: str) -> str:
    """``reason``, with what to do about a refused login."""
    if refused_login(reason) or "authentication" in reason.lower():
        return (
            f"{reason}. The server wants credentials: --user/--password (FLEETBUS_USER,"
            " FLEETBUS_PASSWORD) or --creds (FLEETBUS_CREDS); `fleetbus creds ROLE` prints a"
            " role's login for the server `fleetbus up` runs (kept in .fleetbus/auth/)"
        )
    return reason
