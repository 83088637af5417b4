"""``build_plan``: the pure comparison of the fleet file with the live server's configs.

Specs are drawn around the seed fleet (its streams and roles, with random limits and consumer
settings). "The server's view" of a config is modelled on what nats-server 2.15 returns from
``STREAM.INFO`` / ``CONSUMER.INFO``: fields at their default omitted, its own extras added,
times normalised to UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus.fleet import ConsumerSpec, FleetSpec, StreamSpec, seed_fleet
from fleetbus.provision import Action, LiveState, Plan, build_plan
from fleetbus.provision.plan import desired_consumer, desired_stream
from fleetbus.wire.headers import DEAD_LETTER_ROOM

SEED = seed_fleet()
NS = 1_000_000_000

# -- strategies ------------------------------------------------------------------------------


@st.composite
def stream_specs(draw: st.DrawFn, base: StreamSpec) -> StreamSpec:
    max_age = draw(st.sampled_from([0, 3600, 7 * 86400, 30 * 86400]))
    duplicate_window = draw(st.sampled_from([1, 120, 3600]))
    if max_age:
        duplicate_window = min(duplicate_window, max_age)
    discard = draw(st.sampled_from(["old", "new"]))
    per_subject = draw(st.sampled_from([-1, 1, 200, 1000, 5000]))
    data: dict[str, Any] = base.model_dump()
    data.update(
        retention=draw(st.sampled_from(["limits", "interest", "workqueue"])),
        storage=draw(st.sampled_from(["file", "memory"])),
        replicas=draw(st.integers(1, 5)),
        max_age=max_age,
        max_msgs=draw(st.sampled_from([-1, 10, 100_000])),
        max_bytes=draw(st.sampled_from([-1, 1024 * 1024, 10**9])),
        max_msgs_per_subject=per_subject,
        max_msg_size=draw(st.sampled_from([-1, 1024 * 1024])),
        max_consumers=draw(st.sampled_from([-1, 1000, 10_000])),
        discard=discard,
        discard_new_per_subject=draw(st.booleans()) and discard == "new" and per_subject > 0,
        duplicate_window=duplicate_window,
        description=draw(st.sampled_from(["", "described"])),
        compression=draw(st.sampled_from(["none", "s2"])),
    )
    return StreamSpec.model_validate(data)


@st.composite
def consumer_specs(draw: st.DrawFn) -> ConsumerSpec:
    max_deliver = draw(st.sampled_from([-1, 1, 3, 5]))
    longest = 3 if max_deliver == -1 else max_deliver
    backoff = draw(st.none() | st.lists(st.sampled_from([1, 5, 30]), min_size=1, max_size=longest))
    return ConsumerSpec(
        deliver=draw(
            st.sampled_from(["all", "new", "last", "last_per_subject", "2026-05-10T14:30:00+02:00"])
        ),
        ack_wait=draw(st.sampled_from([1, 30, 60])),
        max_deliver=max_deliver,
        max_ack_pending=draw(st.sampled_from([-1, 1, 5, 100])),
        backoff=backoff,
    )


@st.composite
def fleet_specs(draw: st.DrawFn) -> FleetSpec:
    streams = {name: draw(stream_specs(s)) for name, s in SEED.streams.items()}
    roles = {}
    for name, role in SEED.roles.items():
        tasks = draw(st.none() | consumer_specs())
        inbox = draw(consumer_specs())
        roles[name] = role.model_copy(update={"tasks": tasks, "inbox": inbox})
    prefix = draw(st.sampled_from(["genbrain", "acme", "t1234abcd"]))
    return SEED.model_copy(update={"streams": streams, "roles": roles, "prefix": prefix})


# -- the server's view of a config -----------------------------------------------------------

_STREAM_EXTRAS = {
    "compression": "none",
    "mirror_direct": False,
    "sealed": False,
    "deny_delete": False,
    "deny_purge": False,
    "allow_rollup_hdrs": False,
    "consumer_limits": {},
    "allow_msg_ttl": False,
    "metadata": {"_nats.level": "5", "_nats.req.level": "0", "_nats.ver": "2.15.1"},
}
_CONSUMER_EXTRAS = {
    "max_waiting": 512,
    "num_replicas": 0,
    "metadata": {"_nats.level": "5", "_nats.req.level": "0", "_nats.ver": "2.15.1"},
}


def server_stream(config: Mapping[str, Any]) -> dict[str, Any]:
    """What STREAM.INFO returns for a stream created with ``config``."""
    out = {k: v for k, v in config.items() if not (k == "description" and not v)}
    if not out.get("discard_new_per_subject"):
        out.pop("discard_new_per_subject", None)
    return _STREAM_EXTRAS | out  # its defaults, unless the config set them


def server_consumer(config: Mapping[str, Any]) -> dict[str, Any]:
    """What CONSUMER.INFO returns for a consumer created with ``config``."""
    out = {k: v for k, v in config.items() if not (k == "backoff" and v is None)}
    if "opt_start_time" in out:
        moment = datetime.fromisoformat(out["opt_start_time"].replace("Z", "+00:00"))
        out["opt_start_time"] = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return out | _CONSUMER_EXTRAS


def live_of(spec: FleetSpec, cluster_size: int = 1, *, server_style: bool = False) -> LiveState:
    """A LiveState holding exactly the configs the fleet wants."""
    streams: dict[str, dict[str, Any]] = {}
    for name, stream in spec.streams.items():
        config = desired_stream(spec, name, min(stream.replicas, cluster_size))
        streams[name] = server_stream(config) if server_style else config
    consumers: dict[tuple[str, str], dict[str, Any]] = {}
    for c in spec.consumers():
        config = desired_consumer(c)
        consumers[(c.stream, c.name)] = server_consumer(config) if server_style else config
    return LiveState(streams=streams, consumers=consumers, cluster_size=cluster_size)


def only(plan: Plan, op: str) -> list[Action]:
    return [a for a in plan.actions if a.op == op]


def find(plan: Plan, kind: str, name: str) -> Action:
    return next(a for a in plan.actions if a.kind == kind and a.name == name)


# -- properties ------------------------------------------------------------------------------


@given(spec=fleet_specs(), size=st.integers(1, 5), server_style=st.booleans())
@settings(max_examples=60, deadline=None)
def test_live_equal_to_desired_is_all_unchanged(
    spec: FleetSpec, size: int, server_style: bool
) -> None:
    plan = build_plan(spec, live_of(spec, size, server_style=server_style))
    assert {a.op for a in plan.actions} == {"unchanged"}, [
        (a.label, a.changes) for a in plan.actions if a.op != "unchanged"
    ]
    assert len(plan.actions) == len(spec.streams) + len(spec.consumers())
    assert plan.pending == ()
    assert plan.needs_force == ()


@given(spec=fleet_specs())
@settings(max_examples=30, deadline=None)
def test_empty_server_creates_everything(spec: FleetSpec) -> None:
    plan = build_plan(spec, LiveState())
    assert {a.op for a in plan.actions} == {"create"}
    created = {(a.kind, a.stream, a.name) for a in plan.actions}
    assert created == {("stream", n, n) for n in spec.streams} | {
        ("consumer", c.stream, c.name) for c in spec.consumers()
    }
    for action in plan.actions:
        assert action.config  # what to create travels with the action


def _other(value: Any) -> Any:
    """A different value of the same kind (and, for limits, a different limit)."""
    if value is None:
        return [7 * NS]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1 if value > 0 else 5
    if isinstance(value, list):
        return [*value, "$elsewhere.>"] if value and isinstance(value[0], str) else [7 * NS]
    if value in ("old", "new"):
        return "new" if value == "old" else "old"
    if isinstance(value, str):
        return value + " (edited)"
    raise AssertionError(f"no other value for {value!r}")


_STREAM_MUTABLE = [
    "subjects",
    "description",
    "num_replicas",
    "max_age",
    "max_msgs",
    "max_bytes",
    "max_msgs_per_subject",
    "max_msg_size",
    "max_consumers",
    "discard",
    "discard_new_per_subject",
    "duplicate_window",
    "allow_direct",
    "compression",
]
_CONSUMER_MUTABLE = ["ack_wait", "max_deliver", "max_ack_pending", "filter_subject", "backoff"]


@given(
    spec=fleet_specs(),
    stream=st.sampled_from(sorted(SEED.streams)),
    key=st.sampled_from(_STREAM_MUTABLE),
    messages=st.integers(0, 10_000),
)
@settings(max_examples=80, deadline=None)
def test_changed_stream_field_is_an_update_naming_it(
    spec: FleetSpec, stream: str, key: str, messages: int
) -> None:
    live = live_of(spec, 5)
    desired = live.streams[stream]
    edited = dict(desired) | {key: _other(desired.get(key, ""))}
    live = LiveState(
        streams={**live.streams, stream: edited},
        stream_messages={stream: messages},
        consumers=live.consumers,
        cluster_size=5,
    )
    plan = build_plan(spec, live)
    action = find(plan, "stream", stream)
    assert action.op == "update"
    assert [c.field for c in action.changes] == [key]
    assert action.changes[0].live == edited[key]
    assert action.changes[0].desired == desired.get(key)
    assert [a.label for a in plan.pending] == [stream]
    assert plan.needs_force == ()


@given(
    spec=fleet_specs(),
    index=st.integers(0, 100),
    key=st.sampled_from(_CONSUMER_MUTABLE),
)
@settings(max_examples=80, deadline=None)
def test_changed_consumer_field_is_an_update_naming_it(
    spec: FleetSpec, index: int, key: str
) -> None:
    consumers = spec.consumers()
    target = consumers[index % len(consumers)]
    live = live_of(spec)
    desired = live.consumers[(target.stream, target.name)]
    if key == "filter_subject" and key not in desired:
        key = "filter_subjects"
    edited = dict(desired) | {key: _other(desired.get(key))}
    if key == "backoff" and edited.get("max_deliver", -1) != -1:
        edited["backoff"] = edited["backoff"][: edited["max_deliver"]]
        if edited["backoff"] == desired.get("backoff"):
            edited["backoff"] = [b + NS for b in edited["backoff"]]
    consumers_live = dict(live.consumers)
    consumers_live[(target.stream, target.name)] = edited
    plan = build_plan(spec, LiveState(streams=live.streams, consumers=consumers_live))
    action = find(plan, "consumer", target.name)
    assert action.op == "update"
    assert [c.field for c in action.changes] == [key]
    assert [a.label for a in plan.pending] == [action.label]


@given(
    spec=fleet_specs(),
    stream=st.sampled_from(sorted(SEED.streams)),
    key=st.sampled_from(["retention", "storage"]),
    also_mutable=st.booleans(),
    messages=st.integers(0, 10_000),
)
@settings(max_examples=60, deadline=None)
def test_retention_or_storage_change_needs_recreate(
    spec: FleetSpec, stream: str, key: str, also_mutable: bool, messages: int
) -> None:
    live = live_of(spec)
    desired = live.streams[stream]
    others = {"retention": ["limits", "interest", "workqueue"], "storage": ["file", "memory"]}
    edited = dict(desired) | {key: next(v for v in others[key] if v != desired[key])}
    if also_mutable:  # a mutable difference alongside does not make it an update
        edited["max_msgs"] = _other(desired["max_msgs"])
    plan = build_plan(
        spec,
        LiveState(
            streams={**live.streams, stream: edited},
            stream_messages={stream: messages},
            consumers=live.consumers,
        ),
    )
    action = find(plan, "stream", stream)
    assert key in {c.field for c in action.changes}
    in_place = key == "retention" and {desired[key], edited[key]} == {"limits", "interest"}
    if not in_place:
        assert action.op == "recreate"
        assert action.messages == messages  # what a recreate would drop
        assert [a.label for a in plan.needs_force] == [stream]
    elif desired[key] == "limits":  # interest -> limits: nothing is removed
        assert (action.op, action.messages) == ("update", 0)
        assert plan.needs_force == ()
    else:  # limits -> interest: the processed messages go, with --force
        assert action.op == "migrate"
        assert action.messages == messages  # no consumer has anything pending here
        assert [a.label for a in plan.needs_force] == [stream]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("deliver_policy", "last"),
        ("ack_policy", "all"),
        ("replay_policy", "original"),
        ("opt_start_time", "2020-01-01T00:00:00Z"),
    ],
)
def test_consumer_fields_the_server_cannot_update_need_recreate(key: str, value: str) -> None:
    """nats-server refuses to update deliver, ack and replay policies (error 10012)."""
    spec = SEED.model_copy(
        update={
            "roles": {
                **SEED.roles,
                "backend": SEED.roles["backend"].model_copy(
                    update={"tasks": ConsumerSpec(deliver="2026-05-10T14:30:00Z")}
                ),
            }
        }
    )
    live = live_of(spec)
    consumers = dict(live.consumers)
    key_ = ("AGENT_COMMS", "BACKEND_TASKS")
    consumers[key_] = dict(consumers[key_]) | {key: value}
    plan = build_plan(
        spec,
        LiveState(streams=live.streams, consumers=consumers, consumer_pending={key_: 7}),
    )
    action = find(plan, "consumer", "BACKEND_TASKS")
    assert action.op == "recreate"
    assert [c.field for c in action.changes] == [key]
    assert action.messages == 7


@given(spec=fleet_specs())
@settings(max_examples=20, deadline=None)
def test_foreign_streams_and_consumers_are_unmanaged(spec: FleetSpec) -> None:
    live = live_of(spec)
    foreign_stream = {"name": "ORDERS", "subjects": ["orders.>"], "retention": "limits"}
    foreign_consumer = {"durable_name": "AUDIT", "ack_policy": "explicit"}
    plan = build_plan(
        spec,
        LiveState(
            streams={**live.streams, "ORDERS": foreign_stream},
            consumers={
                **live.consumers,
                ("AGENT_COMMS", "AUDIT"): foreign_consumer,
                ("ORDERS", "SHIPPER"): foreign_consumer,
            },
        ),
    )
    unmanaged = {(a.kind, a.stream, a.name) for a in only(plan, "unmanaged")}
    assert unmanaged == {("stream", "ORDERS", "ORDERS"), ("consumer", "AGENT_COMMS", "AUDIT")}
    assert plan.pending == ()  # never touched, never deleted
    assert {a.op for a in plan.actions} == {"unchanged", "unmanaged"}


@given(spec=fleet_specs(), size=st.integers(1, 5))
@settings(max_examples=40, deadline=None)
def test_replicas_are_capped_at_the_cluster_size(spec: FleetSpec, size: int) -> None:
    plan = build_plan(spec, LiveState(cluster_size=size))
    for name, stream in spec.streams.items():
        action = find(plan, "stream", name)
        assert action.config["num_replicas"] == min(stream.replicas, size)
    over = [n for n, s in spec.streams.items() if s.replicas > size]
    warned = [w for w in plan.warnings if w.startswith("replicas")]
    assert len(warned) == (1 if over else 0)  # one line, however many streams
    for name in over:
        assert f"{name} ({spec.streams[name].replicas})" in warned[0]
        assert f"server's {size} node(s)" in warned[0]


def test_seed_on_one_node_warns_for_each_replicated_stream() -> None:
    plan = build_plan(SEED, LiveState(cluster_size=1))
    (warning,) = plan.warnings
    assert warning.startswith("replicas above the server's 1 node(s) for AGENT_COMMS (3),")
    assert {a.config["num_replicas"] for a in plan.actions if a.kind == "stream"} == {1}
    # Capped replicas are not drift: the same live state plans unchanged.
    assert {a.op for a in build_plan(SEED, live_of(SEED, 1)).actions} == {"unchanged"}


def test_server_omissions_are_not_drift() -> None:
    """The server leaves out fields at their default and adds its own: neither is drift."""
    events = desired_stream(SEED, "EVENTS", 1)
    assert events["discard_new_per_subject"] is False
    live = live_of(SEED, 1, server_style=True)
    assert "discard_new_per_subject" not in live.streams["EVENTS"]
    plain = SEED.model_copy(
        update={
            "streams": {
                **SEED.streams,
                "TASKS": SEED.streams["TASKS"].model_copy(update={"description": ""}),
            }
        }
    )
    live = live_of(plain, 1, server_style=True)
    assert "description" not in live.streams["TASKS"]
    assert {a.op for a in build_plan(plain, live).actions} == {"unchanged"}


@pytest.mark.parametrize("reported", [0, -1])
def test_unlimited_per_subject_reads_as_0_or_minus_1(reported: int) -> None:
    live = live_of(SEED)
    dlq = dict(live.streams["AGENT_DLQ"]) | {"max_msgs_per_subject": reported}
    assert desired_stream(SEED, "AGENT_DLQ", 1)["max_msgs_per_subject"] == -1
    plan = build_plan(
        SEED, LiveState(streams={**live.streams, "AGENT_DLQ": dlq}, consumers=live.consumers)
    )
    assert find(plan, "stream", "AGENT_DLQ").op == "unchanged"


def test_seed_desired_configs_state_the_seed() -> None:
    comms = desired_stream(SEED, "AGENT_COMMS", 1)
    assert comms["subjects"] == ["genbrain.agents.>"]
    assert comms["max_msgs_per_subject"] == 1000
    assert (comms["retention"], comms["max_age"]) == ("interest", 0)
    assert (comms["discard"], comms["discard_new_per_subject"]) == ("new", True)
    tasks = desired_consumer(next(c for c in SEED.consumers() if c.name == "BACKEND_TASKS"))
    assert tasks["filter_subjects"] == [
        "genbrain.agents.backend.tasks",
        "genbrain.agents.backend.tasks.*",
    ]
    assert (tasks["deliver_policy"], tasks["ack_policy"]) == ("all", "explicit")
    assert (tasks["max_deliver"], tasks["max_ack_pending"], tasks["ack_wait"]) == (-1, 1, 4 * NS)


def test_compression_is_an_update_and_the_servers_default_is_not_drift() -> None:
    s2 = SEED.model_copy(
        update={
            "streams": {
                **SEED.streams,
                "TASKS": SEED.streams["TASKS"].model_copy(update={"compression": "s2"}),
            }
        }
    )
    assert desired_stream(s2, "TASKS", 1)["compression"] == "s2"
    live = live_of(SEED, 1, server_style=True)
    omitted = {k: v for k, v in live.streams["TASKS"].items() if k != "compression"}
    assert find(build_plan(SEED, replace_stream(live, "TASKS", omitted)), "stream", "TASKS").op == (
        "unchanged"
    )
    action = find(build_plan(s2, live), "stream", "TASKS")
    assert action.op == "update"
    assert [(c.field, c.live, c.desired) for c in action.changes] == [("compression", "none", "s2")]
    omitted_plan = build_plan(s2, replace_stream(live, "TASKS", omitted))
    assert find(omitted_plan, "stream", "TASKS").changes[0].live == "none"


def replace_stream(live: LiveState, name: str, config: dict[str, Any]) -> LiveState:
    return LiveState(
        streams={**live.streams, name: config},
        consumers=live.consumers,
        cluster_size=live.cluster_size,
    )


def test_streams_the_fleet_consumes_keep_room_for_a_dead_letters_headers() -> None:
    """A message stored whole must be dead-lettered whole: with its dead letter's headers
    it must still fit the server's max_payload (one over it closes the writer's connection)."""
    consumed = {c.stream for c in SEED.consumers()} - {"AGENT_DLQ"}
    plan = build_plan(SEED, LiveState(max_payload=1024 * 1024))
    for action in plan.actions:
        if action.kind == "stream":
            expected = 1024 * 1024 - DEAD_LETTER_ROOM if action.name in consumed else -1
            assert action.config["max_msg_size"] == expected, action.name
    assert {"AGENT_COMMS", "EVENTS", "TASKS"} <= consumed
    # The server's max_payload, not the fleet file's (an existing cluster has its own).
    small = build_plan(SEED, LiveState(max_payload=256 * 1024))
    assert find(small, "stream", "TASKS").config["max_msg_size"] == 256 * 1024 - DEAD_LETTER_ROOM
    assert not [w for w in plan.warnings if "dead letter" in w]


@pytest.mark.parametrize(("stated", "provisioned"), [(4096, 4096), (1024 * 1024, None)])
def test_a_stated_max_msg_size_is_kept_unless_it_leaves_no_room(
    stated: int, provisioned: int | None
) -> None:
    streams = {
        **SEED.streams,
        "EVENTS": SEED.streams["EVENTS"].model_copy(update={"max_msg_size": stated}),
    }
    spec = SEED.model_copy(update={"streams": streams})
    plan = build_plan(spec, LiveState(max_payload=1024 * 1024))
    cap = 1024 * 1024 - DEAD_LETTER_ROOM
    assert find(plan, "stream", "EVENTS").config["max_msg_size"] == (provisioned or cap)
    warned = [w for w in plan.warnings if "dead letter" in w]
    if provisioned is None:
        (warning,) = warned
        assert f"EVENTS ({stated})" in warning and f"provisioned with {cap}" in warning
    else:
        assert warned == []
