"""The server's own answers, aimed by a role.

JetStream answers a pull (``$JS.API.CONSUMER.MSG.NEXT``), a direct get, a consumer info, an
ack and a publish on the reply subject the requester names, and nats-server does not hold a
reply subject to the requester's permissions. So every identity sits in the ``AGENTS``
account and the streams in ``STREAMS`` (``fleetbus.security.render``): an answer lands back
in ``AGENTS`` and is not imported again, so it reaches neither the JetStream API nor a
stream. What it can still reach is a live subscriber in ``AGENTS``; each receiver of live
traffic checks what only a client's message has (a reply in its namespace, no server
header naming a stored record). Each attack is a real client with a role's credentials.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from fleetbus.runtime import Task
from fleetbus.security import ADMIN
from fleetbus.wire.updates import TaskUpdate

from .support import (
    AuthFleet,
    agent,
    assert_intact,
    attacker,
    client,
    first_said,
    in_meeting,
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
        await devops.flush()
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
        await backend.flush()
        await asyncio.sleep(0.5)
    assert await stored_on(auth_fleet, forged) == 0


async def reflect(fleet: AuthFleet, role: str, record: str, body: bytes, onto: str) -> None:
    """``role`` stores ``body`` on ``record`` (its own), then has the server read it back
    onto the live subject ``onto``."""
    stream = fleet.spec.stream_for(record)
    async with attacker(fleet, role) as conn:
        await conn.nc.request(record, body, timeout=5)
        await conn.nc.publish(f"$JS.API.DIRECT.GET.{stream}.{record}", b"", reply=onto)
        await conn.flush()


async def test_a_record_read_back_onto_live_subjects_is_no_outcome_and_no_control(
    auth_fleet: AuthFleet,
) -> None:
    """While devops works a task cto gave it, backend has the server deliver records of its
    own as the task's stored outcome and a progress update (to cto) and as a cancel request
    (to devops). None is taken: cto sees devops's updates and gets the outcome it stores."""
    spec = auth_fleet.spec
    started, release = asyncio.Event(), asyncio.Event()
    devops = agent(auth_fleet, "devops")

    @devops.on_task
    async def work(task: Task) -> dict[str, bool]:
        started.set()
        await release.wait()
        return {"real": True}

    async with devops, client(auth_fleet, "cto") as cto:
        handle = await cto.assign("devops", {"title": "long"}, task_id="t-aimed-at")
        async with asyncio.timeout(20):
            await started.wait()
        forged = TaskUpdate(
            task_id="t-aimed-at", state="completed", agent="devops", attempt=1,
            time=TaskUpdate.now(), assigner="cto", result={"forged": True},
        )  # fmt: skip
        own = spec.subjects.task("t-backends", "outcome", "cto", "backend")
        notice = f"{spec.subjects.prefix}.outcomes.t-aimed-at.cto.devops"
        await reflect(auth_fleet, "backend", own, forged.encode(), notice)
        memo = spec.subjects.memo("backend", "cto", "t-backends", "s1")
        cancel = json.dumps({"op": "cancel", "task_id": "t-aimed-at"}).encode()
        control = spec.subjects.control("devops", devops.worker)  # in its presence record
        await reflect(auth_fleet, "backend", memo, cancel, control)
        progress = replace(forged, state="progress", message="forged", result=None)
        own = spec.subjects.task("t-backends-2", "outcome", "cto", "backend")  # it may read
        live = spec.subjects.task("t-aimed-at", "updates", "cto", "devops")
        await reflect(auth_fleet, "backend", own, progress.encode(), live)
        await asyncio.sleep(0.5)
        release.set()
        assert await handle.result(timeout=20) == {"real": True}
        seen = [u async for u in handle.updates()]
    assert "forged" not in [u.message for u in seen]
    assert seen[-1].result == {"real": True}


async def test_a_record_read_back_into_a_meeting_is_not_heard(auth_fleet: AuthFleet) -> None:
    """backend has the server say a line of its own in cso's name (a direct get), and ceo
    one it sent itself (a pull from its own inbox); cto hears cso's own first."""
    spec = auth_fleet.spec
    line = {"type": "message", "time": "2026-01-01T00:00:00Z", "content": "forged", "from": "cso"}
    memo = spec.subjects.memo("backend", "cto", "t-lines", "s1")
    inbox = spec.consumer("ceo", "inbox")
    assert inbox is not None
    async with in_meeting(auth_fleet, "cto", "cso", "board") as (room, speaker):
        onto = spec.subjects.meeting("board", "cso")
        await reflect(auth_fleet, "backend", memo, json.dumps(line).encode(), onto)
        async with attacker(auth_fleet, "ceo") as ceo:
            await ceo.nc.request(spec.subjects.inbox("ceo", "ceo"), json.dumps(line).encode())
            pull = f"$JS.API.CONSUMER.MSG.NEXT.{inbox.stream}.{inbox.name}"
            await ceo.nc.publish(pull, b'{"batch": 1, "no_wait": true}', reply=onto)
            await ceo.flush()
        await asyncio.sleep(0.3)
        await speaker.say("real")
        said = await first_said(room)
    assert (said.sender, said.content) == ("cso", "real")


async def test_the_admins_tail_shows_what_was_sent_not_what_a_role_had_the_server_send(
    auth_fleet: AuthFleet,
) -> None:
    """backend has the server put a task "from cto" in front of ceo (a record read back),
    and ceo a message it sent itself (a pull) on cto's tasks subject; the dashboard's tail
    of ceo's tasks shows neither, and then the task cto really sends."""
    from fleetbus.dashboard.data import FleetData

    spec = auth_fleet.spec
    forged = json.dumps({"title": "forged"}).encode()
    inbox = spec.consumer("ceo", "inbox")
    assert inbox is not None
    async with (
        attacker(auth_fleet, ADMIN) as admin,
        FleetData(admin, spec).tail("agents.ceo.tasks.>") as lines,
    ):
        onto = spec.subjects.tasks("ceo", "cto")
        own = spec.subjects.task("t-tail", "outcome", "cto", "backend")
        await reflect(auth_fleet, "backend", own, forged, onto)
        async with attacker(auth_fleet, "ceo") as ceo:
            await ceo.nc.request(spec.subjects.inbox("ceo", "ceo"), forged)
            pull = f"$JS.API.CONSUMER.MSG.NEXT.{inbox.stream}.{inbox.name}"
            await ceo.nc.publish(pull, b'{"batch": 1, "no_wait": true}', reply=onto)
            await ceo.flush()
        await asyncio.sleep(0.3)
        async with client(auth_fleet, "cto") as cto:
            await cto.assign("ceo", {"title": "real"})
        seen = []
        async with asyncio.timeout(10):
            async for line in lines:
                seen.append((line.subject, line.body))
                if "real" in line.body:
                    break
    assert [subject for subject, _ in seen] == [onto], seen
