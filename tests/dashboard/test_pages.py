"""The dashboard in a real browser: each page shows what happens in the fleet as it happens,
its actions work, and nothing from the wire runs as markup."""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import pytest

from fleetbus import Reject, Task, TaskCancelled, TaskError
from fleetbus.dashboard import Dashboard
from fleetbus.dashboard.app import PAGES
from fleetbus.testing.fleets import FleetUnderTest, final_history

if TYPE_CHECKING:
    from playwright.async_api import Page

expect = pytest.importorskip(
    "playwright.async_api", reason="playwright is not installed (pip install -e '.[dev]')"
).expect
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_BODY = json.dumps({"title": HOSTILE}, separators=(",", ":"))


async def expect_live(page: Page) -> None:
    await expect(page.locator("#live-status")).to_have_text("live")


async def nothing_ran(page: Page) -> None:
    """No markup from the wire became elements, and no script of it ran."""
    assert await page.evaluate("window.__pwned") is None
    assert await page.locator("main img, main script").count() == 0


async def test_a_task_appears_live_and_its_progress_moves(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    steps = [asyncio.Event(), asyncio.Event()]
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> dict[str, int]:
        await task.progress("reading the code", percent=20)
        await steps[0].wait()
        await task.progress("running the tests", percent=60)
        await steps[1].wait()
        return {"pr": 143}

    async with agent, fleet.client(sender="cto") as client:
        await page.goto(dashboard.url + "tasks")
        await expect_live(page)
        handle = await client.assign("backend", {"title": "Implement pagination"})
        row = page.locator(f'tr[data-task="{handle.id}"]')
        await expect(row.locator("progress")).to_have_attribute("value", "20")
        await expect(row).to_contain_text("reading the code")
        await expect(row).to_contain_text("backend-")  # the agent process working on it
        await shoot(page, "tasks")

        steps[0].set()
        await expect(row.locator("progress")).to_have_attribute("value", "60")
        await expect(row).to_contain_text("running the tests")

        await page.goto(dashboard.url)
        await expect(page.locator("#tasks-known")).to_have_text("1")
        await expect(page.locator("#serving")).to_have_text("1")
        await expect(page.locator("#role-list .state-working")).to_contain_text("backend")
        await expect(page.locator("#no-alerts")).to_be_visible()
        await shoot(page, "overview")

        await page.goto(dashboard.url + "agents?q=backend")
        agents = page.locator("#agents tbody tr")
        await expect(agents).to_have_count(1)
        await expect(agents).to_contain_text(agent.worker)
        await expect(agents.locator("progress")).to_have_attribute("value", "60")
        await shoot(page, "agents")

        await page.goto(f"{dashboard.url}tasks/{handle.id}")
        await expect(page.locator("#task-progress")).to_have_attribute("value", "60")
        await expect(page.locator("#timeline li")).to_have_count(3)
        steps[1].set()
        assert await handle.result(timeout=10) == {"pr": 143}
        await expect(page.locator("#task-facts")).to_contain_text("completed")
        await expect(page.locator("#task-result-text")).to_contain_text('"pr": 143')
        await expect(page.locator("#task-progress")).to_have_attribute("value", "100")
        await expect(page.locator("#timeline li")).to_have_count(4)
        await shoot(page, "task")


async def test_a_dead_letter_replayed_from_the_page_is_processed_by_a_running_agent(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    down = [True]
    agent = fleet.agent("backend")

    @agent.on_task
    async def implement(task: Task) -> dict[str, int]:
        if down[0]:
            raise Reject("the model is down")
        return {"done": task.body["n"]}

    async with agent, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {"n": 7})
        with pytest.raises(TaskError):
            await handle.result(timeout=10)
        await page.goto(dashboard.url + "dead-letters")
        row = page.locator("#letters tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("the model is down")
        await expect(row).to_contain_text(handle.id)
        await row.get_by_role("button", name=re.compile("^Show")).click()
        await expect(page.locator("#letter-body")).to_have_text('{"n":7}')
        await expect(page.locator("#letter")).to_be_focused()
        await shoot(page, "dead-letters")

        replay = row.get_by_role("button", name=re.compile("^Replay"))
        await replay.click()
        dialog = page.locator("#confirm")
        await expect(dialog).to_be_visible()
        await expect(page.locator("#confirm-cancel")).to_be_focused()  # the safe choice first
        await page.keyboard.press("Escape")
        await expect(dialog).to_be_hidden()
        await expect(row).to_have_count(1)  # nothing replayed

        down[0] = False
        await replay.click()
        await shoot(page, "dead-letters-confirm")
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.locator("#dlq-result")).to_contain_text("replayed dead letter")
        # The page's stream sends the list again after the replay, and the sampler once it
        # sees the count fall (at most five times a slow sample later): generous, for both.
        await expect(page.locator("#letters-empty")).to_be_visible(timeout=15_000)
        history = await final_history(client, handle.id, until="completed")
        assert history[-1].result == {"done": 7}


async def refuse(task: Task) -> None:
    raise Reject("not today")


async def test_dead_letters_are_purged_after_confirmation(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page
) -> None:
    agent = fleet.agent("backend")
    agent.on_task(refuse)
    async with agent, fleet.client() as client:
        for n in range(2):
            with pytest.raises(TaskError):
                await (await client.assign("backend", {"n": n})).result(timeout=10)
        await page.goto(dashboard.url + "dead-letters")
        await expect(page.locator("#letters tbody tr")).to_have_count(2)
        await page.get_by_role("button", name=re.compile("^Purge")).click()
        await page.get_by_role("button", name="Confirm").click()
        await expect(page.locator("#dlq-result")).to_have_text("purged 2 dead letter(s)")
        await expect(page.locator("#letters tbody tr")).to_have_count(0)
        await expect(page.locator("#purge")).to_be_disabled()


async def test_a_meeting_message_appears_in_the_transcript(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    await page.goto(dashboard.url + "meetings")
    await expect_live(page)
    async with (
        fleet.client(sender="cto") as cto,
        fleet.client(sender="backend") as backend,
        cto.meeting("release-42") as room,
        backend.meeting("release-42") as other,
    ):
        await asyncio.wait_for(room.until_present("backend"), 10)
        meeting = page.locator('section[data-meeting="release-42"]')
        said = meeting.locator(".transcript li.said")
        await room.say("Ready to ship v2.3.1?", type="question")
        await expect(said).to_have_count(1)
        await expect(said).to_contain_text("cto")
        await expect(said).to_contain_text("Ready to ship v2.3.1?")
        # (two connections: the order of what they say is the order it reaches the server)
        await other.say("Tests are green, PR #143 is merged.", type="answer")
        await expect(said).to_have_count(2)
        await expect(said.last).to_contain_text("backend")
        await expect(said.last).to_contain_text("Tests are green")
        await expect(meeting.locator(".members")).to_have_text("in the room: backend, cto")
        await shoot(page, "meetings")


async def test_an_event_appears_in_the_tail_under_its_subject_filter(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    await page.goto(dashboard.url + "events")
    await page.get_by_label("Subject filter").fill("events.deployment.>")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#tail-state")).to_have_text("tailing events.deployment.>")
    assert "filter=events.deployment" in page.url  # the filter is kept in the address
    async with fleet.client(sender="devops") as client:
        await client.emit("security", "scan", {"target": "api"})
        await client.emit("deployment", "completed", {"version": "2.3.1"})
    lines = page.locator("#tail li")
    await expect(lines).to_have_count(1)
    await expect(lines).to_contain_text(f"{fleet.spec.prefix}.events.deployment.completed")
    await expect(lines).to_contain_text('{"version":"2.3.1"}')
    await shoot(page, "events")

    await page.get_by_label("Subject filter").fill("rpc.>")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#tail-state")).to_contain_text("does not tail fast asks")


async def test_text_from_the_wire_is_shown_as_text(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page
) -> None:
    agent = fleet.agent("backend")

    @agent.on_task
    async def echo(task: Task) -> None:
        await task.progress(task.body["title"], percent=50)
        raise Reject(task.body["title"])

    await page.goto(dashboard.url + "events?filter=agents.%3E")
    await expect(page.locator("#tail-state")).to_have_text("tailing agents.>")
    async with agent, fleet.client(sender="cto") as client:
        handle = await client.assign("backend", {"title": HOSTILE})
        with pytest.raises(TaskError):
            await handle.result(timeout=10)
        await expect(page.locator("#tail li").first).to_contain_text(HOSTILE_BODY)
        await nothing_ran(page)

        await page.goto(f"{dashboard.url}tasks/{handle.id}")
        await expect(page.locator("#timeline")).to_contain_text(HOSTILE)
        await expect(page.locator("#task-error-text")).to_contain_text(HOSTILE)
        await nothing_ran(page)

        await page.goto(dashboard.url + "dead-letters")
        await page.get_by_role("button", name=re.compile("^Show")).click()
        await expect(page.locator("#letter-body")).to_have_text(HOSTILE_BODY)
        await expect(page.locator("#letters tbody")).to_contain_text(HOSTILE)
        await nothing_ran(page)


async def test_streams_and_consumers_draw_their_recent_history(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    async with fleet.client() as client:
        await page.goto(dashboard.url + "streams")
        await expect_live(page)
        for n in range(3):
            await client.assign("backend", {"n": n})  # no agent: they wait on BACKEND_TASKS
            await asyncio.sleep(0.6)  # one sample each (the dashboard samples every 0.5 s)
    await page.get_by_label("Name or role").fill("backend")
    tasks = page.locator("#consumers tbody tr", has_text="BACKEND_TASKS")
    await expect(tasks.locator("td").nth(1)).to_have_text("3")
    await expect(tasks.locator("svg polyline").first).to_be_attached()
    streams = page.locator("#streams tbody svg polyline")
    await expect(streams).to_have_count(len(fleet.spec.streams))  # one sparkline per stream
    await shoot(page, "streams")


async def test_every_page_reads_at_390_pixels_and_works_from_the_keyboard(
    dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    await page.set_viewport_size({"width": 390, "height": 844})
    for path, name, title in PAGES:
        await page.goto(dashboard.url + path.lstrip("/"))
        await expect(page.get_by_role("heading", level=1)).to_have_text(title)
        await expect(page.locator('nav a[aria-current="page"]')).to_have_text(title)
        await expect_live(page)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{name} is {width} px wide at 390"
    await page.goto(dashboard.url)
    await expect_live(page)
    await shoot(page, "overview-narrow", full_page=True)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.locator("main")).to_be_focused()


async def test_cancel_and_respond_are_buttons_on_a_running_tasks_page(
    fleet: FleetUnderTest, dashboard: Dashboard, page: Page, shoot: Any
) -> None:
    """A click answers a task's input request; another cancels a task that runs."""
    agent = fleet.agent("backend")
    cancelled = asyncio.Event()

    @agent.on_task
    async def work(task: Task) -> Any:
        if task.body.get("ask"):
            return await task.request_input({"question": "cursor or offset?"}, timeout=30)
        await task.progress("a long job", percent=10)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "finished"

    async with agent, fleet.client(sender="cto") as client:
        asking = await client.assign("backend", {"ask": True})
        await page.goto(f"{dashboard.url}tasks/{asking.id}")
        await expect(page.get_by_role("button", name="respond")).to_be_visible()
        await page.get_by_label("Answer (JSON, or text)").fill('{"pagination": "cursor"}')
        await page.get_by_role("button", name="respond").click()
        await page.get_by_role("button", name="Confirm").click()
        assert await asking.result(timeout=10) == {"pagination": "cursor"}

        long = await client.assign("backend", {"title": "long"})
        await page.goto(f"{dashboard.url}tasks/{long.id}")
        await expect(page.locator("#task-progress")).to_have_attribute("value", "10")
        await page.get_by_label("Reason").fill("wrong approach")
        await shoot(page, "task-actions")
        await page.get_by_role("button", name="cancel").click()
        await page.get_by_role("button", name="Confirm").click()
        with pytest.raises(TaskCancelled, match="wrong approach"):
            await long.result(timeout=10)
        assert cancelled.is_set()
        await expect(page.locator("#task-actions")).to_be_hidden()  # none once it ended
