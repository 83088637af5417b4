"""Provisioning against a real nats-server: create, idempotence, drift, recreate, dry run.

What the server holds is checked with a plain nats-py client, not with fleetbus's own reader.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StoreCompression,
)
from nats.js.errors import NotFoundError
from rich.console import Console

from fleetbus.errors import ProvisionError
from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, ConnectSettings, connect
from fleetbus.provision import Action, ApplyResult, provision
from fleetbus.provision.report import print_plan
from fleetbus.server.process import NatsServer
from fleetbus.testing.fleets import isolate

DAY = 86400.0


@pytest.fixture
async def raw(nats_server: NatsServer) -> AsyncIterator[tuple[Client, JetStreamContext]]:
    """A plain nats-py client, as a user without fleetbus would have."""
    nc = await nats.connect(nats_server.url)
    try:
        yield nc, nc.jetstream()
    finally:
        await nc.close()


@pytest.fixture
async def admin(nats_server: NatsServer) -> AsyncIterator[Connection]:
    """The connection fleetbus provisions through."""
    conn = await connect(ConnectSettings.from_url(nats_server.url, name="test-provision"))
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def spec(raw: tuple[Client, JetStreamContext]) -> AsyncIterator[FleetSpec]:
    """The seed fleet under a unique prefix, not provisioned yet; its streams are deleted
    afterwards, so the session server does not fill up."""
    isolated = isolate(seed_fleet())
    yield isolated
    _, js = raw
    for name in isolated.streams:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)


def stream(spec: FleetSpec, base: str) -> str:
    """The isolated name of the seed's stream ``base``."""
    return next(n for n in spec.streams if n.rsplit("_", 1)[0] == base)


def mine(result: ApplyResult, spec: FleetSpec) -> list[Action]:
    """The plan's actions on ``spec``'s streams (other tests' streams share the server)."""
    return [a for a in result.plan.actions if a.stream in spec.streams]


def ops(result: ApplyResult, spec: FleetSpec) -> set[str]:
    return {a.op for a in mine(result, spec)}


async def test_a_fleet_file_with_errors_is_refused_before_anything_is_made(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """EVENTS also capturing the tasks' subjects: the server would make EVENTS and then refuse
    TASKS, leaving a stream that swallows every task. The error names the key instead."""
    events = stream(spec, "EVENTS")
    taken = spec.streams[events].model_copy(
        update={"subjects": [*spec.streams[events].subjects, "tasks.>"]}
    )
    bad = spec.model_copy(update={"streams": {**spec.streams, events: taken}})
    with pytest.raises(ProvisionError) as refused:
        await provision(admin, bad)
    message = str(refused.value)
    assert "nothing was provisioned" in message
    assert f"streams.{stream(spec, 'TASKS')}.subjects" in message and "overlaps" in message
    assert "fleetbus check" in message
    _, js = raw
    assert not set(spec.streams) & {info.config.name for info in await js.streams_info()}


async def test_first_provision_creates_the_seed(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    result = await provision(admin, spec)
    assert ops(result, spec) == {"create"}
    assert len(result.applied) == len(spec.streams) + len(spec.consumers())
    assert result.skipped == ()
    assert len(result.plan.warnings) == 1  # replicas 3 on one node: one line for them all

    p = spec.prefix
    comms = (await js.stream_info(stream(spec, "AGENT_COMMS"))).config
    assert comms.subjects == [f"{p}.agents.>"]
    assert comms.retention == RetentionPolicy.INTEREST  # processed messages go at once
    assert comms.storage == StorageType.FILE
    assert comms.max_msgs_per_subject == 1000  # unprocessed ones, per sender -> role
    assert comms.max_age == 0  # nothing unprocessed expires
    assert comms.discard == DiscardPolicy.NEW  # the documented fix of the seed's discard old
    assert comms.discard_new_per_subject is True
    assert comms.num_replicas == 1  # replicas 3, capped on a single node
    assert comms.max_consumers == 115  # its 15 consumers and room for the admin's readers
    assert comms.duplicate_window == 3600.0

    events = (await js.stream_info(stream(spec, "EVENTS"))).config
    assert events.subjects == [f"{p}.events.>"]
    assert (events.max_msgs_per_subject, events.max_age) == (5000, 30 * DAY)
    assert events.discard == DiscardPolicy.OLD
    tasks = (await js.stream_info(stream(spec, "TASKS"))).config
    assert tasks.subjects == [f"{p}.tasks.>"]
    assert tasks.retention == RetentionPolicy.LIMITS  # not the seed's work-queue
    dlq = (await js.stream_info(stream(spec, "AGENT_DLQ"))).config
    assert dlq.subjects is not None
    assert f"{p}.dlq.>" in dlq.subjects
    assert any(s.startswith("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.") for s in dlq.subjects)

    comms_name = stream(spec, "AGENT_COMMS")
    backend_tasks = (await js.consumer_info(comms_name, "BACKEND_TASKS")).config
    assert backend_tasks.durable_name == "BACKEND_TASKS"
    assert backend_tasks.filter_subjects == [
        f"{p}.agents.backend.tasks",
        f"{p}.agents.backend.tasks.*",
    ]
    assert backend_tasks.deliver_policy == DeliverPolicy.ALL
    assert backend_tasks.ack_policy == AckPolicy.EXPLICIT
    # The fleet file's max_deliver (3) is the runtime's count of attempts; the server never
    # gives up on a message by itself (a dead letter must be stored before it goes).
    assert backend_tasks.max_deliver == -1
    assert backend_tasks.max_ack_pending == 1
    assert backend_tasks.ack_wait == 4.0  # a lease: a crashed agent's task moves on within it

    backend_inbox = (await js.consumer_info(comms_name, "BACKEND_INBOX")).config
    assert backend_inbox.filter_subjects == [
        f"{p}.agents.backend.inbox",
        f"{p}.agents.backend.inbox.*",
    ]
    assert (backend_inbox.max_deliver, backend_inbox.max_ack_pending) == (-1, 5)

    events_name = stream(spec, "EVENTS")
    devops = (await js.consumer_info(events_name, "DEVOPS_EVENTS")).config
    assert devops.filter_subject == f"{p}.events.deployment.>"
    assert devops.deliver_policy == DeliverPolicy.ALL
    cso = (await js.consumer_info(events_name, "CSO_EVENTS")).config
    assert cso.filter_subject == f"{p}.events.>"

    # Every consumer the fleet declares exists where the fleet says.
    for c in spec.consumers():
        info = await js.consumer_info(c.stream, c.name)
        assert info.config.durable_name == c.name


async def test_second_provision_is_all_unchanged(spec: FleetSpec, admin: Connection) -> None:
    await provision(admin, spec)
    again = await provision(admin, spec)
    assert ops(again, spec) == {"unchanged"}
    assert again.applied == ()
    assert again.skipped == ()
    third = await provision(admin, spec)
    assert ops(third, spec) == {"unchanged"}


async def test_drift_is_reported_and_repaired(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    await provision(admin, spec)
    comms = stream(spec, "AGENT_COMMS")

    # Someone edits the stream and a consumer by hand.
    info = await js.stream_info(comms)
    await js.update_stream(info.config, max_msgs_per_subject=50, max_age=DAY)
    consumer = await js.consumer_info(comms, "BACKEND_TASKS")
    await js.add_consumer(comms, consumer.config, max_deliver=9, ack_wait=120.0)
    assert (await js.consumer_info(comms, "BACKEND_TASKS")).config.max_deliver == 9

    plan = (await provision(admin, spec, dry_run=True)).plan
    drifted = {a.label: a for a in plan.actions if a.op not in ("unchanged", "unmanaged")}
    assert set(drifted) == {comms, f"{comms} > BACKEND_TASKS"}
    stream_action = drifted[comms]
    assert stream_action.op == "update"
    assert {c.field for c in stream_action.changes} == {"max_msgs_per_subject", "max_age"}
    changes = {c.field: (c.live, c.desired) for c in stream_action.changes}
    assert changes["max_msgs_per_subject"] == (50, 1000)
    assert changes["max_age"] == (int(DAY * 1e9), 0)
    consumer_action = drifted[f"{comms} > BACKEND_TASKS"]
    assert consumer_action.op == "update"
    assert {c.field for c in consumer_action.changes} == {"max_deliver", "ack_wait"}

    applied = await provision(admin, spec)
    assert {a.label for a in applied.applied} == {comms, f"{comms} > BACKEND_TASKS"}
    restored = (await js.stream_info(comms)).config
    assert (restored.max_msgs_per_subject, restored.max_age) == (1000, 0)
    restored_consumer = (await js.consumer_info(comms, "BACKEND_TASKS")).config
    assert (restored_consumer.max_deliver, restored_consumer.ack_wait) == (-1, 4.0)

    assert ops(await provision(admin, spec), spec) == {"unchanged"}


async def test_deleted_consumer_is_created_again(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    await provision(admin, spec)
    events = stream(spec, "EVENTS")
    await js.delete_consumer(events, "CSO_EVENTS")
    result = await provision(admin, spec)
    assert [(a.label, a.op) for a in result.applied] == [(f"{events} > CSO_EVENTS", "create")]
    assert (await js.consumer_info(events, "CSO_EVENTS")).config.durable_name == "CSO_EVENTS"


async def test_storage_change_needs_force_and_recreates_consumers(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    await provision(admin, spec)
    comms = stream(spec, "AGENT_COMMS")
    for i in range(3):
        await js.publish(f"{spec.prefix}.agents.backend.tasks", f'{{"task_id": "t{i}"}}'.encode())
    in_memory = spec.model_copy(
        update={
            "streams": {
                **spec.streams,
                comms: spec.streams[comms].model_copy(update={"storage": "memory"}),
            }
        }
    )

    dry = await provision(admin, in_memory, dry_run=True)
    assert [a.label for a in dry.skipped] == [comms]

    refused = await provision(admin, in_memory)
    assert [a.label for a in refused.skipped] == [comms]
    skipped = refused.skipped[0]
    assert skipped.op == "recreate"
    assert [c.field for c in skipped.changes] == ["storage"]
    assert skipped.messages == 3  # what recreating would drop
    assert refused.applied == ()
    kept = await js.stream_info(comms)
    assert kept.config.storage == StorageType.FILE
    assert kept.state.messages == 3

    forced = await provision(admin, in_memory, force=True)
    assert forced.skipped == ()
    recreated = await js.stream_info(comms)
    assert recreated.config.storage == StorageType.MEMORY
    assert recreated.state.messages == 0
    comms_consumers = [c for c in in_memory.consumers() if c.stream == comms]
    assert len(comms_consumers) == 15
    assert {a.label for a in forced.applied} == {comms} | {
        f"{comms} > {c.name}" for c in comms_consumers
    }
    for c in comms_consumers:  # the stream's consumers came back with it
        info = await js.consumer_info(comms, c.name)
        assert info.config.max_deliver == -1
    assert ops(await provision(admin, in_memory), in_memory) == {"unchanged"}


async def test_retention_change_needs_force(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """Storage cannot change in place: the stream is recreated (with --force), and its
    consumers with it."""
    _, js = raw
    await provision(admin, spec)
    tasks = stream(spec, "TASKS")
    await js.publish(f"{spec.prefix}.tasks.t1.updates", b'{"status": "accepted"}')
    memory = spec.model_copy(
        update={
            "streams": {
                **spec.streams,
                tasks: spec.streams[tasks].model_copy(update={"storage": "memory"}),
            }
        }
    )
    refused = await provision(admin, memory)
    assert [(a.label, a.op, a.messages) for a in refused.skipped] == [(tasks, "recreate", 1)]
    assert (await js.stream_info(tasks)).config.storage == StorageType.FILE

    forced = await provision(admin, memory, force=True)
    assert forced.skipped == ()
    assert (await js.stream_info(tasks)).config.storage == StorageType.MEMORY
    # CTO_UPDATES lives on TASKS: recreated with its stream.
    assert f"{tasks} > CTO_UPDATES" in {a.label for a in forced.applied}
    assert (await js.consumer_info(tasks, "CTO_UPDATES")).config.durable_name == "CTO_UPDATES"


async def test_an_existing_fleet_moves_to_interest_retention_keeping_unprocessed_work(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """A fleet provisioned with the old AGENT_COMMS (limits: processed messages kept for a
    week) is migrated in place: the plan says how many processed messages go, nothing goes
    without --force, and what no agent has processed yet stays for its consumer."""
    _, js = raw
    comms = stream(spec, "AGENT_COMMS")
    old = spec.model_copy(
        update={
            "streams": {
                **spec.streams,
                comms: spec.streams[comms].model_copy(
                    update={"retention": "limits", "max_age": 7 * DAY}
                ),
            }
        }
    )
    await provision(admin, old)
    for n in range(3):
        await js.publish(f"{spec.prefix}.agents.backend.tasks", f'{{"n": {n}}}'.encode())
    worker = await js.pull_subscribe_bind("BACKEND_TASKS", comms)
    for _ in range(2):  # two processed (one at a time: max_ack_pending 1), one waiting
        (msg,) = await worker.fetch(1, timeout=5)
        await msg.ack_sync()

    refused = await provision(admin, spec)
    (migrate,) = [a for a in refused.skipped if a.label == comms]
    assert (migrate.op, migrate.messages) == ("migrate", 2)
    assert (await js.stream_info(comms)).state.messages == 3  # nothing dropped yet

    forced = await provision(admin, spec, force=True)
    assert forced.skipped == ()
    info = await js.stream_info(comms)
    assert info.config.retention == RetentionPolicy.INTEREST
    assert info.state.messages == 1  # the processed two are gone
    (left,) = await worker.fetch(1, timeout=5)
    assert left.data == b'{"n": 2}'  # the unprocessed one was not
    await left.ack_sync()


async def test_dry_run_changes_nothing(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    first = await provision(admin, spec, dry_run=True)
    assert ops(first, spec) == {"create"}
    assert first.applied == ()
    for name in spec.streams:
        with pytest.raises(NotFoundError):
            await js.stream_info(name)

    await provision(admin, spec)
    comms = stream(spec, "AGENT_COMMS")
    info = await js.stream_info(comms)
    await js.update_stream(info.config, max_msgs_per_subject=50)
    await js.delete_consumer(comms, "CTO_INBOX")
    dry = await provision(admin, spec, dry_run=True)
    assert {(a.label, a.op) for a in dry.plan.pending} == {
        (comms, "update"),
        (f"{comms} > CTO_INBOX", "create"),
    }
    assert dry.applied == ()
    assert (await js.stream_info(comms)).config.max_msgs_per_subject == 50
    with pytest.raises(NotFoundError):
        await js.consumer_info(comms, "CTO_INBOX")


async def test_foreign_stream_and_consumer_are_left_alone(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    await provision(admin, spec)
    comms = stream(spec, "AGENT_COMMS")
    foreign = f"FOREIGN_{spec.prefix}"
    await js.add_stream(name=foreign, subjects=[f"{spec.prefix}-foreign.>"])
    try:
        await js.add_consumer(comms, durable_name="AUDITOR", ack_policy=AckPolicy.EXPLICIT)
        result = await provision(admin, spec, force=True)
        unmanaged = {a.label for a in result.plan.actions if a.op == "unmanaged"}
        assert {foreign, f"{comms} > AUDITOR"} <= unmanaged
        assert result.applied == ()
        assert (await js.consumer_info(comms, "AUDITOR")).config.durable_name == "AUDITOR"
        assert (await js.stream_info(foreign)).config.name == foreign
    finally:
        await js.delete_stream(foreign)


async def test_backoff_added_and_removed(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """A backoff taken out of the fleet file is taken off the consumer too."""
    _, js = raw
    with_backoff = spec.model_copy(
        update={
            "roles": {
                **spec.roles,
                "backend": spec.roles["backend"].model_copy(
                    update={
                        "tasks": spec.roles["backend"].tasks.model_copy(  # type: ignore[union-attr]
                            update={"backoff": [1.0, 5.0]}
                        )
                    }
                ),
            }
        }
    )
    await provision(admin, with_backoff)
    comms = stream(spec, "AGENT_COMMS")
    assert (await js.consumer_info(comms, "BACKEND_TASKS")).config.backoff == [1.0, 5.0]
    result = await provision(admin, spec)
    assert [(a.label, a.op) for a in result.applied] == [(f"{comms} > BACKEND_TASKS", "update")]
    assert not (await js.consumer_info(comms, "BACKEND_TASKS")).config.backoff
    assert ops(await provision(admin, spec), spec) == {"unchanged"}


def with_compression(spec: FleetSpec, name: str, compression: str) -> FleetSpec:
    streams = dict(spec.streams)
    streams[name] = streams[name].model_copy(update={"compression": compression})
    return spec.model_copy(update={"streams": streams})


async def test_compression_s2_is_provisioned_and_updated_in_place(
    spec: FleetSpec, admin: Client, raw: tuple[Client, JetStreamContext]
) -> None:
    _, js = raw
    tasks = stream(spec, "TASKS")
    compressed = with_compression(spec, tasks, "s2")
    await provision(admin, compressed)
    assert (await js.stream_info(tasks)).config.compression == StoreCompression.S2
    await js.publish(f"{spec.prefix}.tasks.t1.updates", b'{"state": "accepted"}')
    assert ops(await provision(admin, compressed), spec) == {"unchanged"}

    # Back to none: an update the server takes on the live stream, its messages kept.
    back = await provision(admin, spec)
    assert [(a.label, a.op) for a in back.applied] == [(tasks, "update")]
    assert [(c.field, c.live, c.desired) for c in back.applied[0].changes] == [
        ("compression", "s2", "none")
    ]
    info = await js.stream_info(tasks)
    assert info.config.compression == StoreCompression.NONE
    assert info.state.messages == 1
    # The server's default (reported as "none", or left out) is not drift.
    assert ops(await provision(admin, spec), spec) == {"unchanged"}

    again = await provision(admin, compressed)
    assert [(a.label, a.op) for a in again.applied] == [(tasks, "update")]
    assert (await js.stream_info(tasks)).config.compression == StoreCompression.S2


async def test_a_task_stream_without_the_outcome_republish_gets_it_in_place(
    spec: FleetSpec, admin: Client, raw: tuple[Client, JetStreamContext]
) -> None:
    """A fleet provisioned before outcomes were republished (or a hand edit that took the
    republish off): an update of the live stream, its messages kept; no other stream has
    one."""
    _, js = raw
    tasks = stream(spec, "TASKS")
    await provision(admin, spec)
    info = await js.stream_info(tasks)
    assert info.config.republish is not None
    assert info.config.republish.src == f"{spec.prefix}.tasks.*.outcome.*.*"
    assert info.config.republish.dest == (
        f"{spec.prefix}.outcomes.{{{{wildcard(1)}}}}.{{{{wildcard(2)}}}}.{{{{wildcard(3)}}}}"
    )
    for name in spec.streams:
        if name != tasks:
            assert (await js.stream_info(name)).config.republish is None
    await js.publish(f"{spec.prefix}.tasks.t1.updates.cto.backend", b'{"state": "accepted"}')
    config = info.config
    config.republish = None
    await js.update_stream(config)

    again = await provision(admin, spec)
    assert [(a.label, a.op) for a in again.applied] == [(tasks, "update")]
    assert [c.field for c in again.applied[0].changes] == ["republish"]
    shown = io.StringIO()
    print_plan(Console(file=shown, width=400), again, dry_run=False)
    assert f"republish: None → {spec.prefix}.tasks.*.outcome.*.* → {spec.prefix}.outcomes." in (
        shown.getvalue()
    )
    info = await js.stream_info(tasks)
    assert info.config.republish is not None and info.state.messages == 1
    assert ops(await provision(admin, spec), spec) == {"unchanged"}


async def test_a_recreate_the_server_refuses_says_the_stream_is_gone(
    spec: FleetSpec, admin: Connection
) -> None:
    """--force deletes a stream to make it again; when the server then refuses the new one
    (memory it does not have), the stream is missing. It said only "refused to recreate".
    Now it says the stream is gone, its messages with it, and what was applied before."""
    await provision(admin, spec)
    tasks = stream(spec, "TASKS")
    too_big = spec.streams[tasks].model_copy(update={"storage": "memory", "max_bytes": 10**13})
    changed = spec.model_copy(update={"streams": {**spec.streams, tasks: too_big}})
    with pytest.raises(ProvisionError, match="missing now") as refused:
        await provision(admin, changed, force=True)
    assert f"stream {tasks}: the server refused to recreate it" in str(refused.value)
    assert await JsApi(admin).stream_info(tasks) is None
    await provision(admin, spec)  # made again from the file
    assert await JsApi(admin).stream_info(tasks) is not None


async def test_a_renamed_stream_is_refused_before_anything_is_applied(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """A stream renamed in the fleet file: the old one still holds its subjects, and the
    server refused the new one (10065, "subjects overlap with an existing stream") after the
    streams before it were changed, without saying which stream. Now nothing is applied and
    the error names the old stream and the two ways out."""
    await provision(admin, spec)
    events, tasks = stream(spec, "EVENTS"), stream(spec, "TASKS")
    renamed = f"RENAMED_{events}"
    described = spec.streams[tasks].model_copy(update={"description": "changed"})
    streams = {n: s for n, s in spec.streams.items() if n != events}
    changed = spec.model_copy(
        update={"streams": {**streams, tasks: described, renamed: spec.streams[events]}}
    )
    with pytest.raises(ProvisionError) as refused:
        await provision(admin, changed)
    message = str(refused.value)
    assert f"stream {renamed}: {spec.prefix}.events.> overlaps" in message
    assert f"of stream {events}, which the server has and the fleet file does not name" in message
    assert f"Name the stream {events} again, or delete {events}" in message
    assert "nothing was applied" in message
    _, js = raw
    assert (await js.stream_info(tasks)).config.description != "changed"
    with pytest.raises(NotFoundError):
        await js.stream_info(renamed)
    planned = await provision(admin, changed, dry_run=True)
    assert len(planned.plan.conflicts) == 1
    assert planned.plan.conflicts[0] in message


async def test_consumers_made_several_at_once_are_all_made_in_the_plan_s_order(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """Consumers are created ``CONSUMERS_AT_ONCE`` at a time (a fleet of 10,000 roles has
    30,000): every one is made, and the result lists them in the plan's order."""
    _, js = raw
    data = spec.model_dump(mode="json")
    data["roles"] |= {f"extra{n:02d}": {} for n in range(12)}
    grown = FleetSpec.model_validate(data)
    result = await provision(admin, grown)
    made = [a for a in result.applied if a.kind == "consumer"]
    assert len(made) == len(grown.consumers()) > 3 * 12
    order = [a for a in result.plan.actions if a.kind == "consumer" and a.op == "create"]
    assert made == order
    for action in made:
        assert (await js.consumer_info(action.stream, action.name)).config.durable_name


async def test_a_consumer_the_server_refuses_is_reported_with_what_was_made(
    spec: FleetSpec, admin: Connection, raw: tuple[Client, JetStreamContext]
) -> None:
    """With several creates in flight, a refusal still stops the run and is not lost among
    the others: the error names the refused consumer and the server's reason. Here a
    stranger's consumers leave room on the stream for one of the new roles' consumers."""
    _, js = raw
    comms = stream(spec, "AGENT_COMMS")
    data = spec.model_dump(mode="json")
    data["roles"] |= {f"extra{n:02d}": {} for n in range(4)}
    room = len([c for c in FleetSpec.model_validate(data).consumers() if c.stream == comms]) + 100
    data["streams"][comms]["max_consumers"] = room
    grown = FleetSpec.model_validate(data)
    before = spec.model_dump(mode="json")
    before["streams"][comms]["max_consumers"] = room
    await provision(admin, FleetSpec.model_validate(before))
    held = len(await js.consumers_info(comms))
    for n in range(room - held - 1):
        await js.add_consumer(comms, durable_name=f"stranger{n}", ack_policy=AckPolicy.EXPLICIT)
    with pytest.raises(ProvisionError) as refused:
        await provision(admin, grown)
    message = str(refused.value)
    assert f"consumer {comms} > " in message and "the server refused to create it" in message
    assert "(error 10026)" in message and "; applied: create consumer " in message, message
