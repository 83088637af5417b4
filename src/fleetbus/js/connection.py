"""How fleetbus connects to NATS: settings, and a connection for processes that run for weeks.

nats-py's defaults suit short scripts: it gives up reconnecting after 60 attempts (about two
minutes) and then closes silently. An agent must ride out a server restart or a leader
election, so a ``Connection`` reconnects forever, tells whoever registered on a reconnect
(consume loops re-issue their polls: the server forgets pull requests across one), and
remembers what the server refused it: nats-py reports a refusal only through ``error_cb``
and lets the request time out, so a timeout can then say why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import NoServersError

from fleetbus.errors import ConnectError, PermissionDenied
from fleetbus.js._natspy import (
    direct_replies,
    end_refused_requests,
    fast_headers,
    lean_flush_queue,
    lean_nuid,
    whole_size_checked,
    write_pending,
)
from fleetbus.js.dial import failure, first_connection, given_up, hint
from fleetbus.telemetry import METRICS

__all__ = ["ConnectSettings", "Connection", "connect", "unsubscribe"]

log = logging.getLogger("fleetbus.js.connection")

DEFAULT_URL = "nats://127.0.0.1:4222"

_VIOLATION = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"', re.I)
Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True, kw_only=True, slots=True)
class ConnectSettings:
    """Where and as whom to connect. Secrets never appear in ``repr``."""

    servers: tuple[str, ...] = (DEFAULT_URL,)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    name: str = "fleetbus"
    inbox_prefix: str = "_INBOX"
    identity: str | None = None
    """The fleet role whose credentials these are; None for the admin or no auth. A role
    identity cannot run the dead-letter copier (it may not read other roles' messages)."""
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ConnectSettings:
        """Settings from ``nats://[user:password@]host:port[,nats://host2:port ...]``.

        Credentials in the URL are moved into fields so they are never logged with it.
        """
        servers: list[str] = []
        user = password = None
        for part in (p.strip() for p in url.split(",")):
            if not part:
                continue
            if "://" not in part:
                part = f"nats://{part}"
            split = urlsplit(part)
            if split.scheme not in ("nats", "tls", "ws", "wss"):
                raise ConnectError(part, f"unsupported scheme {split.scheme!r}; use nats://")
            if split.username:
                user = unquote(split.username)
                password = unquote(split.password) if split.password else None
            host = split.hostname or "127.0.0.1"
            port = split.port or 4222
            servers.append(f"{split.scheme}://{host}:{port}")
        if not servers:
            raise ConnectError(url, "no server address given")
        settings = cls(servers=tuple(servers), user=user, password=password)
        return replace(settings, **options) if options else settings

    @property
    def display_url(self) -> str:
        return ",".join(self.servers)


class Connection:
    """One NATS connection (``nc``, the nats-py client) and what the server refused it.

    Made by ``connect``; ``Connection.wrap`` adopts a client made elsewhere (its refusals are
    then unknown: a refused request only times out)."""

    def __init__(self, nc: Client, settings: ConnectSettings | None = None) -> None:
        self.nc = nc
        self.settings = settings
        self._refused: set[tuple[str, str]] = set()
        self._hooks: list[Hook] = []
        self._lost_hooks: list[Callable[[str], None]] = []
        self._closing = False
        self.lost: str | None = None
        """Why the connection closed for good without ``close()``/``drain()`` (nats-py closes
        after some protocol errors, whatever its reconnect settings); None while it has not."""
        self.breaks = 0
        """How many times the connection dropped (each one may have lost core messages to
        its subscriptions). Counted only for connections ``connect`` made (``tracks_breaks``)."""

    @classmethod
    def wrap(cls, nc: Client) -> Connection:
        return cls(nc)

    @property
    def tracks_breaks(self) -> bool:
        return self.settings is not None

    @property
    def identity(self) -> str | None:
        """The fleet role this connection logged in as (None: the admin, or no auth)."""
        return self.settings.identity if self.settings is not None else None

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload or 0)

    def refused(self, subject: str, op: Literal["publish", "subscribe"] = "publish") -> bool:
        """Whether the server refused this connection a publish (or a subscribe) on
        ``subject``, or on a subject that differs from it only in case: nats-py lowercases
        the server's error, and with it the subject it names."""
        return (op, subject.lower()) in self._refused

    def _note_refusal(self, op: str, subject: str) -> bool:
        """Remember a refusal; True the first time for this operation and subject."""
        key = ("publish" if op.lower() == "publish" else "subscribe", subject.lower())
        if key in self._refused:
            return False
        self._refused.add(key)
        return True

    async def flush(self, timeout: int = 10) -> None:
        """Return once the server has processed everything sent so far (a PING's PONG, its
        PING written after what nats-py still held: ``write_pending``).

        Shielded: a cancelled nats-py 2.x flush leaves its future in the client's queue of
        PONG waiters, and that PONG then raises in the client's read loop, which stops for
        good (the connection still says connected, and never receives anything again). A
        caller cancelled here stops waiting; the flush itself runs to its end."""
        write_pending(self.nc)
        await asyncio.shield(self.nc.flush(timeout))

    async def settle(self) -> None:
        """Return once the server has answered everything sent so far: which operations it
        refused, and the messages it delivered to this connection because of them.

        Measured on nats-server 2.15: the server writes a PONG at once but queues what it
        delivers or refuses while it reads (an -ERR, a MSG to our own subscription) until it
        has read the whole batch, so those can come after the PONG of a PING sent in the same
        write, but before the PONG of the next one; nats-py runs error_cb while it reads. So
        after two round trips everything is here."""
        await self.flush()
        await self.flush()

    def on_reconnect(self, hook: Hook) -> Callable[[], None]:
        """Call ``hook`` after each reconnect; returns a function that removes it."""
        self._hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._hooks.remove(hook)

        return remove

    def on_lost(self, hook: Callable[[str], None]) -> Callable[[], None]:
        """Call ``hook(reason)`` if the connection closes for good without ``close()`` or
        ``drain()``: a process serving on it must then restart, not linger. Returns a
        function that removes it."""
        self._lost_hooks.append(hook)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._lost_hooks.remove(hook)

        return remove

    def _closed(self) -> None:
        if self._closing or self.lost is not None:
            return
        error = self.nc.last_error
        self.lost = str(error) if error else "the connection closed"
        log.error("the NATS connection closed for good: %s", self.lost)
        for hook in list(self._lost_hooks):
            try:
                hook(self.lost)
            except Exception:
                log.exception("a connection-lost hook failed")

    async def _reconnected(self) -> None:
        for hook in list(self._hooks):
            try:
                await hook()
            except Exception:
                log.exception("a reconnect hook failed")

    @property
    def is_connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Close now (pending publishes may be dropped); safe to call twice."""
        self._closing = True
        if not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.close()

    async def drain(self) -> None:
        """Flush what was published, unsubscribe, then close; safe to call twice."""
        self._closing = True
        if self.nc.is_closed:
            return
        try:
            if self.nc.is_connected:
                await self.nc.drain()
            else:
                await self.nc.close()
        except Exception:
            await self.close()


async def connect(
    settings: ConnectSettings,
    *,
    on_error: Callable[[Exception], Awaitable[None]] | None = None,
) -> Connection:
    """Connect with reconnect-forever semantics; raise ``ConnectError`` if unreachable now."""

    connected = False
    outage = False  # between a disconnect and the reconnect: say it once, not per attempt
    first_errors: list[str] = []
    hopeless: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    """Set once every server has failed in a way that trying for longer will not change: the
    login refused, nothing taking the connection (``given_up``)."""
    given_up_on = 0
    conn: Connection | None = None

    async def error_cb(exc: Exception) -> None:
        nonlocal outage, given_up_on
        if not connected or conn is None:
            first_errors.append(str(exc) or type(exc).__name__)
            # nats-py tries each server once before it waits to try one again
            given_up_on += given_up(exc)
            if given_up_on >= len(settings.servers) and not hopeless.done():
                hopeless.set_result(None)
            return  # the first attempt's failures become one ConnectError below
        violation = _VIOLATION.search(str(exc))
        if violation is not None:
            op, subject = violation.groups()
            if conn._note_refusal(op, subject):  # once per subject, not per attempt
                log.warning("%s: permission denied: %s to %s", settings.name, op, subject)
            if op.lower() == "publish":  # a request there is answered by no one: end it now
                end_refused_requests(conn.nc, subject)
            if on_error is not None:
                await on_error(PermissionDenied(str(exc)))
            return
        if on_error is not None:
            await on_error(exc)
        elif isinstance(exc, OSError | TimeoutError) or "connect" in str(exc).lower():
            if not outage:
                log.warning("NATS unreachable (%s); reconnecting until it is back", exc)
            outage = True
        else:
            log.warning("nats: %s", exc)

    async def disconnected_cb() -> None:
        log.debug("disconnected from NATS")
        if conn is not None:
            conn.breaks += 1

    async def closed_cb() -> None:
        if conn is not None:
            conn._closed()

    async def reconnected_cb() -> None:
        nonlocal outage
        outage = False
        METRICS.reconnected()
        log.info("reconnected to NATS")
        if conn is not None:
            await conn._reconnected()

    options: dict[str, Any] = {
        "servers": list(settings.servers),
        "name": settings.name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
        "inbox_prefix": settings.inbox_prefix,
        "error_cb": error_cb,
        "disconnected_cb": disconnected_cb,
        "closed_cb": closed_cb,
        "reconnected_cb": reconnected_cb,
        "pending_size": 8 * 1024 * 1024,
    }
    if settings.user is not None:
        options["user"] = settings.user
        options["password"] = settings.password or ""
    if settings.token is not None:
        options["token"] = settings.token
    if settings.creds_file:
        options["user_credentials"] = settings.creds_file
    if settings.nkey_seed_file:
        options["nkeys_seed"] = settings.nkey_seed_file
    if settings.tls_ca_file or settings.tls_cert_file:
        import ssl

        ctx = ssl.create_default_context(cafile=settings.tls_ca_file)
        if settings.tls_cert_file:
            ctx.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
        options["tls"] = ctx
    try:
        nc = await first_connection(options, hopeless, settings.connect_timeout)
    except (NoServersError, OSError, TimeoutError) as exc:
        why = failure(exc, first_errors, hopeless.done(), settings.connect_timeout)
        raise ConnectError(settings.display_url, why) from None
    except nats.errors.Error as exc:
        raise ConnectError(settings.display_url, hint(str(exc))) from None
    await direct_replies(nc)
    fast_headers(nc)
    lean_nuid(nc)
    lean_flush_queue(nc)
    whole_size_checked(nc)
    conn = Connection(nc, settings)
    connected = True
    return conn


async def unsubscribe(*subs: Subscription | None) -> None:
    """Unsubscribe each of ``subs`` (None: nothing to do). On the way out of whatever used
    them, so a failure is nothing to act on: a connection that closed or lost its server has
    dropped them already (the server forgets a connection's subscriptions with it)."""
    for sub in subs:
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
