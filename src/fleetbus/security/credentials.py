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

import contextlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.security.permissions import ADMIN, inbox_prefix

__all__ = ["AUTH_DIR", "Credential", "auth_dir", "ensure_credentials", "load_credential"]

AUTH_DIR = "auth"


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


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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


def ensure_credentials(
    data_dir: str | Path, spec: FleetSpec, *, nkeys: bool = False
) -> dict[str, Credential]:
    """The admin's and every role's credential, creating the missing ones (0600).

    ``nkeys``: authenticate by NKey (a seed per identity, kept in ``auth/{identity}.nk``)
    instead of by password; the choice is recorded per identity, so clients follow it."""
    if ADMIN in spec.roles:
        raise FleetbusError(
            f"a role may not be called {ADMIN!r} with auth on: that is the provisioning identity"
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
