"""A role's MCP server can do nothing its credentials cannot.

The MCP server offers tools from the fleet file it reads; the NATS server enforces the one it
was configured from. A host (or a prompt-injected model, or whoever edited the file the MCP
server reads) that reaches past what is offered meets the credentials: the server's refusal
comes back as a tool error, and nothing is stored.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_server.support import call, refused, role_enum, stdio_session, tools_of, write_fleet

from .support import AuthFleet, client, stored_on

pytestmark = pytest.mark.slow


def _env(fleet: AuthFleet, role: str, fleet_file: Path) -> dict[str, str]:
    cred = fleet.credentials[role]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env.update(
        FLEETBUS_URL=fleet.url,
        FLEETBUS_USER=cred.user,
        FLEETBUS_PASSWORD=cred.password,
        FLEETBUS_FLEET=str(fleet_file),
    )
    return env


async def test_a_send_outside_send_to_is_refused_by_the_server_and_nothing_is_stored(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    spec = auth_fleet.spec
    # The file this MCP server reads says backend may send to ceo; the server's says not.
    backend = spec.roles["backend"]
    widened = spec.model_copy(
        update={
            "roles": {
                **spec.roles,
                "backend": backend.model_copy(update={"send_to": [*backend.send_to, "ceo"]}),
            }
        }
    )
    env = _env(auth_fleet, "backend", write_fleet(widened, tmp_path / "fleet.yaml"))
    ceo_inbox = spec.subjects.inbox("ceo", "backend")
    ceo_tasks = spec.subjects.tasks("ceo", "backend")

    async with stdio_session("backend", env, tmp_path / "mcp.log") as session:
        assert "ceo" in role_enum((await tools_of(session))["send_message"])

        text = await refused(session, "send_message", role="ceo", body={"deploy": "now"})
        assert text.startswith("send_message failed: permission denied by the NATS server")
        text = await refused(session, "assign_task", role="ceo", body={"title": "x"})
        assert "permission denied by the NATS server" in text
        assert await stored_on(auth_fleet, ceo_inbox) == 0
        assert await stored_on(auth_fleet, ceo_tasks) == 0

        # What the credentials do allow still works, through the same server.
        await call(session, "send_message", role="cto", body={"status": "green"})
        assert await stored_on(auth_fleet, spec.subjects.inbox("cto", "backend")) == 1
        async with client(auth_fleet, "cto") as cto:
            await cto.message("backend", {"review": 143})
        read = await call(session, "read_inbox", wait=5)
        assert [(m["from"], m["from_verified"], m["body"]) for m in read["messages"]] == [
            ("cto", True, {"review": 143})
        ]


def test_a_server_for_one_role_refuses_another_roles_credentials(
    auth_fleet: AuthFleet, tmp_path: Path
) -> None:
    env = _env(auth_fleet, "backend", write_fleet(auth_fleet.spec, tmp_path / "fleet.yaml"))
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", "mcp", "--role", "cto"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "the credentials given are backend's, not cto's" in done.stderr
    assert done.stdout == ""  # stdout belongs to the protocol
