"""Writing nats-server configuration text: the one quoting rule, for the server config fleetbus
renders, the authorization block and the deployment files that carry it. Pure."""

from __future__ import annotations

from pathlib import Path

__all__ = ["quote"]


def quote(value: str | Path) -> str:
    """A double-quoted nats config string (backslashes and quotes escaped)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
