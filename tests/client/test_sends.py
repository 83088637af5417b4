"""What a send refuses before anything is sent, and what a refused task leaves behind."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import yaml

from fleetbus import PayloadError
from fleetbus.errors import JetStreamError, JsErrorCode
from fleetbus.fleet import FleetSpec
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.testing.fleets import FleetUnderTest


@pytest.mark.parametrize(
    "headers",
    [
        {"X Trace": "a"},
        {"X-Trace:": "a"},
        {"X(Trace)": "a"},
        {"X-Trace": 5},
        {"X-Trace": "a\r\nNats-Msg-Id: b"},
    ],
    ids=["space", "colon", "not-a-token", "not-text", "two-lines"],
)
async def test_headers_that_cannot_go_on_the_wire_are_refused_before_anything_is_sent(
    fleet: FleetUnderTest, headers: dict[str, object]
) -> None:
    """Before, nats-py's own errors (or an AttributeError) came out of assign, after its
    entry in the task list was written: the list showed a task that was never sent."""
    async with fleet.client(sender="cto") as cto:
        with pytest.raises(PayloadError, match="header"):
            await cto.assign("backend", {"title": "x"}, task_id="t-bad", headers=headers)  # type: ignore[arg-type]
        with pytest.raises(PayloadError, match="header"):
            await cto.message("backend", {"title": "x"}, headers=headers)  # type: ignore[arg-type]
    async with fleet.client() as admin:
        assert await admin.find_task("t-bad") is None


async def test_a_task_the_stream_refuses_is_listed_as_rejected_not_queued(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """A task the stream refuses is listed with why, not as queued."""
    data = yaml.safe_load(SEED_FLEET_YAML)
    data["streams"]["AGENT_COMMS"]["max_msgs_per_subject"] = 1
    fleet = make_fleet(FleetSpec.model_validate(data))
    async with fleet.client(sender="cto") as cto:
        await cto.assign("devops", {"title": "first"}, task_id="t-first")
        with pytest.raises(JetStreamError) as refused:
            await cto.assign("devops", {"title": "second"}, task_id="t-second")
    assert refused.value.err_code == JsErrorCode.MAX_MSGS_PER_SUBJECT
    async with fleet.client() as admin:
        first, second = await admin.find_task("t-first"), await admin.find_task("t-second")
    assert first is not None and first.state == "submitted"
    assert second is not None and second.state == "rejected"
    assert second.error is not None and "10077" in second.error


async def test_a_refused_resend_leaves_the_entry_of_the_task_stored_under_its_id(
    make_fleet: Callable[[FleetSpec], FleetUnderTest],
) -> None:
    """Sent again under its id once the dedupe window has passed, a task the stream refuses
    is not stored; the one stored under that id is still queued, and the list says so
    (before, the refusal's `rejected` was written over its entry)."""
    data = yaml.safe_load(SEED_FLEET_YAML)
    data["streams"]["AGENT_COMMS"]["max_msgs_per_subject"] = 1
    data["streams"]["AGENT_COMMS"]["duplicate_window"] = 0.2
    fleet = make_fleet(FleetSpec.model_validate(data))
    async with fleet.client(sender="cto") as cto:
        await cto.assign("devops", {"title": "first"}, task_id="t-again")
        await asyncio.sleep(0.5)  # past the dedupe window: the resend is a new message
        with pytest.raises(JetStreamError) as refused:
            await cto.assign("devops", {"title": "again"}, task_id="t-again")
    assert refused.value.err_code == JsErrorCode.MAX_MSGS_PER_SUBJECT
    async with fleet.client() as admin:
        listed = await admin.find_task("t-again")
    assert listed is not None and listed.state == "submitted" and listed.error is None
