"""Writing nats-server configuration text: the one quoting rule, for the server config fleetbus
renders, the authorization block and the deployment files that carry it; and which account a
config keeps its streams in. Pure."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["GLOBAL_ACCOUNT", "STREAMS_ACCOUNT", "jetstream_account", "quote"]

GLOBAL_ACCOUNT = "$G"
"""nats-server's account for clients when no ``accounts`` are configured (auth off)."""
STREAMS_ACCOUNT = "STREAMS"
"""The account of fleetbus's server config that holds the streams when auth is on."""

_JETSTREAM_ACCOUNT = re.compile(r"^\s*(\w+): \{\n\s*jetstream: enabled$", re.MULTILINE)


def quote(value: str | Path) -> str:
    """A double-quoted nats config string (backslashes and quotes escaped)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def jetstream_account(config: str) -> str:
    """The account whose streams the server of ``config`` keeps (its store holds them under
    ``jetstream/<account>/``): the one its ``accounts`` block enables JetStream for, or the
    global account."""
    found = _JETSTREAM_ACCOUNT.search(config)
    return found.group(1) if found else GLOBAL_ACCOUNT
