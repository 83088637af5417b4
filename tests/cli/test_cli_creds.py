"""``fleetbus creds ROLE --nats-context``: the role's login saved where the nats CLI finds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetbus.fleet import seed_fleet
from fleetbus.security import ensure_credentials

from .conftest import Invoke, assert_one_error


@pytest.fixture
def config_home(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """XDG_CONFIG_HOME in the test's directory, and credentials as `fleetbus up` writes them."""
    home = workdir / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    ensure_credentials(workdir / ".fleetbus", seed_fleet())
    return home


def test_nats_context_writes_the_roles_login(invoke: Invoke, config_home: Path) -> None:
    result = invoke("creds", "backend", "--nats-context")
    assert result.exit_code == 0, result.output
    path = config_home / "nats" / "context" / "backend.json"
    ctx = json.loads(path.read_text())
    stored = json.loads(Path(".fleetbus/auth/backend.json").read_text())
    assert ctx["url"] == "nats://127.0.0.1:4222"  # no server running: the fleet file's address
    assert (ctx["user"], ctx["password"]) == ("backend", stored["password"])
    assert ctx["inbox_prefix"] == "_INBOX_backend"
    assert path.stat().st_mode & 0o777 == 0o600
    assert f"wrote {path}" in result.stdout
    assert "nats --context backend consumer info AGENT_COMMS BACKEND_TASKS" in result.stdout
    assert stored["password"] not in result.stdout


def test_context_name_chooses_the_file(invoke: Invoke, config_home: Path) -> None:
    result = invoke("creds", "admin", "--nats-context", "--context-name", "genbrain-admin")
    assert result.exit_code == 0, result.output
    ctx = json.loads((config_home / "nats" / "context" / "genbrain-admin.json").read_text())
    assert (ctx["user"], ctx["inbox_prefix"]) == ("admin", "_INBOX_admin")
    assert "nats --context genbrain-admin stream ls" in result.stdout


def test_an_existing_context_is_replaced(invoke: Invoke, config_home: Path) -> None:
    path = config_home / "nats" / "context" / "cto.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"url": "nats://elsewhere:4222"}\n')
    assert invoke("creds", "cto", "--nats-context").exit_code == 0
    assert json.loads(path.read_text())["user"] == "cto"


def test_a_bad_context_name_is_one_error(invoke: Invoke, config_home: Path) -> None:
    result = invoke("creds", "cto", "--nats-context", "--context-name", "../cto")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "'../cto'", "nats context")
    assert not (config_home / "nats").exists()


def test_context_name_alone_is_one_error(invoke: Invoke, config_home: Path) -> None:
    result = invoke("creds", "cto", "--context-name", "x")
    assert result.exit_code == 1
    assert_one_error(result.stderr, "--nats-context")
