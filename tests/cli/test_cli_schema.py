"""``fleetbus schema`` and the schema file ``fleetbus init`` writes beside the fleet file."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from fleetbus.fleet.jsonschema import SCHEMA_FILE, fleet_schema

from .conftest import Invoke, assert_one_error


def test_schema_prints_the_fleet_files_json_schema(invoke: Invoke) -> None:
    result = invoke("schema")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == fleet_schema()
    assert result.stderr == ""


def test_schema_out_writes_the_file(invoke: Invoke, workdir: Path) -> None:
    result = invoke("schema", "--out", "my.schema.json")
    assert result.exit_code == 0, result.output
    assert json.loads((workdir / "my.schema.json").read_text()) == fleet_schema()
    assert "wrote my.schema.json" in result.stdout


def test_schema_out_to_a_missing_directory_is_one_error(invoke: Invoke) -> None:
    result = invoke("schema", "--out", "nowhere/fleet.schema.json")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "nowhere/fleet.schema.json")


def test_init_writes_the_schema_its_first_line_points_at(invoke: Invoke, workdir: Path) -> None:
    (workdir / "team").mkdir()
    result = invoke("init", "team/fleet.yaml")
    assert result.exit_code == 0, result.output
    fleet_text = (workdir / "team" / "fleet.yaml").read_text()
    modeline = fleet_text.splitlines()[0]
    assert modeline == f"# yaml-language-server: $schema={SCHEMA_FILE}"
    # the language server resolves a relative $schema against the fleet file's directory
    schema = json.loads((workdir / "team" / modeline.split("=", 1)[1]).read_text())
    assert schema == fleet_schema()
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(fleet_text))
    assert f"wrote team/{SCHEMA_FILE}" in result.stdout


def test_init_refreshes_an_old_schema_file(invoke: Invoke, workdir: Path) -> None:
    (workdir / SCHEMA_FILE).write_text("{}\n")
    assert invoke("init").exit_code == 0
    assert json.loads((workdir / SCHEMA_FILE).read_text()) == fleet_schema()
