"""Nothing lost, nothing refused while the fleet keeps up: volume from one sender, full
streams, hostile ids and bodies, blocked handlers, and a connection the server drops.

Each test is one way the promise was broken before, tried against a real server; small
stream limits stand in for a full disk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats.js.errors
import pytest
import yaml

from fleetbus import FleetbusError, Reject, Task, TaskError
from fleetbus.errors import InvalidSubjectError, JetStreamError, JsErrorCode
from fleetbus.fleet import FleetSpec, ServerSpec
from fleetbus.js.connection import Connection
from fleetbus.ops.status import collect, evaluate
from fleetbus.runtime import Agent, Message, Request, settle
from fleetbus.testing import eventually, run_nats_server
from fleetbus.testing.fleets import FleetUnderTest, make
from fleetbus.wire import headers as h

from .support import (
    dead_letters,
    raw_client,
    seed_spec,
    stored,
    stream_name,
    wait_dead_letters,
)


async def _stream_messages(fleet: FleetUnderTest, base: str, subject_prefix: str = "") -> int:
    async with raw_client(fleet) as nc:
        return sum(
            1
            for m in await stored(nc, stream_name(fleet, base))
            if m.subject.startswith(subject_prefix)
        )


# -- 1. retention: volume from one sender is never refused while the role keeps up ----------


async def test_thousands_from_one_sender_are_never_refused_while_the_role_keeps_up(
    fleet: FleetUnderTest,
) -> None:
    """Past the 1000-per-subject cap, from a role and from a client without a sender (one
    shared subject): processed messages no longer count, so none is refused, and none stays."""
    read = 0
    agent = fleet.agent("backend")

    @agent.on_task
    async def echo(task: Task) -> int:
        return int(task.body["n"])

    @agent.on_message
    async def count(message: Message) -> None:
        nonlocal read
        read += 1

    async with agent, fleet.client(sender="cto") as cto, fleet.client() as plain:
        for window in range(12):  # 1200 tasks, cto -> backend: one subject
            handles = [await cto.assign("backend", {"n": window * 100 + i}) for i in range(100)]
            results = await asyncio.gather(*(hd.result(timeout=30) for hd in handles))
            assert results == [window * 100 + i for i in range(100)]
        for window in range(12):  # 1200 messages with no sender: one subject too
            for i in range(100):
                await plain.message("backend", {"n": i})
            await eventually(lambda w=window: read == (w + 1) * 100, 30, "the inbox read")

    async def emptied() -> bool:
        return await _stream_messages(fleet, "AGENT_COMMS") == 0

    await eventually(emptied, 10, "processed messages removed")


async def test_a_role_that_does_not_keep_up_pushes_back_and_loses_nothing(
    fleet: FleetUnderTest,
) -> None:
    """No devops agent runs: its 1000 unprocessed messages from cto are kept; the 1001st is
    refused (backpressure), and the first 1000 are all there when an agent comes."""
    async with fleet.client(sender="cto") as cto:
        for i in range(1000):
            await cto.message("devops", {"n": i})
        with pytest.raises(JetStreamError) as refused:
            await cto.message("devops", {"n": 1000})
        assert refused.value.err_code == JsErrorCode.MAX_MSGS_PER_SUBJECT
    seen: list[int] = []
    devops = fleet.agent("devops")

    @devops.on_message
    async def read(message: Message) -> None:
        seen.append(int(message.body["n"]))

    async with devops:
        await eventually(lambda: len(seen) == 1000, 30, "the 1000 kept messages")
    assert sorted(seen) == list(range(1000))


async def test_a_send_no_consumer_reads_is_refused_before_it_is_sent(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """An interest stream acknowledges and drops what no consumer reads: the client says so
    instead of sending."""
    spec = seed_spec()
    roles = dict(spec.roles)
    roles["devops"] = roles["devops"].model_copy(update={"meetings": None})
    fleet = make_fleet(spec.model_copy(update={"roles": roles}))
    async with fleet.client(sender="cto") as cto:
        await cto.message("devops", {"n": 1})  # where a client sends is remembered per role...
        for _ in range(2):  # ...and a refusal is never taken for one of them
            with pytest.raises(FleetbusError, match="no meetings consumer"):
                await cto.invite("devops", {"meeting": "standup"})
            with pytest.raises(FleetbusError, match="nobody"):
                await cto.message("nobody", {"n": 2})
    assert await _stream_messages(fleet, "AGENT_COMMS") == 1  # the message alone


# -- 2. a full dead-letter stream loses nothing ----------------------------------------------


async def test_a_full_dead_letter_stream_leaves_the_messages_where_they_are(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    fleet = make_fleet(seed_spec(streams={"AGENT_DLQ": {"max_msgs": 2, "discard": "new"}}))
    agent = fleet.agent("backend", dead_letter_retry=0.3)

    @agent.on_task
    async def refuse(task: Task) -> None:
        raise Reject("not today")

    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        handles = [await cto.assign("backend", {"n": i}) for i in range(6)]
        tasks = fleet.spec.subjects.agent("backend", "tasks")

        async def waiting() -> int:
            return await _stream_messages(fleet, "AGENT_COMMS", tasks)

        async def kept_back() -> bool:
            return await waiting() >= 1

        await eventually(kept_back, 10, "tasks kept back")
        letters = len(await wait_dead_letters(nc, fleet, 1))
        assert letters + await waiting() == 6  # each task is a dead letter or still queued
        conn = Connection.wrap(nc)
        status = await collect(conn, fleet.spec, dead_letters_before=None)
        dlq = stream_name(fleet, "AGENT_DLQ")
        assert any(
            a.code == "storage" and a.subject == dlq for a in evaluate(status, fleet.spec.alerts)
        )

        info = await nc.jetstream().stream_info(dlq)
        await nc.jetstream().update_stream(info.config, max_msgs=-1)  # room again
        await wait_dead_letters(nc, fleet, 6)
        for handle in handles:
            with pytest.raises(TaskError, match="not today"):
                await handle.result(timeout=15)
        assert await waiting() == 0


# -- 3. a full TASKS stream drops no result ----------------------------------------------------


async def test_a_result_that_cannot_be_stored_is_retried_not_acknowledged(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    fleet = make_fleet(
        seed_spec(
            streams={"TASKS": {"max_msgs": 3, "discard": "new"}}, backend_tasks={"max_deliver": 50}
        )
    )
    agent = fleet.agent("backend", retry_base=0.1, retry_max=0.3)

    @agent.on_task
    async def echo(task: Task) -> int:
        return int(task.body["n"])

    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        handles = [await cto.assign("backend", {"n": n}) for n in range(5)]
        waits = [asyncio.create_task(hd.result(timeout=60)) for hd in handles]
        await asyncio.sleep(2.0)
        for handle, wait in zip(handles, waits, strict=True):
            if wait.done():  # a result is only ever one that is stored
                assert (await handle.outcome()) is not None
        assert not all(w.done() for w in waits)
        info = await nc.jetstream().stream_info(stream_name(fleet, "TASKS"))
        await nc.jetstream().update_stream(info.config, max_msgs=-1)  # room again
        assert await asyncio.gather(*waits) == list(range(5))
        for handle in handles:
            outcome = await handle.outcome()
            assert outcome is not None and outcome.state == "completed"


# -- 4. hostile ids and tokens -------------------------------------------------------------------


async def test_a_long_task_id_is_refused_at_the_sender_and_the_connection_lives(
    fleet: FleetUnderTest,
) -> None:
    agent = fleet.agent("backend")

    @agent.on_task
    async def ok(task: Task) -> str:
        return "ok"

    async with agent, fleet.client(sender="cto") as cto:
        with pytest.raises(InvalidSubjectError, match="5000 characters"):
            await cto.assign("backend", {}, task_id="z" * 5000)
        handle = await cto.assign("backend", {"title": "next"})
        assert await handle.result(timeout=15) == "ok"


async def test_hostile_ids_and_tokens_are_dead_lettered_at_once(fleet: FleetUnderTest) -> None:
    """What a client that is not fleetbus can store (no auth here): a 5000-character task id,
    a sender token naming no role. Each is a dead letter on its first delivery, and the agent
    takes the next task as if nothing happened."""
    done: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> str:
        done.append(task.id)
        return "ok"

    subject = fleet.spec.subjects.tasks("backend")
    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        js = nc.jetstream()
        long_id = await js.publish(subject, b"{}", headers={h.TASK_ID: "z" * 5000})
        stranger = await js.publish(f"{subject}.{'s' * 300}", b"{}")
        handle = await cto.assign("backend", {"title": "a good one"})
        assert await handle.result(timeout=15) == "ok"
        letters = await wait_dead_letters(nc, fleet, 2)
    assert done == [handle.id]
    by_seq = {int(m.headers[h.DLQ_SEQUENCE]): m.headers for m in letters}
    assert by_seq[long_id.seq][h.DLQ_REASON].startswith("bad task id")
    assert by_seq[stranger.seq][h.DLQ_REASON].startswith("bad sender")
    assert {m[h.DLQ_DELIVERIES] for m in by_seq.values()} == {"1"}


async def test_an_agent_whose_connection_the_server_drops_says_so_and_stops(
    fleet: FleetUnderTest,
) -> None:
    """nats-py closes for good when the server drops it for a protocol error (here a handler's
    own publish on a subject past the control-line limit): the agent does not linger as a
    zombie, ``serve_forever`` raises one clear error, and the task goes to the next agent."""
    first = fleet.agent("backend")

    @first.on_task
    async def reckless(task: Task) -> str:
        await first.nc.publish("x." + "z" * 5000, b"")
        await asyncio.sleep(30)
        return "never"

    second = fleet.agent("backend")

    @second.on_task
    async def careful(task: Task) -> str:
        return "done by the second"

    async with fleet.client(sender="cto") as cto:
        serving = asyncio.create_task(first.serve_forever())
        await eventually(lambda: first.state == "running", 10, "serving")
        handle = await cto.assign("backend", {"title": "survives"})
        with pytest.raises(FleetbusError, match="closed for good"):
            await asyncio.wait_for(serving, 20)
        assert first.failure is not None and "stopped serving" in first.failure
        async with second:
            assert await handle.result(timeout=20) == "done by the second"


# -- 5. undecodable bodies are bad payloads, not crashes -----------------------------------------


async def test_bodies_python_cannot_decode_are_dead_lettered_on_the_first_delivery(
    fleet: FleetUnderTest,
) -> None:
    ran: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> None:
        ran.append(task.id)

    @agent.on_request
    async def answer(request: Request) -> str:
        ran.append("asked")
        return "answer"

    tasks = fleet.spec.subjects.tasks("backend")
    inbox = fleet.spec.subjects.inbox("backend")
    async with agent, raw_client(fleet) as nc:
        js = nc.jetstream()
        deep = await js.publish(tasks, b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
        digits = await js.publish(tasks, b'{"n": ' + b"9" * 5000 + b"}")
        no_reply = await js.publish(inbox, b"{}", headers={h.ASK_ID: "ask-1", h.REPLY_TO: ""})
        bad_reply = await js.publish(
            inbox, b"{}", headers={h.ASK_ID: "ask-2", h.REPLY_TO: "genbrain.agents.cso.tasks"}
        )
        letters = await wait_dead_letters(nc, fleet, 4)
    assert ran == []
    by_seq = {int(m.headers[h.DLQ_SEQUENCE]): m.headers for m in letters}
    assert "nested too deeply" in by_seq[deep.seq][h.DLQ_REASON]
    assert by_seq[digits.seq][h.DLQ_REASON].startswith("bad payload")
    assert by_seq[no_reply.seq][h.DLQ_REASON].startswith("bad reply subject")
    assert by_seq[bad_reply.seq][h.DLQ_REASON].startswith("bad reply subject")
    assert {m[h.DLQ_DELIVERIES] for m in by_seq.values()} == {"1"}


# -- 6. a blocked handler cannot store a second result -----------------------------------------


async def test_a_handler_that_blocks_its_loop_loses_the_task_and_cannot_overwrite_its_result(
    make_fleet: Callable[[FleetSpec], FleetUnderTest], caplog: pytest.LogCaptureFixture
) -> None:
    """An async handler makes a synchronous call longer than the ack wait: the watchdog names
    it while it blocks, a peer gets the task and completes it, and the blocked attempt's late
    result is not stored over the peer's, even with a duplicate window far shorter than the
    block (the first outcome stored wins, whatever the window)."""
    fleet = make_fleet(
        seed_spec(streams={"TASKS": {"duplicate_window": "1s"}}, backend_tasks={"ack_wait": "1s"})
    )
    caplog.set_level(logging.INFO)
    started = threading.Event()
    finished = threading.Event()
    release = threading.Event()

    def blocked_agent() -> None:
        async def main() -> None:
            agent = fleet.agent("backend", blocked_loop_warning=0.5)

            @agent.on_task
            async def blocking_handler(task: Task) -> str:
                started.set()
                time.sleep(3.0)  # noqa: ASYNC251 - the mistake under test
                finished.set()
                return "from the blocked attempt"

            async with agent:
                await asyncio.to_thread(release.wait)

        asyncio.run(main())

    thread = threading.Thread(target=blocked_agent)
    thread.start()
    peer = fleet.agent("backend")

    @peer.on_task
    async def quick(task: Task) -> str:
        return "from the peer"

    try:
        async with fleet.client(sender="cto") as cto:
            handle = await cto.assign("backend", {"title": "contested"})
            await asyncio.to_thread(started.wait, 15)
            async with peer:
                assert await handle.result(timeout=15) == "from the peer"
                await asyncio.to_thread(finished.wait, 15)
                await asyncio.sleep(1.5)  # past the duplicate window; the late write is done
            outcome = await handle.outcome()
            assert outcome is not None and outcome.result == "from the peer"
            outcome_subject = fleet.spec.subjects.task(handle.id, "outcome", "cto", "backend")
            async with raw_client(fleet) as nc:
                records = [
                    m for m in await stored(nc, stream_name(fleet, "TASKS"))
                    if m.subject == outcome_subject
                ]  # fmt: skip
            assert [json.loads(m.data)["result"] for m in records] == ["from the peer"]
    finally:
        release.set()
        await asyncio.to_thread(thread.join, 20)
    blocked = [
        r.getMessage() for r in caplog.records if "event loop has been blocked" in r.getMessage()
    ]
    assert blocked and "blocking_handler" in blocked[0]


# -- 7. a crashed agent does not stall its role for long -------------------------------------

HANGING_WORKER = """
import asyncio
import sys
from pathlib import Path

import yaml

from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import ConnectSettings
from fleetbus.runtime import Agent, RuntimeSettings, Task

spec = FleetSpec.model_validate(yaml.safe_load(Path(sys.argv[1]).read_text()))
agent = Agent("backend", spec=spec, connection=ConnectSettings.from_url(sys.argv[2]),
              settings=RuntimeSettings(poll=1.0))


@agent.on_task
async def hang(task: Task) -> None:
    print(task.id, flush=True)
    await asyncio.Event().wait()  # until killed


agent.run()
"""


@pytest.mark.slow
async def test_a_killed_agent_holds_up_its_role_for_one_lease_not_thirty_seconds(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    """The seed's tasks consumer (max_ack_pending 1, the default 4 s lease): an agent
    SIGKILLed mid-task holds the whole role's queue. Its peer finishes that task and the six
    queued behind it well within 30 s, the seed's ack wait alone."""
    spec_file = tmp_path / "fleet.yaml"
    spec_file.write_text(yaml.safe_dump(fleet.spec.model_dump(mode="json")))
    script = tmp_path / "worker.py"
    script.write_text(HANGING_WORKER)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(spec_file), fleet.url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    peer = fleet.agent("backend")

    @peer.on_task
    async def finish(task: Task) -> int:
        return int(task.body["n"])

    try:
        async with fleet.client(sender="cto") as cto:
            first = await cto.assign("backend", {"n": 0})
            assert proc.stdout is not None
            held = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert held.decode().strip() == first.id
            queued = [await cto.assign("backend", {"n": n}) for n in range(1, 7)]
            async with peer:  # waits: max_ack_pending 1, and the killed agent holds it
                proc.kill()
                await proc.wait()
                results = await asyncio.wait_for(
                    asyncio.gather(*(h.result(timeout=30) for h in [first, *queued])), 25
                )
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert results == list(range(7))


async def test_a_task_whose_outcome_cannot_be_stored_is_not_terminated_without_it(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """TASKS full with the seed's three attempts: each completed outcome is refused, the
    attempts run out and the task is dead-lettered, but its dead_lettered outcome is refused
    too. It was terminated anyway, and result() never ended. Now the message stays until the
    outcome can be stored: once there is room, the assigner learns how the task ended."""
    fleet = make_fleet(seed_spec(streams={"TASKS": {"max_msgs": 3, "discard": "new"}}))
    agent = fleet.agent("backend", retry_base=0.05, retry_max=0.1, dead_letter_retry=0.3)
    runs: list[int] = []

    @agent.on_task
    async def work(task: Task) -> dict[str, int]:
        runs.append(task.attempt)
        return {"done": 1}

    async with raw_client(fleet) as nc:
        js = nc.jetstream()
        for i in range(3):  # someone else's records fill the stream
            await js.publish(f"{fleet.spec.prefix}.tasks.filler-{i}.updates.admin.backend", b"{}")
        async with agent, fleet.client(sender="cto") as cto:
            handle = await cto.assign("backend", {"n": 1})
            await wait_dead_letters(nc, fleet, 1)
            await asyncio.sleep(1.0)  # tried again, and refused again
            assert await handle.outcome() is None
            info = await js.stream_info(stream_name(fleet, "TASKS"))
            await js.update_stream(info.config, max_msgs=-1)  # room again
            with pytest.raises(TaskError) as ended:
                await handle.result(timeout=30)
        assert len(await dead_letters(nc, fleet)) == 1  # stored once, however often tried
    assert not isinstance(ended.value, TimeoutError)  # the outcome, not the wait running out
    assert runs == [1, 2, 3] and ended.value.attempt >= 3


async def test_a_full_server_is_said_at_once_not_retried_as_an_election(tmp_path: Path) -> None:
    """The server's JetStream storage is full (503, 10023): retrying soon does not help, and
    it held the sender (and an agent's outcome, past its lease) for the retry budget of
    about 30 s. The sender is told at once."""
    with run_nats_server(tmp_path, spec=ServerSpec(max_file=4_000_000)) as server:
        fleet = make(server.url, seed_spec())
        async with raw_client(fleet) as nc:
            js, blob = nc.jetstream(), b"x" * 200_000
            with pytest.raises(nats.js.errors.APIError):
                for i in range(100):  # someone else's records fill the server's storage
                    await js.publish(f"{fleet.spec.prefix}.tasks.f-{i}.updates.admin.backend", blob)
        async with fleet.client(sender="cto") as cto:
            with pytest.raises(JetStreamError) as full:
                async with asyncio.timeout(10):  # generous: the retries took ~30 s
                    await cto.assign("backend", {"title": "migrate"})
    assert full.value.err_code == JsErrorCode.INSUFFICIENT_RESOURCES


async def test_hung_def_handlers_leave_the_event_loops_threads_free(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """Plain def handlers that never return each keep a thread. They ran in the event loop's
    default executor (a handful of threads: min(32, CPUs + 4)), which nats-py needs to
    resolve the server's name on a reconnect and every asyncio.to_thread caller (a stop, say)
    waits on: the agent could not reconnect until a hung handler ended. They have threads of
    their own now."""
    hung = min(32, (os.cpu_count() or 1) + 4) + 2  # more than the default executor has
    fleet = make_fleet(seed_spec(backend_inbox={"max_ack_pending": hung}))
    release = threading.Event()
    started = threading.Semaphore(0)
    agent = fleet.agent("backend")

    @agent.on_message
    def stuck(message: Message) -> None:
        started.release()
        release.wait(60)

    try:
        async with agent, fleet.client(sender="cto") as cto:
            for n in range(hung):
                await cto.message("backend", {"n": n})
            for _ in range(hung):  # every handler holds its thread
                assert await asyncio.to_thread(started.acquire, True, 15)
            async with asyncio.timeout(10):
                assert await asyncio.to_thread(lambda: "free") == "free"
            release.set()
    finally:
        release.set()


async def test_a_message_handler_is_held_to_the_roles_budget_too(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """Only task handlers had a budget: a message (or invitation) handler that never
    returned was heartbeated for good and, at max_ack_pending, held its role's inbox: cto
    sent backend's meeting handlers rooms where nobody ever decides, and devops's real
    invitation never came. Every handler of the role has its task_budget."""
    fleet = make_fleet(
        seed_spec(
            backend_inbox={"max_ack_pending": 1, "max_deliver": 1, "ack_wait": "1s"},
            budgets={"backend": "1s"},
        )
    )
    handled: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_message
    async def read(message: Message) -> None:
        if message.body["kind"] == "trap":
            await asyncio.sleep(3600)
        handled.append(message.body["kind"])

    async with agent, fleet.client(sender="cto") as cto, raw_client(fleet) as nc:
        await cto.message("backend", {"kind": "trap"})
        await cto.message("backend", {"kind": "real"})
        await eventually(lambda: handled == ["real"], 15, "the message behind the trap")
        (letter,) = await wait_dead_letters(nc, fleet, 1)
    assert "task_budget of 1s" in (letter.headers or {}).get(h.DLQ_ERROR, "")


async def test_the_lease_holds_while_the_outcome_is_written(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """Heartbeats stopped when the handler returned, before its outcome was written: an
    outcome write that waits (a stream electing a leader retries for up to 30 s) past the
    ack wait lost the lease, and another agent ran the task again. Here the write is slowed
    by three ack waits; the task runs once."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s"}))
    runs: list[str] = []
    agents = [fleet.agent("backend") for _ in range(2)]
    for agent in agents:

        @agent.on_task
        async def work(task: Task, agent: Agent = agent) -> str:
            runs.append(agent.worker)
            return "done"

    async with agents[0], agents[1], fleet.client(sender="cto") as cto:
        for agent in agents:
            settler = agent._settler
            assert settler is not None and settler.records is not None
            write = settler.records.outcome

            async def slow_write(*args: Any, write: Any = write) -> Any:
                await asyncio.sleep(3.0)
                return await write(*args)

            settler.records.outcome = slow_write  # type: ignore[method-assign]
        handle = await cto.assign("backend", {"title": "x"})
        assert await handle.result(timeout=30) == "done"
        await asyncio.sleep(2.0)  # a second run would have started by now
    assert len(runs) == 1, runs


async def test_a_handler_that_ended_is_not_given_up_while_its_dead_letter_is_written(
    make_fleet: Callable[[FleetSpec], FleetUnderTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An `on_message` handler past its budget on its last attempt, the dead-letter write slow
    (a stream electing a leader): the heartbeat sweep took the ended handler for one still
    running, gave it up, and failed the message again (four dead-letter writes where one
    belongs), and with the heartbeats stopped mid-write the server handed it out again."""
    fleet = make_fleet(
        seed_spec(budgets={"backend": "1s"}, backend_inbox={"ack_wait": "1s", "max_deliver": 1})
    )
    writes: list[float] = []
    write = settle.write_dead_letter

    async def slow_write(*args: Any, **kwargs: Any) -> Any:
        writes.append(asyncio.get_running_loop().time())
        await asyncio.sleep(3.0)
        return await write(*args, **kwargs)

    monkeypatch.setattr(settle, "write_dead_letter", slow_write)
    agent = fleet.agent("backend")

    @agent.on_message
    async def handle(msg: Message) -> None:
        await asyncio.sleep(60)  # lets its cancellation through at the budget

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        await client.message("backend", {"text": "x"})
        await wait_dead_letters(nc, fleet, 1, timeout=30)
        await asyncio.sleep(3.0)  # a second give-up, or a redelivery, would have written by now
    assert len(writes) == 1
    assert agent._settler is not None and dict(agent._settler.handled) == {"failed": 1}
