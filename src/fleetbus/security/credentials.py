"""Per-identity credentials for the embedded server, kept in the data directory.

Layout (``<data_dir>/auth/``, mode 0700; every file 0600)::

    admin.json       {"user": "admin", "password": "...", "inbox_prefix": "_INBOX_admin"}
    backend.json     one per role of the fleet file
    backend.nk       with ``fleetbus up --nkeys``: the role's NKey seed (its public key
                     goes into the server config; the seed never leaves this file)

Passwords come from ``secrets`` (32 random bytes, URL-safe) and are created once: later
``fleetbus up`` runs keep them, and add files for new roles. They are never printed or
logged (``fleetbus creds ROLE`` shows them on request) and never written to the fleet file;
the server's config holds only their bcrypt hashes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbus._files import write_private
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.security.permissions import ADMIN, inbox_prefix

__all__ = [
    "AUTH_DIR",
    "ROUTE",
    "Credential",
    "auth_dir",
    "ensure_credentials",
    "ensure_route_credential",
    "load_credential",
]

AUTH_DIR = "auth"
ROUTE = "route"
"""The identity the nodes of a cluster present to each other on their route ports."""


@dataclass(frozen=True, slots=True)
class Credential:
    """How one identity logs in. ``role`` is None for the admin."""

    user: str
    password: str = field(repr=False)
    inbox_prefix: str
    role: str | None
    nkey: str | None = None
    """The NKey public key (``U...``) when the server authenticates this identity by NKey."""
    nkey_seed_file: str | None = None

    def login(self) -> dict[str, Any]:
        """The ``ConnectSettings`` fields that log in as this identity: its NKey seed or its
        user and password, its own inbox prefix, and which role it is."""
        secret: dict[str, Any] = (
            {"nkey_seed_file": self.nkey_seed_file}
            if self.nkey_seed_file
            else {"user": self.user, "password": self.password}
        )
        return {**secret, "inbox_prefix": self.inbox_prefix, "identity": self.role}

    def connect_settings(self, url: str, *, name: str = "fleetbus") -> ConnectSettings:
        """Settings that log in as this identity, with its own inbox prefix."""
        return ConnectSettings.from_url(url, name=name, **self.login())


def auth_dir(data_dir: str | Path) -> Path:
    return Path(data_dir) / AUTH_DIR


def _path(data_dir: str | Path, identity: str) -> Path:
    return auth_dir(data_dir) / f"{identity}.json"


def load_credential(data_dir: str | Path, identity: str) -> Credential | None:
    """The stored credential of ``identity`` (a role, or ``admin``), or None."""
    try:
        data = json.loads(_path(data_dir, identity).read_text(encoding="utf-8"))
        seed_file = _nkey_path(data_dir, identity)
        use_nkey = data.get("auth") == "nkey" and seed_file.exists()
        return Credential(
            user=str(data["user"]),
            password=str(data["password"]),
            inbox_prefix=str(data.get("inbox_prefix") or inbox_prefix(identity)),
            role=None if identity == ADMIN else identity,
            nkey=str(data["nkey"]) if use_nkey and data.get("nkey") else None,
            nkey_seed_file=str(seed_file.absolute()) if use_nkey else None,
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FleetbusError(f"cannot read credentials {_path(data_dir, identity)}: {exc}") from exc


def _nkey_path(data_dir: str | Path, identity: str) -> Path:
    return auth_dir(data_dir) / f"{identity}.nk"


def _new_nkey(seed_path: Path) -> str:
    """A fresh NKey user seed in ``seed_path`` (0600); returns its public key."""
    try:
        import nkeys
    except ImportError:
        raise FleetbusError("NKeys need the nkeys package: pip install 'fleetbus[nkeys]'") from None
    seed = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    write_private(seed_path, seed.decode() + "\n")
    public: bytes = nkeys.from_seed(seed).public_key
    return public.decode()


def ensure_route_credential(data_dir: str | Path) -> tuple[str, str]:
    """The user and password of the cluster routes (``auth/route.json``, 0600), made once."""
    folder = auth_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / f"{ROUTE}.json"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        return str(body["user"]), str(body["password"])
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FleetbusError(f"cannot read the route credentials {path}: {exc}") from exc
    user, password = ROUTE, secrets.token_urlsafe(32)
    write_private(path, json.dumps({"user": user, "password": password}, indent=2) + "\n")
    return user, password


def ensure_credentials(
    data_dir: str | Path, spec: FleetSpec, *, nkeys: bool = False
) -> dict[str, Credential]:
    """The admin's and every role's credential, creating the missing ones (0600).

    ``nkeys``: authenticate by NKey (a seed per identity, kept in ``auth/{identity}.nk``)
    instead of by password; the choice is recorded per identity, so clients follow it."""
    for reserved in (ADMIN, ROUTE):
        if reserved in spec.roles:
            raise FleetbusError(
                f"a role may not be called {reserved!r} with auth on: that is fleetbus's own"
                " identity"
            )
    folder = auth_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    out: dict[str, Credential] = {}
    for identity in [ADMIN, *spec.roles]:
        path = _path(data_dir, identity)
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            body = {
                "user": identity,
                "password": secrets.token_urlsafe(32),
                "inbox_prefix": inbox_prefix(identity),
            }
        except (OSError, ValueError) as exc:
            raise FleetbusError(f"cannot read credentials {path}: {exc}") from exc
        seed_path = _nkey_path(data_dir, identity)
        if nkeys and not (body.get("nkey") and seed_path.exists()):
            body["nkey"] = _new_nkey(seed_path)
        wanted = "nkey" if nkeys else "password"
        if body.get("auth") != wanted or not path.exists():
            body["auth"] = wanted
            write_private(path, json.dumps(body, indent=2) + "\n")
        cred = load_credential(data_dir, identity)
        assert cred is not None
        out[identity] = cred
    return out
