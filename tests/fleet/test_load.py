"""The fleet file loader: every bad file is a FleetFileError naming file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fleetbus.errors import FleetFileError
from fleetbus.fleet import FleetSpec, load_fleet, parse_fleet, seed_fleet
from fleetbus.fleet.template import SEED_FLEET_YAML

SMALL_YAML = """\
prefix: acme
streams:
  AGENT_COMMS:
    subjects: ["agents.>"]
    retention: limits
    max_msgs_per_subject: 1000
    max_age: 7d
    discard: new
    discard_new_per_subject: true
  TASKS:
    subjects: ["tasks.>"]
    max_age: 7d
  AGENT_DLQ:
    subjects: ["dlq.>"]
    dead_letters: true
    max_age: 30d
roles:
  backend:
    send_to: [cto]
    task_budget: 30m
    tasks: {max_deliver: 3, ack_wait: 30s, backoff: [10s, 1m]}
  cto:
    send_to: ["*"]
    updates: {deliver: new}
"""

SMALL_TOML = """\
prefix = "acme"

[streams.AGENT_COMMS]
subjects = ["agents.>"]
retention = "limits"
max_msgs_per_subject = 1000
max_age = "7d"
discard = "new"
discard_new_per_subject = true

[streams.TASKS]
subjects = ["tasks.>"]
max_age = "7d"

[streams.AGENT_DLQ]
subjects = ["dlq.>"]
dead_letters = true
max_age = "30d"

[roles.backend]
send_to = ["cto"]
task_budget = "30m"
tasks = {max_deliver = 3, ack_wait = "30s", backoff = ["10s", "1m"]}

[roles.cto]
send_to = ["*"]
updates = {deliver = "new"}
"""


def write(tmp_path: Path, text: str, name: str = "fleet.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> FleetFileError:
    with pytest.raises(FleetFileError) as info:
        load_fleet(path)
    err = info.value
    assert err.path == str(path)
    assert err.problems, "a FleetFileError must say what is wrong"
    assert str(path) in str(err)
    return err


def problem_at(err: FleetFileError, key: str) -> str:
    """The reason reported for ``key``; fails listing every problem when there is none."""
    reasons = [reason for k, reason in err.problems if k == key]
    assert reasons, f"no problem reported at {key!r}; got {err.problems}"
    return reasons[0]


def seed_with(edit: str, old: str) -> str:
    """The seed fleet file with the line fragment ``old`` replaced by ``edit``."""
    assert SEED_FLEET_YAML.count(old) >= 1, old
    return SEED_FLEET_YAML.replace(old, edit, 1)


# -- good files -------------------------------------------------------------------------


def test_seed_template_loads(tmp_path: Path) -> None:
    spec = load_fleet(write(tmp_path, SEED_FLEET_YAML))
    assert spec == seed_fleet()
    assert spec.prefix == "genbrain"
    assert set(spec.streams) == {
        "AGENT_COMMS",
        "EVENTS",
        "TASKS",
        "TASK_INDEX",
        "TASK_MEMO",
        "AGENT_PRESENCE",
        "AGENT_DLQ",
    }
    assert set(spec.roles) == {"ceo", "cto", "backend", "devops", "cso"}
    names = {c.name for c in spec.consumers()}
    assert {"BACKEND_TASKS", "BACKEND_INBOX", "DEVOPS_EVENTS", "CSO_EVENTS"} <= names


def test_yaml_and_toml_forms_load_to_equal_specs(tmp_path: Path) -> None:
    from_yaml = load_fleet(write(tmp_path, SMALL_YAML, "fleet.yaml"))
    from_toml = load_fleet(write(tmp_path, SMALL_TOML, "fleet.toml"))
    assert from_yaml == from_toml
    assert from_yaml.prefix == "acme"
    assert from_yaml.streams["AGENT_COMMS"].max_age == 7 * 86400
    tasks = from_yaml.roles["backend"].tasks
    assert tasks is not None
    assert tasks.backoff == [10.0, 60.0]


def test_toml_suffix_is_case_insensitive(tmp_path: Path) -> None:
    assert load_fleet(write(tmp_path, SMALL_TOML, "fleet.TOML")).prefix == "acme"


def test_seed_spelling_work_queue_is_accepted_as_workqueue(tmp_path: Path) -> None:
    text = seed_with("retention: work-queue\n    max_age: 7d", "retention: limits\n    max_age: 7d")
    spec = load_fleet(write(tmp_path, text))
    assert "workqueue" in {s.retention for s in spec.streams.values()}


def test_a_dumped_spec_loads_back_equal(tmp_path: Path) -> None:
    spec = seed_fleet()
    dumped = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    assert load_fleet(write(tmp_path, dumped)) == spec


def test_unlimited_max_bytes_can_be_written(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("    max_age: 30d\n", "    max_age: 30d\n    max_bytes: -1\n")
    assert load_fleet(write(tmp_path, text)).streams["AGENT_DLQ"].max_bytes == -1


# -- bad files --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    err = load_error(tmp_path / "nowhere.yaml")
    assert "no such file" in problem_at(err, "")
    assert "fleetbus init" in problem_at(err, "")


def test_bad_yaml_reports_line_and_column(tmp_path: Path) -> None:
    text = "prefix: acme\nstreams:\n  TASKS: {subjects: [tasks.>]\nroles: {}\n"
    reason = problem_at(load_error(write(tmp_path, text)), "")
    assert "not valid YAML" in reason
    assert "line 4" in reason
    assert "column" in reason


def test_bad_toml_reports_where(tmp_path: Path) -> None:
    text = 'prefix = "acme"\n[streams.TASKS\nsubjects = ["tasks.>"]\n'
    reason = problem_at(load_error(write(tmp_path, text, "fleet.toml")), "")
    assert "not valid TOML" in reason
    assert "line 2" in reason


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just words\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    reason = problem_at(load_error(write(tmp_path, text)), "")
    assert "mapping" in reason
    assert kind in reason


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    reason = problem_at(load_error(write(tmp_path, text)), "")
    assert "empty" in reason
    assert "fleetbus init" in reason


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("three", "'three'"),
        ('"3"', "'3'"),  # quoted: text
        ("3.5", "3.5"),
        # YAML reads these as true, and pydantic took true for 1: `replicas: yes` made one
        ("yes", "true (YAML's reading of yes/no/on/off)"),
        ("on", "true (YAML's reading of yes/no/on/off)"),
        ("true", "true (YAML's reading of yes/no/on/off)"),
    ],
)
def test_wrong_type_names_the_value(tmp_path: Path, value: str, said: str) -> None:
    text = seed_with(f"replicas: {value}", "replicas: 3")
    reason = problem_at(load_error(write(tmp_path, text)), "streams.AGENT_COMMS.replicas")
    assert said in reason
    assert "integer" in reason


@pytest.mark.parametrize(
    ("old", "new", "key", "said"),
    [
        (
            "max_msgs_per_subject: 1000",
            f"max_msgs_per_subject: {2**63}",
            "streams.AGENT_COMMS.max_msgs_per_subject",
            "64 bits",
        ),
        ("max_deliver: 3", f"max_deliver: {10**20}", "roles.ceo.tasks.max_deliver", "64 bits"),
        (
            "max_msgs_per_subject: 1000",
            f"max_msgs_per_subject: 1000\n    max_msg_size: {2**31}",
            "streams.AGENT_COMMS.max_msg_size",
            "32 bits",
        ),
        ("max_age: 7d", "max_age: 300000d", "streams.TASKS.max_age", "292 years"),
    ],
)
def test_numbers_the_server_cannot_hold(
    tmp_path: Path, old: str, new: str, key: str, said: str
) -> None:
    """They passed `check`, then the server refused the create as invalid JSON (10025)."""
    reason = problem_at(load_error(write(tmp_path, seed_with(new, old))), key)
    assert said in reason


def test_the_largest_numbers_the_server_holds_load(tmp_path: Path) -> None:
    text = seed_with(f"max_msgs_per_subject: {2**63 - 1}", "max_msgs_per_subject: 1000")
    text = text.replace("max_age: 7d", "max_age: 100000d", 1)
    spec = load_fleet(write(tmp_path, text))
    assert spec.streams["AGENT_COMMS"].max_msgs_per_subject == 2**63 - 1
    assert spec.streams["TASKS"].max_age == 100_000 * 86_400


def test_unknown_key_names_its_path(tmp_path: Path) -> None:
    text = seed_with(
        "    taks: {max_deliver: 3}\n    tasks: {deliver: all", "    tasks: {deliver: all"
    )
    reason = problem_at(load_error(write(tmp_path, text)), "roles.backend.taks")
    assert "unknown key" in reason


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = SMALL_YAML + "stremas: {}\n"
    assert "unknown key" in problem_at(load_error(write(tmp_path, text)), "stremas")


def test_subject_token_with_a_space(tmp_path: Path) -> None:
    text = SMALL_YAML.replace('subjects: ["tasks.>"]', 'subjects: ["tasks.my task"]')
    reason = problem_at(load_error(write(tmp_path, text)), "streams.TASKS.subjects[0]")
    assert "tasks.my task" in reason
    assert "whitespace" in reason


def test_event_filter_with_a_space(tmp_path: Path) -> None:
    text = seed_with('filters: ["deploy ment.>"]', 'filters: ["deployment.>"]')
    reason = problem_at(load_error(write(tmp_path, text)), "roles.devops.events.filters[0]")
    assert "deploy ment.>" in reason


@pytest.mark.parametrize(("name", "what"), [("back.end", "a dot"), ("back end", "a space")])
def test_role_name_must_be_one_token(tmp_path: Path, name: str, what: str) -> None:
    text = SMALL_YAML.replace("  backend:\n", f'  "{name}":\n')
    reason = problem_at(load_error(write(tmp_path, text)), "roles")
    assert repr(name) in reason
    assert what in reason


def test_role_name_must_be_lower_case(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("  backend:\n", "  Backend:\n")
    reason = problem_at(load_error(write(tmp_path, text)), "roles")
    assert "'Backend'" in reason
    assert "lower-case" in reason


def test_unknown_role_in_send_to(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("send_to: [cto]", "send_to: [cto, frontend]")
    reason = problem_at(load_error(write(tmp_path, text)), "roles.backend.send_to[1]")
    assert "'frontend'" in reason
    assert "backend" in reason
    assert "cto" in reason


def test_misspelled_retention(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("retention: limits", "retention: workqeue")
    reason = problem_at(load_error(write(tmp_path, text)), "streams.AGENT_COMMS.retention")
    assert "'workqeue'" in reason
    assert "workqueue" in reason
    assert "limits" in reason


def test_negative_limit(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("max_msgs_per_subject: 1000", "max_msgs_per_subject: -5")
    err = load_error(write(tmp_path, text))
    reason = problem_at(err, "streams.AGENT_COMMS.max_msgs_per_subject")
    assert "-5" in reason
    assert "-1 for unlimited" in reason


def test_bad_duration(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("ack_wait: 30s", "ack_wait: 30 seconds")
    reason = problem_at(load_error(write(tmp_path, text)), "roles.backend.tasks.ack_wait")
    assert "'30 seconds'" in reason
    assert "30s" in reason


def test_bad_size(tmp_path: Path) -> None:
    text = seed_with("max_memory: 2 gigs", "max_memory: 2GB")
    reason = problem_at(load_error(write(tmp_path, text)), "server.max_memory")
    assert "'2 gigs'" in reason


def test_bad_deliver_policy(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("deliver: new", "deliver: newest")
    reason = problem_at(load_error(write(tmp_path, text)), "roles.cto.updates.deliver")
    assert "'newest'" in reason
    assert "last_per_subject" in reason


def test_backoff_longer_than_max_deliver(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("max_deliver: 3,", "max_deliver: 1,")
    reason = problem_at(load_error(write(tmp_path, text)), "roles.backend.tasks")
    assert "backoff has 2 delays" in reason


def test_consumer_whose_subject_no_stream_captures(tmp_path: Path) -> None:
    text = SMALL_YAML.replace('subjects: ["tasks.>"]', 'subjects: ["jobs.>"]')
    reason = problem_at(load_error(write(tmp_path, text)), "roles.cto.updates")
    assert "acme.tasks.*.updates" in reason


def test_stream_name_with_a_dot(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("  TASKS:\n", "  MY.TASKS:\n")
    reason = problem_at(load_error(write(tmp_path, text)), "streams")
    assert "'MY.TASKS'" in reason


def test_several_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = SMALL_YAML.replace("retention: limits", "retention: workqeue").replace(
        "ack_wait: 30s", "ack_wait: soon"
    )
    keys = {key for key, _ in load_error(write(tmp_path, text)).problems}
    assert {"streams.AGENT_COMMS.retention", "roles.backend.tasks.ack_wait"} <= keys


def test_parse_fleet_names_its_source() -> None:
    with pytest.raises(FleetFileError) as info:
        parse_fleet("roles: []\n", "<inline>")
    assert info.value.path == "<inline>"
    assert str(info.value).startswith("<inline>: ")


def test_the_model_without_the_loader_still_checks_references() -> None:
    with pytest.raises(ValueError, match="unknown role 'nobody'"):
        FleetSpec.model_validate(
            {"streams": {"S": {"subjects": ["agents.>"]}}, "roles": {"a": {"send_to": ["nobody"]}}}
        )


def test_a_filter_wider_than_its_stream_is_not_captured(tmp_path: Path) -> None:
    # a stream capturing events.* stores events.deploy but not events.deploy.done,
    # so an events consumer over events.> has no stream that holds all it asks for
    text = seed_with('subjects: ["events.*"]', 'subjects: ["events.>"]')
    reason = problem_at(load_error(write(tmp_path, text)), "roles.cso.events")
    assert "no stream captures genbrain.events.>" in reason


@pytest.mark.parametrize(
    "text",
    [
        # a merge slip: the second send_to would silently win
        "version: 1\nstreams: {S: {subjects: [a.>]}}\nroles:\n"
        "  cso:\n    send_to: [cto]\n    send_to: ['*']\n",
        "version: 1\nstreams: {S: {subjects: [a.>]}}\nroles:\n"
        "  cso: {send_to: []}\n  cso: {send_to: ['*']}\n",
    ],
)
def test_a_key_given_twice_is_refused_with_where(tmp_path: Path, text: str) -> None:
    reason = problem_at(load_error(write(tmp_path, text)), "")
    assert "given twice" in reason
    assert "line" in reason


def test_yaml_merge_keys_work_and_an_explicit_key_overrides_the_merged(tmp_path: Path) -> None:
    """`<<: *defaults` was refused ("could not determine a constructor for the tag ...
    merge"): the duplicate-key check constructed the merge key as a key of its own."""
    text = (
        "version: 1\nstreams: {S: {subjects: [agents.>]}}\n"
        "roles:\n"
        "  cto:\n    inbox: &inbox {max_deliver: 5, ack_wait: 4s}\n"
        "  cso:\n    inbox: {<<: *inbox, max_deliver: 7}\n"
    )
    spec = load_fleet(write(tmp_path, text))
    assert spec.roles["cso"].inbox is not None and spec.roles["cso"].inbox.max_deliver == 7
    assert spec.roles["cto"].inbox is not None and spec.roles["cto"].inbox.max_deliver == 5


def test_a_key_that_is_a_list_is_refused_with_where_not_a_traceback(tmp_path: Path) -> None:
    text = "version: 1\nstreams: {S: {subjects: [a.>]}}\nroles:\n  ? [a, b]\n  : {send_to: []}\n"
    reason = problem_at(load_error(write(tmp_path, text)), "")
    assert "a key must be a name, not a list" in reason and "line" in reason


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        ("max_msgs: 0", "streams.TASK_MEMO.max_msgs"),
        ("max_msgs: 100000\n    max_bytes: 0", "streams.TASK_MEMO.max_bytes"),
        ("max_msgs: 100000\n    max_consumers: 0", "streams.TASK_MEMO.max_consumers"),
    ],
)
def test_a_zero_limit_is_refused_not_provisioned_again_and_again(
    tmp_path: Path, edit: str, key: str
) -> None:
    """nats-server takes a 0 limit for none and stores -1: every provision showed the same
    change (max_msgs: -1 -> 0) and applied it again."""
    text = seed_with(edit, "max_msgs: 100000")
    reason = problem_at(load_error(write(tmp_path, text)), key)
    assert "0 is not a limit" in reason and "-1 for unlimited" in reason


@pytest.mark.parametrize("data_dir", ["''", "."])
def test_a_data_dir_that_is_the_project_itself_is_refused(tmp_path: Path, data_dir: str) -> None:
    """`data_dir: ""` made `up` chmod the project directory 0700 and put the server's config,
    log, store and every credential beside the user's files."""
    text = seed_with(f"data_dir: {data_dir}", "data_dir: .fleetbus")
    reason = problem_at(load_error(write(tmp_path, text)), "server.data_dir")
    assert "a directory of its own" in reason
