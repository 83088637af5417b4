"""Which tools an identity is offered, and the schemas it sees: from the fleet file alone."""

from __future__ import annotations

from typing import Any

import pytest

from fleetbus import AskTimeout, ConnectSettings, FleetbusError, PermissionDenied, UnknownRoleError
from fleetbus.fleet import seed_fleet
from fleetbus.mcp.calls import FleetCalls, NotAllowed, explain
from fleetbus.mcp.reach import ADMIN, Reach
from fleetbus.mcp.server import is_loopback, serve
from fleetbus.mcp.tools import TOOLS, NoArgs, ToolDef, offered_tools

from .support import ROLE_TOOLS

EVERY_ROLE_GETS = {"fleet_status"}


def names(identity: str, spec: Any = None) -> set[str]:
    reach = Reach.of(spec or seed_fleet(), identity)
    return {t.name for t in offered_tools(reach, FleetCalls.provides)}


def schema(identity: str, tool: str) -> dict[str, Any]:
    reach = Reach.of(seed_fleet(), identity)
    return next(t for t in TOOLS if t.name == tool).schema(reach)


def test_each_identity_is_offered_what_its_lines_allow() -> None:
    assert names("cto") == names("backend") == ROLE_TOOLS
    assert names(ADMIN) == ROLE_TOOLS - {"read_inbox"} | {"dead_letters"}  # it has no inbox


def test_a_role_with_no_send_to_no_publish_and_no_inbox_can_only_look() -> None:
    spec = seed_fleet()
    quiet = spec.roles["cso"].model_copy(update={"send_to": [], "publish": [], "inbox": None})
    spec = spec.model_copy(update={"roles": {**spec.roles, "cso": quiet}})
    assert names("cso", spec) == EVERY_ROLE_GETS


def test_the_role_enum_lists_only_permitted_targets() -> None:
    assert schema("backend", "assign_task")["properties"]["role"]["enum"] == [
        "cto",
        "devops",
        "cso",
    ]
    assert schema("cto", "send_message")["properties"]["role"]["enum"] == [
        "ceo",
        "backend",
        "devops",
        "cso",
    ]
    assert schema("ceo", "ask")["properties"]["role"]["enum"] == list(seed_fleet().roles)  # "*"
    optional = schema("backend", "get_task")["properties"]["role"]["anyOf"]
    assert {"type": "string", "enum": ["cto", "devops", "cso"]} in optional
    assert schema("backend", "assign_task")["required"] == ["role", "body"]
    assert schema("backend", "assign_task")["additionalProperties"] is False


def test_a_tool_is_offered_only_by_a_fleetbus_that_has_its_capability() -> None:
    async def nothing(calls: FleetCalls, args: NoArgs) -> dict[str, Any]:
        return {}

    planned: ToolDef[NoArgs] = ToolDef(
        name="planned",
        args=NoArgs,
        needs="an_api_fleetbus_does_not_have",
        offered=lambda r: True,
        description=lambda r: "",
        run=nothing,
    )
    reach = Reach.of(seed_fleet(), "cto")
    table = [*TOOLS, planned]
    assert "planned" not in {t.name for t in offered_tools(reach, FleetCalls.provides, table)}
    assert "planned" in {t.name for t in offered_tools(reach, lambda api: True, table)}
    assert all(FleetCalls.provides(t.needs) for t in TOOLS if t.needs)


def test_an_event_is_offered_within_the_publish_grants() -> None:
    spec = seed_fleet()
    narrow = spec.roles["devops"].model_copy(update={"publish": ["events.deployment.>"]})
    reach = Reach.of(spec.model_copy(update={"roles": {**spec.roles, "devops": narrow}}), "devops")
    assert reach.events == ("genbrain.events.deployment.>",)
    assert reach.may_emit("genbrain.events.deployment.started")
    assert not reach.may_emit("genbrain.events.security.alert")


def test_a_name_that_is_no_role_is_refused() -> None:
    with pytest.raises(UnknownRoleError):
        Reach.of(seed_fleet(), "intern")


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (PermissionDenied("this identity may not publish to x"), "permission denied by the NATS"),
        (AskTimeout("cso", 5), "timeout: cso did not answer within 5s"),
        (NotAllowed("backend may not message ceo"), "backend may not message ceo"),
        (KeyError("boom"), "internal error: KeyError"),
    ],
)
def test_every_failure_is_explained_in_one_line(error: Exception, says: str) -> None:
    assert explain(error).startswith(says) or says in explain(error)


async def test_http_beyond_loopback_is_refused_without_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    with pytest.raises(FleetbusError, match="needs a token"):  # before it connects anywhere
        await serve(seed_fleet(), ConnectSettings(), "cto", transport="http", host="192.0.2.1")
