"""An attacker holding one role's credentials.

An agent runs actions a language model chose; a prompt-injected agent holds its role's
credentials and uses them against the fleet. Each test here is one class of attack on the
promise that **a role can do only what its lines in the fleet file allow**, tried by a real
client against a real server with auth on, and each ends by checking that the fleet is
intact: every stream and consumer still there, nothing stored under a forged identity, no
forged result accepted, no foreign message read.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest

from fleetbus import PermissionDenied, TaskTimeout
from fleetbus.client.meeting import Meeting
from fleetbus.deadletters import DeadLetters
from fleetbus.errors import FleetbusError, JetStreamError, TaskError
from fleetbus.js._natspy import header_block_size
from fleetbus.js.api import JsApi
from fleetbus.js.publish import Publisher
from fleetbus.runtime import Reject, Request, Task
from fleetbus.security import ADMIN
from fleetbus.testing import eventually
from fleetbus.testing.fleets import final_history
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TEXT_LIMIT, TaskUpdate

from .support import (
    AuthFleet,
    agent,
    assert_intact,
    attacker,
    client,
    first_said,
    held_agent,
    in_meeting,
    stored_on,
)


async def test_a_reply_subject_does_not_lend_a_role_the_servers_hand(
    auth_fleet: AuthFleet,
) -> None:
    """The allow_responses bypass: publish to a subject you also read, with the reply set to
    a target you may not publish to, receive your own message, "answer" it."""
    spec = auth_fleet.spec
    p = spec.prefix
    events = spec.stream_for(spec.subjects.event("a", "b"))
    forged_task = spec.subjects.tasks("cso", "cto")
    targets = [f"$JS.API.STREAM.DELETE.{events}", "$JS.API.STREAM.NAMES", forged_task]
    async with attacker(auth_fleet, "backend") as conn:
        room = f"{p}.meetings.bypass"
        sub = await conn.nc.subscribe(f"{room}.*")
        await conn.nc.flush()
        for target in targets:
            await conn.nc.publish(f"{room}.backend", b"{}", reply=target)
            msg = await sub.next_msg(timeout=5)
            assert msg.reply == target
            await conn.nc.publish(msg.reply, b'{"title": "forged by backend as cto"}')
        await conn.settle()
        for target in targets:
            assert conn.refused(target), target
    assert await stored_on(auth_fleet, forged_task) == 0
    await assert_intact(auth_fleet)


async def test_an_honest_agent_answers_nobody_outside_the_askers_namespace(
    auth_fleet: AuthFleet,
) -> None:
    """The confused deputy: ask an honest cso agent with a reply subject cso may publish to
    (a task for devops "from cso"), hoping its answer is stored there."""
    spec = auth_fleet.spec
    deputy_target = spec.subjects.tasks("devops", "cso")
    cso = agent(auth_fleet, "cso")
    asked: list[str | None] = []

    @cso.on_request
    async def review(req: Request) -> dict[str, str]:
        asked.append(req.sender)
        return {"title": "approved, and a task for devops"}

    async with cso, attacker(auth_fleet, "backend") as conn:
        # Fast: the answer would go wherever the reply points.
        await conn.nc.publish(spec.subjects.rpc("cso", "backend"), b"{}", reply=deputy_target)
        elsewhere = f"{spec.subjects.answer_to('cto', 'cso')}.stolen"  # another asker's
        await conn.nc.publish(spec.subjects.rpc("cso", "backend"), b"{}", reply=elsewhere)
        # Durable: the reply address is a header of a stored ask.
        publisher = Publisher(conn)
        await publisher.publish(
            spec.subjects.inbox("cso", "backend"),
            b'{"q": 1}',
            {h.REPLY_TO: deputy_target, h.ASK_ID: "ask-x"},
        )
        # A proper ask is answered, so the agent is up and has seen the others.
        async with client(auth_fleet, "backend") as backend:
            assert await backend.ask("cso", {"q": 2}, timeout=10) == {
                "title": "approved, and a task for devops"
            }
        async with attacker(auth_fleet, ADMIN) as admin:
            letters = DeadLetters(admin, spec)

            async def dead_lettered() -> bool:
                return any("bad reply subject" in e.reason for e in await letters.list())

            await eventually(dead_lettered, what="the ask with a foreign reply dead-lettered")
    assert asked.count("backend") >= 1  # answered as backend's, to backend
    assert await stored_on(auth_fleet, deputy_target) == 0
    await assert_intact(auth_fleet)


async def test_a_role_cannot_forge_another_roles_task_result(auth_fleet: AuthFleet) -> None:
    """cso (which works tasks of its own) tries to end a task cto gave backend: completed
    with the dedupe id the real completion would use, and dead_lettered."""
    spec = auth_fleet.spec
    backend, release = held_agent(auth_fleet, "backend")

    async with backend, client(auth_fleet, "cto") as cto, attacker(auth_fleet, "cso") as cso:
        handle = await cto.assign("backend", {"title": "pagination"})
        forged = TaskUpdate(
            task_id=handle.id, state="completed", agent="backend", attempt=1, time="", result={}
        )
        dead = TaskUpdate(task_id=handle.id, state="dead_lettered", agent="backend", attempt=3,
                          time="", error="forged")  # fmt: skip
        publisher = Publisher(cso)
        for kind in ("outcome", "updates"):
            for update in (forged, dead):
                subject = spec.subjects.task(handle.id, kind, "cto", "backend")
                with pytest.raises(PermissionDenied):
                    await publisher.publish(subject, update.encode(), deadline=1.0)
        # On its own subjects the writes go through, under every message id it can think of
        # (a message id is anyone's to reuse in a stream): nobody who follows the task reads
        # them, and the real outcome is not dropped as a "duplicate" of one of them.
        guesses = [handle.id, f"{handle.id}-done", f"{handle.id}-completed-1", backend.worker]
        for n, msg_id in enumerate(guesses):
            await publisher.publish(
                spec.subjects.task(handle.id, "outcome", "cto", "cso"),
                (forged if n % 2 else dead).encode(),
                msg_id=msg_id,
            )
        # Nor can it read what backend writes for cto.
        for probe in (
            spec.subjects.task(handle.id, "outcome", "cto", "backend"),
            spec.subjects.task_records(None, "cto", None),
        ):
            await cso.nc.subscribe(probe)
        await cso.settle()
        assert cso.refused(spec.subjects.task(handle.id, "outcome", "cto", "backend"), "subscribe")
        release.set()
        assert await handle.result(timeout=10) == {"real": True}
    async with client(auth_fleet, ADMIN) as admin:
        history = await final_history(admin, handle.id, role="backend")
    assert history[-1].state == "completed" and history[-1].result == {"real": True}
    await assert_intact(auth_fleet)


async def test_a_refused_publish_is_said_at_once_not_after_its_wait(auth_fleet: AuthFleet) -> None:
    """The server drops a publish it refuses and answers it with an error, not a reply: the
    publisher waiting for its stream's ack hears at once that it may not (an agent acting
    on a prompt it was fed learns so in milliseconds, and is not held for the wait of a
    publish that might still be stored). Here the wait is 30 s, the patience 10."""
    spec = auth_fleet.spec
    async with attacker(auth_fleet, "cso") as cso:
        publisher = Publisher(cso, attempt_timeout=30.0, deadline=60.0)
        task = TaskUpdate(task_id="t-1", state="completed", agent="backend", attempt=1, time="")
        for subject in (
            spec.subjects.task("t-1", "outcome", "cto", "backend"),  # another role's record
            spec.subjects.tasks("backend", "cto"),  # a task in another role's name
        ):
            async with asyncio.timeout(10):
                with pytest.raises(PermissionDenied):
                    await publisher.publish(subject, task.encode())
        # and what it may send still goes through on the same connection
        await publisher.publish(spec.subjects.task("t-1", "outcome", "cto", "cso"), task.encode())


async def test_no_role_can_speak_for_the_server_that_an_outcome_is_stored(
    auth_fleet: AuthFleet,
) -> None:
    """``result()`` returns on the server's notice that the outcome is stored
    (``P.outcomes.{id}.{A}.{R}``, the stream's republish). backend, the very role working the
    task, sends that notice itself with a result the stream never stored; cso tries to read
    cto's notices. Both are refused, and the handle returns what backend's agent stored."""
    spec = auth_fleet.spec
    backend, release = held_agent(auth_fleet, "backend")

    async with (
        backend,
        client(auth_fleet, "cto") as cto,
        attacker(auth_fleet, "backend") as forger,
        attacker(auth_fleet, "cso") as cso,
    ):
        handle = await cto.assign("backend", {"title": "pagination"})
        notice = f"{spec.prefix}.outcomes.{handle.id}.cto.backend"
        forged = TaskUpdate(task_id=handle.id, state="completed", agent="backend", attempt=1,
                            time="", result={"real": False})  # fmt: skip
        await forger.nc.publish(notice, forged.encode())
        await cso.nc.subscribe(spec.subjects.stored_outcomes("cto"))
        await forger.settle()
        await cso.settle()
        assert forger.refused(notice)
        assert cso.refused(spec.subjects.stored_outcomes("cto"), "subscribe")
        with pytest.raises(TaskTimeout):
            await handle.result(timeout=0.5)  # nothing stored yet: no result
        release.set()
        assert await handle.result(timeout=10) == {"real": True}
    await assert_intact(auth_fleet)


async def test_a_role_cannot_answer_an_ask_made_of_another_role(auth_fleet: AuthFleet) -> None:
    """devops may answer cto's asks to devops: it tries to answer cto's ask to cso (no cso
    agent runs, so the ask waits for an answer the whole time)."""
    spec = auth_fleet.spec
    async with client(auth_fleet, "cto") as cto, attacker(auth_fleet, "devops") as devops:
        ask = asyncio.create_task(cto.ask("cso", {"q": "ship it?"}, timeout=3, durable=True))
        await asyncio.sleep(0)  # the ask is on its way; its id is random in any case
        guesses = [f"{spec.subjects.answer_to('cto', 'cso')}.ask-{uuid.uuid4().hex}"]
        guesses.append(f"{spec.subjects.answer_to('cto', 'cso')}.>")
        for guess in guesses:
            await devops.nc.publish(guess, b'{"verdict": "yes"}', headers={h.STATUS: "ok"})
        await devops.settle()
        assert all(devops.refused(g) for g in guesses)
        with pytest.raises(TimeoutError):
            await ask


async def test_a_dead_letter_replayed_by_the_admin_borrows_no_identity(
    auth_fleet: AuthFleet,
) -> None:
    """backend writes dead letters for its own consumer whose headers point elsewhere: at a
    real task of cso's (sent by ceo), and at the JetStream API. The admin replays them."""
    spec = auth_fleet.spec
    comms = spec.stream_for(spec.subjects.inbox("cso"))
    tasks = spec.stream_for(spec.subjects.task_records())
    assert comms and tasks
    cso_tasks = spec.subjects.tasks("cso", "ceo")
    async with client(auth_fleet, "ceo") as ceo:
        real = await ceo.assign("cso", {"title": "audit"})
    forged = [
        {h.DLQ_SUBJECT: cso_tasks, h.DLQ_STREAM: comms, h.DLQ_SEQUENCE: str(real.stream_seq),
         h.DLQ_CONSUMER: "CSO_TASKS", h.DLQ_REASON: "x", h.SENDER: "ceo"},
        {h.DLQ_SUBJECT: f"$JS.API.STREAM.PURGE.{tasks}", h.DLQ_STREAM: comms,
         h.DLQ_SEQUENCE: "1", h.DLQ_CONSUMER: "BACKEND_TASKS", h.DLQ_REASON: "x",
         h.REPLY_TO: f"$JS.API.STREAM.DELETE.{tasks}"},
    ]  # fmt: skip
    async with attacker(auth_fleet, "backend") as backend:
        publisher = Publisher(backend)
        ids = [
            (
                await publisher.publish(
                    spec.subjects.dead_letter(comms, "BACKEND_TASKS", 900_000 + n), b"{}", hdrs
                )
            ).seq
            for n, hdrs in enumerate(forged)
        ]
    before = await stored_on(auth_fleet, cso_tasks)
    async with attacker(auth_fleet, ADMIN) as admin:
        store = DeadLetters(admin, spec)
        replayed = [(await store.replay(i))[0] for i in ids]
        assert await JsApi(admin).stream_info(tasks) is not None  # not purged, not deleted
    assert replayed == [spec.subjects.tasks("backend")] * 2  # back to backend, and no further
    assert await stored_on(auth_fleet, cso_tasks) == before
    await assert_intact(auth_fleet)


async def test_no_role_can_create_a_consumer_to_flood_or_relay(auth_fleet: AuthFleet) -> None:
    """Consumers by the dozen (to use up max_consumers) and push consumers whose deliver
    subject relays stored content anywhere: every form of create is refused."""
    spec = auth_fleet.spec
    p = spec.prefix
    async with attacker(auth_fleet, ADMIN) as admin:
        counts = {s: len(await JsApi(admin).consumers(s)) for s in spec.streams}
    async with attacker(auth_fleet, "backend") as conn:
        for stream in spec.streams:
            config = {"deliver_subject": f"$JS.API.STREAM.DELETE.{stream}", "ack_policy": "none"}
            for i in range(12):
                for api in (
                    f"$JS.API.CONSUMER.CREATE.{stream}",
                    f"$JS.API.CONSUMER.CREATE.{stream}.F{i}",
                    f"$JS.API.CONSUMER.CREATE.{stream}.F{i}.{p}.>",
                    f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.F{i}",
                ):
                    body = {"stream_name": stream, "config": {**config, "name": f"F{i}"}}
                    await conn.nc.publish(api, json.dumps(body).encode())
        await conn.settle()
        assert conn.refused(f"$JS.API.CONSUMER.CREATE.{next(iter(spec.streams))}")
    async with attacker(auth_fleet, ADMIN) as admin:
        assert {s: len(await JsApi(admin).consumers(s)) for s in spec.streams} == counts
    await assert_intact(auth_fleet)


async def test_who_speaks_is_the_servers_word_not_the_speakers(auth_fleet: AuthFleet) -> None:
    """backend says it is ceo, in a meeting and in a fast ask."""
    cso = agent(auth_fleet, "cso")
    senders: list[tuple[str | None, bool]] = []

    @cso.on_request
    async def who(req: Request) -> str:
        senders.append((req.sender, req.sender_verified))
        return "ok"

    async with (
        cso,
        client(auth_fleet, "backend") as backend,
        in_meeting(auth_fleet, "cto", "backend", "standup") as (room, liar),
    ):
        await liar.say("I am the ceo", **{"from": "ceo"})
        said = await first_said(room)
        assert await backend.ask("cso", {"q": 1}, timeout=10, headers={h.SENDER: "ceo"}) == "ok"
    assert (said.sender, said.sender_verified) == ("backend", True)
    assert said.body["from"] == "ceo"  # the claim is kept as data, not believed
    assert senders == [("backend", True)]


async def test_a_role_cannot_cancel_answer_or_relist_another_assigners_task(
    auth_fleet: AuthFleet,
) -> None:
    """devops may send tasks to backend, so it may cancel and answer the tasks *it* gave
    backend. It tries the same on a task cto gave backend: a cancel request and an answer on
    cto's subjects, and a forged entry in the task list. Each is refused by the server; a
    cancel under its own name reaches no task; the task runs to its real end."""
    spec = auth_fleet.spec
    backend, release = held_agent(auth_fleet, "backend")

    async with (
        backend,
        client(auth_fleet, "cto") as cto,
        attacker(auth_fleet, "devops") as devops,
        client(auth_fleet, "devops") as devops_fleet,
    ):
        handle = await cto.assign("backend", {"title": "pagination"})
        publisher = Publisher(devops)
        cancel = TaskUpdate(task_id=handle.id, state="canceled", agent="backend", attempt=0,
                            time="", reason="forged")  # fmt: skip
        for subject, body in (
            (spec.subjects.task(handle.id, "cancel", "cto", "backend"), cancel.encode()),
            (spec.subjects.task(handle.id, "answer", "cto", "backend", "1"), b'{"answer":{}}'),
        ):
            with pytest.raises(PermissionDenied):
                await publisher.publish(subject, body, deadline=1.0)
            assert await stored_on(auth_fleet, subject) == 0
        forged_entry = spec.subjects.task_index("backend", "cto", handle.id)
        await devops.nc.publish(forged_entry, b'{"state":"canceled"}')
        await devops.settle()
        assert devops.refused(forged_entry)
        # Through the API it can only name itself as the assigner: no such task of its own.
        assert await devops_fleet.cancel(handle.id, "backend", "forged") is True
        await asyncio.sleep(0.5)
        release.set()
        assert await handle.result(timeout=10) == {"real": True}
    async with client(auth_fleet, ADMIN) as admin:
        history = await final_history(admin, handle.id, role="backend")
        (entry,) = [t for t in await admin.tasks(role="backend") if t.task_id == handle.id]
    # (an "accepted" first when it ran past accepted_after; never a "canceled")
    assert [u.state for u in history if u.state != "accepted"] == ["completed"]
    assert (entry.state, entry.assigner) == ("completed", "cto")
    await assert_intact(auth_fleet)


async def test_a_role_cannot_fake_or_control_another_roles_agents(auth_fleet: AuthFleet) -> None:
    """devops tries to write a backend presence record (a fake live backend, or a running
    backend marked stopped), to listen to backend's control subject, and to drain backend's
    agent. Each is refused; backend's record stays its own; its agent keeps serving."""
    spec = auth_fleet.spec
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "served"

    async with backend, attacker(auth_fleet, "devops") as devops:
        fake = spec.subjects.presence("backend", "backend-00000000")
        stopped = spec.subjects.presence("backend", backend.worker)
        for subject in (fake, stopped):
            await devops.nc.publish(subject, b'{"state":"stopped"}')
        control = spec.subjects.control("backend", backend.worker)
        await devops.nc.subscribe(spec.subjects.control("backend"))
        await devops.nc.publish(control, b'{"op":"drain"}', reply="_INBOX_devops.control.x.1")
        await devops.settle()
        assert devops.refused(fake) and devops.refused(stopped) and devops.refused(control)
        assert devops.refused(spec.subjects.control("backend"), "subscribe")
        # its own record it may write
        own = spec.subjects.presence("devops", "devops-12345678")
        await devops.nc.publish(own, b"{}")
        await devops.settle()
        assert not devops.refused(own)
        async with client(auth_fleet, ADMIN) as admin:
            (listed,) = await admin.agents("backend")
            assert (listed.instance, listed.state) == (backend.worker, "running")
        async with client(auth_fleet, "cto") as cto:
            handle = await cto.assign("backend", {"title": "still served"})
            assert await handle.result(timeout=10) == "served"
            assert handle.agent_running is True  # cto may read backend's latest record
    await assert_intact(auth_fleet)


async def test_a_role_without_oversight_is_told_it_may_not_observe(auth_fleet: AuthFleet) -> None:
    """Observing every inbox is the oversight roles' (the seed's ceo): backend asking for it
    gets PermissionDenied at once, not a silent stream of nothing."""
    async with client(auth_fleet, "backend") as backend:
        with pytest.raises(PermissionDenied, match="only roles with oversight"):
            async with backend.observer("agents.*.inbox"):
                pass
    async with client(auth_fleet, "ceo") as ceo, ceo.observer("agents.*.inbox"):
        pass  # the ceo may


async def test_a_message_sized_to_the_limit_does_not_take_the_agents_down(
    auth_fleet: AuthFleet,
) -> None:
    """A body the stream stores, not UTF-8 so that the agent dead-letters it at once: with
    the dead letter's headers it would pass max_payload, the server would close the agent's
    connection, and the task, never acked, would do the same to each agent of the role. The
    stream keeps room for those headers: what is stored is dead-lettered whole."""
    spec = auth_fleet.spec
    subject = spec.subjects.tasks("backend", "cto")
    stream = spec.stream_for(subject)
    assert stream is not None
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "real work done"

    async with backend, attacker(auth_fleet, "cto") as conn:
        publisher = Publisher(conn)
        headers = {h.TASK_ID: "poison"}
        near = b"\xff" + b"x" * (conn.max_payload - 1000)  # within max_payload with headers
        with pytest.raises(JetStreamError, match="message size exceeds maximum allowed"):
            await publisher.publish(subject, near, headers)  # the sender is told
        async with attacker(auth_fleet, ADMIN) as admin:
            info = await JsApi(admin).stream_info(stream)
            assert info is not None
            limit = int(info["config"]["max_msg_size"])
            assert 0 < limit < conn.max_payload
            body = b"\xff" + b"x" * (limit - header_block_size(headers | {h.MSG_ID: "m" * 32}) - 1)
            with pytest.raises(JetStreamError, match="message size exceeds maximum allowed"):
                await publisher.publish(subject, body + b"x", headers, msg_id="n" * 32)
            letters = DeadLetters(admin, spec)
            before = {letter.id for letter in await letters.list()}  # the module's fleet's
            await publisher.publish(subject, body, headers, msg_id="m" * 32)  # exactly the limit

            async def dead_lettered() -> bool:
                return await letters.count() > len(before)

            await eventually(dead_lettered, what="the stored poison dead-lettered")
            (letter,) = [e for e in await letters.list() if e.id not in before]
        assert letter.original_subject == subject
        assert letter.body == body  # whole
        assert "UTF-8" in letter.reason + letter.error
        assert backend.state == "running" and backend.failure is None
        async with client(auth_fleet, "cto") as cto:
            handle = await cto.assign("backend", {"title": "after the poison"})
            assert await handle.result(timeout=15) == "real work done"
    await assert_intact(auth_fleet)


@pytest.mark.parametrize("directive", ["Nats-Expected-Stream", "Nats-Expected-Last-Msg-Id"])
async def test_a_header_meant_for_the_server_does_not_make_a_dead_letter_unstorable(
    auth_fleet: AuthFleet, directive: str
) -> None:
    """Directives to the stream that stored the original hold there, and would refuse its
    dead letter in another stream: never terminated, the message would hold the role's task
    queue (one task at a time) for good."""
    spec = auth_fleet.spec
    subject = spec.subjects.tasks("backend", "cto")
    stream = spec.stream_for(subject)
    assert stream is not None
    holds_here = {"Nats-Expected-Stream": stream, "Nats-Expected-Last-Msg-Id": ""}[directive]
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "real work done"

    async with backend, attacker(auth_fleet, "cto") as conn, attacker(auth_fleet, ADMIN) as admin:
        letters = DeadLetters(admin, spec)
        before = {letter.id for letter in await letters.list()}
        headers = {directive: holds_here, h.TASK_ID: "x"}
        await Publisher(conn).publish(subject, b"\xffnot a task", headers)  # stored

        async def dead_lettered() -> bool:
            return await letters.count() > len(before)

        await eventually(dead_lettered, what="the message dead-lettered")
        (letter,) = [e for e in await letters.list() if e.id not in before]
        assert directive not in letter.headers
        assert letter.headers[h.TASK_ID] == "x"
        async with client(auth_fleet, "cto") as cto:
            handle = await cto.assign("backend", {"title": "behind it"})
            assert await handle.result(timeout=15) == "real work done"
    await assert_intact(auth_fleet)


async def test_cancel_requests_for_made_up_tasks_keep_no_more_than_a_bounded_reason(
    auth_fleet: AuthFleet,
) -> None:
    """An agent keeps a live cancel request for a task it has not fetched yet (up to 1024 of
    them): cto sends them for made-up tasks with reasons of a megabyte, or a JSON list that
    decodes to 24 times its size. Each kept reason is text, cut to TEXT_LIMIT characters."""
    spec = auth_fleet.spec
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> str:
        return "real work done"

    huge = "x" * 1_000_000
    bodies = {
        "text": TaskUpdate(
            task_id="t", state="canceled", agent="backend", attempt=0, time="now", reason=huge
        ).encode(),
        "list": json.dumps(
            {"task_id": "t", "state": "canceled", "agent": "backend", "attempt": 0, "time": "now",
             "reason": [{}] * 100_000}
        ).encode(),
    }  # fmt: skip
    async with backend, attacker(auth_fleet, "cto") as conn:
        for name, body in bodies.items():
            for i in range(3):
                subject = spec.subjects.task(f"made-up-{name}-{i}", "cancel", "cto", "backend")
                await conn.nc.publish(subject, body)
        await conn.flush()
        async with client(auth_fleet, "cto") as cto:  # after them on the agent's connection
            handle = await cto.assign("backend", {"title": "real"})
            assert await handle.result(timeout=15) == "real work done"
        assert backend._cancel_watch is not None
        kept = backend._cancel_watch[0].cancels._waiting

        async def all_kept() -> bool:
            return len(kept) == 6

        await eventually(all_kept, what="the six requests kept")
    reasons = {key[0]: reason for key, reason in kept.items()}
    assert all(isinstance(r, str) and len(r) <= TEXT_LIMIT + 3 for r in reasons.values())
    assert reasons["made-up-text-0"].startswith("xxx") and reasons["made-up-list-0"] == "cancelled"


@pytest.mark.parametrize(
    "lie",
    [
        {"grace": "x"},
        {"interval": [1]},
        {"pid": "1"},
        {"tasks": [{"task_id": 5, "attempt": 1, "since": "now"}]},
        {"tasks": "abc"},
        {"handled": {str(i): i for i in range(1_000)}},
        # a made-up state was listed as one, and exported as a metrics series of its own: a
        # role writing records with a new state each made any number of series
        {"state": "s1-" + "A" * 200},
    ],
    ids=["grace", "interval", "pid", "held-task", "tasks", "handled", "state"],
)
async def test_a_presence_record_of_the_wrong_shape_is_skipped_not_a_crash(
    auth_fleet: AuthFleet, lie: dict[str, object]
) -> None:
    """devops writes its own presence record (it may), with a field of the wrong type: the
    readers (the admin's agent list, a sender's liveness check on assign) skip it. Before,
    a TypeError escaped them: `fleetbus agents` and `status` failed, and `assign` raised
    after the task was stored, so a retry would have sent it twice."""
    spec = auth_fleet.spec
    record = {"host": "h", "pid": 1, "version": "1", "started": "2026-01-01T00:00:00Z",
              "state": "running", "interval": 5.0, "grace": 15.0} | lie  # fmt: skip
    instance = f"devops-{uuid.uuid4().hex[:8]}"
    async with attacker(auth_fleet, "devops") as devops:
        await Publisher(devops).publish(
            spec.subjects.presence("devops", instance), json.dumps(record).encode()
        )
    async with client(auth_fleet, "cto") as cto:
        handle = await cto.assign("devops", {"title": "rotate keys"})  # returns: no TypeError
        assert handle.id
    async with client(auth_fleet, ADMIN) as admin:
        listed = await admin.agents("devops")
    assert instance not in [a.instance for a in listed]


async def test_a_role_cannot_date_its_own_entries_to_the_top_of_the_task_list(
    auth_fleet: AuthFleet,
) -> None:
    """The list is ordered by when the server stored each entry, not by the date its writer
    put in it: backend's entry dated 9999 stays where its storing puts it."""
    spec = auth_fleet.spec
    pinned = {"state": "progress", "created": "9999-12-31T23:59:59Z",
              "updated": "9999-12-31T23:59:59Z"}  # fmt: skip
    async with attacker(auth_fleet, "backend") as backend:
        await Publisher(backend).publish(
            spec.subjects.task_index("backend", "cto", "t-pinned"), json.dumps(pinned).encode()
        )
    async with client(auth_fleet, "cto") as cto:
        later = await cto.assign("devops", {"title": "stored after the pinned entry"})
    async with client(auth_fleet, ADMIN) as admin:
        listed = [t.task_id for t in await admin.tasks()]
    assert listed.index(later.id) < listed.index("t-pinned")


async def test_a_role_cannot_make_the_admins_replay_of_another_roles_task_a_duplicate(
    auth_fleet: AuthFleet,
) -> None:
    """backend may write the stream that holds every role's tasks (it sends to cto). It
    stores messages under the ids the admin's replay of ceo's dead-lettered task to cso would
    use (here guessed exactly). Before, the replay was dropped as a duplicate and the dead
    letter deleted: the task was gone from everywhere. Replay ids are random now."""
    spec = auth_fleet.spec
    comms = spec.stream_for(spec.subjects.inbox("cto"))
    tries: list[str | None] = []
    worker = agent(auth_fleet, "cso")

    @worker.on_task
    async def audit(task: Task) -> dict[str, bool]:
        if task.body.get("title") != "audit payments":
            return {}  # a task another test left in cso's queue
        tries.append(task.sender)
        if len(tries) == 1:
            raise Reject("the audit tool is down: replay me later")
        return {"audited": True}

    async with worker, client(auth_fleet, "ceo") as ceo:
        handle = await ceo.assign("cso", {"title": "audit payments"})
        with pytest.raises(TaskError):
            await handle.result(timeout=15)
        async with attacker(auth_fleet, ADMIN) as admin:
            store = DeadLetters(admin, spec)
            [letter] = [e for e in await store.list() if h.TASK_ID in e.headers
                        and e.headers[h.TASK_ID] == handle.id]  # fmt: skip
            async with attacker(auth_fleet, "backend") as backend:
                for seq in (letter.seq, letter.seq + 1):
                    await backend.nc.publish(
                        spec.subjects.inbox("cto", "backend"),
                        b'{"noise": 1}',
                        headers={"Nats-Msg-Id": f"replay-{comms}-{seq}-{letter.id}"},
                    )
                await backend.flush()
            subject, ack = await store.replay(letter.id)
        assert not ack.duplicate and subject == spec.subjects.tasks("cso", "ceo")
        assert await ceo.task(handle.id, "cso").result(timeout=15) == {"audited": True}
    assert tries == ["ceo", "ceo"]


async def test_a_role_cannot_have_the_admin_replay_task_records(auth_fleet: AuthFleet) -> None:
    """cto reads every task's records through its updates consumer and may write dead letters
    for it. Replayed, they would have the admin store records cto may not write: backend's
    old progress record after its outcome (the task shown running again), or cto's own body on
    the consumer's wildcard filter. Records are stored for everyone, not sent to one
    consumer: their dead letters are not replayed."""
    spec = auth_fleet.spec
    tasks = spec.stream_for(spec.subjects.task_records())
    assert tasks
    worker = agent(auth_fleet, "backend")

    @worker.on_task
    async def deploy(task: Task) -> dict[str, bool]:
        await task.progress("halfway", percent=50)
        return {"real": True}

    async with worker, client(auth_fleet, "devops") as devops:
        handle = await devops.assign("backend", {"title": "deploy v2"})
        await handle.result(timeout=15)
    async with attacker(auth_fleet, ADMIN) as admin:
        progress = await JsApi(admin).last_for(
            tasks, spec.subjects.task(handle.id, "updates", "devops", "backend")
        )
        assert progress is not None
        stored_before = (await JsApi(admin).stream_info(tasks))["state"]["last_seq"]
    fake = {"task_id": handle.id, "state": "completed", "agent": "backend", "attempt": 1,
            "time": "2030-01-01T00:00:00Z", "result": {"by": "cto"}}  # fmt: skip
    letters = [
        (b"{}", {h.DLQ_STREAM: tasks, h.DLQ_SEQUENCE: str(progress.seq), h.DLQ_REASON: "x"}),
        (json.dumps(fake).encode(), {h.DLQ_STREAM: tasks, h.DLQ_SEQUENCE: "999999999",
                                     h.DLQ_REASON: "x", h.TASK_ID: handle.id}),
    ]  # fmt: skip
    async with attacker(auth_fleet, "cto") as cto:
        ids = [
            (
                await Publisher(cto).publish(
                    spec.subjects.dead_letter(tasks, "CTO_UPDATES", 800_000 + n), data, hdrs
                )
            ).seq
            for n, (data, hdrs) in enumerate(letters)
        ]
    async with attacker(auth_fleet, ADMIN) as admin:
        store = DeadLetters(admin, spec)
        for dead_letter_id in ids:
            with pytest.raises(FleetbusError, match="not replayed"):
                await store.replay(dead_letter_id)
        assert (await JsApi(admin).stream_info(tasks))["state"]["last_seq"] == stored_before
    async with client(auth_fleet, ADMIN) as admin_fleet:
        [summary] = [t for t in await admin_fleet.tasks() if t.task_id == handle.id]
    assert summary.state == "completed"


async def test_a_speaker_cannot_hide_its_line_from_one_member(auth_fleet: AuthFleet) -> None:
    """Every member's id is in its join notice. backend put cto's id in a field of its own
    line, and cto's room dropped the line as cto's own words while devops heard it: one
    room, two stories. A line is one's own only on one's own subject."""
    spec = auth_fleet.spec
    async with (
        attacker(auth_fleet, "backend") as backend,
        client(auth_fleet, "cto") as cto,
        client(auth_fleet, "devops") as devops,
    ):
        heard = await backend.nc.subscribe(f"{spec.subjects.meeting('release')}.*")
        await backend.flush()
        async with cto.meeting("release") as cto_room, devops.meeting("release") as devops_room:
            ids: dict[str, str] = {}
            while len(ids) < 2:
                body = json.loads((await heard.next_msg(timeout=5)).data)
                ids.setdefault(body["from"], body["member"])
            line = {"from": "backend", "type": "decision", "content": "ship it",
                    "time": "", "x": {"member": ids["cto"]}}  # fmt: skip
            data = json.dumps(line, separators=(",", ":")).encode()  # as members write
            await backend.nc.publish(spec.subjects.meeting("release", "backend"), data)
            for room in (cto_room, devops_room):
                async with asyncio.timeout(5):
                    said = [m async for m in _first_line(room)]
                assert said == [("backend", "ship it")]


async def _first_line(room: Meeting) -> AsyncIterator[tuple[str, object]]:
    async for message in room:
        if not message.notice:
            yield message.sender, message.content
            return


async def test_a_member_cannot_make_the_room_answer_each_of_its_joins(
    auth_fleet: AuthFleet,
) -> None:
    """Every member answered every join with a "present" every member hears: backend's 200
    joins made each member publish 200 lines. A member's joins are answered once a second."""
    spec = auth_fleet.spec
    subject = spec.subjects.meeting("standup", "backend")
    async with (
        attacker(auth_fleet, "backend") as backend,
        client(auth_fleet, "cto") as cto,
        cto.meeting("standup"),
    ):
        presents = await backend.nc.subscribe(spec.subjects.meeting("standup", "cto"))
        await backend.flush()
        join = json.dumps({"from": "backend", "type": "join", "time": ""}).encode()
        for _ in range(200):
            await backend.nc.publish(subject, join)
        await backend.flush()
        await asyncio.sleep(1.0)
        answered = presents.pending_msgs
    assert 1 <= answered <= 3  # cto's own join (if heard) and one answer, not 200


async def test_a_role_cannot_list_its_record_as_another_roles_agent(
    auth_fleet: AuthFleet,
) -> None:
    """devops may write presence records under any instance name on its own subject. One
    named after a real cso agent was listed under devops with cso's name, and the admin's
    `fleetbus agents drain cso-...` of that row drained the real cso agent (the role is
    taken from the name); stopped, it made `agents --watch` say cso's agent left. A record
    whose name is not its role's ({role}-{id}) is no agent's."""
    spec = auth_fleet.spec
    record = {"host": "devops-box", "pid": 1, "version": "1", "started": "2026-01-01T00:00:00Z",
              "state": "running", "interval": 5.0, "grace": 15.0}  # fmt: skip
    async with attacker(auth_fleet, "devops") as devops:
        await Publisher(devops).publish(
            spec.subjects.presence("devops", "cso-f8c23b90"), json.dumps(record).encode()
        )
    async with client(auth_fleet, ADMIN) as admin:
        listed = [(a.role, a.instance) for a in await admin.presence.agents(stopped=True)]
    assert not [i for _, i in listed if i == "cso-f8c23b90"]


async def test_a_role_cannot_log_in_as_another_identity(auth_fleet: AuthFleet) -> None:
    """The server's hashes are at bcrypt's least cost (the passwords are 256 random bits):
    cheap for the server, and no door. A role holding its own password cannot log in as
    another role or as the admin with it, nor with none or a near miss; its own login works."""
    from dataclasses import replace

    from fleetbus.errors import ConnectError
    from fleetbus.js.connection import connect

    own = replace(auth_fleet.settings("backend"), connect_timeout=2.0)
    mine = auth_fleet.credentials["backend"].password
    for user, password in [("cto", mine), (ADMIN, mine), ("cto", ""), ("backend", mine[:-1])]:
        # refused at once: a second is the wait for a server that said no, not for one that
        # has not answered (the error must name the refusal)
        with pytest.raises(ConnectError, match="refused the login"):
            await connect(replace(own, user=user, password=password, connect_timeout=1.0))
    conn = await connect(own)
    assert conn.nc.is_connected
    await conn.close()


async def test_a_refused_login_is_said_at_once_not_after_the_connect_timeout(
    auth_fleet: AuthFleet,
) -> None:
    """The server says no within milliseconds; nats-py would retry until the connect timeout
    (a minute here). The error comes as the refusal does, names it, and leaves nothing
    connected behind."""
    from dataclasses import replace

    from fleetbus.errors import ConnectError
    from fleetbus.js.connection import connect

    settings = replace(auth_fleet.settings("backend"), password="wrong", connect_timeout=60.0)
    before = {t for t in asyncio.all_tasks() if not t.done()}
    async with asyncio.timeout(15):
        with pytest.raises(ConnectError, match="refused the login") as info:
            await connect(settings)
    assert "tried for" not in str(info.value)  # not given up by the clock
    assert "fleetbus creds" in str(info.value)  # and what to do about it
    left = {t for t in asyncio.all_tasks() if not t.done()} - before - {asyncio.current_task()}
    assert not left, left  # no read loop or reconnect of the refused client still running
