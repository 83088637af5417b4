"""Defaults from the environment: which fleet file, which server, which credentials.

``Agent("backend")`` and ``Fleet.connect()`` with no arguments, and every CLI verb, resolve
their fleet and connection here, so they all agree:

- fleet file: ``FLEETBUS_FLEET``, else ``./fleet.yaml`` if it exists, else the built-in seed;
- server: ``FLEETBUS_URL``, else the embedded server recorded in the data dir
  (``FLEETBUS_DATA_DIR`` or the fleet file's ``server.data_dir``), else the fleet file's
  ``server.host:port``;
- credentials: ``FLEETBUS_CREDS`` (a creds file), or ``FLEETBUS_USER`` + ``FLEETBUS_PASSWORD``;
  else, for the embedded server with auth on, the identity's file in ``<data dir>/auth/``:
  the role's own for an agent or a ``Fleet`` sending as a role, the admin's otherwise.

Library code below this module takes everything as arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fleetbus.fleet import DEFAULT_FLEET_FILE, FleetSpec, load_fleet, seed_fleet
from fleetbus.js.connection import ConnectSettings
from fleetbus.security.credentials import load_credential
from fleetbus.security.permissions import ADMIN, inbox_prefix
from fleetbus.security.tls import tls_files
from fleetbus.server.embedded import running_embedded

__all__ = ["embedded_login", "resolve_connect_settings", "resolve_fleet", "resolve_fleet_path"]


def _get(env: Mapping[str, str] | None, name: str) -> str | None:
    value = (os.environ if env is None else env).get(name)
    return value or None


def resolve_fleet_path(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    if path is not None:
        return Path(path)
    named = _get(env, "FLEETBUS_FLEET")
    if named:
        return Path(named)
    default = Path(DEFAULT_FLEET_FILE)
    return default if default.exists() else None


def resolve_fleet(
    fleet: FleetSpec | str | Path | None = None, env: Mapping[str, str] | None = None
) -> FleetSpec:
    if isinstance(fleet, FleetSpec):
        return fleet
    path = resolve_fleet_path(fleet, env)
    return load_fleet(path) if path is not None else seed_fleet()


def resolve_connect_settings(
    fleet: FleetSpec,
    *,
    url: str | None = None,
    data_dir: str | Path | None = None,
    user: str | None = None,
    password: str | None = None,
    creds: str | None = None,
    name: str = "fleetbus",
    role: str | None = None,
    tls_ca: str | None = None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ConnectSettings:
    """Where and as whom to connect. ``role``: the role this process acts as (an agent, a
    ``Fleet`` with a sender); it picks that role's credentials for the embedded server."""
    url = url or _get(env, "FLEETBUS_URL")
    extra: dict[str, Any] = {}
    data = Path(data_dir or _get(env, "FLEETBUS_DATA_DIR") or fleet.server.data_dir)
    info = running_embedded(data)
    if not url:
        url = info.url if info is not None else f"nats://{fleet.server.host}:{fleet.server.port}"
    if info is not None and _same_server(url, info.url):
        # The server `fleetbus up` runs here, named by its URL: its stored logins apply.
        extra.update(embedded_login(data, url, role))
    settings = ConnectSettings.from_url(url, name=name)
    user = user or _get(env, "FLEETBUS_USER")
    if user:
        extra.pop("inbox_prefix", None)
        extra.pop("identity", None)
        extra["user"] = user
        extra["password"] = password or _get(env, "FLEETBUS_PASSWORD") or ""
        if user in fleet.roles:
            # A role's user may subscribe only under its own inbox prefix.
            extra["inbox_prefix"] = inbox_prefix(user)
            extra["identity"] = user
    creds = creds or _get(env, "FLEETBUS_CREDS")
    if creds:
        extra.pop("user", None)
        extra.pop("password", None)
        extra["creds_file"] = creds
    for key, value, var in (
        ("tls_ca_file", tls_ca, "FLEETBUS_TLS_CA"),
        ("tls_cert_file", tls_cert, "FLEETBUS_TLS_CERT"),
        ("tls_key_file", tls_key, "FLEETBUS_TLS_KEY"),
    ):
        chosen = value or _get(env, var)
        if chosen:
            extra[key] = chosen
    return replace(settings, **extra) if extra else settings


def _same_server(url: str, embedded: str) -> bool:
    """Whether ``url`` names (one of the nodes of) the embedded server at ``embedded``."""

    def endpoints(text: str) -> set[tuple[str, int]]:
        out = set()
        for part in text.split(","):
            parsed = urlsplit(part.strip() if "://" in part else f"nats://{part.strip()}")
            host = parsed.hostname or ""
            host = "127.0.0.1" if host in ("localhost", "::1", "0.0.0.0") else host
            out.add((host, parsed.port or 4222))
        return out

    return bool(endpoints(url) & endpoints(embedded))


def embedded_login(data_dir: Path, url: str, role: str | None = None) -> dict[str, Any]:
    """The ``ConnectSettings`` fields for the embedded server in ``data_dir``: ``role``'s
    stored credentials (else the admin's) when auth is on, and the local CA when ``url`` is
    ``tls://``."""
    cred = load_credential(data_dir, role or ADMIN)
    fields: dict[str, Any] = cred.login() if cred is not None else {}
    local_tls = tls_files(data_dir)
    if local_tls is not None and url.startswith("tls://"):
        fields["tls_ca_file"] = str(local_tls.ca)
    return fields
