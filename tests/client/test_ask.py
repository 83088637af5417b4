"""Request-reply answered by the agent — never by a stream's PubAck."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import nats
import pytest
import yaml

from fleetbus import AskTimeout, NoResponders, RemoteError, Request
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest


async def test_fast_ask_is_answered_by_the_agent(fleet: FleetUnderTest) -> None:
    cso = fleet.agent("cso")

    @cso.on_request
    async def review(req: Request) -> dict[str, object]:
        return {"verdict": "approved", "diff": req.body["code_diff"], "asker": req.sender}

    async with cso, fleet.client(sender="backend") as client:
        answer = await client.ask("cso", {"code_diff": "+ cursor"}, timeout=10)
    assert answer == {"verdict": "approved", "diff": "+ cursor", "asker": "backend"}


async def test_the_seeds_request_to_a_stream_subject_gets_a_puback(
    fleet: FleetUnderTest,
) -> None:
    """Why fleetbus never asks on a stream subject: the stream answers, not the agent."""
    cso = fleet.agent("cso")

    @cso.on_request
    async def review(req: Request) -> dict[str, object]:
        return {"verdict": "approved"}

    async with cso, fleet.client(sender="backend") as client:
        raw = await nats.connect(fleet.url)
        try:
            reply = await raw.request(
                fleet.spec.subjects.inbox("cso"), b'{"type": "security_review_request"}', 2
            )
        finally:
            await raw.close()
        assert set(json.loads(reply.data)) >= {"stream", "seq"}  # a PubAck, at once
        durable = await client.ask("cso", {"type": "security_review_request"}, durable=True)
    assert durable == {"verdict": "approved"}


async def test_no_responder_timeout_and_handler_error_are_distinct(
    fleet: FleetUnderTest,
) -> None:
    async with fleet.client(sender="backend") as client:
        with pytest.raises(NoResponders):
            await client.ask("cso", {"q": 1}, timeout=5)

    cso = fleet.agent("cso")

    @cso.on_request
    async def answer(req: Request) -> dict[str, object]:
        if req.body.get("slow"):
            await asyncio.sleep(2)
        if req.body.get("fail"):
            raise ValueError("diff is empty")
        return {"ok": True}

    async with cso, fleet.client(sender="backend") as client:
        with pytest.raises(AskTimeout) as timeout:
            await client.ask("cso", {"slow": True}, timeout=0.3)
        assert timeout.value.role == "cso"
        with pytest.raises(RemoteError, match="ValueError: diff is empty") as remote:
            await client.ask("cso", {"fail": True}, timeout=5)
        assert remote.value.error == "ValueError: diff is empty"
        with pytest.raises(AskTimeout):
            await client.ask("cso", {"slow": True}, timeout=0.3, durable=True)


async def test_a_late_answer_is_not_given_to_the_next_ask(fleet: FleetUnderTest) -> None:
    cso = fleet.agent("cso")

    @cso.on_request
    async def answer(req: Request) -> dict[str, object]:
        await asyncio.sleep(float(req.body["delay"]))
        return {"question": req.body["n"]}

    async with cso, fleet.client(sender="backend") as client:
        with pytest.raises(AskTimeout):
            await client.ask("cso", {"n": 1, "delay": 0.6}, timeout=0.2)
        # The answer to question 1 arrives while question 2 waits: it must be dropped.
        second = await client.ask("cso", {"n": 2, "delay": 0.8}, timeout=5)
        third = await client.ask("cso", {"n": 3, "delay": 0}, timeout=5)
    assert second == {"question": 2}
    assert third == {"question": 3}


async def test_durable_ask_survives_the_responders_restart(fleet: FleetUnderTest) -> None:
    started = asyncio.Event()
    calls: list[int] = []

    first = fleet.agent("cso")

    @first.on_request
    async def hang(req: Request) -> dict[str, object]:
        calls.append(req.attempt)
        started.set()
        await asyncio.sleep(60)  # the agent goes down before it answers
        return {"never": True}

    second = fleet.agent("cso")

    @second.on_request
    async def answer(req: Request) -> dict[str, object]:
        calls.append(req.attempt)
        return {"verdict": "approved", "attempt": req.attempt}

    async with fleet.client(sender="backend") as client:
        # Asked while no cso agent runs at all: the question waits in the inbox.
        ask = asyncio.create_task(
            client.ask("cso", {"code_diff": "+ cursor"}, timeout=30, durable=True)
        )
        await first.start()
        async with asyncio.timeout(10):
            await started.wait()
        await first.stop(grace=0.1)  # restart: the unanswered question goes back
        async with second:
            answer_ = await asyncio.wait_for(ask, 20)
    assert answer_ == {"verdict": "approved", "attempt": 2}
    assert calls == [1, 2]


async def test_an_answer_too_large_to_send_is_an_error_the_asker_gets(
    fleet: FleetUnderTest,
) -> None:
    """Within max_payload alone, over it with the answer's header: the asker gets an error
    answer at once instead of waiting out its timeout, and the agent keeps answering."""
    cso = fleet.agent("cso")

    @cso.on_request
    async def answer(req: Request) -> str:
        if req.body.get("big"):
            return "x" * (cso.conn.max_payload - 10)  # with its quotes: 8 bytes under
        return "small"

    async with cso, fleet.client(sender="backend") as client:
        with pytest.raises(RemoteError, match=r"the answer could not be sent: .*max_payload"):
            await client.ask("cso", {"big": True}, timeout=10)
        assert await client.ask("cso", {}, timeout=5) == "small"


async def test_fast_asks_beyond_the_agents_concurrency_are_told_it_is_busy(
    fleet: FleetUnderTest,
) -> None:
    """Every fast ask started a handler of its own, without end: any role that may ask cso
    could hold as many handlers (and their bodies, and the model calls they make) as it
    liked. Past max_concurrency an asker is told the agent is busy."""
    release = asyncio.Event()
    running = 0
    cso = fleet.agent("cso", max_concurrency=4)

    @cso.on_request
    async def review(req: Request) -> str:
        nonlocal running
        running += 1
        await release.wait()
        return "reviewed"

    async with cso, fleet.client(sender="backend") as client:
        asks = [asyncio.create_task(client.ask("cso", {"n": n}, timeout=15)) for n in range(4)]
        await eventually(lambda: running == 4, 10, "four asks being answered")
        with pytest.raises(RemoteError, match="busy"):
            await client.ask("cso", {"n": 4}, timeout=15)
        release.set()
        assert await asyncio.gather(*asks) == ["reviewed"] * 4
    assert running == 4


async def test_a_durable_ask_is_not_answered_past_its_askers_wait(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """A durable ask's handler went on after its asker had stopped waiting, holding the
    inbox message (and at max_ack_pending 1 the inbox) for nobody. It stops at the ask's
    deadline, and the next ask is answered."""
    data = yaml.safe_load(SEED_FLEET_YAML)
    data["roles"]["cso"]["inbox"]["max_ack_pending"] = 1
    fleet = make_fleet(FleetSpec.model_validate(data))
    cso = fleet.agent("cso")

    @cso.on_request
    async def review(req: Request) -> str:
        if req.body["n"] == 0:
            await asyncio.sleep(3600)
        return "reviewed"

    async with cso, fleet.client(sender="backend") as client:
        with pytest.raises(AskTimeout):
            await client.ask("cso", {"n": 0}, timeout=1, durable=True)
        assert await client.ask("cso", {"n": 1}, timeout=15, durable=True) == "reviewed"


async def test_fast_asks_are_not_answered_past_their_askers_wait(fleet: FleetUnderTest) -> None:
    """A fast ask's handler had no time limit at all: backend's asks that cso's handler
    never finished held its handlers past every asker's wait, and once they filled
    max_concurrency cso told every role it was busy, for good. A fast ask stops at its
    asker's deadline (the role's task_budget at most), like a durable one."""
    cso = fleet.agent("cso", max_concurrency=2)
    running = 0

    @cso.on_request
    async def review(req: Request) -> str:
        nonlocal running
        if req.body["n"] < 2:
            running += 1
            try:
                await asyncio.sleep(3600)
            finally:
                running -= 1
        return "reviewed"

    async with cso, fleet.client(sender="backend") as client:
        for n in range(2):
            with pytest.raises(AskTimeout):
                await client.ask("cso", {"n": n}, timeout=1)
        await eventually(lambda: running == 0, 10, "the handlers stopped at their deadlines")
        assert await client.ask("cso", {"n": 2}, timeout=15) == "reviewed"


async def test_a_fast_ask_with_a_far_deadline_ends_at_the_roles_budget(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """The wait is the asker's word: a day, from a plain NATS client, still ends at the
    role's task_budget, and the asker is told."""
    data = yaml.safe_load(SEED_FLEET_YAML)
    data["roles"]["cso"]["task_budget"] = "1s"
    fleet = make_fleet(FleetSpec.model_validate(data))
    cso = fleet.agent("cso")

    @cso.on_request
    async def review(req: Request) -> str:
        await asyncio.sleep(3600)
        return "reviewed"

    async with cso:
        nc = await nats.connect(fleet.url)
        try:
            reply = "_INBOX.rpc.cso.far-off"  # where a plain client (the admin) is answered
            sub = await nc.subscribe(reply, max_msgs=1)
            a_day = {"Fleet-Timeout": "86400"}
            await nc.publish(fleet.spec.subjects.rpc("cso"), b"{}", reply=reply, headers=a_day)
            answer = await sub.next_msg(timeout=15)
        finally:
            await nc.close()
    assert answer.headers is not None and answer.headers["Fleet-Status"] == "error"
    assert "task_budget" in json.loads(answer.data)["error"]


async def test_a_request_handler_that_will_not_be_cancelled_does_not_hold_its_place(
    fleet: FleetUnderTest,
) -> None:
    """A handler that catches CancelledError and goes on kept its fast ask's place (of
    max_concurrency) for good, the deadline notwithstanding: with one place, cso told every
    later asker it was busy. It is left behind a second after it was cancelled."""
    cso = fleet.agent("cso", max_concurrency=1)
    done = asyncio.Event()

    @cso.on_request
    async def review(req: Request) -> str:
        while req.body["n"] == 0 and not done.is_set():
            with contextlib.suppress(asyncio.CancelledError):  # and goes on
                await asyncio.sleep(0.1)
        return "reviewed"

    try:
        async with cso, fleet.client(sender="backend") as client:
            with pytest.raises(AskTimeout):
                await client.ask("cso", {"n": 0}, timeout=1)

            async def answered() -> bool:
                try:
                    return await client.ask("cso", {"n": 1}, timeout=5) == "reviewed"
                except RemoteError:  # busy, for the second it is given to end
                    return False

            await eventually(answered, 15, "the next ask answered, not busy")
    finally:
        done.set()
