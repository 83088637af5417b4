"""Dead letters: failures after max_deliver, rejections, poison bodies, and the copier that
turns the server's max-deliveries advisories into dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from fleetbus.deadletters import COPIER_CONSUMER, AdvisoryCopier, DeadLetters
from fleetbus.errors import TaskError
from fleetbus.js.connection import Connection, connect
from fleetbus.js.publish import Publisher
from fleetbus.runtime import Agent, Reject, Task
from fleetbus.testing.fleets import FleetUnderTest
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TaskUpdate

from .support import (
    api_of,
    dead_letters,
    eventually,
    raw_client,
    seed_spec,
    stream_name,
    updates,
    wait_dead_letters,
)


async def test_a_failing_task_is_retried_with_growing_delays_then_dead_lettered(
    fleet: FleetUnderTest,
) -> None:
    attempts: list[int] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def broken(task: Task) -> None:
        attempts.append(task.attempt)
        raise RuntimeError(f"database unreachable (attempt {task.attempt})")

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "migrate"}, headers={"X-Trace": "abc"})
        with pytest.raises(TaskError) as failed:
            await handle.result(timeout=15)
        history = await updates(nc, fleet, handle.id)
        (letter,) = await wait_dead_letters(nc, fleet, 1)

    assert attempts == [1, 2, 3]  # the seed's max_deliver
    assert failed.value.attempt == 3
    assert "RuntimeError: database unreachable (attempt 3)" in str(failed.value)
    assert "max_deliver 3" in failed.value.reason
    fails = [u for u in history if u.state == "failed"]
    assert [u.attempt for u in fails] == [1, 2]
    assert fails[0].traceback is not None  # the handler's traceback, stored with the attempt
    assert "RuntimeError: database unreachable (attempt 1)" in fails[0].traceback
    assert "in broken" in fails[0].traceback
    delays = [u.retry_in or 0.0 for u in fails]
    assert all(d > 0 for d in delays)
    assert delays == sorted(set(delays))  # strictly increasing
    assert history[-1].state == "dead_lettered"

    tasks_stream = stream_name(fleet, "AGENT_COMMS")
    seq = int(letter.headers[h.DLQ_SEQUENCE])
    assert letter.subject == fleet.spec.subjects.dead_letter(tasks_stream, "BACKEND_TASKS", seq)
    assert all(name in letter.headers for name in h.DLQ_HEADERS)  # the traceback included
    assert "RuntimeError: database unreachable (attempt 3)" in letter.headers[h.DLQ_TRACEBACK]
    assert letter.headers[h.DLQ_SUBJECT] == fleet.spec.subjects.tasks("backend", "cto")
    assert letter.headers[h.DLQ_STREAM] == tasks_stream
    assert letter.headers[h.DLQ_SEQUENCE] == str(handle.stream_seq)
    assert letter.headers[h.DLQ_CONSUMER] == "BACKEND_TASKS"
    assert letter.headers[h.DLQ_DELIVERIES] == "3"
    assert "max_deliver 3" in letter.headers[h.DLQ_REASON]
    assert "database unreachable (attempt 3)" in letter.headers[h.DLQ_ERROR]
    assert letter.headers[h.DLQ_TIME].endswith("Z")
    # the original, as it was sent
    assert json.loads(letter.data) == {"title": "migrate"}
    assert letter.headers[h.TASK_ID] == handle.id
    assert letter.headers[h.SENDER] == "cto"
    assert letter.headers["X-Trace"] == "abc"


def outcome_of_size(room: int) -> Callable[[Task, Agent], str]:
    """A result whose completed outcome's body is ``room`` bytes under max_payload."""

    def result(task: Task, agent: Agent) -> str:
        outcome = TaskUpdate(
            task_id=task.id,
            state="completed",
            agent="backend",
            assigner=task.assigner,
            worker=agent.worker,
            attempt=task.attempt,
            time=TaskUpdate.now(),
            result="",
        )
        return "x" * (agent.conn.max_payload - len(outcome.encode()) - room)

    return result


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (lambda task, agent: {"tags": {"api", "db"}}, "not JSON-serialisable"),
        (lambda task, agent: "x" * 2_000_000, "over the server's max_payload"),
        # the body fits max_payload, not with its headers: sent, the server would have closed
        # the agent's connection (and the next agent's, the task redelivered to it)
        (outcome_of_size(28), "with its headers, over the server's max_payload"),
        # within max_payload, not within what the stream keeps free for a dead letter
        (outcome_of_size(2000), "message size exceeds maximum allowed"),
    ],
    ids=["not-json", "too-large", "too-large-with-headers", "no-room-for-a-dead-letter"],
)
async def test_a_result_that_cannot_be_stored_fails_the_attempt_and_nothing_is_acked_without_it(
    fleet: FleetUnderTest, result: Callable[[Task, Agent], object], said: str
) -> None:
    attempts: list[int] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def answer(task: Task) -> object:
        attempts.append(task.attempt)
        return result(task, agent)

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "report"})
        with pytest.raises(TaskError) as failed:
            await handle.result(timeout=15)
        history = await updates(nc, fleet, handle.id)
        (letter,) = await wait_dead_letters(nc, fleet, 1)
        assert agent.state == "running" and agent.failure is None  # the agent carries on

    assert attempts == [1, 2, 3]  # each attempt failed (and was retried), none was acked
    assert said in str(failed.value)
    assert [u.state for u in history if u.state != "accepted"] == [
        "failed",
        "failed",
        "dead_lettered",
    ]
    assert all(said in (u.error or "") for u in history if u.state == "failed")
    assert said in letter.headers[h.DLQ_ERROR]


async def test_a_rejected_task_is_dead_lettered_at_once(fleet: FleetUnderTest) -> None:
    attempts: list[int] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def picky(task: Task) -> None:
        attempts.append(task.attempt)
        raise Reject("the repository does not exist")

    async with agent, fleet.client() as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "clone it"})
        with pytest.raises(TaskError) as failed:
            await handle.result(timeout=15)
        (letter,) = await wait_dead_letters(nc, fleet, 1)

    assert attempts == [1]
    assert failed.value.attempt == 1
    assert failed.value.error == "the repository does not exist"
    assert letter.headers[h.DLQ_DELIVERIES] == "1"
    assert letter.headers[h.DLQ_REASON] == "rejected: the repository does not exist"


async def test_poison_bodies_are_dead_lettered_and_the_agent_carries_on(
    fleet: FleetUnderTest,
) -> None:
    done: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> str:
        done.append(task.id)
        return "ok"

    subject = fleet.spec.subjects.tasks("backend")
    async with agent, fleet.client() as client, raw_client(fleet) as nc:
        js = nc.jetstream()
        not_json = await js.publish(subject, b"implement pagination, please")
        array = await js.publish(subject, b'[{"task_id": "task-x"}]')
        handle = await client.assign("backend", {"title": "a good one"})
        assert await handle.result(timeout=15) == "ok"
        letters = await wait_dead_letters(nc, fleet, 2)

    assert done == [handle.id]
    by_seq = {int(letter.headers[h.DLQ_SEQUENCE]): letter for letter in letters}
    assert set(by_seq) == {not_json.seq, array.seq}
    assert by_seq[not_json.seq].data == b"implement pagination, please"
    assert by_seq[array.seq].data == b'[{"task_id": "task-x"}]'
    for letter in letters:
        assert letter.headers[h.DLQ_REASON].startswith("bad payload")
        assert letter.headers[h.DLQ_DELIVERIES] == "1"
    assert "not JSON" in by_seq[not_json.seq].headers[h.DLQ_REASON]
    assert "JSON object" in by_seq[array.seq].headers[h.DLQ_REASON]


class Ticket(BaseModel):
    title: str
    priority: int


async def test_a_body_failing_the_handlers_model_is_dead_lettered(
    fleet: FleetUnderTest,
) -> None:
    seen: list[str] = []
    agent = fleet.agent("backend")

    @agent.on_task(model=Ticket)
    async def implement(task: Task) -> str:
        seen.append(task.id)
        return "ok"

    async with agent, fleet.client() as client, raw_client(fleet) as nc:
        bad = await client.assign("backend", {"title": "x", "priority": "urgent"})
        good = await client.assign("backend", {"title": "y", "priority": 1})
        with pytest.raises(TaskError) as failed:
            await bad.result(timeout=15)
        assert await good.result(timeout=15) == "ok"
        (letter,) = await wait_dead_letters(nc, fleet, 1)

    assert seen == [good.id]
    assert "priority" in failed.value.error
    assert letter.headers[h.DLQ_REASON].startswith("bad payload: priority")
    assert json.loads(letter.data) == {"title": "x", "priority": "urgent"}


async def test_a_task_whose_last_attempt_never_answered_is_dead_lettered_with_its_body(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """Two attempts taken by workers that died (a raw client fetching and never acking plays
    them): the next agent to get it runs nothing and dead-letters it at once, body included.
    The server itself never gives up on it (its max_deliver is unlimited): nothing depends on
    an advisory or on the original still being in the stream."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s", "max_deliver": 2}))
    tasks = fleet.spec.consumer("backend", "tasks")
    assert tasks is not None
    ran: list[int] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def work(task: Task) -> None:  # pragma: no cover - never runs
        ran.append(task.attempt)

    async with fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        info = await api_of(nc).consumer_info(tasks.stream, tasks.name)
        assert info is not None and info["config"]["max_deliver"] == -1
        handle = await client.assign("backend", {"title": "workers keep dying"})
        sub = await nc.jetstream().pull_subscribe_bind(tasks.name, tasks.stream)
        for attempt in (1, 2):
            async with asyncio.timeout(10):
                while True:
                    try:
                        (msg,) = await sub.fetch(1, timeout=2)
                    except TimeoutError:
                        continue
                    break
            assert msg.metadata.num_delivered == attempt
        await sub.unsubscribe()
        async with agent:
            with pytest.raises(TaskError) as failed:
                await handle.result(timeout=15)
            (letter,) = await wait_dead_letters(nc, fleet, 1)
    assert ran == []
    assert "no attempt left" in failed.value.reason
    assert letter.headers[h.DLQ_DELIVERIES] == "3"
    assert "no attempt left" in letter.headers[h.DLQ_REASON]
    assert json.loads(letter.data) == {"title": "workers keep dying"}
    assert letter.headers[h.TASK_ID] == handle.id


async def test_max_deliveries_advisories_become_exactly_one_dead_letter(
    make_fleet: Callable[..., FleetUnderTest],
) -> None:
    """A consumer that is not the fleet's (made by a plain client, with a server max_deliver)
    fetched a task twice and never acked. The server's advisory, captured by the dead-letter
    stream, is copied by two copiers racing each other into exactly one dead letter."""
    fleet = make_fleet(seed_spec(backend_tasks={"ack_wait": "1s", "max_deliver": 2}))
    tasks = fleet.spec.consumer("backend", "tasks")
    assert tasks is not None
    async with fleet.client() as client, raw_client(fleet) as nc:
        await api_of(nc).put_consumer(
            tasks.stream,
            {
                "durable_name": "OUTSIDER",
                "ack_policy": "explicit",
                "ack_wait": 1_000_000_000,
                "max_deliver": 2,
                "filter_subjects": tasks.filters,
            },
        )
        handle = await client.assign("backend", {"title": "never acked"})
        sub = await nc.jetstream().pull_subscribe_bind("OUTSIDER", tasks.stream)
        deliveries = []
        for _ in range(2):
            async with asyncio.timeout(10):
                while True:
                    try:
                        (msg,) = await sub.fetch(1, timeout=2)
                    except TimeoutError:
                        continue
                    break
            deliveries.append(msg.metadata.num_delivered)
        assert deliveries == [1, 2]
        # The server notices that the message is out of deliveries only when the next pull
        # request comes (measured: no advisory until then). A running worker of the role
        # is always pulling; here a third raw pull plays that part.
        with pytest.raises(TimeoutError):
            await sub.fetch(1, timeout=2)
        await sub.unsubscribe()

        dlq = fleet.spec.dead_letter_stream
        assert dlq is not None
        stopping = asyncio.Event()
        async with raw_client(fleet) as one, raw_client(fleet) as two:
            conns = [Connection.wrap(raw) for raw in (one, two)]
            copiers = [
                AdvisoryCopier(conn, fleet.spec, Publisher(conn), poll=0.5) for conn in conns
            ]
            runs = [asyncio.create_task(c.run(stopping)) for c in copiers]
            try:
                await wait_dead_letters(nc, fleet, 1)

                async def copied() -> bool:
                    info = await api_of(nc).consumer_info(dlq, COPIER_CONSUMER)
                    assert info is not None
                    return bool(info["num_pending"] == 0 and info["num_ack_pending"] == 0)

                await eventually(copied, what="the copiers to ack the advisory")
            finally:
                stopping.set()
                await asyncio.gather(*runs)
        letters = await dead_letters(nc, fleet)
        # The assigner hears about it: result() raises TaskError, not a timeout.
        with pytest.raises(TaskError, match="max deliveries"):
            await handle.result(timeout=10)
        # Not written by the runtime of any agent: the dead letter keeps no false sender.
        assert h.SENDER not in letters[0].headers

    (letter,) = letters
    assert letter.headers[h.DLQ_SEQUENCE] == str(handle.stream_seq)
    assert letter.headers[h.DLQ_CONSUMER] == "OUTSIDER"
    assert letter.headers[h.DLQ_DELIVERIES] == "2"
    assert "max deliveries" in letter.headers[h.DLQ_REASON]
    assert json.loads(letter.data) == {"title": "never acked"}
    assert letter.headers[h.TASK_ID] == handle.id


async def test_a_handler_error_as_long_as_the_task_still_ends_with_an_outcome(
    fleet: FleetUnderTest,
) -> None:
    """An exception whose text holds the body (``ValueError(f"cannot parse {body}")``): the
    records that carry it must still be stored, or the task would end without an outcome and
    ``result()`` would wait for one that never comes."""
    agent = fleet.agent("backend")

    @agent.on_task
    async def parse(task: Task) -> None:
        text = task.body["text"]
        raise ValueError(f"cannot parse {text}: expected one of {text.upper()}")

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"text": "é" * 400_000})
        with pytest.raises(TaskError) as failed:
            await handle.result(timeout=20)
        history = await updates(nc, fleet, handle.id)
        (letter,) = await wait_dead_letters(nc, fleet, 1)
    assert [u.state for u in history if u.state != "accepted"] == [
        "failed",
        "failed",
        "dead_lettered",
    ]
    assert all(u.error and u.error.startswith("ValueError: cannot parse éé") for u in history)
    assert all(len(u.error or "") < 10_000 for u in history)
    assert "ValueError: cannot parse" in str(failed.value)
    assert letter.headers[h.DLQ_ERROR].startswith("ValueError: cannot parse")


async def test_a_replayed_task_runs_again_for_its_assigner(fleet: FleetUnderTest) -> None:
    """The stream that holds tasks keeps one only until it is settled, so a task's original
    is gone when its dead letter is replayed: the copy goes back under its assigner, whose
    handle then gets the new outcome. (It went out as the admin's task before: the re-run
    succeeded and the assigner kept the old failure.)"""
    senders: list[str | None] = []
    agent = fleet.agent("backend")

    @agent.on_task
    async def flaky(task: Task) -> dict[str, bool]:
        senders.append(task.sender)
        if len(senders) == 1:
            raise Reject("the tool is down: replay me later")
        return {"ok": True}

    async with agent, fleet.client(sender="cto") as client, raw_client(fleet) as nc:
        handle = await client.assign("backend", {"title": "audit"})
        with pytest.raises(TaskError):
            await handle.result(timeout=15)
        (letter,) = await wait_dead_letters(nc, fleet, 1)
        admin = await connect(fleet.connection)
        try:
            subject, _ = await DeadLetters(admin, fleet.spec).replay(letter.seq)
        finally:
            await admin.close()
        result = await client.task(handle.id, "backend").result(timeout=15)
    assert subject == fleet.spec.subjects.tasks("backend", "cto")
    assert result == {"ok": True} and senders == ["cto", "cto"]
