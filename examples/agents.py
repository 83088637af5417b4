"""The seed's fleet as fleetbus agents: ceo, cto, backend, devops and cso.

Run them against `fleetbus up` with::

    fleetbus run examples/agents.py:cto examples/agents.py:backend \\
                 examples/agents.py:devops examples/agents.py:cso

Every agent's "work" is simulated with a short sleep; each marks the place where a real LLM
call would go. `examples/demo.py` runs them all and tells the story.
"""

from __future__ import annotations

import asyncio
import os
import time

from rich.console import Console

from fleetbus import Agent, Event, Message, Reject, Request, Task, TaskUpdate
from fleetbus.client.fleet import Observed

console = Console(highlight=False)
_START = time.monotonic()
_COLOURS = {"ceo": "magenta", "cto": "cyan", "backend": "green", "devops": "yellow", "cso": "red"}


def say(role: str, text: str) -> None:
    """One readable log line: seconds since start, the role, what happened."""
    colour = _COLOURS.get(role, "white")
    console.print(f"[dim]{time.monotonic() - _START:6.2f}s[/] [{colour}]{role:>8}[/] {text}")


PACE = float(os.environ.get("FLEETBUS_DEMO_PACE", "1"))
"""Scales every simulated delay: `make demo` runs at 3, the tests at 0.2."""


async def think(seconds: float) -> None:
    """Stands in for the agent's real work: an LLM call, a build, a deploy."""
    await asyncio.sleep(seconds * PACE)


# -- ceo: oversight; hands features to the CTO ------------------------------------------------

ceo = Agent("ceo")


@ceo.on_observe("agents.*.inbox")
async def oversee(item: Observed) -> None:
    # The CEO sees every inbox message without taking it from its owner.
    owner = item.subject.split(".")[-2]
    text = (item.body or {}).get("text", "")
    say("ceo", f"[dim]sees {item.sender or '?'} → {owner}: {text}[/]")


# -- cto: splits a feature into tasks, follows every task ------------------------------------

cto = Agent("cto")


@cto.on_task
async def plan_feature(task: Task) -> dict[str, object]:
    feature = task.body["title"]
    say("cto", f"got feature [bold]{feature}[/] from {task.sender}")
    # Ask back before planning: the task waits (input-required) until the assigner answers;
    # the answer is stored, so a restarted cto would not ask again.
    choice = await task.request_input({"question": "cursor or offset pagination?"}, timeout=300)
    say("cto", f"{task.assigner} chose {choice['pagination']} pagination; splitting it")
    plan = await task.step("plan", make_plan, feature)  # paid for once, even across a crash
    parts = plan["parts"]
    handles = [await cto.fleet.assign("backend", part) for part in parts]
    for handle, part in zip(handles, parts, strict=True):
        say("cto", f"assigned {handle.id} to backend: {part['title']}")
    results = [await h.result(timeout=120) for h in handles]
    await cto.fleet.message("cso", {"text": f"please audit PR {results[0]['pr']} before deploy"})
    await release_meeting(f"release-{task.id}")
    deploy = await cto.fleet.assign("devops", {"title": "Deploy api-gateway v2.3.1"})
    say("cto", f"assigned {deploy.id} to devops: deploy api-gateway v2.3.1")
    deployed = await deploy.result(timeout=120)
    return {"feature": feature, "prs": [r["pr"] for r in results], "deployed": deployed}


async def make_plan(feature: str) -> dict[str, object]:
    await think(0.3)  # <- a real LLM call goes here: break the feature into tasks
    return {
        "parts": [
            {"title": "Implement cursor pagination for /api/users", "priority": "high"},
            {"title": "Add pagination tests and docs", "priority": "medium"},
        ]
    }


async def release_meeting(meeting_id: str) -> None:
    """A short live meeting (core NATS) with backend and devops before the deploy."""
    async with asyncio.timeout(30), cto.fleet.meeting(meeting_id) as room:
        for role in ("backend", "devops"):
            await room.invite(role, topic="ship api-gateway v2.3.1?")
        say("cto", f"opened meeting {meeting_id}; invited backend and devops")
        await room.until_present("backend", "devops")
        await room.say("Ready to ship api-gateway v2.3.1?", type="question")
        answers: dict[str, str] = {}
        async for message in room:
            if message.type == "answer":
                answers[message.sender] = str(message.content)
                if len(answers) == 2:
                    break
        await room.say("Shipping it. Thanks, all.", type="decision")
        say("cto", "meeting decided: ship")


@cto.on_update
async def follow(update: TaskUpdate) -> None:
    if update.state == "progress":
        say("cto", f"[dim]{update.task_id} {update.percent or 0:.0f}%: {update.message}[/]")
    elif update.state == "dead_lettered":
        say("cto", f"[red]{update.task_id} dead-lettered: {update.error}[/]")


# -- backend: implements, reports progress, rejects what it cannot do ------------------------

backend = Agent("backend")
_next_pr = iter(range(143, 1000))


@backend.on_task
async def implement(task: Task) -> dict[str, object]:
    if task.body.get("kind") not in (None, "code"):
        # Retrying cannot help: dead-letter it now, with the reason.
        raise Reject(f"unknown task kind {task.body.get('kind')!r}")
    say("backend", f"starts {task.id}: {task.body['title']} (attempt {task.attempt})")
    await think(0.4)  # <- a real LLM call goes here: write the code
    await task.progress("code written, running tests", percent=60)
    await think(0.4)  # <- a real LLM call goes here: fix what the tests found
    pr = next(_next_pr)
    if "Implement" in task.body["title"]:
        # Request-reply answered by the cso agent itself (never by a stream's PubAck).
        review = await backend.fleet.ask(
            "cso", {"type": "security_review_request", "pr": pr, "code_diff": "+ cursor"}
        )
        say("backend", f"cso reviewed PR #{pr}: {review['verdict']}")
    say("backend", f"done {task.id}: opened PR #{pr}")
    return {"pr": pr}


@backend.on_invitation
async def backend_meeting(invitation: Message) -> None:
    await attend(backend, invitation, "tests are green and PR #143 is merged")


@backend.on_message
async def backend_inbox(msg: Message) -> None:
    say("backend", f"inbox from {msg.sender}: {msg.body.get('text')}")


# -- devops: deploys, and watches every deployment event -------------------------------------

devops = Agent("devops")


@devops.on_task
async def deploy(task: Task) -> dict[str, object]:
    if task.body.get("kind") == "chore":
        say("devops", f"starts chore: {task.body['title']}")
        try:
            await think(30)  # <- a long job: cancelled by its assigner in the demo
        except asyncio.CancelledError:
            say("devops", f"chore {task.id} cancelled: cleaned up, nothing half-done")
            raise
        return {"done": task.body["title"]}
    say("devops", f"deploying: {task.body['title']}")
    await think(0.5)  # <- a real LLM call goes here: run the rollout, read the dashboards
    await devops.fleet.emit(
        "deployment",
        "completed",
        {"service": "api-gateway", "version": "v2.3.1", "environment": "production"},
    )
    return {"service": "api-gateway", "version": "v2.3.1"}


@devops.on_invitation
async def devops_meeting(invitation: Message) -> None:
    await attend(devops, invitation, "the rollout plan is ready; canary first")


async def attend(agent: Agent, invitation: Message, answer: str) -> None:
    """Join a meeting one was invited to, answer the question, leave on the decision."""
    meeting_id = invitation.body["meeting_id"]
    async with asyncio.timeout(30), agent.fleet.meeting(meeting_id) as room:
        say(agent.role, f"joins meeting {meeting_id} ({invitation.body.get('topic')})")
        async for message in room:
            if message.type == "question":
                await think(0.1)  # <- a real LLM call goes here: answer the question
                await room.say(answer, type="answer")
                say(agent.role, f"in meeting: {answer}")
            elif message.type == "decision":
                return


@devops.on_event("deployment.>")
async def watch_deployments(event: Event) -> None:
    body = event.body
    say(
        "devops",
        f"event {event.domain}.{event.type}: {body['service']} {body['version']} "
        "is live; watching error rates",
    )


# -- cso: audits every event, answers review requests ----------------------------------------

cso = Agent("cso")


@cso.on_event(">")
async def audit(event: Event) -> None:
    await think(0.1)  # <- a real LLM call goes here: audit the change for security issues
    say("cso", f"audited event {event.domain}.{event.type} from {event.sender}")


@cso.on_request
async def security_review(request: Request) -> dict[str, object]:
    await think(0.2)  # <- a real LLM call goes here: review the diff for vulnerabilities
    say("cso", f"reviewed PR #{request.body['pr']} for {request.sender}: approved")
    return {"verdict": "approved", "findings": []}


@cso.on_message
async def cso_inbox(msg: Message) -> None:
    say("cso", f"inbox from {msg.sender}: {msg.body.get('text')}")
    await think(0.2)  # <- a real LLM call goes here: review the diff
    await cso.fleet.message(msg.sender or "cto", {"text": "PR audited: no findings"})


@cto.on_message
async def cto_inbox(msg: Message) -> None:
    say("cto", f"inbox from {msg.sender}: {msg.body.get('text')}")


AGENTS = [ceo, cto, backend, devops, cso]
