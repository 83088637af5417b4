"""Every role tries what it must not do, against a real server with auth on.

A probe publishes (or subscribes) and then asks the server for a round trip: a refusal
arrives as a "Permissions Violation" before the PONG. Control probes (what the role must be
able to do) prove that a refusal is the server's answer, not a probe that never ran.
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
    tasks_stream = spec.stream_for(spec.subjects.all_task_updates())
    dlq = spec.dead_letter_stream
    rs = spec.role(role)
    yield "sub", "_INBOX.>"
    yield "sub", ">"
    yield "sub", f"{p}.>"
    yield "pub", f"$JS.API.CONSUMER.CREATE.{comms}"
    yield "pub", f"$JS.API.CONSUMER.DURABLE.CREATE.{comms}.EVIL"
    yield "pub", f"$JS.API.CONSUMER.CREATE.{comms}.EVIL"
    yield "pub", "$JS.API.STREAM.CREATE.EVIL"
    yield "pub", f"$JS.API.STREAM.UPDATE.{comms}"
    yield "pub", f"$JS.API.STREAM.DELETE.{comms}"
    yield "pub", f"$JS.API.STREAM.PURGE.{comms}"
    yield "pub", f"$JS.API.STREAM.MSG.GET.{comms}"
    yield "pub", f"$JS.API.STREAM.MSG.DELETE.{comms}"
    yield "pub", f"$JS.API.DIRECT.GET.{comms}"
    yield "pub", f"$JS.API.CONSUMER.MSG.NEXT.{dlq}.DLQ_COPIER"
    yield "pub", f"$JS.API.CONSUMER.CREATE.{tasks_stream}.CTO_UPDATES.{p}.tasks.*.updates"
    yield "pub", f"{p}.agents.{role}.inbox"  # a role always signs with its sender token
    for other in spec.roles:
        if other == role:
            continue
        up = other.upper()
        for kind in ("TASKS", "INBOX", "MEETINGS"):
            yield "pub", f"$JS.API.CONSUMER.MSG.NEXT.{comms}.{up}_{kind}"
            yield "pub", f"$JS.API.CONSUMER.INFO.{comms}.{up}_{kind}"
            yield "pub", f"$JS.API.CONSUMER.DELETE.{comms}.{up}_{kind}"
            yield "pub", f"$JS.ACK.{comms}.{up}_{kind}.1.1.1.1.0"
            yield "pub", f"{p}.dlq.{comms}.{up}_{kind}"
        if not rs.oversight:
            for kind in ("inbox", "tasks"):
                filt = f"{p}.agents.{other}.{kind}"
                yield "pub", f"$JS.API.CONSUMER.CREATE.{comms}.EVIL.{filt}"
                yield "pub", f"$JS.API.CONSUMER.CREATE.{comms}.EVIL.{filt}.*"
        # publishing as another role, to a target this role may otherwise reach
        target = next(t for t in spec.roles if t not in (role, other))
        for kind in ("inbox", "tasks", "meetings"):
            yield "pub", f"{p}.agents.{target}.{kind}.{other}"
        yield "sub", f"{p}.agents.{other}.inbox"
        yield "sub", f"{p}.agents.{other}.inbox.*"
        yield "sub", f"{p}.agents.{other}.tasks.>"
        yield "sub", f"{p}.rpc.{other}"  # reading (and answering) another role's questions
        yield "sub", f"_INBOX_{other}.>"
        yield "pub", f"_INBOX_{other}.somereply"
        if "*" not in rs.send_to and other not in rs.send_to:
            yield "pub", f"{p}.agents.{other}.inbox.{role}"
            yield "pub", f"{p}.agents.{other}.tasks.{role}"
            yield "pub", f"{p}.rpc.{other}"


def _allowed(spec: FleetSpec, role: str) -> Iterator[tuple[str, str]]:
    """Controls: what the role does every day."""
    p = spec.prefix
    comms = spec.stream_for(spec.subjects.inbox(role))
    up = role.upper()
    yield "pub", f"$JS.API.CONSUMER.INFO.{comms}.{up}_TASKS"
    yield "pub", f"$JS.ACK.{comms}.{up}_INBOX.1.1.1.1.0"
    yield "sub", f"_INBOX_{role}.x"
    yield "sub", f"{p}.rpc.{role}"
    yield "pub", f"{p}.events.deployment.started"
    target = next(iter(spec.role(role).send_to))
    target = next(iter(spec.roles)) if target == "*" else target
    yield "pub", f"{p}.agents.{target}.inbox.{role}"


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
        return {s for _, s in probes if conn.refused(s)}
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
        wrongly_allowed += [f"{role}: {op} {s}" for op, s in refused if s not in got]
        wrongly_refused += [f"{role}: {op} {s}" for op, s in controls if s in got]
    assert not wrongly_refused, "controls refused (the probe proves nothing):\n" + "\n".join(
        wrongly_refused
    )
    assert not wrongly_allowed, (
        f"{len(wrongly_allowed)} of {total} probes were allowed:\n" + "\n".join(wrongly_allowed)
    )
    assert total > 400


async def test_a_refused_publish_raises_permission_denied(auth_fleet: AuthFleet) -> None:
    from fleetbus.client import Fleet

    async with Fleet.connect(
        spec=auth_fleet.spec, connection=auth_fleet.settings("backend"), sender="backend"
    ) as client:
        with pytest.raises(PermissionDenied, match="may not publish"):
            await client.message("ceo", {"text": "backend may not message the ceo"})


async def test_a_role_cannot_smuggle_a_filter_past_the_narrow_create(
    auth_fleet: AuthFleet,
) -> None:
    """The create subject names task updates; the payload asks for the CSO's inbox."""
    import json

    spec = auth_fleet.spec
    tasks_stream = spec.stream_for(spec.subjects.all_task_updates())
    comms = spec.stream_for(spec.subjects.inbox("cso"))
    conn = await connect(auth_fleet.settings("backend"))
    nc = conn.nc
    try:
        subject = f"$JS.API.CONSUMER.CREATE.{tasks_stream}.EVIL.{spec.prefix}.tasks.*.updates"
        for config in (
            {"name": "EVIL", "filter_subject": spec.subjects.inbox("cso")},
            {"name": "EVIL", "filter_subjects": [spec.subjects.inbox("cso")]},
            {"name": "EVIL"},
        ):
            body = {"stream_name": tasks_stream, "config": {**config, "ack_policy": "none"}}
            reply = json.loads((await nc.request(subject, json.dumps(body).encode())).data)
            assert reply["error"]["err_code"] in (10131, 10137), reply
        # and the same names on the stream that holds inboxes are refused outright
        await nc.publish(f"$JS.API.CONSUMER.CREATE.{comms}.EVIL.{spec.subjects.inbox('cso')}")
        await conn.settle()
        assert conn.refused(f"$JS.API.CONSUMER.CREATE.{comms}.EVIL.{spec.subjects.inbox('cso')}")
    finally:
        await conn.close()


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
