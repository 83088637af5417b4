"""The fleet as an AsyncAPI 3.0 document: what a team hands to the people who write agents in
other languages, or loads into AsyncAPI tooling (Studio, generators, docs). Pure.

The document says what docs/wire-contract.md says, for one fleet file:

- ``servers``: the fleet file's ``server`` section (one per node of a local cluster);
- ``channels``: one per subject family, its address with parameters (``{role}``,
  ``{kind}``, ``{sender}``, ``{domain}``, ``{type}``, ``{task_id}``, ``{meeting_id}``,
  ``{stream}``, ``{consumer}``). The addresses come from ``fleetbus.wire.subjects.Subjects``
  itself, called with the parameter names as tokens, so they cannot drift from the code;
  the channel table below is the only place that lists them;
- ``operations``: per role (``{role}_{what}``), what it sends (from ``send_to`` and
  ``publish``) and what it receives (from its consumers and event filters);
- ``components.messages``: tasks, messages, invitations, asks and answers, task updates (the
  schema derived from ``TaskUpdate``), meeting traffic and dead letters (their headers from
  ``fleetbus.wire.headers``);
- the JetStream side, which AsyncAPI has no words for, as ``x-fleetbus-jetstream`` extensions:
  every stream's limits at the root, the stream a channel is stored in, and each receiving
  operation's durable consumer (name, filters, ack wait, max deliver, ...).

One piece: channels, operations and messages all hang off the one channel table, which must
stay the only place that lists the subjects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import TypeAdapter

from fleetbus._version import __version__
from fleetbus.fleet import FleetSpec, ResolvedConsumer
from fleetbus.fleet.units import format_duration
from fleetbus.provision.plan import consumer_cap
from fleetbus.wire import headers as h
from fleetbus.wire.subjects import Subjects
from fleetbus.wire.updates import TaskUpdate

__all__ = ["ASYNCAPI_VERSION", "CHANNELS", "ChannelFamily", "asyncapi_document", "render"]

ASYNCAPI_VERSION = "3.0.0"

_PARAMETERS: dict[str, str] = {
    "role": "a role of the fleet file",
    "kind": "inbox (direct messages and durable asks), tasks, or meetings (invitations)",
    "sender": "the sending role; with auth on the server lets a role publish only its own name",
    "domain": "the event's domain (deployment, security, ...)",
    "type": "the event's type within its domain (completed, failed, ...)",
    "task_id": "the task id (Fleet-Task-Id, or the body's task_id)",
    "assigner": "the role that assigned the task (admin for the admin or a plain client)",
    "assignee": "the role the task was assigned to: the only one that writes its updates",
    "request": "the number of a task's input request",
    "asker": "the role that asks (admin for the admin or a plain client)",
    "ask_id": "the ask's id (Fleet-Ask-Id)",
    "meeting_id": "the meeting (room) id",
    "stream": "the stream the dead message came from",
    "consumer": "the consumer that gave up on it",
    "seq": "the dead message's sequence in its stream (one dead letter per message)",
}
_KINDS = ["inbox", "tasks", "meetings"]


@dataclass(frozen=True, slots=True)
class ChannelFamily:
    """One subject family of the wire contract."""

    name: str
    address: Callable[[Subjects], str] | None
    """The address, built by ``Subjects`` with ``{parameter}`` tokens; None for replies."""
    messages: tuple[str, ...]
    description: str


def _p(name: str) -> str:
    """A parameter, as a token ``Subjects`` accepts (ids are checked against their alphabet):
    ``_address`` turns it into ``{name}``."""
    return f"~{name}~"


def _address(family: ChannelFamily, subjects: Subjects) -> str | None:
    if family.address is None:
        return None
    return re.sub(r"~(\w+)~", r"{\1}", family.address(subjects))


CHANNELS: tuple[ChannelFamily, ...] = (
    ChannelFamily(
        "agent",
        lambda s: s.agent(_p("role"), _p("kind")),
        ("task", "message", "durableAsk", "invitation"),
        "A role's tasks, inbox or meeting invitations, published without a sender (a plain"
        " `nats pub`, an admin client). The receiver cannot trust Fleet-Sender here.",
    ),
    ChannelFamily(
        "agentFrom",
        lambda s: s.agent(_p("role"), _p("kind"), _p("sender")),
        ("task", "message", "durableAsk", "invitation"),
        "The same, sent by role {sender}: what every role publishes to (its send_to roles).",
    ),
    ChannelFamily(
        "event",
        lambda s: s.event(_p("domain"), _p("type")),
        ("event",),
        "System events, fanned out to every role whose event filters match.",
    ),
    ChannelFamily(
        "taskUpdates",
        lambda s: s.task(_p("task_id"), "updates", _p("assigner"), _p("assignee")),
        ("taskUpdate",),
        "A task's state changes (accepted, progress, failed attempts, input requests),"
        " written only by {assignee}.",
    ),
    ChannelFamily(
        "taskOutcome",
        lambda s: s.task(_p("task_id"), "outcome", _p("assigner"), _p("assignee")),
        ("taskUpdate",),
        "A task's one terminal record (completed, dead_lettered, rejected, canceled,"
        " expired), written with Nats-Expected-Last-Subject-Sequence 0: the first stored wins.",
    ),
    ChannelFamily(
        "taskCancel",
        lambda s: s.task(_p("task_id"), "cancel", _p("assigner"), _p("assignee")),
        ("taskControl",),
        "{assigner} (or the admin) cancels the task.",
    ),
    ChannelFamily(
        "taskAnswer",
        lambda s: s.task(_p("task_id"), "answer", _p("assigner"), _p("assignee"), _p("request")),
        ("taskControl",),
        "{assigner}'s answer to the task's input request {request}.",
    ),
    ChannelFamily(
        "meetingFrom",
        lambda s: s.meeting(_p("meeting_id"), _p("sender")),
        ("meetingMessage",),
        "Live meeting traffic, said by {sender}: core NATS, not stored.",
    ),
    ChannelFamily(
        "meeting",
        lambda s: s.meeting(_p("meeting_id")),
        ("meetingMessage",),
        "Live meeting traffic from a plain client (its `from` is a claim): core NATS.",
    ),
    ChannelFamily(
        "ask",
        lambda s: s.rpc(_p("role"), _p("asker")),
        ("ask",),
        "Fast asks from {asker}, answered by one agent of the role (queue group {role}):"
        " core NATS; no stream may capture it.",
    ),
    ChannelFamily(
        "answers",
        lambda s: f"{s.answer_to(_p('asker'), _p('role'))}.{_p('ask_id')}",
        ("answer", "errorAnswer"),
        "Answers to asks: the request's reply subject (fast), or Fleet-Reply-To (durable);"
        " an agent answers nowhere else.",
    ),
    ChannelFamily(
        "deadLetters",
        lambda s: s.dead_letter(_p("stream"), _p("consumer")) + "." + _p("seq"),
        ("deadLetter",),
        "What exhausted its deliveries or was rejected, with where it came from and why.",
    ),
)
"""Every channel of the document, in order: the one table of subject families."""


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(path)}


def _headers(*names: str, required: tuple[str, ...] = (), **consts: str) -> dict[str, Any]:
    props: dict[str, Any] = {n: {"type": "string"} for n in names}
    for name, value in consts.items():
        props[name.replace("_", "-")] = {"type": "string", "const": value}
    return {"type": "object", "properties": props, "required": list(required)}


def task_update_schema() -> dict[str, Any]:
    """The task update body as a JSON Schema, from ``TaskUpdate`` itself. Fields without a
    value are left out on the wire (never null), so the null branches go."""
    schema: dict[str, Any] = TypeAdapter(TaskUpdate).json_schema()
    for prop in schema["properties"].values():
        branches = prop.pop("anyOf", None)
        if branches:
            prop.update(next(b for b in branches if b.get("type") != "null"))
        if prop.get("default") is None:
            prop.pop("default", None)
    schema["description"] = "Published on P.tasks.{task_id}.updates at each change of a task."
    return schema


_ANY_OBJECT = {"type": "object", "description": "your JSON object, as-is"}
_SENT = (h.MSG_ID, h.SENDER, h.TRACEPARENT)


def _messages() -> dict[str, Any]:
    def message(title: str, payload: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
        return {
            "title": title,
            "contentType": "application/json",
            "headers": headers,
            "payload": payload,
        }

    return {
        "task": message(
            "Task assignment",
            {**_ANY_OBJECT, "properties": {"task_id": {"type": "string"}}},
            _headers(h.TASK_ID, *_SENT),
        ),
        "message": message("Direct message", _ANY_OBJECT, _headers(*_SENT)),
        "durableAsk": message(
            "Durable ask, stored in the role's inbox",
            _ANY_OBJECT,
            _headers(h.REPLY_TO, h.ASK_ID, h.DEADLINE, *_SENT, required=(h.REPLY_TO, h.ASK_ID)),
        ),
        "invitation": message(
            "Meeting invitation",
            {
                **_ANY_OBJECT,
                "properties": {"meeting_id": {"type": "string"}, "from": {"type": "string"}},
                "required": ["meeting_id"],
            },
            _headers(*_SENT),
        ),
        "event": message("Event", _ANY_OBJECT, _headers(*_SENT)),
        "taskUpdate": message(
            "Task update",
            task_update_schema(),
            _headers(h.TASK_ID, h.MSG_ID, required=(h.TASK_ID,)),
        ),
        "meetingMessage": message(
            "Meeting message",
            {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "type": {"type": "string", "description": "message, or join/leave/present"},
                    "content": {},
                    "time": {"type": "string"},
                    "member": {
                        "type": "string",
                        "description": "a random id of the room object: it skips its own words",
                    },
                },
                "required": ["from", "type", "time"],
            },
            _headers(h.TRACEPARENT),
        ),
        "ask": message("Fast ask", _ANY_OBJECT, _headers(h.SENDER, h.TRACEPARENT)),
        "answer": message(
            "Answer", {"description": "the handler's value, any JSON"}, _headers(Fleet_Status="ok")
        ),
        "errorAnswer": message(
            "Error answer",
            {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            _headers(h.ERROR, Fleet_Status="error"),
        ),
        "deadLetter": message(
            "Dead letter: the original body and headers, with where it came from and why",
            {"description": "the original body, as published (empty if limits removed it)"},
            _headers(
                *h.DLQ_HEADERS,
                h.MSG_ID,
                h.SENDER,
                required=tuple(x for x in h.DLQ_HEADERS if x != h.DLQ_TRACEBACK),
            ),
        ),
        "taskControl": message(
            "A cancel, or the answer to an input request, from the task's assigner",
            _ANY_OBJECT,
            _headers(h.TASK_ID, h.MSG_ID),
        ),
    }


def _stream_settings(spec: FleetSpec, name: str) -> dict[str, Any]:
    s = spec.streams[name]
    return {
        "stream": name,
        "subjects": spec.stream_subjects(name),
        "retention": s.retention,
        "storage": s.storage,
        "compression": s.compression,
        "replicas": s.replicas,
        "max_age": format_duration(s.max_age),
        "max_msgs": s.max_msgs,
        "max_bytes": s.max_bytes,
        "max_msgs_per_subject": s.max_msgs_per_subject,
        "max_msg_size": s.max_msg_size,
        "max_consumers": consumer_cap(spec, name),
        "discard": s.discard,
        "discard_new_per_subject": s.discard_new_per_subject,
        "duplicate_window": format_duration(s.duplicate_window),
    }


def _consumer_settings(c: ResolvedConsumer) -> dict[str, Any]:
    spec = c.spec
    return {
        "stream": c.stream,
        "consumer": c.name,
        "durable": True,
        "filter_subjects": list(c.filters),
        "ack_policy": "explicit",
        "deliver_policy": spec.deliver,
        "ack_wait": format_duration(spec.effective_ack_wait),
        "max_deliver": spec.max_deliver,
        "max_ack_pending": spec.max_ack_pending,
        "backoff": [format_duration(d) for d in spec.backoff] if spec.backoff else None,
    }


def _channels(spec: FleetSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for family in CHANNELS:
        channel: dict[str, Any] = {
            "address": _address(family, spec.subjects),
            "description": family.description,
            "messages": {m: _ref("components", "messages", m) for m in family.messages},
        }
        if family.address is not None:
            address = channel["address"]
            params = [p for p in _PARAMETERS if "{" + p + "}" in address]
            channel["parameters"] = {p: {"description": _PARAMETERS[p]} for p in params}
            if "kind" in params:
                channel["parameters"]["kind"]["enum"] = list(_KINDS)
            if "role" in params:
                channel["parameters"]["role"]["enum"] = list(spec.roles)
            for name in ("sender", "assignee"):
                if name in params:
                    channel["parameters"][name]["enum"] = list(spec.roles)
            for name in ("assigner", "asker"):
                if name in params:
                    channel["parameters"][name]["enum"] = [*spec.roles, "admin"]
            stream = spec.stream_for(_filter(address))
            if stream:
                channel["x-fleetbus-stream"] = stream
        out[family.name] = channel
    return out


def _filter(address: str) -> str:
    """``P.agents.{role}.tasks`` → ``P.agents.*.tasks``: what the family's subjects match."""
    return ".".join("*" if t.startswith("{") else t for t in address.split("."))


_RECEIVES: dict[str, tuple[str, list[str]]] = {
    "tasks": ("agentFrom", ["task"]),
    "inbox": ("agentFrom", ["message", "durableAsk"]),
    "meetings": ("agentFrom", ["invitation"]),
    "events": ("event", ["event"]),
    "updates": ("taskUpdates", ["taskUpdate"]),
    "dead_letters": ("deadLetters", ["deadLetter"]),
}
_SENDS: tuple[tuple[str, str, list[str], str], ...] = (
    ("tasks", "sendTasks", ["task"], "assigns tasks to"),
    ("inbox", "sendMessages", ["message", "durableAsk"], "messages and asks (durable)"),
    ("meetings", "sendInvitations", ["invitation"], "invites to meetings"),
)


def _operation(
    action: Literal["send", "receive"],
    channel: str,
    messages: list[str],
    summary: str,
    **extensions: Any,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel),
        "summary": summary,
        "messages": [_ref("channels", channel, "messages", m) for m in messages],
    }
    op.update({f"x-fleetbus-{k.replace('_', '-')}": v for k, v in extensions.items()})
    return op


def _operations(spec: FleetSpec) -> dict[str, Any]:
    subjects = spec.subjects
    ops: dict[str, Any] = {}
    for role, rs in spec.roles.items():
        targets = list(spec.roles) if "*" in rs.send_to else list(rs.send_to)
        if targets:
            for kind, verb, msgs, what in _SENDS:
                ops[f"{role}_{verb}"] = _operation(
                    "send",
                    "agentFrom",
                    msgs,
                    f"{role} {what} {', '.join(targets)}",
                    subjects=[subjects.agent(t, kind, role) for t in targets],
                )
            ops[f"{role}_ask"] = _operation(
                "send",
                "ask",
                ["ask"],
                f"{role} asks {', '.join(targets)} (fast, answered by an agent)",
                subjects=[subjects.rpc(t, role) for t in targets],
            ) | {"reply": {"channel": _ref("channels", "answers")}}
        events = [subjects.absolute(p) for p in rs.publish if _filter_within_events(spec, p)]
        if events:
            ops[f"{role}_emitEvents"] = _operation(
                "send", "event", ["event"], f"{role} emits events", subjects=events
            )
        for consumer in spec.consumers():
            if consumer.role != role:
                continue
            channel, msgs = _RECEIVES[consumer.kind]
            ops[f"{role}_receive{consumer.kind.title()}"] = _operation(
                "receive",
                channel,
                msgs,
                f"{role} receives through the durable consumer {consumer.name}",
                jetstream=_consumer_settings(consumer),
            )
            if consumer.kind == "tasks":
                ops[f"{role}_reportTaskUpdates"] = _operation(
                    "send", "taskUpdates", ["taskUpdate"], f"{role} reports its tasks' progress"
                )
                ops[f"{role}_storeTaskOutcomes"] = _operation(
                    "send", "taskOutcome", ["taskUpdate"], f"{role} stores its tasks' outcomes"
                )
            if consumer.kind == "meetings":
                ops[f"{role}_meet"] = _operation(
                    "send", "meeting", ["meetingMessage"], f"{role} speaks in meetings"
                )
        ops[f"{role}_answerAsks"] = _operation(
            "receive",
            "ask",
            ["ask"],
            f"an agent of {role} with an on_request handler answers (queue group {role})",
        ) | {"reply": {"channel": _ref("channels", "answers")}}
    copier = next((c for c in spec.consumers() if c.kind == "dead_letters"), None)
    if copier is not None:
        ops["deadLetterCopier_writeDeadLetters"] = _operation(
            "send",
            "deadLetters",
            ["deadLetter"],
            "the copier writes a dead letter for each max-deliveries / terminated advisory"
            f" it reads through {copier.name}",
            jetstream=_consumer_settings(copier),
        )
    return ops


def _filter_within_events(spec: FleetSpec, pattern: str) -> bool:
    return spec.subjects.absolute(pattern).startswith(f"{spec.prefix}.events.")


def _servers(spec: FleetSpec) -> dict[str, Any]:
    server = spec.server
    size = server.cluster.size
    out: dict[str, Any] = {}
    for i in range(size):
        name = "embedded" if size == 1 else f"{server.cluster.name}-{i + 1}"
        out[name] = {
            "host": f"{server.host}:{server.port + i}",
            "protocol": "nats",
            "description": "the fleet file's server (`fleetbus up`); JetStream"
            + (f", node {i + 1} of cluster {server.cluster.name}" if size > 1 else ""),
        }
    return out


def asyncapi_document(spec: FleetSpec) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``spec``."""
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"fleetbus fleet {spec.prefix}",
            "version": __version__,
            "description": (
                f"The subjects, messages and JetStream settings of the fleet with prefix"
                f" `{spec.prefix}`: roles {', '.join(spec.roles)}. Written by"
                " `fleetbus asyncapi` from the fleet file; the contract is docs/wire-contract.md."
            ),
        },
        "defaultContentType": "application/json",
        "servers": _servers(spec),
        "channels": _channels(spec),
        "operations": _operations(spec),
        "components": {"messages": _messages()},
        "x-fleetbus-jetstream": {
            "streams": {name: _stream_settings(spec, name) for name in spec.streams},
        },
    }


def render(spec: FleetSpec, fmt: Literal["yaml", "json"] = "yaml") -> str:
    """The document as YAML (default) or JSON text."""
    doc = asyncapi_document(spec)
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    return yaml.safe_dump(doc, sort_keys=False, width=100, allow_unicode=True)
