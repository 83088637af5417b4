"""The fleet file's JSON Schema, checked with the ``jsonschema`` library as an editor would use it:
what the loader accepts validates, and the mistakes people make while typing do not."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st
from jsonschema.exceptions import best_match

from fleetbus.errors import FleetFileError
from fleetbus.fleet import parse_fleet
from fleetbus.fleet.jsonschema import DIALECT, SCHEMA_FILE, fleet_schema, fleet_schema_text
from fleetbus.fleet.template import SEED_FLEET_YAML

from .test_load import SMALL_TOML, SMALL_YAML

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = fleet_schema()
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SEED = yaml.safe_load(SEED_FLEET_YAML)


def errors(data: Any) -> list[str]:
    """Every schema violation as ``path: message``, down to the key at fault (inside an
    optional block, as an editor's squiggle would be)."""
    found = (best_match([e]) for e in VALIDATOR.iter_errors(data))
    return [f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in found if e]


def edited(path: str, value: Any, base: dict[str, Any] = SEED) -> dict[str, Any]:
    """``base`` with the dotted ``path`` set to ``value``."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def loader_accepts(data: dict[str, Any]) -> bool:
    try:
        parse_fleet(yaml.safe_dump(data), "<edited>")
    except FleetFileError:
        return False
    return True


# -- the schema itself -------------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    assert SCHEMA["$schema"] == DIALECT
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert jsonschema.validators.validator_for(SCHEMA) is jsonschema.Draft202012Validator


def test_the_seed_points_editors_at_the_schema_file() -> None:
    assert SEED_FLEET_YAML.splitlines()[0] == f"# yaml-language-server: $schema={SCHEMA_FILE}"


def test_the_written_text_is_the_schema() -> None:
    text = fleet_schema_text()
    assert text.endswith("}\n")
    assert json.loads(text) == SCHEMA


# -- what validates ----------------------------------------------------------------------------


def test_the_seed_fleet_validates() -> None:
    assert errors(SEED) == []


def test_the_small_yaml_and_toml_examples_validate() -> None:
    assert errors(yaml.safe_load(SMALL_YAML)) == []
    assert errors(tomllib.loads(SMALL_TOML)) == []


def test_every_complete_fleet_file_in_the_docs_that_loads_validates() -> None:
    blocks = re.findall(r"```(yaml|toml)\n(.*?)```", (DOCS / "fleet-file.md").read_text(), re.S)
    checked = 0
    for kind, text in blocks:
        data = tomllib.loads(text) if kind == "toml" else yaml.safe_load(text)
        try:
            parse_fleet(text, "<docs>", toml=kind == "toml")
        except FleetFileError:
            continue  # a fragment, or a deliberately broken example
        assert errors(data) == [], text
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("streams.TASKS.retention", "work-queue"),  # the seed's and the nats CLI's spelling
        ("streams.TASKS.retention", "workqueue"),
        ("streams.TASKS.max_age", 604800),
        ("streams.TASKS.max_age", "1h30m"),
        ("streams.TASKS.duplicate_window", "500ms"),
        ("streams.TASKS.duplicate_window", 0.5),
        ("streams.TASKS.max_bytes", -1),
        ("streams.TASKS.max_bytes", "-1"),
        ("streams.TASKS.max_bytes", "512MiB"),
        ("streams.TASKS.max_msgs", -1),
        ("server.max_memory", "2GB"),
        ("server.max_memory", "1.5gb"),
        ("server.max_file", 1073741824),
        ("roles.backend.tasks.deliver", "last_per_subject"),
        ("roles.backend.tasks.deliver", "2026-05-10T14:30:00Z"),
        ("roles.backend.tasks.deliver", "2026-05-10"),
        ("roles.backend.tasks.backoff", ["10s", 60, "1m30s"]),
        ("roles.backend.tasks.max_deliver", -1),
        ("roles.backend.tasks", None),
        ("roles.backend.send_to", ["*"]),
        ("prefix", "acme.prod"),
    ],
)
def test_what_people_write_validates(path: str, value: Any) -> None:
    data = edited(path, value)
    assert loader_accepts(data)
    assert errors(data) == []


# -- what does not -----------------------------------------------------------------------------


def test_an_unknown_key_fails() -> None:
    data = edited("roles.backend.taks", {"max_deliver": 3})
    assert errors(data) == [
        "roles.backend: Additional properties are not allowed ('taks' was unexpected)"
    ]


@pytest.mark.parametrize("value", ["30 seconds", "soon", "30", "-5s", True, -1])
def test_a_bad_duration_fails(value: Any) -> None:
    data = edited("roles.backend.tasks.ack_wait", value)
    assert not loader_accepts(data)
    assert [e.split(":")[0] for e in errors(data)] == ["roles.backend.tasks.ack_wait"]


@pytest.mark.parametrize("name", ["Backend", "back.end", "back end", "9lives", "qa*"])
def test_a_role_with_a_bad_name_fails(name: str) -> None:
    data = copy.deepcopy(SEED)
    data["roles"][name] = data["roles"].pop("devops")
    assert not loader_accepts(data)
    found = errors(data)
    assert found and all(e.startswith("roles: ") for e in found), found
    assert repr(name) in found[0]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("server.max_memory", "2 gigs"),
        ("streams.TASKS.max_msgs", -5),
        ("streams.TASKS.retention", "workqeue"),
        ("streams.TASKS.subjects", ["tasks.my task"]),
        ("streams.TASKS.subjects", ["tasks.>.updates"]),
        ("roles.backend.tasks.deliver", "newest"),
        ("roles.backend.tasks.max_deliver", 0),
        ("roles.backend.send_to", ["Cto"]),
        ("prefix", "genbrain.*"),
        ("version", 2),
    ],
)
def test_other_mistakes_fail_where_they_are(path: str, value: Any) -> None:
    data = edited(path, value)
    assert not loader_accepts(data)
    where = {e.split(":")[0] for e in errors(data)}
    assert where and all(w.startswith(path) for w in where), (where, path)


def test_a_stream_name_with_a_dot_fails() -> None:
    data = copy.deepcopy(SEED)
    data["streams"]["MY.TASKS"] = data["streams"].pop("TASKS")
    assert errors(data) and all(e.startswith("streams: ") for e in errors(data))


# -- the property: the schema never refuses what the loader accepts -----------------------------

# Values as people write them (unquoted numbers and booleans), good and bad, for any key.
_VALUES = st.sampled_from(
    [
        0,
        1,
        3,
        30,
        1000,
        -1,
        -5,
        0.5,
        2.5,
        True,
        False,
        None,
        "30s",
        "1h30m",
        "500ms",
        "7d",
        "2 h",
        "30 seconds",
        "soon",
        "2GB",
        "512MiB",
        "1k",
        "-1",
        "2 gigs",
        "work-queue",
        "workqueue",
        "interest",
        "memory",
        "new",
        "old",
        "all",
        "last_per_subject",
        "2026-05-10T14:30:00+02:00",
        "newest",
        "*",
        "agents.>",
        "events.*",
        "tasks.my task",
        ["agents.>"],
        ["deployment.>", "security.*"],
        ["10s", "1m"],
        ["cto", "backend"],
        ["*"],
        [],
        {},
        {"max_deliver": 5, "ack_wait": "1m"},
        {"filters": [">"]},
    ]
)
_KEYS = st.sampled_from(
    [
        "prefix",
        "version",
        *(f"server.{k}" for k in ("port", "max_memory", "max_payload", "sync_always")),
        *(
            f"streams.{s}.{k}"
            for s in ("AGENT_COMMS", "TASKS")
            for k in (
                "retention",
                "storage",
                "replicas",
                "max_age",
                "max_bytes",
                "max_msgs",
                "max_msgs_per_subject",
                "discard",
                "discard_new_per_subject",
                "duplicate_window",
                "subjects",
                "description",
            )
        ),
        *(f"roles.{r}.{k}" for r in ("cto", "backend") for k in ("send_to", "task_budget")),
        *(f"roles.devops.{k}" for k in ("events", "updates", "publish", "oversight")),
        *(
            f"roles.backend.tasks.{k}"
            for k in ("deliver", "ack_wait", "max_deliver", "max_ack_pending", "backoff")
        ),
        "alerts.storage_percent",
    ]
)


def coerced(value: Any) -> tuple[str, ...]:
    """The types pydantic's lax mode also reads ``value`` as, where the schema asks for the
    plain form (``true``, not ``1``; ``3``, not ``true`` or ``"3"``)."""
    if isinstance(value, bool):
        return ("integer", "number")
    if value in (0, 1):
        return ("boolean",)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return ("integer", "number")
    return ()


@given(st.lists(st.tuples(_KEYS, _VALUES), min_size=1, max_size=3))
@example([("version", True)])
@settings(max_examples=300, deadline=None)
def test_what_the_loader_accepts_the_schema_accepts(edits: list[tuple[str, Any]]) -> None:
    data = SEED
    for path, value in edits:
        data = edited(path, value, data)
    if loader_accepts(data):
        lax = {f"{p}: {v!r} is not of type {t!r}" for p, v in edits for t in coerced(v)} | {
            f"{p}: 1 was expected"
            for p, v in edits
            if v is True  # version: true reads as 1
        }
        assert set(errors(data)) <= lax, edits


@pytest.mark.parametrize("length", [1, 64, 65])
def test_stream_names_follow_the_loader(length: int) -> None:
    data = copy.deepcopy(SEED)
    data["streams"]["S" * length] = data["streams"].pop("TASKS")
    assert loader_accepts(data) == (errors(data) == []) == (length <= 64)
