"""The server's own answers, aimed by a role.

JetStream answers a pull (``$JS.API.CONSUMER.MSG.NEXT``), a direct get, a consumer info, an
ack and a publish on the reply subject the requester names, and nats-server does not hold a
reply subject to the requester's permissions. So every identity sits in the ``AGENTS``
account and the streams in ``STREAMS`` (``fleetbus.security.render``): an answer lands back
in ``AGENTS`` and is not imported again, so it reaches neither the JetStream API nor a
stream. Each attack is a real client with a role's credentials.
"""

from __future__ import annotations

import asyncio

from fleetbus.security import ADMIN

from .support import (
    AuthFleet,
    assert_intact,
    attacker,
    stored_on,
)


async def test_no_answer_of_the_server_reaches_the_stream_api(auth_fleet: AuthFleet) -> None:
    """devops aims every answer it can have from JetStream at the purge and delete of a
    stream and at the delete of another role's consumer."""
    spec = auth_fleet.spec
    event = spec.subjects.event("deploy", "done")
    events = spec.stream_for(event)
    inbox = spec.consumer("devops", "inbox")
    victim = spec.consumer("backend", "tasks")
    assert events and inbox is not None and victim is not None
    async with attacker(auth_fleet, ADMIN) as admin:
        await admin.nc.request(event, b"{}", timeout=5)  # stored: devops will try to erase it
    before = await stored_on(auth_fleet, event)
    presence = spec.stream_for(spec.subjects.presence("backend", "x"))
    answered_by_the_server = [
        (f"$JS.API.CONSUMER.MSG.NEXT.{inbox.stream}.{inbox.name}", b'{"batch":1,"no_wait":true}'),
        (f"$JS.API.CONSUMER.INFO.{inbox.stream}.{inbox.name}", b""),
        (f"$JS.API.DIRECT.GET.{presence}.{spec.subjects.presence('backend', 'x')}", b""),
        (f"$JS.ACK.{inbox.stream}.{inbox.name}.1.1.1.1.0", b"+ACK"),
        (event, b"{}"),  # its PubAck
    ]
    targets = [
        f"$JS.API.STREAM.PURGE.{events}",
        f"$JS.API.STREAM.DELETE.{events}",
        f"$JS.API.CONSUMER.DELETE.{victim.stream}.{victim.name}",
    ]
    async with attacker(auth_fleet, "devops") as devops:
        for target in targets:
            for subject, body in answered_by_the_server:
                await devops.nc.publish(subject, body, reply=target)
        await devops.nc.flush()
        await asyncio.sleep(0.5)
    assert await stored_on(auth_fleet, event) >= before + 1
    await assert_intact(auth_fleet)


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
