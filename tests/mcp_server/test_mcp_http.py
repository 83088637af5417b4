"""``fleetbus mcp --transport http``: streamable HTTP on loopback, a bearer token when asked."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx2
import pytest

from fleetbus import Message
from fleetbus.testing.fleets import FleetUnderTest

from .support import (
    ROLE_TOOLS,
    call,
    http_server,
    http_session,
    refused,
    role_enum,
    tools_of,
    write_fleet,
)

pytestmark = pytest.mark.slow


async def test_a_host_works_as_backend_over_http_with_a_token(
    fleet: FleetUnderTest, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETBUS_")}
    env.update(
        FLEETBUS_FLEET=str(write_fleet(fleet.spec, tmp_path / "fleet.yaml")),
        FLEETBUS_URL=fleet.url,
        FLEETBUS_MCP_TOKEN="s3cret-token",
    )
    got: asyncio.Queue[Message] = asyncio.Queue()
    cto = fleet.agent("cto")

    @cto.on_message
    async def note(message: Message) -> None:
        got.put_nowait(message)

    async with cto, http_server("backend", env, tmp_path / "mcp.log") as url:
        assert url.startswith("http://127.0.0.1:")
        async with httpx2.AsyncClient() as anyone:
            response = await anyone.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert response.status_code == 401

        async with http_session(url, token="s3cret-token") as session:
            tools = await tools_of(session)
            assert set(tools) == ROLE_TOOLS
            assert role_enum(tools["assign_task"]) == ["cto", "devops", "cso"]
            stored = await call(session, "send_message", role="cto", body={"status": "green"})
            assert stored["stored"] is True
            message = await asyncio.wait_for(got.get(), 15)
            assert (message.body, message.sender, message.sender_verified) == (
                {"status": "green"},
                "backend",
                True,
            )
            text = await refused(session, "assign_task", role="ceo", body={})
            assert "not in backend's send_to" in text
