"""Render a nats-server configuration file from the fleet file's ``server`` section. Pure.

Port ``0`` (or ``-1``) asks the server for a free port: nats-server reads ``-1`` as
"random" (a literal ``0`` would mean the default 4222 for clients and *disabled* for the
monitor), so the renderer writes ``-1`` and the caller learns the real port from the log.

JetStream keeps its files in ``<store_dir>/jetstream``: the server appends ``jetstream``
to the ``store_dir`` it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fleetbus.natsconf import quote

if TYPE_CHECKING:
    from fleetbus.fleet.model import ServerSpec

__all__ = ["NO_MONITOR", "RANDOM_PORT", "hostport", "render_config"]

RANDOM_PORT = -1
"""What nats-server reads as "pick a free port"."""
NO_MONITOR = -2
"""A ``monitor_port`` that turns the HTTP monitoring port off whatever the spec says."""


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _port(value: int, what: str) -> int:
    if value in (0, RANDOM_PORT):
        return RANDOM_PORT
    if not 0 < value < 65536:
        raise ValueError(f"{what} {value} is not a port: use 1-65535, or 0 for a free one")
    return value


def render_config(
    spec: ServerSpec,
    *,
    store_dir: str | Path,
    host: str | None = None,
    port: int | None = None,
    monitor_port: int | None = None,
    monitor_host: str | None = None,
    server_name: str = "fleetbus",
    log_file: str | Path | None = None,
    pid_file: str | Path | None = None,
    cluster_name: str | None = None,
    cluster_port: int | None = None,
    routes: Sequence[str] = (),
    route_auth: tuple[str, str] | None = None,
    route_tls: str = "",
    extra: str = "",
) -> str:
    """The text of a nats-server config file for ``spec``, with the given overrides.

    ``host``, ``port`` and ``monitor_port`` default to the spec's; the monitor (off unless a
    port is given: ``NO_MONITOR`` turns it off whatever the spec says) listens on the same host
    as clients. ``route_auth`` (user, password) protects the route port; ``route_tls`` is a
    ``tls { ... }`` block for it. A ``cluster`` block is written when ``routes`` or ``cluster_port``
    is given (its name and port default to ``spec.cluster``). ``extra`` is appended verbatim
    (an ``authorization`` block, say).
    """
    host = host if host is not None else spec.host
    client_port = _port(spec.port if port is None else port, "port")
    lines = [
        "# Written by fleetbus from the fleet file's `server` section; edits are overwritten.",
        f"server_name: {quote(server_name)}",
        f"host: {quote(host)}",
        f"port: {client_port}",
        f"max_payload: {spec.max_payload}",
    ]
    monitor = spec.monitor_port if monitor_port is None else monitor_port
    if monitor is not None and monitor != NO_MONITOR:
        # Only when asked for: it answers anyone, and lists every connection and subscription.
        where = monitor_host or host
        lines.append(f"http: {quote(hostport(where, _port(monitor, 'monitor port')))}")
    if log_file is not None:
        lines.append(f"log_file: {quote(log_file)}")
    if pid_file is not None:
        lines.append(f"pid_file: {quote(pid_file)}")
    lines += [
        "",
        "jetstream {",
        f"  store_dir: {quote(store_dir)}",
        f"  max_memory_store: {spec.max_memory}",
        f"  max_file_store: {spec.max_file}",
    ]
    if spec.sync_always:
        lines.append("  sync_interval: always")
    lines.append("}")
    if routes or cluster_port is not None:
        name = cluster_name if cluster_name is not None else spec.cluster.name
        cport = _port(spec.cluster.port if cluster_port is None else cluster_port, "cluster port")
        route_list = ", ".join(quote(r) for r in routes)
        lines += [
            "",
            "cluster {",
            f"  name: {quote(name)}",
            f"  listen: {quote(hostport(host, cport))}",
            f"  routes: [{route_list}]",
        ]
        if route_auth is not None:
            # Without it any local process could start a server routed into the cluster and
            # read everything through it. The routes above carry the same credentials.
            user, password = route_auth
            lines.append(f"  authorization {{ user: {quote(user)}, password: {quote(password)} }}")
        if route_tls:
            lines.append(route_tls.rstrip("\n"))
        lines.append("}")
    if extra:
        lines += ["", extra.rstrip("\n")]
    return "\n".join(lines) + "\n"
