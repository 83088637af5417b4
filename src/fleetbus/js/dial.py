"""Reaching a server the first time: nats-py's first connection, given up on time or as soon as
every server has said no in a way waiting will not change, and what a failure says to do."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client
from nats.errors import NoServersError

__all__ = ["failure", "first_connection", "given_up", "hint", "refused_login"]


def refused_login(error: str) -> bool:
    """Whether nats-py's ``error`` is the server refusing the login (``'Authorization
    Violation'``: the credentials are wrong, and trying again will not change that). Not
    ``'Authorization Timeout'``: a client too slow to log in, which may do better next time."""
    return "authorization violation" in error.lower()


_TRIED_AGAIN = (
    TimeoutError,
    ssl.SSLError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
)
"""What the next try may not meet: a slow network or server, a connection that a server (one
restarting, one at its connection limit) took and dropped, and a TLS failure, whose own error
says more after the handshake's retries than a guess here would."""


def given_up(exc: Exception) -> bool:
    """Whether a first connection's attempt on one server failed in a way that trying it
    again within the connect timeout will not change: the login refused, or nothing taking
    the connection there (refused on every address of the host, no such host, no route)."""
    if refused_login(str(exc)):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, _TRIED_AGAIN)


async def first_connection(
    options: dict[str, Any], hopeless: asyncio.Future[None], timeout: float
) -> Client:
    """nats-py's first connection. With reconnect-forever nats-py retries it forever too: it
    is given up after ``timeout``, or as soon as ``hopeless`` is set (every server failed in
    a way nats-py would retry until then to no end: ``given_up``), with ``TimeoutError``
    either way; the client given up on is closed."""
    nc = Client()
    attempt = asyncio.ensure_future(nc.connect(**options))
    try:
        await asyncio.wait(
            (attempt, hopeless), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
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


def failure(exc: Exception, errors: Sequence[str], hopeless: bool, timeout: float) -> str:
    """Why the first connection failed with ``exc``, from what nats-py reported meanwhile
    (``errors``); ``hopeless``: every server failed in a way waiting would not change."""
    if not isinstance(exc, NoServersError | TimeoutError):
        return hint(str(exc) or type(exc).__name__)
    # The server refusing the login says more than the reset that follows it.
    refusals = [e for e in errors if refused_login(e)]
    said = (refusals or list(errors) or ["is --server right?"])[-1]
    if hopeless and refusals:
        return hint(f"the server refused the login ({said})")
    if hopeless:
        return (
            f"no server took the connection ({said}): is `fleetbus up` running, or is"
            " --server right?"
        )
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
