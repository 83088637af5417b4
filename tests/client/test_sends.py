"""What a send refuses before anything is sent, and what a refused task leaves behind."""

from __future__ import annotations

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
    """The entry in the task list goes ahead of the task (so an agent's own entries always
    come after it); when the stream refuses the task, it is overwritten with why."""
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
