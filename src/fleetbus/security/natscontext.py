"""A ``nats`` CLI context for one identity, so ``nats --context backend stream ls`` logs in as it.

The nats CLI (and other NATS tools, through the ``natscontext`` package) keeps named connection
settings as one JSON file per context (NATS ADR-21, "configuration contexts")::

    $XDG_CONFIG_HOME/nats/context/NAME.json      (~/.config when XDG_CONFIG_HOME is unset)
    $XDG_CONFIG_HOME/nats/context.txt            the selected context (left alone here)

Every key is written, empty when unused, as the CLI itself does, so a person editing the file
sees all of them. The file holds a password (or the path of an NKey seed), so it is written as
the CLI writes it: 0600 in a 0700 directory. Paths (NKey seed, CA) are made absolute: the CLI
runs from anywhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from fleetbus._files import write_private
from fleetbus.errors import FleetbusError
from fleetbus.security.credentials import Credential

__all__ = ["context_path", "context_settings", "write_context"]

_KEYS = (
    "description",
    "url",
    "token",
    "user",
    "password",
    "creds",
    "nkey",
    "cert",
    "key",
    "ca",
    "nsc",
    "jetstream_domain",
    "jetstream_api_prefix",
    "jetstream_event_prefix",
    "inbox_prefix",
    "user_jwt",
)
"""The string settings of a context (ADR-21), in the order the CLI writes them."""


def context_path(config_home: Path, name: str) -> Path:
    """Where the nats CLI looks for context ``name`` under ``config_home``."""
    # The CLI's own rule for a usable name: not empty, no "..", no path separator.
    if not name or ".." in name or "/" in name or os.sep in name:
        raise FleetbusError(
            f"{name!r} cannot name a nats context: it must not be empty or hold '/' or '..'"
        )
    return config_home / "nats" / "context" / f"{name}.json"


def context_settings(
    cred: Credential, url: str, *, ca: str | Path | None = None, description: str = ""
) -> dict[str, Any]:
    """The JSON object of a context that logs in as ``cred`` at ``url`` (comma-separated)."""
    settings: dict[str, Any] = dict.fromkeys(_KEYS, "")
    settings.update(description=description, url=url, inbox_prefix=cred.inbox_prefix)
    if cred.nkey_seed_file:
        settings["nkey"] = str(Path(cred.nkey_seed_file).absolute())
    else:
        settings.update(user=cred.user, password=cred.password)
    if ca is not None:
        settings["ca"] = str(Path(ca).absolute())
    settings["tls_first"] = False
    return settings


def write_context(config_home: Path, name: str, settings: dict[str, Any]) -> Path:
    """Write context ``name`` (0600, its directory 0700) and return its path."""
    path = context_path(config_home, name)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, json.dumps(settings, indent=2) + "\n")
    except OSError as exc:
        raise FleetbusError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
