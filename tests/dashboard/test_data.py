"""The dashboard over a fleet that is not all there, and actions it cannot take: it shows
what is, and says what is not."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest

from fleetbus.client.meeting import MeetingMessage
from fleetbus.dashboard import Dashboard, open_dashboard
from fleetbus.dashboard import data as dashboard_data
from fleetbus.dashboard.data import BODY_SHOWN, FleetData, MeetingLine
from fleetbus.js.api import JsApi
from fleetbus.js.connection import ConnectSettings, connect
from fleetbus.testing import eventually
from fleetbus.testing.fleets import FleetUnderTest

from .support import http_get


async def test_a_missing_tasks_stream_is_an_alert_not_a_blank_page(fleet: FleetUnderTest) -> None:
    tasks = fleet.spec.stream_for(fleet.spec.subjects.task_records())
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        await JsApi(conn).delete_stream(tasks)
        async with open_dashboard(conn, fleet.spec, port=0) as dashboard:
            overview = await http_get(dashboard.url + "api/overview")
    finally:
        await conn.close()
    assert overview.status == 200
    alerts = json.loads(overview.body)["alerts"]
    assert any(a["code"] == "stream-missing" and a["subject"] == tasks for a in alerts), alerts


async def test_an_action_needs_a_known_task_and_a_json_object(dashboard: Dashboard) -> None:
    action = dashboard.url + "api/tasks/task-1/actions/cancel"
    headers = {"x-fleetbus-dashboard": "1", "content-type": "application/json"}
    for body, status in ((b"{", 400), (b"[1]", 400), (b"{}", 404)):
        answer = await http_get(action, method="POST", headers=headers, body=body)
        assert answer.status == status, (body, answer)


@pytest.mark.parametrize(
    ("content", "shown"),
    [
        ("short", "short"),
        ({"a": [1, 2]}, {"a": [1, 2]}),
        ("x" * 10_000, "x" * BODY_SHOWN + "..."),
        ([{}] * 10_000, ("[" + "{}," * 10_000)[:BODY_SHOWN] + "..."),
    ],
    ids=["text", "object", "long-text", "long-list"],
)
def test_a_meeting_line_keeps_what_the_pages_show(content: object, shown: object) -> None:
    """The live view keeps 500 lines of 100 meetings: a member's megabyte line (a list of
    empty objects decodes to twenty times its size) is kept as the start of its text."""
    said = MeetingMessage(sender="cto", type="message", content=content)
    assert MeetingLine(meeting_id="m", message=said).to_json()["content"] == shown


async def test_an_id_several_tasks_have_is_not_acted_on_from_the_page(
    fleet: FleetUnderTest, dashboard: Dashboard
) -> None:
    """A role writes its own records under any id: backend's record under the id of a task cto
    gave devops. The page cannot show which the admin means, so it offers no action, and an
    action naming either one is refused (the CLI, given the role, acts on the right one)."""
    async with fleet.client(sender="cto") as cto:
        handle = await cto.assign("devops", {"title": "rotate"})
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        for role, time in (("devops", "2026-01-01T00:00:00Z"), ("backend", "9999-12-31T23:59:59Z")):
            record = {"task_id": handle.id, "state": "input-required", "agent": role,
                      "attempt": 1, "time": time, "request": "r1"}  # fmt: skip
            subject = fleet.spec.subjects.task(handle.id, "updates", "cto", role)
            await conn.nc.publish(subject, json.dumps(record).encode())
        await conn.flush()
    finally:
        await conn.close()
    view_url = dashboard.url + f"api/tasks/{handle.id}"

    async def both_known() -> bool:
        return len(json.loads((await http_get(view_url)).body)["rows"]) == 2

    await eventually(both_known, what="both tasks with the id on the page")
    assert json.loads((await http_get(view_url)).body)["actions"] == []
    headers = {"x-fleetbus-dashboard": "1", "content-type": "application/json"}
    for role in ("backend", "devops"):
        body = json.dumps({"role": role, "assigner": "cto", "reason": "x"}).encode()
        answer = await http_get(
            dashboard.url + f"api/tasks/{handle.id}/actions/cancel",
            method="POST", headers=headers, body=body,
        )  # fmt: skip
        assert answer.status == 409 and b"2 tasks have the id" in answer.body, answer


async def test_a_role_cannot_date_its_records_to_the_top_of_the_task_rows(
    fleet: FleetUnderTest, dashboard: Dashboard
) -> None:
    """Rows are ordered by when the server stored their records, and show that time: a role's
    record dated 9999 stays where its storing puts it (else a role would pin its rows on top,
    and the trim of old rows would drop everyone else's first)."""
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        for task_id, time in (("t-pinned", "9999-12-31T23:59:59Z"), ("t-later", "2000-01-01Z")):
            record = {"task_id": task_id, "state": "progress", "agent": "backend",
                      "attempt": 1, "time": time}  # fmt: skip
            subject = fleet.spec.subjects.task(task_id, "updates", "cto", "backend")
            await conn.nc.publish(subject, json.dumps(record).encode())
        await conn.flush()
    finally:
        await conn.close()

    async def rows() -> list[dict[str, object]]:
        listed = json.loads((await http_get(dashboard.url + "api/tasks")).body)["rows"]
        return [r for r in listed if r["task_id"] in ("t-pinned", "t-later")]

    async def both_listed() -> bool:
        return len(await rows()) == 2

    await eventually(both_listed, what="both rows on the page")
    later, pinned = await rows()
    assert (later["task_id"], pinned["task_id"]) == ("t-later", "t-pinned")
    assert str(pinned["time"]).startswith("20") and pinned["time"] <= later["time"]  # type: ignore[operator]


async def test_live_lines_a_reader_has_not_taken_are_bounded_in_bytes(
    fleet: FleetUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live view held up to 10,000 messages for a reader that fell behind, whatever
    their size: a role's megabyte meeting lines would have held ten gigabytes. It holds
    BACKLOG_BYTES of them, the newest (8 MiB here, 64 MiB as shipped)."""
    monkeypatch.setattr(dashboard_data, "BACKLOG_BYTES", 8 * 1024 * 1024)
    conn = await connect(ConnectSettings.from_url(fleet.url))
    try:
        data = FleetData(conn, fleet.spec)
        async with (
            data.meetings() as lines,
            fleet.client(sender="cto") as cto,
            cto.meeting("flood") as room,
        ):
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for n in range(30):
                    await room.say("x" * 900_000, n=n)
                await asyncio.sleep(1.0)  # every line delivered, none taken
                held = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            first = await anext(aiter(lines))
    finally:
        await conn.close()
    assert held < 20 * 1024 * 1024, f"{held / 2**20:.0f} MiB held"  # 27 MB were said
    assert first.message.body["n"] > 0  # the oldest went first
