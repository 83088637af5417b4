"""``fleetbus asyncapi``: the fleet as an AsyncAPI 3.0 document.

No package on PyPI ships the official AsyncAPI 3.0.0 JSON Schema as a data file (see
docs/cli.md#asyncapi), so the document is validated by the ``asyncapi3`` package's model of the
3.0 specification (pydantic, extensions and key patterns checked), and here against the rules
that model leaves to tools: every ``$ref`` resolves, each address and its parameters agree, an
operation's messages belong to its channel. The content is checked against fleetbus itself:
the subjects its ``Subjects`` builds, the consumers the fleet resolves, the ``TaskUpdate``
codec, the dead-letter headers.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from fleetbus.cli import app
from fleetbus.deploy.asyncapi import CHANNELS, asyncapi_document, render
from fleetbus.fleet import FleetSpec, parse_fleet, seed_fleet
from fleetbus.wire import headers as h
from fleetbus.wire.updates import TaskUpdate

with warnings.catch_warnings():  # its models shadow BaseModel.schema: its warning, not ours
    warnings.simplefilter("ignore", UserWarning)
    from asyncapi3 import AsyncAPI3

SEED = seed_fleet()
DOC = asyncapi_document(SEED)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def address(name: str, **params: str) -> str:
    text: str = DOC["channels"][name]["address"]
    for key, value in params.items():
        text = text.replace("{" + key + "}", value)
    return text


# -- AsyncAPI 3.0 -------------------------------------------------------------------------------


def test_the_asyncapi3_model_is_strict() -> None:
    """The check below means something: a wrong action or a stray key is refused."""
    AsyncAPI3.model_validate(DOC)
    bad_action = json.loads(json.dumps(DOC))
    bad_action["operations"]["backend_receiveTasks"]["action"] = "subscribe"  # AsyncAPI 2 word
    with pytest.raises(ValidationError):
        AsyncAPI3.model_validate(bad_action)
    stray = json.loads(json.dumps(DOC))
    stray["channels"]["agent"]["stored"] = True  # not an x- extension
    with pytest.raises(ValidationError):
        AsyncAPI3.model_validate(stray)


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_the_document_is_asyncapi_3(fmt: str) -> None:
    text = render(SEED, fmt)  # type: ignore[arg-type]
    doc = yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    assert doc == DOC
    assert doc["asyncapi"] == "3.0.0"
    AsyncAPI3.model_validate(doc)


def test_every_ref_resolves() -> None:
    found = refs(DOC)
    assert len(found) > 100
    for ref in found:
        resolve(DOC, ref)


def test_each_address_declares_exactly_its_parameters() -> None:
    for name, channel in DOC["channels"].items():
        in_address = set(re.findall(r"\{([^}]+)\}", channel["address"] or ""))
        assert in_address == set(channel.get("parameters", {})), name


def test_an_operations_messages_belong_to_its_channel() -> None:
    for name, op in DOC["operations"].items():
        channel = op["channel"]["$ref"]
        for message in op["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", name)


def test_message_schemas_are_json_schemas() -> None:
    for name, message in DOC["components"]["messages"].items():
        jsonschema.Draft7Validator.check_schema(message["payload"])
        jsonschema.Draft7Validator.check_schema(message["headers"])
        assert message["headers"]["type"] == "object", name


# -- what it says, against fleetbus ------------------------------------------------------------


def test_addresses_are_the_subjects_fleetbus_builds() -> None:
    s = SEED.subjects
    assert [c.name for c in CHANNELS] == list(DOC["channels"])
    assert address("agent", role="backend", kind="tasks") == s.tasks("backend")
    assert address("agentFrom", role="cso", kind="inbox", sender="cto") == s.inbox("cso", "cto")
    assert address("event", domain="deployment", type="completed") == s.event(
        "deployment", "completed"
    )
    who = {"task_id": "task-1", "assigner": "cto", "assignee": "backend"}
    assert address("taskUpdates", **who) == s.task("task-1", "updates", "cto", "backend")
    assert address("taskOutcome", **who) == s.task("task-1", "outcome", "cto", "backend")
    assert address("taskCancel", **who) == s.task("task-1", "cancel", "cto", "backend")
    assert address("taskAnswer", **who, request="1") == (
        s.task("task-1", "answer", "cto", "backend", "1")
    )
    assert address("meeting", meeting_id="release-42") == s.meeting("release-42")
    assert address("meetingFrom", meeting_id="r-1", sender="cto") == s.meeting("r-1", "cto")
    assert address("ask", role="cso", asker="backend") == s.rpc("cso", "backend")
    assert address("deadLetters", stream="AGENT_COMMS", consumer="BACKEND_TASKS", seq="7") == (
        s.dead_letter("AGENT_COMMS", "BACKEND_TASKS", 7)
    )
    assert address("answers", asker="backend", role="cso", ask_id="ask-1") == (
        f"{s.answer_to('backend', 'cso')}.ask-1"
    )


def test_channels_name_the_stream_that_stores_them() -> None:
    stored = {n: c.get("x-fleetbus-stream") for n, c in DOC["channels"].items()}
    assert stored == {
        "agent": "AGENT_COMMS",
        "agentFrom": "AGENT_COMMS",
        "event": "EVENTS",
        "taskUpdates": "TASKS",
        "taskOutcome": "TASKS",
        "taskCancel": "TASKS",
        "taskAnswer": "TASKS",
        "meetingFrom": None,
        "meeting": None,
        "ask": None,
        "answers": None,
        "deadLetters": "AGENT_DLQ",
    }


def test_the_streams_settings_are_the_fleet_files() -> None:
    streams = DOC["x-fleetbus-jetstream"]["streams"]
    assert set(streams) == set(SEED.streams)
    comms = streams["AGENT_COMMS"]
    assert comms["retention"] == "interest"
    assert comms["max_msgs_per_subject"] == 1000
    assert comms.get("max_age") in (None, "0s", 0)  # nothing unprocessed expires
    assert (comms["discard"], comms["discard_new_per_subject"]) == ("new", True)
    assert (comms["duplicate_window"], comms["max_consumers"]) == ("1h", 115)
    assert comms["compression"] == "none"
    assert any(s.startswith("$JS.EVENT.ADVISORY") for s in streams["AGENT_DLQ"]["subjects"])


def test_every_consumer_is_a_receiving_operation_with_its_settings() -> None:
    receiving = {
        op["x-fleetbus-jetstream"]["consumer"]: op
        for op in DOC["operations"].values()
        if "x-fleetbus-jetstream" in op
    }
    assert set(receiving) == {c.name for c in SEED.consumers()}
    tasks = receiving["BACKEND_TASKS"]
    assert tasks["action"] == "receive"
    assert tasks["x-fleetbus-jetstream"] | {"filter_subjects": None} == {
        "stream": "AGENT_COMMS",
        "consumer": "BACKEND_TASKS",
        "durable": True,
        "filter_subjects": None,
        "ack_policy": "explicit",
        "deliver_policy": "all",
        "ack_wait": "4s",
        "max_deliver": 3,
        "max_ack_pending": 1,
        "backoff": None,
    }
    assert tasks["x-fleetbus-jetstream"]["filter_subjects"] == SEED.subjects.agent_filters(
        "backend", "tasks"
    )
    events = receiving["DEVOPS_EVENTS"]
    assert events["channel"] == {"$ref": "#/channels/event"}
    assert events["x-fleetbus-jetstream"]["filter_subjects"] == ["genbrain.events.deployment.>"]


def test_a_role_sends_to_its_send_to_roles_as_itself() -> None:
    ops = DOC["operations"]
    cto = ops["cto_sendTasks"]
    assert cto["action"] == "send"
    assert cto["x-fleetbus-subjects"] == [
        SEED.subjects.tasks(target, "cto") for target in SEED.roles["cto"].send_to
    ]
    assert len(ops["ceo_sendMessages"]["x-fleetbus-subjects"]) == len(SEED.roles)  # send_to: *
    assert ops["backend_ask"]["reply"] == {"channel": {"$ref": "#/channels/answers"}}
    assert ops["devops_emitEvents"]["x-fleetbus-subjects"] == ["genbrain.events.>"]


def test_the_task_update_schema_takes_what_the_codec_writes() -> None:
    schema = DOC["components"]["messages"]["taskUpdate"]["payload"]
    validator = jsonschema.Draft7Validator(schema)
    for update in (
        TaskUpdate(task_id="t1", state="accepted", agent="backend", attempt=1, time="now"),
        TaskUpdate(
            task_id="t1", state="failed", agent="b", attempt=2, time="now", error="x", retry_in=2
        ),
        TaskUpdate(task_id="t1", state="completed", agent="b", attempt=1, time="n", result=[1]),
    ):
        validator.validate(json.loads(update.encode()))
    assert not validator.is_valid({"task_id": "t1", "state": "done"})
    assert set(schema["required"]) == {"task_id", "state", "agent", "attempt", "time"}


def test_dead_letters_carry_every_dead_letter_header() -> None:
    headers = DOC["components"]["messages"]["deadLetter"]["headers"]
    assert set(h.DLQ_HEADERS) <= set(headers["properties"])
    assert set(h.DLQ_HEADERS) - {h.DLQ_TRACEBACK} <= set(headers["required"])


def test_a_cluster_has_a_server_per_node() -> None:
    spec = parse_fleet(
        "server: {port: 4300, cluster: {name: c, size: 3}}\n"
        "streams: {S: {subjects: ['agents.>', 'tasks.>', 'events.>']}}\nroles: {a: {}}\n",
        "<inline>",
    )
    doc = asyncapi_document(spec)
    assert [s["host"] for s in doc["servers"].values()] == [
        "127.0.0.1:4300",
        "127.0.0.1:4301",
        "127.0.0.1:4302",
    ]
    AsyncAPI3.model_validate(doc)


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_prints_and_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETBUS_FLEET", raising=False)
    runner = CliRunner()
    printed = runner.invoke(app, ["asyncapi"])
    assert printed.exit_code == 0, printed.output
    assert yaml.safe_load(printed.stdout) == DOC
    wrote = runner.invoke(app, ["asyncapi", "--format", "json", "--out", "fleet.asyncapi.json"])
    assert wrote.exit_code == 0, wrote.output
    assert json.loads((tmp_path / "fleet.asyncapi.json").read_text()) == DOC


def another_fleet() -> FleetSpec:
    return parse_fleet(
        "prefix: acme\nstreams:\n  ALL: {subjects: ['agents.>', 'tasks.>'], compression: s2}\n"
        "roles:\n  a: {send_to: [b]}\n  b: {}\n",
        "<inline>",
    )


def test_another_fleet_is_valid_too() -> None:
    doc = asyncapi_document(another_fleet())
    AsyncAPI3.model_validate(doc)
    assert doc["x-fleetbus-jetstream"]["streams"]["ALL"]["compression"] == "s2"
    assert "a_sendTasks" in doc["operations"] and "b_sendTasks" not in doc["operations"]
    assert doc["channels"]["event"].get("x-fleetbus-stream") is None
