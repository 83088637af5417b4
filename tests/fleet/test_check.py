"""The linter: one test per finding, each built by editing the seed fleet."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from fleetbus.fleet import FleetSpec, seed_fleet
from fleetbus.fleet.check import CODES, Finding, lint
from fleetbus.fleet.template import SEED_FLEET_YAML
from fleetbus.provision.plan import consumer_cap

Data = dict[str, Any]


def seed_data() -> Data:
    data = yaml.safe_load(SEED_FLEET_YAML)
    assert isinstance(data, dict)
    return data


def fleet(edit: Callable[[Data], object]) -> FleetSpec:
    """The seed fleet after ``edit`` changed its data, validated like a fleet file."""
    data = seed_data()
    edit(data)
    return FleetSpec.model_validate(data)


def only(findings: list[Finding], code: str) -> list[Finding]:
    assert code in CODES, f"{code} is not a documented finding code"
    return [f for f in findings if f.code == code]


def one(spec: FleetSpec, code: str, **kwargs: Any) -> Finding:
    found = only(lint(spec, **kwargs), code)
    assert len(found) == 1, f"expected one {code}, got {found}"
    return found[0]


def stream(data: Data, name: str) -> Data:
    result: Data = data["streams"][name]
    return result


def role(data: Data, name: str) -> Data:
    result: Data = data["roles"][name]
    return result


# -- the seed ---------------------------------------------------------------------------


def test_seed_has_no_errors() -> None:
    findings = lint(seed_fleet())
    assert [f for f in findings if f.severity == "error"] == []


def test_seed_on_one_node_warns_only_about_replicas() -> None:
    findings = lint(seed_fleet())
    assert [f.code for f in findings] == ["replicas-over-cluster-size"]  # one line, not six
    (finding,) = findings
    assert finding.where == "streams.AGENT_COMMS.replicas (and 6 more)"
    for name in (
        "AGENT_COMMS",
        "EVENTS",
        "TASKS",
        "TASK_INDEX",
        "TASK_MEMO",
        "AGENT_PRESENCE",
        "AGENT_DLQ",
    ):
        assert name in finding.problem


def test_seed_on_three_nodes_is_clean() -> None:
    assert lint(seed_fleet(), cluster_size=3) == []


def test_findings_are_complete_frozen_data() -> None:
    finding = lint(seed_fleet())[0]
    assert finding.severity in ("error", "warning")
    assert finding.where and finding.problem and finding.fix
    with pytest.raises(dataclasses.FrozenInstanceError):
        finding.code = "other"  # type: ignore[misc]


# -- streams ----------------------------------------------------------------------------


def test_overlapping_streams() -> None:
    def edit(d: Data) -> None:
        d["streams"]["BACKEND_ONLY"] = {"subjects": ["agents.backend.>"], "max_age": "1d"}

    f = one(fleet(edit), "overlapping-streams")
    assert f.severity == "error"
    assert f.where == "streams.BACKEND_ONLY.subjects"
    assert "genbrain.agents.backend.>" in f.problem
    assert "genbrain.agents.>" in f.problem
    assert "AGENT_COMMS" in f.problem


def test_overlapping_streams_through_dead_letter_advisories() -> None:
    def edit(d: Data) -> None:
        d["streams"]["ADVISORIES"] = {"subjects": ["$JS.EVENT.ADVISORY.>"], "max_age": "1d"}

    f = one(fleet(edit), "overlapping-streams")
    assert "AGENT_DLQ" in f.problem
    assert "$JS.EVENT.ADVISORY.>" in f.problem


def seed_tasks_as_work_queue(d: Data) -> None:
    """The seed's own TASKS: work-queue retention, no age limit."""
    d["streams"]["TASKS"] = {"subjects": ["tasks.>"], "retention": "work-queue", "replicas": 3}


def test_work_queue_holding_task_updates() -> None:
    f = one(fleet(seed_tasks_as_work_queue), "workqueue-task-updates")
    assert f.severity == "warning"
    assert f.where == "streams.TASKS.retention"
    assert "pile up" in f.problem
    assert "limits" in f.fix


def test_work_queue_overlapping_filters() -> None:
    def edit(d: Data) -> None:
        seed_tasks_as_work_queue(d)
        role(d, "ceo")["updates"] = {"deliver": "all"}
        role(d, "cto")["updates"] = {"deliver": "all"}

    findings = lint(fleet(edit))
    assert not only(findings, "workqueue-unfiltered-consumers")
    found = only(findings, "workqueue-overlapping-filters")
    assert len(found) == 1
    f = found[0]
    assert f.code == "workqueue-overlapping-filters"
    assert f.severity == "error"
    assert f.where == "roles.cto.updates"
    assert "CEO_UPDATES" in f.problem and "CTO_UPDATES" in f.problem
    assert "10100" in f.problem


def test_work_queue_disjoint_filters_are_fine() -> None:
    def edit(d: Data) -> None:
        d["streams"]["AGENT_COMMS"]["retention"] = "workqueue"

    findings = lint(fleet(edit))
    assert not only(findings, "workqueue-overlapping-filters")
    assert not only(findings, "workqueue-unfiltered-consumers")
    assert not only(findings, "workqueue-task-updates")


def test_work_queue_second_unfiltered_consumer() -> None:
    def edit(d: Data) -> None:
        d["streams"]["EVENTS"]["retention"] = "workqueue"
        role(d, "devops")["events"]["filters"] = [">"]

    f = one(fleet(edit), "workqueue-unfiltered-consumers")
    assert f.severity == "error"
    assert f.where == "roles.cso.events"
    assert "DEVOPS_EVENTS" in f.problem and "CSO_EVENTS" in f.problem
    assert "10099" in f.problem
    assert not only(lint(fleet(edit)), "workqueue-overlapping-filters")


@pytest.mark.parametrize("deliver", ["new", "last", "last_per_subject", "2026-05-10T14:30:00Z"])
def test_work_queue_consumer_must_deliver_all(deliver: str) -> None:
    def edit(d: Data) -> None:
        seed_tasks_as_work_queue(d)
        role(d, "cto")["updates"] = {"deliver": deliver}

    f = one(fleet(edit), "workqueue-deliver-policy")
    assert f.severity == "error"
    assert f.where == "roles.cto.updates.deliver"
    assert repr(deliver) in f.problem
    assert "10101" in f.problem


@pytest.mark.parametrize(
    "subjects", [[">"], ["rpc.>"], ["rpc.*"], ["rpc.backend"], ["rpc.*.*"], ["rpc.backend.cto"]]
)
def test_stream_capturing_requests(subjects: list[str]) -> None:
    def edit(d: Data) -> None:
        d["streams"] = {"ALL": {"subjects": subjects, "max_age": "1d"}}
        if subjects == [">"]:
            return
        d["streams"]["REST"] = {
            "subjects": ["agents.>", "events.>", "tasks.>"],
            "max_age": "1d",
        }

    f = one(fleet(edit), "stream-captures-requests")
    assert f.severity == "error"
    assert f.where == "streams.ALL.subjects"
    assert "genbrain.rpc.>" in f.problem
    assert '"stream":"ALL"' in f.problem


def test_stream_capturing_meetings() -> None:
    def edit(d: Data) -> None:
        stream(d, "AGENT_COMMS")["subjects"] = ["agents.>", "meetings.>"]

    f = one(fleet(edit), "stream-captures-meetings")
    assert f.severity == "error"
    assert f.where == "streams.AGENT_COMMS.subjects"
    assert "genbrain.meetings.>" in f.problem
    # the whole-prefix stream captures both, and says so twice
    findings = lint(fleet(lambda d: stream(d, "AGENT_COMMS").update(subjects=[">"])))
    assert {f.code for f in findings} >= {"stream-captures-requests", "stream-captures-meetings"}


def test_stream_capturing_the_stored_outcome_notices() -> None:
    def edit(d: Data) -> None:
        stream(d, "TASKS")["subjects"] = ["tasks.>", "outcomes.>"]

    f = one(fleet(edit), "stream-captures-outcome-notices")
    assert f.severity == "error"
    assert f.where == "streams.TASKS.subjects"
    assert "genbrain.outcomes.>" in f.problem and "outcomes.>" in f.fix


def test_replicas_over_cluster_size() -> None:
    f = one(
        fleet(lambda d: stream(d, "EVENTS").update(replicas=5)),
        "replicas-over-cluster-size",
        cluster_size=3,
    )
    assert f.severity == "warning"
    assert f.where == "streams.EVENTS.replicas"
    assert "provisioned as R3" in f.problem or "as R3" in f.problem


def test_replicas_follow_the_file_cluster_size_unless_given() -> None:
    def edit(d: Data) -> None:
        d["server"]["cluster"]["size"] = 3

    assert not only(lint(fleet(edit)), "replicas-over-cluster-size")
    assert len(only(lint(fleet(edit), cluster_size=1), "replicas-over-cluster-size")) == 1


def test_discard_old_on_inboxes_drops_work() -> None:
    def edit(d: Data) -> None:  # the seed's AGENT_COMMS as the seed wrote it
        comms = stream(d, "AGENT_COMMS")
        comms["discard"] = "old"
        del comms["discard_new_per_subject"]

    f = one(fleet(edit), "discard-old-drops-work")
    assert f.severity == "warning"
    assert f.where == "streams.AGENT_COMMS.discard"
    assert "max_msgs_per_subject 1000" in f.problem
    assert "discard: new" in f.fix
    assert "discard_new_per_subject: true" in f.fix
    assert "10077" in f.fix


def test_discard_old_on_events_is_fine() -> None:
    assert stream(seed_data(), "EVENTS")["discard"] == "old"
    assert not only(lint(seed_fleet()), "discard-old-drops-work")


def test_unbounded_stream() -> None:
    def edit(d: Data) -> None:
        del stream(d, "TASKS")["max_age"]

    f = one(fleet(edit), "unbounded-stream")
    assert f.severity == "warning"
    assert f.where == "streams.TASKS"
    assert "max_msgs_per_subject bounds each subject" in f.problem
    assert "max_age" in f.fix


@pytest.mark.parametrize(("key", "value"), [("max_msgs", 1_000_000), ("max_bytes", "10GB")])
def test_a_count_or_size_limit_bounds_a_stream(key: str, value: object) -> None:
    def edit(d: Data) -> None:
        del stream(d, "TASKS")["max_age"]
        stream(d, "TASKS")[key] = value

    assert not only(lint(fleet(edit)), "unbounded-stream")


def test_interest_retention_is_not_unbounded() -> None:
    def edit(d: Data) -> None:
        del stream(d, "TASKS")["max_age"]
        stream(d, "TASKS")["retention"] = "interest"

    assert not only(lint(fleet(edit)), "unbounded-stream")


def many_roles(d: Data, count: int) -> None:
    for i in range(count):
        d["roles"][f"worker-{i}"] = {"meetings": None}  # tasks + inbox: 2 consumers each


def test_a_large_fleet_needs_no_max_consumers_of_its_own() -> None:
    """-1 is sized from the fleet at provisioning, never the server's cap of 1000."""

    def edit(d: Data) -> None:
        many_roles(d, 500)  # 1000 more, beside the seed's 15

    spec = fleet(edit)
    assert only(lint(spec), "max-consumers-too-low") == []
    assert consumer_cap(spec, "AGENT_COMMS") == 1015 + 100


def test_max_consumers_too_low() -> None:
    f = one(
        fleet(lambda d: stream(d, "AGENT_COMMS").update(max_consumers=10)), "max-consumers-too-low"
    )
    assert f.severity == "error"
    assert f.where == "streams.AGENT_COMMS.max_consumers"
    assert "15 consumers" in f.problem
    assert "max_consumers is 10" in f.problem


def test_no_dead_letter_stream() -> None:
    f = one(fleet(lambda d: d["streams"].pop("AGENT_DLQ")), "no-dead-letter-stream")
    assert f.severity == "warning"
    assert f.where == "streams"
    assert "dead_letters: true" in f.fix


# -- roles ------------------------------------------------------------------------------


def test_long_ack_wait() -> None:
    # the seed's Go worker: AckWait 30 minutes, "tasks can take a while"
    f = one(fleet(lambda d: role(d, "backend")["tasks"].update(ack_wait="30m")), "ack-wait-long")
    assert f.severity == "warning"
    assert f.where == "roles.backend.tasks.ack_wait"
    assert "30m" in f.problem
    assert "max_ack_pending 1" in f.problem
    assert "heartbeat" in f.fix


def test_five_minutes_ack_wait_is_fine() -> None:
    spec = fleet(lambda d: role(d, "backend")["inbox"].update(ack_wait="5m"))
    assert not only(lint(spec), "ack-wait-long")


def test_short_ack_wait() -> None:
    f = one(fleet(lambda d: role(d, "cso")["inbox"].update(ack_wait="1500ms")), "ack-wait-short")
    assert f.severity == "warning"
    assert f.where == "roles.cso.inbox.ack_wait"
    assert "every 500ms" in f.problem


def test_task_budget_below_ack_wait() -> None:
    f = one(
        fleet(lambda d: role(d, "devops").update(task_budget="2s")), "task-budget-below-ack-wait"
    )
    assert f.severity == "warning"
    assert f.where == "roles.devops.task_budget"
    assert "2s" in f.problem and "4s" in f.problem


def test_tasks_without_retry() -> None:
    f = one(fleet(lambda d: role(d, "backend")["tasks"].update(max_deliver=1)), "tasks-no-retry")
    assert f.severity == "warning"
    assert f.where == "roles.backend.tasks.max_deliver"


def test_inbox_without_retry_is_not_flagged() -> None:
    spec = fleet(lambda d: role(d, "backend")["inbox"].update(max_deliver=1))
    assert not only(lint(spec), "tasks-no-retry")


def test_every_code_is_documented() -> None:
    assert all(summary for summary in CODES.values())
    assert len(CODES) == len(set(CODES))


def test_backoff_whose_first_delay_is_not_the_ack_wait() -> None:
    spec = fleet(lambda d: role(d, "backend")["tasks"].update(backoff=["5s", "1m", "5m"]))
    finding = one(spec, "backoff-replaces-ack-wait")
    assert finding.where == "roles.backend.tasks.backoff"
    assert "5s" in finding.problem and "ack_wait: 5s" in finding.fix
    consumer = spec.consumer("backend", "tasks")
    assert consumer is not None
    # What provisioning writes and the heartbeats follow is what the server will use.
    assert consumer.spec.effective_ack_wait == 5.0


def test_roles_that_share_consumer_names_are_refused() -> None:
    with pytest.raises(ValueError, match="would share consumer names"):
        fleet(lambda d: d["roles"].update({"data-eng": {}, "data_eng": {}}))


def test_a_partial_inbox_block_keeps_the_inbox_defaults() -> None:
    spec = fleet(lambda d: role(d, "backend").update(inbox={"ack_wait": "45s"}))
    inbox = spec.roles["backend"].inbox
    assert inbox is not None
    assert (inbox.ack_wait, inbox.max_deliver, inbox.max_ack_pending) == (45.0, 5, 5)


def test_a_copied_fleet_resolves_its_own_consumers() -> None:
    seed = seed_fleet()
    assert seed.consumer("backend", "tasks") is seed.consumer("backend", "tasks")  # cached
    copy = seed.model_copy(update={"prefix": "acme"})
    consumer = copy.consumer("backend", "tasks")
    assert consumer is not None
    assert consumer.filters[0] == "acme.agents.backend.tasks"


# -- what a role may do -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("what", "grant", "why"),
    [
        ("publish", "$JS.API.>", "server subject"),
        ("publish", "$JS.API.STREAM.DELETE.EVENTS", "server subject"),
        ("subscribe", ">", "reaches"),
        ("subscribe", "agents.>", "reaches"),
        ("subscribe", "agents.cso.inbox", "reaches"),
        ("publish", "agents.cso.tasks.ceo", "reaches"),
        ("publish", "tasks.*.outcome.cto.backend", "reaches"),
        ("subscribe", "rpc.*", "reaches"),
        ("publish", "dlq.>", "reaches"),
        ("publish", "meetings.m1", "reaches"),
        ("subscribe", "_INBOX_cto.>", "inbox"),
        ("subscribe", "_INBOX.>", "inbox"),
        ("publish", "*.>", "reaches"),
        ("publish", "outcomes.>", "reaches"),  # the server's stored-outcome notices
        ("publish", "presence.cto.*", "reaches"),
        ("publish", "control.>", "reaches"),
        ("publish", "index.cto.>", "reaches"),
        ("publish", "memo.cto.>", "reaches"),
    ],
)
def test_a_grant_that_escapes_the_model_is_refused(what: str, grant: str, why: str) -> None:
    finding = one(fleet(lambda d: role(d, "backend").__setitem__(what, [grant])), "grant-escapes")
    assert finding.severity == "error"
    assert finding.where == f"roles.backend.{what}[0]"
    assert why in finding.problem


@pytest.mark.parametrize("grant", ["events.>", "events.deployment.*", "custom.metrics.>"])
def test_events_and_a_teams_own_subjects_may_be_granted(grant: str) -> None:
    spec = fleet(lambda d: role(d, "backend").update(publish=[grant], subscribe=[grant]))
    assert only(lint(spec), "grant-escapes") == []


@pytest.mark.parametrize("name", ["admin", "route"])
def test_a_role_named_like_fleetbuss_own_identities_is_refused(name: str) -> None:
    def rename(d: Data) -> None:
        d["roles"][name] = d["roles"].pop("devops")
        for r in d["roles"].values():
            r["send_to"] = [name if t == "devops" else t for t in r["send_to"]]

    finding = one(fleet(rename), "reserved-role-name")
    assert finding.severity == "error" and finding.where == f"roles.{name}"


def test_a_duplicate_window_shorter_than_a_task() -> None:
    finding = one(
        fleet(lambda d: stream(d, "TASKS").update(duplicate_window="2m")),
        "duplicate-window-short",
    )
    assert finding.where == "streams.TASKS.duplicate_window"
    assert "30m30s" in finding.fix or "30m" in finding.fix


def test_an_interest_stream_warns_of_a_role_whose_messages_nobody_reads() -> None:
    def edit(d: Data) -> None:
        stream(d, "AGENT_COMMS")["retention"] = "interest"
        role(d, "devops")["meetings"] = None

    finding = one(fleet(edit), "no-consumer-for-subject")
    assert finding.where == "roles.devops.meetings"


def test_processed_work_counting_against_limits_is_explained() -> None:
    """The seed's AGENT_COMMS: limits retention, 1000 per subject, discard new, 7 days."""
    f = one(
        fleet(lambda d: d["streams"]["AGENT_COMMS"].update(retention="limits", max_age="7d")),
        "processed-work-refuses-senders",
    )
    assert f.where == "streams.AGENT_COMMS.retention"
    assert "7d" in f.problem and "max_msgs_per_subject 1000" in f.problem
    assert "retention: interest" in f.fix and "--force" in f.fix
    assert only(lint(fleet(lambda d: None)), "processed-work-refuses-senders") == []


@pytest.mark.parametrize(("stream_name", "warned"), [("EVENTS", True), ("AGENT_DLQ", False)])
def test_a_max_msg_size_that_leaves_no_room_for_a_dead_letter(
    stream_name: str, warned: bool
) -> None:
    spec = fleet(lambda d: stream(d, stream_name).update(max_msg_size=1024 * 1024))
    found = only(lint(spec), "max-msg-size-no-room")
    if not warned:  # the dead-letter stream holds what the others keep room for
        assert found == []
        return
    (finding,) = found
    assert finding.where == f"streams.{stream_name}.max_msg_size"
    assert finding.fix.endswith(str(1024 * 1024 - 16 * 1024))
    small = fleet(lambda d: stream(d, stream_name).update(max_msg_size=64 * 1024))
    assert only(lint(small), "max-msg-size-no-room") == []


@pytest.mark.parametrize(
    ("subjects", "said"),
    [
        (["work.>", "work.>"], "overlap within"),
        (["work.>", "work.x"], "overlap within"),
        (["$JS.API.>"], "server's own API"),
        (["$SYS.>"], "server's own API"),
        (["$JSC.>"], "server's own API"),
    ],
)
def test_a_stream_the_server_would_refuse_is_an_error(subjects: list[str], said: str) -> None:
    """Each passed `check`, and provision then made the streams before it and stopped at it
    (10052). Checked against nats-server: the advisories ($JS.EVENT.>) are allowed."""

    def edit(d: Data) -> None:
        d["streams"]["EXTRA"] = {"subjects": subjects, "max_age": "1d"}

    found = [f for f in lint(fleet(edit)) if f.where == "streams.EXTRA.subjects"]
    assert [f.severity for f in found if said in f.problem] == ["error"]


@pytest.mark.parametrize(
    ("prefix", "said"), [("$JS.API", "the server's own"), ("p" * 300, "at most 256")]
)
def test_a_prefix_no_subject_can_start_with_is_refused(prefix: str, said: str) -> None:
    """`prefix: $JS.API` passed check and was refused by the server; a 5,000-character one
    passed everything, and then every send failed (a subject is at most 2,048 characters)."""
    with pytest.raises(ValidationError, match=re.escape(said)):
        fleet(lambda d: d.update(prefix=prefix))
