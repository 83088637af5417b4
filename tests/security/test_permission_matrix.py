"""Every role tries what it must not do, against a real server with auth on.

A probe publishes (or subscribes) and then waits for the server to have answered everything
(``Connection.settle``): a refusal arrives as a "Permissions Violation". Control probes (what
the role must be able to do) prove that a refusal is the server's answer, not a probe that
never ran. The attacks that need more than one step are in ``test_attacks.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from fleetbus.errors import PermissionDenied
from fleetbus.fleet import FleetSpec
from fleetbus.js.connection import connect
from fleetbus.security import ADMIN

from .support import AuthFleet


def _refused(spec: FleetSpec, role: str) -> Iterator[tuple[str, str]]:
    """(operation, subject) pairs ``role`` must be refused: ``pub`` or ``sub``."""
    p = spec.prefix
    comms = spec.stream_for(spec.subjects.inbox(role))
    tasks_stream = spec.stream_for(spec.subjects.task_records())
    dlq = spec.dead_letter_stream
    rs = spec.role(role)
    yield "sub", "_INBOX.>"
    yield "sub", ">"
    yield "sub", f"{p}.>"
    yield "sub", f"{p}.tasks.>" if not rs.oversight else f"{p}.dlq.>"
    for stream in spec.streams:
        # no role creates a consumer: not a durable, not an ephemeral, not a filtered one
        yield "pub", f"$JS.API.CONSUMER.CREATE.{stream}"
        yield "pub", f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.EVIL"
        yield "pub", f"$JS.API.CONSUMER.CREATE.{stream}.EVIL"
        yield "pub", f"$JS.API.CONSUMER.CREATE.{stream}.EVIL.{p}.>"
        yield "pub", f"$JS.API.CONSUMER.CREATE.{stream}.R1.{p}.tasks.*.updates.{role}.*"
        yield "pub", f"$JS.API.STREAM.UPDATE.{stream}"
        yield "pub", f"$JS.API.STREAM.DELETE.{stream}"
        yield "pub", f"$JS.API.STREAM.PURGE.{stream}"
        yield "pub", f"$JS.API.STREAM.MSG.GET.{stream}"
        yield "pub", f"$JS.API.STREAM.MSG.DELETE.{stream}"
        yield "pub", f"$JS.API.DIRECT.GET.{stream}"  # the body form: any message
        yield "pub", f"$JS.API.STREAM.INFO.{stream}"
    yield "pub", "$JS.API.STREAM.CREATE.EVIL"
    yield "pub", "$JS.API.STREAM.NAMES"
    yield "pub", "$JS.API.INFO"
    yield "pub", f"$JS.API.CONSUMER.MSG.NEXT.{dlq}.DLQ_COPIER"
    yield "pub", f"$JS.API.DIRECT.GET.{comms}.{p}.agents.{role}.inbox"
    yield "pub", f"{p}.agents.{role}.inbox"  # a role always signs with its sender token
    yield "pub", f"{p}.rpc.{role}"
    yield "pub", f"{p}.meetings.m-1"  # nor speaks in a meeting without its name
    yield "pub", f"{p}.tasks.t-1.updates"  # the first format named no writer: nobody writes it
    for other in spec.roles:
        if other == role:
            continue
        up = other.upper()
        for kind in ("TASKS", "INBOX", "MEETINGS"):
            yield "pub", f"$JS.API.CONSUMER.MSG.NEXT.{comms}.{up}_{kind}"
            yield "pub", f"$JS.API.CONSUMER.INFO.{comms}.{up}_{kind}"
            yield "pub", f"$JS.API.CONSUMER.DELETE.{comms}.{up}_{kind}"
            yield "pub", f"$JS.ACK.{comms}.{up}_{kind}.1.1.1.1.0"
            yield "pub", f"{p}.dlq.{comms}.{up}_{kind}.1"
        # publishing as another role, to a target this role may otherwise reach
        target = next(t for t in spec.roles if t not in (role, other))
        for kind in ("inbox", "tasks", "meetings"):
            yield "pub", f"{p}.agents.{target}.{kind}.{other}"
        yield "pub", f"{p}.rpc.{target}.{other}"
        yield "pub", f"{p}.meetings.m-1.{other}"
        # task records: only the assignee writes updates and outcomes, the assigner controls
        yield "pub", f"{p}.tasks.t-1.updates.{role}.{other}"
        yield "pub", f"{p}.tasks.t-1.outcome.{role}.{other}"
        yield "pub", f"{p}.tasks.t-1.outcome.{other}.{target}"
        yield "pub", f"{p}.tasks.t-1.cancel.{other}.{role}"
        yield "pub", f"{p}.tasks.t-1.answer.{other}.{role}.1"
        get = f"$JS.API.DIRECT.GET.{tasks_stream}.{p}.tasks"
        if not rs.oversight:
            yield "sub", f"{p}.agents.{other}.inbox"
            yield "sub", f"{p}.agents.{other}.inbox.*"
            yield "sub", f"{p}.agents.{other}.tasks.>"
            yield "sub", f"{p}.tasks.t-1.updates.{other}.*"
            yield "sub", f"{p}.tasks.t-1.outcome.{other}.{target}"
            yield "pub", f"{get}.t-1.outcome.{other}.{target}"
            yield "pub", f"{get}.t-1.updates.{other}.*"
            yield "pub", f"{get}.t-1.cancel.{role}.{other}"
            yield "pub", f"{get}.>"
        yield "sub", f"{p}.rpc.{other}"  # reading (and answering) another role's questions
        yield "sub", f"{p}.rpc.{other}.*"
        yield "sub", f"_INBOX_{other}.>"
        yield "pub", f"_INBOX_{other}.somereply"
        # answers: only in the namespace of an asker for this role, never another role's
        yield "pub", f"_INBOX_{other}.rpc.{target}.ask-1"
        yield "pub", f"_INBOX_{other}.ask.ask-1"
        if "*" not in rs.send_to and other not in rs.send_to:
            yield "pub", f"{p}.agents.{other}.inbox.{role}"
            yield "pub", f"{p}.agents.{other}.tasks.{role}"
            yield "pub", f"{p}.rpc.{other}.{role}"
            yield "pub", f"{p}.tasks.t-1.cancel.{role}.{other}"


def _allowed(spec: FleetSpec, role: str) -> Iterator[tuple[str, str]]:
    """Controls: what the role does every day."""
    p = spec.prefix
    comms = spec.stream_for(spec.subjects.inbox(role))
    tasks_stream = spec.stream_for(spec.subjects.task_records())
    up = role.upper()
    rs = spec.role(role)
    yield "pub", f"$JS.API.CONSUMER.INFO.{comms}.{up}_TASKS"
    yield "pub", f"$JS.API.CONSUMER.MSG.NEXT.{comms}.{up}_TASKS"
    yield "pub", f"$JS.ACK.{comms}.{up}_INBOX.1.1.1.1.0"
    yield "pub", f"{p}.dlq.{comms}.{up}_TASKS.1"
    yield "sub", f"_INBOX_{role}.x"
    yield "sub", f"{p}.rpc.{role}"
    yield "sub", f"{p}.rpc.{role}.*"
    yield "sub", f"{p}.meetings.m-1.*"
    yield "pub", f"{p}.meetings.m-1.{role}"
    yield "pub", f"{p}.events.deployment.started"
    yield "pub", f"{p}.tasks.t-1.updates.cto.{role}"
    yield "pub", f"{p}.tasks.t-1.outcome.admin.{role}"
    yield "sub", f"{p}.tasks.t-1.cancel.cto.{role}"
    yield "pub", f"$JS.API.DIRECT.GET.{tasks_stream}.{p}.tasks.t-1.outcome.admin.{role}"
    yield "pub", f"_INBOX_admin.rpc.{role}.ask-1"  # answering the admin's asks
    target = next(iter(rs.send_to))
    target = next(iter(spec.roles)) if target == "*" else target
    yield "pub", f"{p}.agents.{target}.inbox.{role}"
    yield "pub", f"{p}.rpc.{target}.{role}"
    yield "pub", f"{p}.tasks.t-1.cancel.{role}.{target}"
    yield "sub", f"{p}.tasks.t-1.outcome.{role}.{target}"
    yield "pub", f"$JS.API.DIRECT.GET.{tasks_stream}.{p}.tasks.t-1.outcome.{role}.{target}"


async def _probe(fleet: AuthFleet, role: str, probes: list[tuple[str, str]]) -> set[str]:
    """The subjects of ``probes`` that the server refused."""
    conn = await connect(fleet.settings(role))
    try:
        subs = []
        for op, subject in probes:
            if op == "pub":
                await conn.nc.publish(subject, b"{}")
            else:
                subs.append(await conn.nc.subscribe(subject))
        await conn.settle()
        return {
            f"{op} {s}"
            for op, s in probes
            if conn.refused(s, "publish" if op == "pub" else "subscribe")
        }
    finally:
        await conn.close()


async def test_every_role_is_refused_what_it_must_not_do(auth_fleet: AuthFleet) -> None:
    spec = auth_fleet.spec
    wrongly_allowed: list[str] = []
    wrongly_refused: list[str] = []
    total = 0
    for role in spec.roles:
        refused = list(dict.fromkeys(_refused(spec, role)))
        controls = list(_allowed(spec, role))
        total += len(refused)
        got = await _probe(auth_fleet, role, refused + controls)
        wrongly_allowed += [f"{role}: {op} {s}" for op, s in refused if f"{op} {s}" not in got]
        wrongly_refused += [f"{role}: {op} {s}" for op, s in controls if f"{op} {s}" in got]
    assert not wrongly_refused, "controls refused (the probe proves nothing):\n" + "\n".join(
        wrongly_refused
    )
    assert not wrongly_allowed, (
        f"{len(wrongly_allowed)} of {total} probes were allowed:\n" + "\n".join(wrongly_allowed)
    )
    assert total > 800


async def test_a_refused_publish_raises_permission_denied(auth_fleet: AuthFleet) -> None:
    from fleetbus.client import Fleet

    async with Fleet.connect(
        spec=auth_fleet.spec, connection=auth_fleet.settings("backend"), sender="backend"
    ) as client:
        with pytest.raises(PermissionDenied, match="may not publish"):
            await client.message("ceo", {"text": "backend may not message the ceo"})


async def test_the_admin_may_do_everything(auth_fleet: AuthFleet) -> None:
    from fleetbus.js.api import JsApi

    nc = await connect(auth_fleet.settings(ADMIN))
    try:
        names = await JsApi(nc).stream_names()
        assert set(names) == set(auth_fleet.spec.streams)
    finally:
        await nc.close()


async def test_a_refused_api_call_is_not_retried_as_if_the_server_were_electing(
    auth_fleet: AuthFleet,
) -> None:
    """A refusal is an answer: riding out an election must not turn it into 30 s of retries."""
    from fleetbus.js.api import JsApi

    spec = auth_fleet.spec
    comms = spec.stream_for(spec.subjects.tasks("ceo"))
    conn = await connect(auth_fleet.settings("backend"))
    try:
        async with asyncio.timeout(15):  # one request timeout (5 s), not the 30 s ride-out
            with pytest.raises(PermissionDenied, match="may not use"):
                await JsApi(conn).consumer_info(comms, "CEO_TASKS", ride_out=30.0)
    finally:
        await conn.close()
