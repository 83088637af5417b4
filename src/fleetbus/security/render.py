"""The server's ``accounts { ... }`` block: two accounts, bcrypt hashes, never passwords.

- ``STREAMS`` holds JetStream (every stream and consumer) and no identity.
- ``AGENTS`` holds every identity (the admin and one user per role), each with the least
  privilege ``fleetbus.security.permissions`` derives. It reaches JetStream through imports:
  the JetStream API, acks, and the subjects the streams capture.

Why two: JetStream answers a request (a pull, a direct get, an ack, a publish) on the reply
subject the requester names, and nats-server does not hold that subject to the requester's
permissions. In one account a role could name ``$JS.API.STREAM.PURGE.X``, or another role's
queue, and have the server publish there for it. Across the import the answer lands in
``AGENTS``, where it reaches live subscribers only: it is not imported again, so it reaches
neither the JetStream API nor a stream (docs/security.md has the tests).

nats-server compares a password against a ``$2a$``/``$2b$`` bcrypt hash itself. The passwords
are 32 random bytes, so bcrypt's least cost loses nothing (nobody brute-forces 2^256), and the
server pays the cost on every login: 0.9 ms at 4, 3.4 ms at 6 (10,000 agents reconnecting, 9 s
of its CPU instead of 34 s; docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import bcrypt

from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.check import privilege_errors, summary
from fleetbus.natsconf import STREAMS_ACCOUNT, quote
from fleetbus.security.credentials import Credential
from fleetbus.security.permissions import ADMIN, inbox_prefix, role_permissions
from fleetbus.wire.subjects import READER_DELIVERY

__all__ = [
    "AGENTS_ACCOUNT",
    "BCRYPT_COST",
    "STREAMS_ACCOUNT",
    "feeds",
    "render_authorization",
    "services",
]

BCRYPT_COST = 4
AGENTS_ACCOUNT = "AGENTS"

_SERVICES = (("$JS.API.>", "stream"), ("$JS.ACK.>", ""), ("$JS.FC.>", ""))
"""What ``AGENTS`` calls in ``STREAMS`` besides publishing to the streams: the JetStream API
(a pull or a direct get is answered with more than one message), acks, and the flow-control
answers of a push consumer's subscriber."""


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=BCRYPT_COST)).decode()


def _list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(quote(i) for i in items) + "]"


def _login(cred: Credential) -> str:
    """How the server knows this identity: its NKey's public key, or user and password hash."""
    if cred.nkey:
        return f"nkey: {quote(cred.nkey)}"
    return f"user: {quote(cred.user)}, password: {quote(_hash(cred.password))}"


def services(spec: FleetSpec) -> list[tuple[str, str]]:
    """The subjects ``AGENTS`` reaches in ``STREAMS`` (with each one's response type): the
    JetStream API, acks, and every subject a stream captures that a client publishes to."""
    captured = [
        (subject, "")
        for name in spec.streams
        for subject in spec.stream_subjects(name)
        if not subject.startswith("$")  # advisories: the server's, in STREAMS itself
    ]
    return [*_SERVICES, *captured]


def feeds(spec: FleetSpec) -> list[str]:
    """What ``STREAMS`` itself publishes that identities in ``AGENTS`` listen to: the
    outcomes a stream republishes once stored, JetStream's advisories (the copier's), and
    what the push consumers the admin creates deliver: fleetbus's stream readers
    (``fleetbus.js.reader``) and a plain client's (an ordered consumer's, say, in the admin's
    inbox or nats-py's and nats.go's default one). No role creates consumers, nor subscribes
    to any of these."""
    readers = [f"{READER_DELIVERY}.>", f"{inbox_prefix(ADMIN)}.>", "_INBOX.>"]
    return [spec.subjects.stored_outcomes(), "$JS.EVENT.>", *readers]


def _accounts(spec: FleetSpec) -> list[str]:
    lines = [
        f"  {STREAMS_ACCOUNT}: {{",
        "    jetstream: enabled",
        "    exports: [",
    ]
    for subject, response in services(spec):
        kind = f", response_type: {response}" if response else ""
        lines.append(f"      {{service: {quote(subject)}{kind}, accounts: [{AGENTS_ACCOUNT}]}}")
    for subject in feeds(spec):
        lines.append(f"      {{stream: {quote(subject)}, accounts: [{AGENTS_ACCOUNT}]}}")
    lines += ["    ]", "  }"]
    return lines


def _imports(spec: FleetSpec) -> list[str]:
    lines = ["    imports: ["]
    kinds = [("service", s) for s, _ in services(spec)] + [("stream", s) for s in feeds(spec)]
    for kind, subject in kinds:
        source = f"account: {STREAMS_ACCOUNT}, subject: {quote(subject)}"
        lines.append(f"      {{{kind}: {{{source}}}}}")
    lines.append("    ]")
    return lines


def render_authorization(spec: FleetSpec, credentials: Mapping[str, Credential]) -> str:
    """The block for the server config: ``STREAMS`` and ``AGENTS`` (the admin with all
    rights, one user per role with its own). Refused for a fleet file whose lines would let
    a role act as another (``fleetbus check``'s ``grant-escapes`` and ``reserved-role-name``)."""
    refused = privilege_errors(spec)
    if refused:
        raise FleetbusError(
            "the fleet file gives a role more than fleetbus's model allows, so no server"
            " permissions are written: "
            + summary(refused)
            + " (`fleetbus check` says how to fix each)"
        )
    lines = ["accounts {", *_accounts(spec), f"  {AGENTS_ACCOUNT}: {{", "    users: ["]
    admin = credentials[ADMIN]
    lines.append(f"      {{{_login(admin)}}}")
    for role in spec.roles:
        cred = credentials[role]
        perms = role_permissions(spec, role)
        lines += [
            f"      {{{_login(cred)},",
            "       permissions: {",
            f"         publish: {{allow: {_list(perms.publish)}}}",
            f"         subscribe: {{allow: {_list(perms.subscribe)}}}",
            # never allow_responses: it lets a role publish once to any reply it names
            "         allow_responses: false",
            "       }}",
        ]
    lines += ["    ]", *_imports(spec), "  }", "}"]
    return "\n".join(lines) + "\n"
