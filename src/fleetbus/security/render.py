"""The server's ``authorization { users: [...] }`` block: bcrypt hashes, never passwords.

nats-server compares a password against a ``$2a$``/``$2b$`` bcrypt hash itself. The passwords
are 32 random bytes, so a low bcrypt cost loses nothing (nobody brute-forces 2^256) and keeps
each connect cheap for the server.
"""

from __future__ import annotations

from collections.abc import Mapping

import bcrypt

from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.check import privilege_errors, summary
from fleetbus.natsconf import quote
from fleetbus.security.credentials import Credential
from fleetbus.security.permissions import ADMIN, role_permissions

__all__ = ["BCRYPT_COST", "render_authorization"]

BCRYPT_COST = 6


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def _login(cred: Credential) -> str:
    """How the server knows this identity: its NKey's public key, or user and password hash."""
    if cred.nkey:
        return f"nkey: {quote(cred.nkey)}"
    return f"user: {quote(cred.user)}, password: {quote(_hash(cred.password))}"


def render_authorization(spec: FleetSpec, credentials: Mapping[str, Credential]) -> str:
    """The block for the server config: the admin (all rights) and one user per role.
    Refused for a fleet file whose lines would let a role act as another (``fleetbus
    check``'s ``grant-escapes`` and ``reserved-role-name``)."""
    refused = privilege_errors(spec)
    if refused:
        raise FleetbusError(
            "the fleet file gives a role more than fleetbus's model allows, so no server"
            " permissions are written: "
            + summary(refused)
            + " (`fleetbus check` says how to fix each)"
        )
    lines = ["authorization {", "  users: ["]
    admin = credentials[ADMIN]
    lines.append(f"    {{{_login(admin)}}}")
    for role in spec.roles:
        cred = credentials[role]
        perms = role_permissions(spec, role)
        lines += [
            f"    {{{_login(cred)},",
            "     permissions: {",
            f"       publish: {{allow: {_list(perms.publish)}}}",
            f"       subscribe: {{allow: {_list(perms.subscribe)}}}",
            # never allow_responses: it lets a role publish once to any reply it names
            "       allow_responses: false",
            "     }}",
        ]
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"
