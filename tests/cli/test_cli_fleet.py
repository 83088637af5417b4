"""``fleetbus init`` and ``fleetbus check``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbus.fleet import load_fleet
from fleetbus.fleet.check import lint
from fleetbus.fleet.template import SEED_FLEET_YAML

from .conftest import Invoke, Run, assert_one_error


def squeeze(text: str) -> str:
    """``text`` without whitespace: what a table cell folded over lines still says."""
    return "".join(text.split())


def table_rows(output: str) -> list[list[str]]:
    """The body rows of a rich table (``show_lines``), each cell's lines joined, squeezed."""
    rows: list[list[str]] = []
    current: list[str] = []
    for line in output.splitlines():
        if line.startswith(("├", "└")) and current:
            rows.append(current)
            current = []
        elif line.startswith("│"):
            cells = [squeeze(c) for c in line.strip().strip("│").split("│")]
            current = [a + b for a, b in zip(current, cells, strict=True)] if current else cells
    return rows


def test_init_writes_the_seed_fleet(invoke: Invoke, workdir: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, result.output
    written = workdir / "fleet.yaml"
    assert written.read_text() == SEED_FLEET_YAML
    assert "wrote fleet.yaml" in result.stdout
    spec = load_fleet(written)
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
    assert "prefix genbrain, 7 streams, 5 roles" in result.stdout  # what it wrote
    assert "next: `fleetbus check`, then `fleetbus up`" in result.stdout


def test_init_elsewhere_names_the_file_in_what_to_run_next(invoke: Invoke, workdir: Path) -> None:
    """`check` and `up` read ./fleet.yaml: after `init mine.yaml` they checked the seed."""
    result = invoke("init", "mine.yaml")
    assert result.exit_code == 0, result.output
    assert "next: `fleetbus --fleet mine.yaml check`, then `fleetbus --fleet mine.yaml up`" in (
        result.stdout
    )


def test_an_unquoted_deliver_time_reads_as_meant(workdir: Path) -> None:
    """YAML reads an unquoted `deliver: 2026-05-10T14:30:00Z` as a time, which was refused
    as not a string."""
    text = SEED_FLEET_YAML.replace("deliver: new", "deliver: 2026-05-10T14:30:00Z", 1)
    assert "deliver: 2026-05-10T14:30:00Z" in text
    (workdir / "fleet.yaml").write_text(text)
    spec = load_fleet(workdir / "fleet.yaml")
    consumers = [c.spec for c in spec.consumers()]
    assert "2026-05-10T14:30:00Z" in [getattr(c, "deliver", None) for c in consumers]


def test_init_refuses_to_overwrite_without_force(invoke: Invoke, workdir: Path) -> None:
    target = workdir / "mine.yaml"
    target.write_text("# my own fleet\n")
    refused = invoke("init", str(target))
    assert refused.exit_code == 1
    assert_one_error(refused.stderr, str(target), "--force")
    assert target.read_text() == "# my own fleet\n"

    forced = invoke("init", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert target.read_text() == SEED_FLEET_YAML


@pytest.mark.parametrize("use_file", [True, False], ids=["fleet.yaml", "built-in"])
def test_check_seed_passes_with_warnings(invoke: Invoke, use_file: bool) -> None:
    if use_file:
        assert invoke("init").exit_code == 0
    result = invoke("check")
    assert result.exit_code == 0, result.output
    source = "fleet.yaml" if use_file else "<built-in seed fleet>"
    assert f"{source}: 7 streams, 5 roles, 19 consumers" in result.stdout
    assert "no errors 1 warning(s)" in result.stdout
    assert "warning" in result.stdout
    assert result.stderr == ""


def test_check_json_parses(invoke: Invoke) -> None:
    assert invoke("init").exit_code == 0
    result = invoke("check", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["file"] == "fleet.yaml"
    assert report["valid"] is True
    codes = {f["code"] for f in report["findings"]}
    assert "replicas-over-cluster-size" in codes
    for finding in report["findings"]:
        assert set(finding) == {"code", "severity", "where", "problem", "fix"}
        assert finding["severity"] == "warning"


def _edit(old: str, new: str) -> str:
    assert old in SEED_FLEET_YAML
    return SEED_FLEET_YAML.replace(old, new, 1)


INVALID = {
    "unknown-key": (
        _edit("    duplicate_window: 1h      # the", "    duplicate_windw: 1h       # the"),
        ["streams.AGENT_COMMS.duplicate_windw", "unknown key"],
    ),
    "bad-yaml": (
        _edit("  AGENT_COMMS:\n", "  AGENT_COMMS: [\n"),
        ["not valid YAML at line"],
    ),
    "role-with-dot": (
        _edit("  backend:\n", "  back.end:\n").replace("backend", "back.end"),
        ["roles", "'back.end'", "dot"],
    ),
    "retention-misspelled": (
        _edit("    retention: interest\n", "    retention: limit\n"),
        ["streams.AGENT_COMMS.retention", "'limit'", "limits"],
    ),
    "negative-limit": (
        _edit("    max_msgs_per_subject: 5000\n", "    max_msgs_per_subject: -5\n"),
        ["streams.EVENTS.max_msgs_per_subject", "-5"],
    ),
    "unknown-send-to": (
        _edit("send_to: [cto, devops, cso]", "send_to: [cto, devops, cfo]"),
        ["roles.backend.send_to[2]", "'cfo'"],
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_check_invalid_file_one_clear_error(invoke: Invoke, workdir: Path, case: str) -> None:
    text, needles = INVALID[case]
    path = workdir / "broken.yaml"
    path.write_text(text)
    result = invoke("--fleet", str(path), "check")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    line = assert_one_error(result.stderr, str(path), *needles)
    assert line.startswith(f"error: {path}: ")


def test_check_missing_file(invoke: Invoke, workdir: Path) -> None:
    result = invoke("--fleet", "nowhere.yaml", "check")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "nowhere.yaml", "fleetbus init")


def test_invalid_file_stops_every_verb(invoke: Invoke, workdir: Path) -> None:
    """The same one error from a verb that would connect: the file is read first."""
    (workdir / "fleet.yaml").write_text(_edit("    max_age: 7d\n", "    max_agee: 7d\n"))
    result = invoke("provision", "--server", "nats://127.0.0.1:1")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "fleet.yaml", "streams.TASKS.max_agee")


OVERLAPPING = _edit(
    "  AGENT_DLQ:\n",
    '  BACKEND_AUDIT:\n    subjects: ["agents.backend.>"]\n    max_age: 1d\n\n  AGENT_DLQ:\n',
)


def test_check_lint_error_exits_1_with_the_fix(invoke: Invoke, workdir: Path) -> None:
    path = workdir / "fleet.yaml"
    path.write_text(OVERLAPPING)
    findings = [f for f in lint(load_fleet(path)) if f.severity == "error"]
    assert [f.code for f in findings] == ["overlapping-streams"]

    result = invoke("check")
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "1 error(s)" in result.stdout
    errors_shown = [row for row in table_rows(result.stdout) if row[0] == "error"]
    assert len(errors_shown) == 1
    _, where, problem, fix = errors_shown[0]
    assert where == squeeze(findings[0].where)
    assert problem == squeeze(findings[0].problem)
    assert fix == squeeze(findings[0].fix)

    as_json = invoke("check", "--json")
    assert as_json.exit_code == 1
    report = json.loads(as_json.stdout)
    assert report["valid"] is False
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert [(f["code"], f["fix"]) for f in errors] == [("overlapping-streams", findings[0].fix)]


def test_check_lint_error_in_a_real_terminal_width(run_cli: Run, workdir: Path) -> None:
    """As a user runs it: ``python -m fleetbus``, output to a pipe."""
    (workdir / "fleet.yaml").write_text(OVERLAPPING)
    fix = next(f.fix for f in lint(load_fleet(workdir / "fleet.yaml")) if f.severity == "error")
    result = run_cli("check")
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert [row[3] for row in table_rows(result.stdout) if row[0] == "error"] == [squeeze(fix)]


def test_check_json_of_a_file_that_does_not_load_is_json(invoke: Invoke, workdir: Path) -> None:
    """It printed nothing on stdout (the error went to stderr): CI and editors had no
    document to read."""
    (workdir / "fleet.yaml").write_text("version: 2\nstreams: {}\nroles: {}\n")
    result = invoke("check", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {"code": "invalid", "severity": "error", "where": "version"}.items() <= (
        report["findings"][0].items()
    )
