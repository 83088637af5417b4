"""The MCP server's tools, as one declarative table: ``TOOLS``.

A row names the tool, its arguments (a pydantic model: the input schema the host sees, and
the validation every call goes through), its description for a model, which identities get
it (``offered``: from what the fleet file lets the identity do), which roles its ``role``
argument may name (the schema's enum), what it runs (one ``FleetCalls`` method), and the
``Fleet`` method it ``needs``: a tool whose method this fleetbus lacks is not offered.

A tool for a new fleetbus feature is a row here and a method in ``fleetbus.mcp.calls``; say
``Fleet.cancel(task_id, role, reason)`` becomes::

    ToolDef(name="cancel_task", args=CancelTask, needs="cancel",
            offered=lambda r: bool(r.tasks), roles=lambda r: r.tasks,
            description=..., run=lambda c, a: c.cancel(a.task_id, a.role, a.reason))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from fleetbus.mcp.calls import FleetCalls
from fleetbus.mcp.inbox import HOLD
from fleetbus.mcp.reach import Reach

__all__ = ["TOOLS", "ToolDef", "offered_tools"]

A = TypeVar("A", bound=BaseModel)


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


Body = Annotated[
    dict[str, Any],
    Field(description="A JSON object, delivered as-is: the receiving agent gets exactly this."),
]
RoleArg = Annotated[str, Field(description="The role it goes to.")]


class AssignTask(_Args):
    role: RoleArg
    body: Body
    deadline: float | None = Field(
        default=None,
        gt=0,
        le=30 * 86400,
        description="Seconds from now after which the result is no longer useful: a task not"
        " started by then is not run, one still running then is stopped; either ends"
        " 'expired'.",
    )


class GetTask(_Args):
    task_id: str = Field(description="The task_id assign_task returned.")
    role: str | None = Field(
        default=None,
        description="The role the task was assigned to; leave out for tasks assigned through"
        " this server.",
    )


class WaitTask(GetTask):
    timeout: float = Field(
        default=60.0, gt=0, le=3600, description="Seconds to wait for the task to finish."
    )


class Ask(_Args):
    role: RoleArg
    body: Body
    timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds to wait for the answer."
    )


class SendMessage(_Args):
    role: RoleArg
    body: Body


class EmitEvent(_Args):
    domain: str = Field(description="The event's domain, one token: deployment, security, ...")
    type: str = Field(description="The event's type, one token: started, completed, ...")
    body: Body


class ReadInbox(_Args):
    max: int = Field(default=5, ge=1, le=100, description="At most this many messages.")
    wait: float = Field(
        default=0.0, ge=0, le=60, description="Seconds to wait for a message if none is there."
    )


class CancelTask(GetTask):
    reason: str = Field(default="", max_length=500, description="Why: stored with the task.")


class RespondTask(GetTask):
    answer: Body


class ListTasks(_Args):
    role: str | None = Field(default=None, description="Only tasks assigned to this role.")
    state: str | None = Field(
        default=None,
        description="Only tasks in this state: submitted, working, input-required, completed,"
        " failed, canceled, rejected or expired.",
    )
    limit: int = Field(default=20, ge=1, le=200, description="At most this many, newest first.")


class ListAgents(_Args):
    role: str | None = Field(default=None, description="Only this role's agents.")


class NoArgs(_Args):
    pass


class DeadLetterArgs(_Args):
    limit: int = Field(default=20, ge=1, le=1000, description="At most this many, oldest first.")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDef(Generic[A]):
    """One tool: its arguments, who gets it, and what it runs."""

    name: str
    args: type[A]
    description: Callable[[Reach], str]
    offered: Callable[[Reach], bool]
    run: Callable[[FleetCalls, A], Awaitable[dict[str, Any]]]
    roles: Callable[[Reach], tuple[str, ...]] | None = None
    """The roles the ``role`` argument may name; None for a tool without one."""
    needs: str = ""
    """The ``Fleet`` method the tool calls ('' for none): absent, the tool is not offered."""
    read_only: bool = False

    def schema(self, reach: Reach) -> dict[str, Any]:
        """The input schema, with ``role`` limited to the roles ``reach`` permits."""
        schema = _untitled(self.args.model_json_schema())
        role = schema.get("properties", {}).get("role")
        if role is not None and self.roles is not None:
            enum = list(self.roles(reach))
            branches = role.get("anyOf")
            target = (
                next((b for b in branches if b.get("type") == "string"), role) if branches else role
            )
            target["enum"] = enum
        return schema


def offered_tools(
    reach: Reach, provides: Callable[[str], bool], table: Sequence[ToolDef[Any]] | None = None
) -> list[ToolDef[Any]]:
    """The tools ``reach``'s identity gets from this fleetbus."""
    return [
        t
        for t in (TOOLS if table is None else table)
        if (not t.needs or provides(t.needs)) and t.offered(reach)
    ]


def _untitled(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without pydantic's generated titles: tokens a model need not read."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title" and isinstance(value, str):
            continue
        if isinstance(value, dict):
            value = {k: _untitled(v) if isinstance(v, dict) else v for k, v in value.items()}
            value = _untitled(value) if key != "properties" else value
        elif isinstance(value, list):
            value = [_untitled(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def _roles(reach: Reach, roles: tuple[str, ...]) -> str:
    return "; ".join(f"{r} ({reach.about(r)})" if reach.about(r) else r for r in roles)


def _as(reach: Reach) -> str:
    return "the admin" if reach.admin else f"role {reach.identity}"


TOOLS: tuple[ToolDef[Any], ...] = (
    ToolDef(
        name="assign_task",
        args=AssignTask,
        needs="assign",
        offered=lambda r: bool(r.tasks),
        roles=lambda r: r.tasks,
        description=lambda r: (
            f"Assign a task to another role of the fleet, as {_as(r)}. An agent of that role"
            " works it and stores its result. Returns the task_id at once: follow it with"
            " wait_task (blocks until it finishes) or get_task (its state now). The task is"
            " stored, so an agent that is down picks it up when it starts. Roles you may"
            f" assign to: {_roles(r, r.tasks)}."
        ),
        run=lambda c, a: c.assign(a.role, a.body, a.deadline),
    ),
    ToolDef(
        name="get_task",
        args=GetTask,
        needs="history",
        offered=lambda r: bool(r.tasks),
        roles=lambda r: r.tasks,
        read_only=True,
        description=lambda r: (
            "The state of a task you assigned, now: assigned (no agent took it yet), accepted,"
            " progress (with message and percent), failed (an attempt failed, it is retried),"
            " or finished: completed (with result), dead_lettered or rejected (with error)."
        ),
        run=lambda c, a: c.task(a.task_id, a.role),
    ),
    ToolDef(
        name="wait_task",
        args=WaitTask,
        needs="task",
        offered=lambda r: bool(r.tasks),
        roles=lambda r: r.tasks,
        read_only=True,
        description=lambda r: (
            "Wait until a task you assigned finishes and return its outcome: completed with"
            " the agent's result, or dead_lettered / rejected with the error. Fails with a"
            " timeout (naming the state it is in) if it does not finish within timeout"
            " seconds; the task goes on, and you can wait again."
        ),
        run=lambda c, a: c.wait(a.task_id, a.timeout, a.role),
    ),
    ToolDef(
        name="cancel_task",
        args=CancelTask,
        needs="cancel",
        offered=lambda r: bool(r.tasks),
        roles=lambda r: r.tasks,
        description=lambda r: (
            "Cancel a task you assigned: if no agent has started it, it never runs; if one is"
            " working on it, its work is stopped. It ends 'canceled' (not retried). Cancelling"
            " a finished task changes nothing (cancel_requested: false)."
        ),
        run=lambda c, a: c.cancel(a.task_id, a.role, a.reason),
    ),
    ToolDef(
        name="respond_task",
        args=RespondTask,
        needs="respond",
        offered=lambda r: bool(r.tasks),
        roles=lambda r: r.tasks,
        description=lambda r: (
            "Answer the question of a task you assigned that is waiting for input (get_task"
            " shows state input-required and the question in data). The agent goes on with"
            " your answer."
        ),
        run=lambda c, a: c.respond(a.task_id, a.role, a.answer),
    ),
    ToolDef(
        name="list_tasks",
        args=ListTasks,
        needs="tasks",
        offered=lambda r: bool(r.tasks) or r.admin,
        read_only=True,
        description=lambda r: (
            "Tasks, the most recently changed first, with their state, the agent working"
            " each, its attempt and progress."
            + (
                " Every task of the fleet."
                if r.admin
                else " The tasks you assigned through this server."
            )
        ),
        run=lambda c, a: c.tasks(a.role, a.state, a.limit),
    ),
    ToolDef(
        name="list_agents",
        args=ListAgents,
        needs="agents",
        offered=lambda r: r.admin or bool(r.tasks) or bool(r.messages),
        read_only=True,
        description=lambda r: (
            "The agent processes of the fleet: role, instance, host, state (running,"
            " draining, suspect, offline) and the task each holds."
            if r.admin
            else "For each role you send to: whether an agent of it is alive now, and its"
            " latest presence record (what it holds)."
        ),
        run=lambda c, a: c.agents(a.role),
    ),
    ToolDef(
        name="ask",
        args=Ask,
        needs="ask",
        offered=lambda r: bool(r.asks),
        roles=lambda r: r.asks,
        description=lambda r: (
            f"Ask a role a question and wait for its answer, as {_as(r)}: a running agent of"
            " that role answers with its request handler. Fails at once when no agent of the"
            " role answers requests right now, and with a timeout when it does not answer in"
            f" time. Not stored: use assign_task for work. Roles you may ask: {_roles(r, r.asks)}."
        ),
        run=lambda c, a: c.ask(a.role, a.body, a.timeout),
    ),
    ToolDef(
        name="send_message",
        args=SendMessage,
        needs="message",
        offered=lambda r: bool(r.messages),
        roles=lambda r: r.messages,
        description=lambda r: (
            f"Send a direct message to a role's inbox, as {_as(r)}. Stored until an agent of"
            " the role reads it; no answer comes back (use ask for that, assign_task for"
            f" work). Roles you may message: {_roles(r, r.messages)}."
        ),
        run=lambda c, a: c.message(a.role, a.body),
    ),
    ToolDef(
        name="emit_event",
        args=EmitEvent,
        needs="emit",
        offered=lambda r: bool(r.events),
        description=lambda r: (
            f"Publish an event (subject events.DOMAIN.TYPE under the fleet's prefix), as"
            f" {_as(r)}: every role subscribed to it gets a copy (stored, fan-out). You may"
            " publish on:"
            f" {', '.join(r.events)}."
        ),
        run=lambda c, a: c.emit(a.domain, a.type, a.body),
    ),
    ToolDef(
        name="read_inbox",
        args=ReadInbox,
        offered=lambda r: r.inbox,
        description=lambda r: (
            f"Read the next messages in your inbox (role {r.identity}), oldest first, at most"
            f" {r.inbox_batch} at a time. Calling read_inbox again acknowledges the messages it"
            " returned last time, so they are not delivered again; messages you never confirm"
            f" that way come back after {HOLD:g}s or when this server stops (attempt + 1)."
            " Each has the sender (from_verified: the server vouches for it) and its body."
        ),
        run=lambda c, a: c.read_inbox(a.max, a.wait),
    ),
    ToolDef(
        name="fleet_status",
        args=NoArgs,
        read_only=True,
        offered=lambda r: True,
        description=lambda r: (
            "The fleet's health: every stream against its limits, every consumer's backlog,"
            " dead letters and alerts."
            if r.admin
            else f"What role {r.identity} sees of the fleet: its own consumers' backlogs"
            " (agents_polling > 0 means an agent of the role is running) and the tasks"
            " assigned through this server."
        ),
        run=lambda c, a: c.status(),
    ),
    ToolDef(
        name="dead_letters",
        args=DeadLetterArgs,
        read_only=True,
        offered=lambda r: r.dead_letters,
        description=lambda r: (
            "Messages the fleet gave up on (dead letters), oldest first: which consumer, how"
            " many deliveries, the reason and the error, and the original body."
        ),
        run=lambda c, a: c.dead_letters(a.limit),
    ),
)
