"""The auth-on fleet the security tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fleetbus.client import Fleet
from fleetbus.client.meeting import Meeting, MeetingMessage
from fleetbus.fleet import FleetSpec
from fleetbus.js.api import JsApi
from fleetbus.js.connection import Connection, ConnectSettings, connect
from fleetbus.runtime import Agent, RuntimeSettings, Task
from fleetbus.security import ADMIN, Credential


@dataclass(frozen=True)
class AuthFleet:
    spec: FleetSpec
    url: str
    credentials: dict[str, Credential]
    data_dir: Path

    def settings(self, identity: str) -> ConnectSettings:
        return self.credentials[identity].connect_settings(self.url, name=f"test-{identity}")


FAST = RuntimeSettings(poll=2.0, grace=2.0, retry_base=0.05, retry_max=0.5)


def agent(fleet: AuthFleet, role: str) -> Agent:
    """An agent of ``role``, logged in as ``role``."""
    return Agent(role, spec=fleet.spec, connection=fleet.settings(role), settings=FAST)


def held_agent(fleet: AuthFleet, role: str) -> tuple[Agent, asyncio.Event]:
    """An agent of ``role`` whose tasks wait for the event, then return ``{"real": True}``:
    a task the attacker can go after while it runs."""
    release = asyncio.Event()
    worker = agent(fleet, role)

    @worker.on_task
    async def work(task: Task) -> dict[str, bool]:
        await release.wait()
        return {"real": True}

    return worker, release


def client(fleet: AuthFleet, role: str) -> AbstractAsyncContextManager[Fleet]:
    """A ``Fleet`` sending as ``role``, logged in as ``role`` (or the admin)."""
    sender = None if role == ADMIN else role
    return Fleet.connect(spec=fleet.spec, connection=fleet.settings(role), sender=sender)


@asynccontextmanager
async def attacker(fleet: AuthFleet, role: str) -> AsyncIterator[Connection]:
    """A raw connection with ``role``'s credentials: what an injected agent holds."""
    conn = await connect(fleet.settings(role))
    try:
        yield conn
    finally:
        await conn.close()


async def stored_on(fleet: AuthFleet, subject: str) -> int:
    """How many messages the fleet's streams hold on ``subject`` (read as the admin)."""
    stream = fleet.spec.stream_for(subject)
    assert stream, subject
    async with attacker(fleet, ADMIN) as admin:
        info = await JsApi(admin).stream_info(stream, {"subjects_filter": subject})
    assert info is not None
    return sum((info["state"].get("subjects") or {}).values())


async def assert_intact(fleet: AuthFleet) -> None:
    """Every stream and every consumer of the fleet is still there."""
    async with attacker(fleet, ADMIN) as admin:
        api = JsApi(admin)
        assert set(fleet.spec.streams) <= set(await api.stream_names())
        for consumer in fleet.spec.consumers():
            assert await api.consumer_info(consumer.stream, consumer.name), consumer.name


@asynccontextmanager
async def in_meeting(
    fleet: AuthFleet, listener: str, speaker: str, meeting_id: str
) -> AsyncIterator[tuple[Meeting, Meeting]]:
    """``listener``'s and ``speaker``'s rooms of ``meeting_id``, each logged in as itself,
    once the listener has heard the speaker join."""
    async with (
        client(fleet, listener) as heard,
        client(fleet, speaker) as says,
        heard.meeting(meeting_id) as room,
        says.meeting(meeting_id) as other,
    ):
        async with asyncio.timeout(10):
            await room.until_present(speaker)
        yield room, other


async def first_said(room: Meeting) -> MeetingMessage:
    """The first line said in ``room`` that is not a notice (a join, a leave), within 10 s."""
    async with asyncio.timeout(10):
        async for said in room:
            if not said.notice:
                return said
    raise AssertionError("the room closed before anything was said")
