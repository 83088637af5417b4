"""The server's own answers, aimed by a role: NOT YET PREVENTED (the tests are strict xfails).

A pull request (``$JS.API.CONSUMER.MSG.NEXT``) and a direct get (``$JS.API.DIRECT.GET``) are
answered by JetStream itself, on the reply subject the requester chose, and nats-server does
not hold a reply subject to the requester's permissions. With every identity in one account,
a role that may pull from its own consumer can have the server publish anywhere in the
account: a status message with an empty body to ``$JS.API.STREAM.PURGE.EVENTS`` purges the
stream; its own stored record, read back by direct get, lands on another role's subjects as
if that role had sent it. The way out is an account per role (the streams and the admin in
one account, each role importing only its own subjects): docs/security.md, "Known gaps".
Each test here passes when the attack fails; until then they are expected to fail."""

from __future__ import annotations

import asyncio

import pytest

from fleetbus.security import ADMIN

from .support import AuthFleet, attacker, stored_on

pytestmark = pytest.mark.xfail(
    strict=True, reason="roles share one account: the server's answers go where a role aims them"
)


async def test_a_pull_request_answered_into_the_stream_api_purges_nothing(
    auth_fleet: AuthFleet,
) -> None:
    spec = auth_fleet.spec
    events = spec.stream_for(spec.subjects.event("deploy", "done"))
    assert events is not None
    inbox = spec.consumer("devops", "inbox")
    assert inbox is not None
    async with attacker(auth_fleet, ADMIN) as admin:
        # an event stored (its PubAck), which devops will try to erase
        await admin.nc.request(spec.subjects.event("deploy", "done"), b"{}", timeout=5)
    before = await stored_on(auth_fleet, spec.subjects.event("deploy", "done"))
    async with attacker(auth_fleet, "devops") as devops:
        await devops.nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{inbox.stream}.{inbox.name}",
            b'{"batch": 1, "no_wait": true}',
            reply=f"$JS.API.STREAM.PURGE.{events}",
        )
        await devops.nc.flush()
        await asyncio.sleep(0.5)
    assert await stored_on(auth_fleet, spec.subjects.event("deploy", "done")) == before


async def test_a_direct_get_answered_onto_another_roles_subject_stores_nothing(
    auth_fleet: AuthFleet,
) -> None:
    spec = auth_fleet.spec
    forged = spec.subjects.tasks("ceo", "cto")  # backend may not send to ceo at all
    record = spec.subjects.task("t-reflected", "outcome", "cto", "backend")  # backend writes it
    tasks = spec.stream_for(record)
    async with attacker(auth_fleet, "backend") as backend:
        await backend.nc.request(record, b'{"title": "forged by backend as cto"}', timeout=5)
        await backend.nc.publish(f"$JS.API.DIRECT.GET.{tasks}.{record}", b"", reply=forged)
        await backend.nc.flush()
        await asyncio.sleep(0.5)
    assert await stored_on(auth_fleet, forged) == 0
