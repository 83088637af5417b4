"""``fleetbus deploy compose``: the compose file against the Compose Specification's JSON Schema,
its commands against the fleetbus CLI, each node's config against a real nats-server, and who
gets which credentials."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from typer.testing import CliRunner

from fleetbus.cli import app
from fleetbus.deploy.compose import ComposeOptions, ProjectFile, project_name, render_compose
from fleetbus.deploy.images import FLEETBUS_IMAGE, NATS_IMAGE
from fleetbus.deploy.k8s_values import (
    ADMIN,
    K8sOptions,
    make_credential,
    per_role_authorization,
)
from fleetbus.errors import FleetbusError
from fleetbus.fleet import FleetSpec, parse_fleet, seed_fleet
from fleetbus.server.binary import find_nats_server


def compose_spec_schema() -> dict[str, Any]:
    """The Compose Specification's JSON Schema, as check-jsonschema vendors it."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendor.joinpath("compose-spec.json").read_text())
    return schema


SCHEMA = compose_spec_schema()


@pytest.fixture(scope="module")
def seed() -> FleetSpec:
    return seed_fleet()


ROUTE_PW = "route-pw-1"


@pytest.fixture(scope="module")
def files(seed: FleetSpec) -> dict[str, ProjectFile]:
    return {f.name: f for f in render_compose(seed, ComposeOptions(route_password=ROUTE_PW))}


@pytest.fixture(scope="module")
def compose(files: dict[str, ProjectFile]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(files["compose.yaml"].text)
    return data


def env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line)
    return {key: value.strip("'") for key, value in pairs}


# -- the Compose Specification -------------------------------------------------------------------


def test_the_schema_is_the_compose_specification_and_strict() -> None:
    assert SCHEMA["title"] == "Compose Specification"
    validator = jsonschema.Draft202012Validator(SCHEMA)
    assert validator.is_valid({"services": {"web": {"image": "nginx"}}})
    assert not validator.is_valid({"services": {"web": {"image": "nginx", "imagee": "x"}}})


def test_the_compose_file_validates(compose: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(compose)


def test_another_fleet_validates_too() -> None:
    spec = parse_fleet(
        "prefix: acme.prod\nstreams:\n  ALL: {subjects: ['>'], replicas: 5}\n"
        "roles:\n  data-eng: {}\n  qa_bot: {send_to: [data-eng]}\n",
        "<inline>",
    )
    [compose_file, *_] = render_compose(spec, ComposeOptions(replicas=5, host_port=14222))
    data = yaml.safe_load(compose_file.text)
    jsonschema.Draft202012Validator(SCHEMA).validate(data)
    assert data["name"] == project_name(spec) == "acme-prod"
    assert set(data["services"]) == {
        *(f"nats-{i}" for i in range(1, 6)),
        "provision",
        "agent-data-eng",
        "agent-qa_bot",
    }
    assert data["services"]["nats-5"]["ports"] == ["127.0.0.1:14226:4222"]


# -- commands -------------------------------------------------------------------------------------


def parse_fleetbus(argv: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``fleetbus ARGV`` as the CLI would; the verb and its parameters."""
    group = typer.main.get_command(app)
    ctx = group.make_context("fleetbus", list(argv), resilient_parsing=False)
    # click keeps the verb apart from the arguments after it (a private attribute since 8.2)
    remaining = [*getattr(ctx, "_protected_args", getattr(ctx, "protected_args", [])), *ctx.args]
    verb, command, rest = group.resolve_command(ctx, remaining)
    assert command is not None and verb is not None
    sub = command.make_context(verb, rest, parent=ctx)
    return verb, {**ctx.params, **sub.params}


def test_every_fleetbus_service_runs_a_real_verb(compose: dict[str, Any], seed: FleetSpec) -> None:
    fleetbus_services = {
        name: s for name, s in compose["services"].items() if s["image"] == FLEETBUS_IMAGE
    }
    verbs = {name: parse_fleetbus(s["command"]) for name, s in fleetbus_services.items()}
    assert verbs.pop("provision")[0] == "provision"
    assert set(verbs) == {f"agent-{role}" for role in seed.roles}
    for role in seed.roles:
        verb, params = verbs[f"agent-{role}"]
        assert verb == "run"
        assert params["targets"] == [f"your_agents.{role}:agent"]
        assert params["server"] == "nats://nats-1:4222,nats://nats-2:4222,nats://nats-3:4222"
        assert params["fleet"] == "/etc/fleetbus/fleet.yaml"


def test_agents_start_after_provisioning_after_a_healthy_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["provision"]["depends_on"] == {
        f"nats-{i}": {"condition": "service_healthy"} for i in (1, 2, 3)
    }
    for name, service in services.items():
        if name.startswith("agent-"):
            assert service["depends_on"] == {
                "provision": {"condition": "service_completed_successfully"}
            }
    assert all("healthcheck" in services[f"nats-{i}"] for i in (1, 2, 3))


def test_the_routes_are_reachable_by_the_nodes_only(compose: dict[str, Any]) -> None:
    assert compose["networks"]["routes"] == {"internal": True}
    for name, service in compose["services"].items():
        assert ("routes" in service["networks"]) == name.startswith("nats-")
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:") and not port.endswith(":6222")


# -- credentials ----------------------------------------------------------------------------------


def test_each_role_service_gets_only_its_own_credentials(
    compose: dict[str, Any], files: dict[str, ProjectFile], seed: FleetSpec
) -> None:
    users = {}
    for name, service in compose["services"].items():
        for env_file in service.get("env_file", []):
            users[name] = env(files[env_file].text)["FLEETBUS_USER"]
        assert len(service.get("env_file", [])) <= 1
        assert "environment" not in service  # no password in compose.yaml itself
    assert users == {"provision": ADMIN} | {f"agent-{role}": role for role in seed.roles}


def test_credential_files_are_private_and_match_the_servers_users(seed: FleetSpec) -> None:
    creds = {key: make_credential(key, key, f"pw-{key}") for key in (ADMIN, *seed.roles)}
    files = {f.name: f for f in render_compose(seed, credentials=creds)}
    for key, cred in creds.items():
        f = files[f"credentials/{key}.env"]
        assert f.private
        assert env(f.text) == {"FLEETBUS_USER": key, "FLEETBUS_PASSWORD": cred.password}
    secret = ("credentials/", "nats/nats-")  # the env files, and the nodes' route password
    assert all(f.private == name.startswith(secret) for name, f in files.items())
    # the same authorization block `deploy k8s` renders from these credentials
    block = files["nats/auth.conf"].text
    assert block.count("password:") == per_role_authorization(seed, creds).count("password:")
    assert "pw-" not in block  # bcrypt hashes only


def test_a_password_an_env_file_cannot_carry_is_an_error(seed: FleetSpec) -> None:
    creds = {key: make_credential(key, key, "it's") for key in (ADMIN, *seed.roles)}
    with pytest.raises(FleetbusError, match="quote"):
        render_compose(seed, credentials=creds)


def test_too_few_nodes_for_the_streams_is_an_error(seed: FleetSpec) -> None:
    with pytest.raises(FleetbusError, match="3 replicas"):
        render_compose(seed, ComposeOptions(replicas=1))


# -- nats-server configs --------------------------------------------------------------------------


def test_nats_server_accepts_each_node_config(
    files: dict[str, ProjectFile], tmp_path: Path
) -> None:
    for f in files.values():
        path = tmp_path / f.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f.text)
    for i in (1, 2, 3):
        config = files[f"nats/nats-{i}.conf"].text
        assert f'server_name: "agent-cluster-{i}"' in config
        assert 'include "auth.conf"' in config
        others = {f"nats-route://route:{ROUTE_PW}@nats-{j}:6222" for j in (1, 2, 3) if j != i}
        assert all(route in config for route in others)
        # A node listens on the fleet network too (every interface): an agent there could
        # route a server of its own into the cluster, and read everything, without it.
        assert f'authorization {{ user: "route", password: "{ROUTE_PW}" }}' in config
        checked = subprocess.run(
            [str(find_nats_server()), "-c", str(tmp_path / f"nats/nats-{i}.conf"), "-t"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert "is valid" in checked.stdout + checked.stderr


def test_k8s_and_compose_default_to_the_same_images() -> None:
    assert (K8sOptions().fleetbus_image, ComposeOptions().fleetbus_image) == (FLEETBUS_IMAGE,) * 2
    assert (K8sOptions().nats_image, ComposeOptions().nats_image) == (NATS_IMAGE,) * 2


# -- the CLI --------------------------------------------------------------------------------------


def test_cli_writes_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("FLEETBUS_FLEET", "FLEETBUS_URL", "FLEETBUS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "compose", "--out", "c", "--generate-passwords"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "c"
    written = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
    assert written == {f.name for f in render_compose(seed_fleet())}
    for p in (out / "credentials").iterdir():
        assert p.stat().st_mode & 0o777 == 0o600
    assert "REPLACE-ME" not in (out / "credentials" / "backend.env").read_text()
    refused = runner.invoke(app, ["deploy", "compose", "--out", "c"])
    assert refused.exit_code == 1
    assert "--force" in refused.stderr


def test_cli_replaces_a_symlink_in_the_output_directory_instead_of_writing_through_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output directory another user can write to may hold a link at one of the names: the
    file goes in its place, never through the link into a file that user chose."""
    monkeypatch.chdir(tmp_path)
    for name in ("FLEETBUS_FLEET", "FLEETBUS_URL", "FLEETBUS_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    out, elsewhere = tmp_path / "c", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "compose.yaml").symlink_to(elsewhere / "planted.yaml")  # dangling: not "existing"
    victim = elsewhere / "victim.txt"
    victim.write_text("keep me")
    (out / "README.md").symlink_to(victim)
    result = CliRunner().invoke(app, ["deploy", "compose", "--out", "c", "--force"])
    assert result.exit_code == 0, result.output
    assert not (elsewhere / "planted.yaml").exists()
    assert victim.read_text() == "keep me"
    for name in ("compose.yaml", "README.md"):
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 0
