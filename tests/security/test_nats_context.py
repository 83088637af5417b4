"""A nats CLI context logs in as its identity: connecting with nothing but the context file's
fields (as the CLI would), the role may do what its permissions allow, with its own inbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nats
import pytest

from fleetbus.errors import FleetbusError
from fleetbus.security import ADMIN
from fleetbus.security.natscontext import context_path, context_settings, write_context

from .support import AuthFleet


def saved(auth_fleet: AuthFleet, identity: str, config_home: Path) -> dict[str, Any]:
    cred = auth_fleet.credentials[identity]
    path = write_context(config_home, identity, context_settings(cred, auth_fleet.url))
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


async def api(ctx: dict[str, Any], subject: str) -> dict[str, Any]:
    """A JetStream API request over a connection made from the context's fields alone."""
    nc = await nats.connect(
        ctx["url"],
        user=ctx["user"],
        password=ctx["password"],
        inbox_prefix=ctx["inbox_prefix"],
        allow_reconnect=False,
    )
    try:
        reply: dict[str, Any] = json.loads((await nc.request(subject, b"", timeout=5)).data)
        return reply
    finally:
        await nc.close()


async def test_a_roles_context_reads_its_own_consumer(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    ctx = saved(auth_fleet, "backend", tmp_path)
    assert (ctx["user"], ctx["inbox_prefix"]) == ("backend", "_INBOX_backend")
    tasks = auth_fleet.spec.consumer("backend", "tasks")
    assert tasks is not None
    info = await api(ctx, f"$JS.API.CONSUMER.INFO.{tasks.stream}.{tasks.name}")
    assert info["config"]["durable_name"] == "BACKEND_TASKS"


async def test_the_admins_context_lists_the_streams(auth_fleet: AuthFleet, tmp_path: Path) -> None:
    ctx = saved(auth_fleet, ADMIN, tmp_path)
    names = await api(ctx, "$JS.API.STREAM.NAMES")
    assert set(auth_fleet.spec.streams) <= set(names["streams"])


def test_the_file_has_every_key_the_cli_writes(auth_fleet: AuthFleet, tmp_path: Path) -> None:
    ctx = saved(auth_fleet, "cto", tmp_path)
    assert list(ctx) == [
        "description",
        "url",
        "token",
        "user",
        "password",
        "creds",
        "nkey",
        "cert",
        "key",
        "ca",
        "nsc",
        "jetstream_domain",
        "jetstream_api_prefix",
        "jetstream_event_prefix",
        "inbox_prefix",
        "user_jwt",
        "tls_first",
    ]
    assert ctx["password"] == auth_fleet.credentials["cto"].password
    assert (ctx["nkey"], ctx["creds"], ctx["ca"], ctx["tls_first"]) == ("", "", "", False)


def test_it_is_private_where_the_cli_looks(auth_fleet: AuthFleet, tmp_path: Path) -> None:
    saved(auth_fleet, "cso", tmp_path)
    path = tmp_path / "nats" / "context" / "cso.json"
    assert path == context_path(tmp_path, "cso")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("name", ["", "../escape", "a/b"])
def test_a_name_the_cli_cannot_load_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(FleetbusError, match="cannot name a nats context"):
        context_path(tmp_path, name)
