"""Test your agents against a real nats-server: fixtures for pytest, a context manager for
everything else.

Installed with fleetbus, the pytest plugin (``fleetbus.testing.plugin``) gives every test
session these fixtures:

- ``nats_server`` (session): a ``NatsServer`` with JetStream on free loopback ports in a
  temporary directory; ``nats_server.url`` is what to connect to.
- ``nats_url`` (function): that url.

Outside pytest::

    with run_nats_server(tmpdir) as server:
        nc = await nats.connect(server.url)

This module imports nothing heavy until it is used: pytest loads the plugin in every project
that has fleetbus installed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetbus.server.process import NatsServer

__all__ = ["eventually", "run_nats_server"]


@contextmanager
def run_nats_server(
    tmpdir: str | Path, *, timeout: float = 10.0, grace: float = 10.0, **kwargs: Any
) -> Iterator[NatsServer]:
    """A started ``NatsServer`` in ``tmpdir`` on free loopback ports, stopped on exit
    (SIGTERM, then SIGKILL after ``grace`` seconds).

    ``kwargs`` go to :class:`~fleetbus.server.NatsServer` (``spec``, ``port``, ...).
    """
    from fleetbus.server.process import NatsServer

    kwargs.setdefault("host", "127.0.0.1")
    kwargs.setdefault("port", 0)
    server = NatsServer(data_dir=tmpdir, **kwargs)
    server.start(timeout)
    try:
        yield server
    finally:
        server.stop(grace)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
    """Check ``check`` until it is true (every 50 ms); an ``AssertionError`` naming ``what``
    after ``timeout`` seconds. For state another process changes, where there is no event
    to wait on."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = check()
                if asyncio.iscoroutine(value):
                    value = await value
                if value:
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what} did not happen within {timeout:g}s") from None
