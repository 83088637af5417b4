"""The seed's fleet as fleetbus agents: ceo, cto, backend, devops and cso.

Run them against `fleetbus up` with::

    fleetbus run examples/agents.py:cto examples/agents.py:backend \\
                 examples/agents.py:devops examples/agents.py:cso

Every agent's "work" is simulated with a short sleep; each marks the place where a real LLM
call would go. `examples/demo.py` runs them all and tells the story.
"""

from __future__ import annotations

import asyncio
import time

from rich.console import Console

from fleetbus import Agent, Event, Message, Reject, Task, TaskUpdate
from fleetbus.client.fleet import Observed

console = Console(highlight=False)
_START = time.monotonic()
_COLOURS = {"ceo": "magenta", "cto": "cyan", "backend": "green", "devops": "yellow", "cso": "red"}


def say(role: str, text: str) -> None:
    """One readable log line: seconds since start, the role, what happened."""
    colour = _COLOURS.get(role, "white")
    console.print(f"[dim]{time.monotonic() - _START:6.2f}s[/] [{colour}]{role:>8}[/] {text}")


async def think(seconds: float) -> None:
    """Stands in for the agent's real work: an LLM call, a build, a deploy."""
    await asyncio.sleep(seconds)


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
    say("cto", f"got feature [bold]{feature}[/] from {task.sender}; splitting it")
    await think(0.3)  # <- a real LLM call goes here: break the feature into tasks
    parts = [
        {"title": "Implement cursor pagination for /api/users", "priority": "high"},
        {"title": "Add pagination tests and docs", "priority": "medium"},
    ]
    handles = [await cto.fleet.assign("backend", part) for part in parts]
    for handle, part in zip(handles, parts, strict=True):
        say("cto", f"assigned {handle.id} to backend: {part['title']}")
    results = [await h.result(timeout=120) for h in handles]
    await cto.fleet.message("cso", {"text": f"please audit PR {results[0]['pr']} before deploy"})
    deploy = await cto.fleet.assign("devops", {"title": "Deploy api-gateway v2.3.1"})
    say("cto", f"assigned {deploy.id} to devops: deploy api-gateway v2.3.1")
    deployed = await deploy.result(timeout=120)
    return {"feature": feature, "prs": [r["pr"] for r in results], "deployed": deployed}


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
    say("backend", f"done {task.id}: opened PR #{pr}")
    return {"pr": pr}


@backend.on_message
async def backend_inbox(msg: Message) -> None:
    say("backend", f"inbox from {msg.sender}: {msg.body.get('text')}")


# -- devops: deploys, and watches every deployment event -------------------------------------

devops = Agent("devops")


@devops.on_task
async def deploy(task: Task) -> dict[str, object]:
    say("devops", f"deploying: {task.body['title']}")
    await think(0.5)  # <- a real LLM call goes here: run the rollout, read the dashboards
    await devops.fleet.emit(
        "deployment",
        "completed",
        {"service": "api-gateway", "version": "v2.3.1", "environment": "production"},
    )
    return {"service": "api-gateway", "version": "v2.3.1"}


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


@cso.on_message
async def cso_inbox(msg: Message) -> None:
    say("cso", f"inbox from {msg.sender}: {msg.body.get('text')}")
    await think(0.2)  # <- a real LLM call goes here: review the diff
    await cso.fleet.message(msg.sender or "cto", {"text": "PR audited: no findings"})


@cto.on_message
async def cto_inbox(msg: Message) -> None:
    say("cto", f"inbox from {msg.sender}: {msg.body.get('text')}")


AGENTS = [ceo, cto, backend, devops, cso]
