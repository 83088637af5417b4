"""Every seed pattern works with auth on, each role logged in as itself."""

from __future__ import annotations

import asyncio
from typing import Any

from fleetbus.client import Fleet
from fleetbus.js.connection import connect
from fleetbus.runtime.messages import Event, Message, Reject, Request, Task
from fleetbus.security import ADMIN
from fleetbus.testing.fleets import final_history
from fleetbus.wire import headers as h

from .support import AuthFleet, agent, client


async def test_assign_complete_result_and_verified_senders(auth_fleet: AuthFleet) -> None:
    backend = agent(auth_fleet, "backend")
    seen: list[Task | Message] = []
    both = asyncio.Event()

    @backend.on_task
    async def work(task: Task) -> dict[str, Any]:
        seen.append(task)
        await task.progress("halfway", percent=50)
        return {"pr": 143}

    @backend.on_message
    async def read(message: Message) -> None:
        seen.append(message)
        both.set()

    async with backend, client(auth_fleet, "cto") as cto:
        handle = await cto.assign("backend", {"title": "pagination"})
        assert await handle.result(timeout=10) == {"pr": 143}
        # a forged header does not change who the receiver sees
        await cto.message("backend", {"text": "hi"}, headers={h.SENDER: "ceo"})
        async with asyncio.timeout(10):
            await both.wait()
        async with Fleet.connect(
            spec=auth_fleet.spec, connection=auth_fleet.settings(ADMIN)
        ) as admin:
            states = [u.state for u in await final_history(admin, handle.id)]
            late = [u.state for u in await final_history(cto, handle.id, role="backend")]
    assert states == ["accepted", "progress", "completed"]
    assert late[-1] == "completed"  # a role's late look: the last state, then the outcome
    assert [(m.sender, m.sender_verified) for m in seen] == [("cto", True), ("cto", True)]


async def test_events_fan_out_to_devops_and_cso(auth_fleet: AuthFleet) -> None:
    devops, cso = agent(auth_fleet, "devops"), agent(auth_fleet, "cso")
    got: dict[str, Event] = {}
    done = asyncio.Event()

    def record(role: str) -> Any:
        async def handler(event: Event) -> None:
            got[role] = event
            if len(got) == 2:
                done.set()

        return handler

    devops.on_event("deployment.>")(record("devops"))
    cso.on_event(">")(record("cso"))
    async with devops, cso, client(auth_fleet, "backend") as backend:
        await backend.emit("deployment", "finished", {"service": "api"})
        async with asyncio.timeout(10):
            await done.wait()
    assert {r: e.type for r, e in got.items()} == {"devops": "finished", "cso": "finished"}


async def test_fast_and_durable_asks_cso_from_backend(auth_fleet: AuthFleet) -> None:
    cso = agent(auth_fleet, "cso")

    @cso.on_request
    async def answer(request: Request) -> dict[str, Any]:
        return {"safe": True, "durable": request.durable, "by": request.sender}

    async with cso, client(auth_fleet, "backend") as backend:
        fast = await backend.ask("cso", {"q": "safe?"}, timeout=5)
        durable = await backend.ask("cso", {"q": "safe?"}, timeout=10, durable=True)
    assert fast == {"safe": True, "durable": False, "by": "backend"}
    assert durable == {"safe": True, "durable": True, "by": "backend"}


async def test_a_meeting_between_cto_and_backend(auth_fleet: AuthFleet) -> None:
    backend = agent(auth_fleet, "backend")
    invited: list[Message] = []
    arrived = asyncio.Event()

    @backend.on_invitation
    async def invitation(message: Message) -> None:
        invited.append(message)
        arrived.set()

    async with (
        backend,
        client(auth_fleet, "cto") as cto,
        client(auth_fleet, "backend") as be,
        cto.meeting("api-design") as room,
        be.meeting("api-design") as other,
    ):
        await room.invite("backend", topic="pagination")
        await room.say("cursor or offset?")
        async with asyncio.timeout(10):
            async for said in other:
                if not said.notice:
                    break
            await arrived.wait()
    assert said.content == "cursor or offset?" and said.sender == "cto"
    assert (invited[0].sender, invited[0].sender_verified) == ("cto", True)


async def test_the_ceo_oversees_inboxes(auth_fleet: AuthFleet) -> None:
    ceo = agent(auth_fleet, "ceo")
    observed: list[Any] = []
    seen = asyncio.Event()

    @ceo.on_observe("agents.*.inbox")
    async def watch(item: Any) -> None:
        observed.append(item)
        seen.set()

    async with ceo, client(auth_fleet, "cto") as cto:  # start() returns once it observes
        await cto.message("devops", {"text": "deploy at 5"})
        async with asyncio.timeout(10):
            await seen.wait()
    assert (observed[0].sender, observed[0].sender_verified) == ("cto", True)


async def test_a_rejected_task_is_dead_lettered_by_a_role(auth_fleet: AuthFleet) -> None:
    backend = agent(auth_fleet, "backend")

    @backend.on_task
    async def work(task: Task) -> None:
        raise Reject("not our job")

    spec = auth_fleet.spec
    async with backend, client(auth_fleet, "cto") as cto:
        handle = await cto.assign("backend", {"title": "poison"})
        try:
            await handle.result(timeout=10)
        except Exception as exc:
            assert "not our job" in str(exc)
        else:  # pragma: no cover
            raise AssertionError("a rejected task must fail")
    conn = await connect(auth_fleet.settings(ADMIN))
    nc = conn.nc
    try:
        dlq = spec.dead_letter_stream
        assert dlq is not None
        comms = spec.stream_for(spec.subjects.tasks("backend"))
        js = nc.jetstream()
        msg = await js.get_last_msg(dlq, f"{spec.subjects.dead_letter(comms, 'BACKEND_TASKS')}.*")
        assert msg.headers is not None
        assert msg.headers[h.DLQ_REASON] == "rejected: not our job"
    finally:
        await nc.close()
