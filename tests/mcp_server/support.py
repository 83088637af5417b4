"""Driving ``fleetbus mcp`` as a host does: the command in a subprocess, the official SDK's
client session over its stdio or its streamable HTTP endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import yaml
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from fleetbus.fleet import FleetSpec
from fleetbus.testing import eventually

MCP = [sys.executable, "-m", "fleetbus", "mcp"]
ROLE_TOOLS = {
    "assign_task",
    "get_task",
    "wait_task",
    "cancel_task",
    "respond_task",
    "list_tasks",
    "list_agents",
    "ask",
    "send_message",
    "emit_event",
    "read_inbox",
    "fleet_status",
}
"""What a role of the seed fleet with send_to, publish grants and an inbox is offered."""


def write_fleet(spec: FleetSpec, path: Path) -> Path:
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")))
    return path


@asynccontextmanager
async def stdio_session(
    role: str, env: Mapping[str, str], log: Path
) -> AsyncIterator[ClientSession]:
    """``fleetbus mcp --role ROLE`` started by the client, as Claude Desktop starts it."""
    params = StdioServerParameters(command=MCP[0], args=[*MCP[1:], "--role", role], env=dict(env))
    with log.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


@asynccontextmanager
async def http_server(
    role: str, env: Mapping[str, str], log: Path, *args: str
) -> AsyncIterator[str]:
    """``fleetbus mcp --role ROLE --transport http --port 0``; yields its URL once it serves."""
    with log.open("w") as errlog:
        proc = await asyncio.create_subprocess_exec(
            *MCP,
            *("--role", role, "--transport", "http", "--port", "0", *args),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errlog,
        )
    try:
        found: list[str] = []

        def announced() -> bool:
            assert proc.returncode is None, _read(log)
            found.extend(re.findall(r"on (http://\S+/mcp)", _read(log)))
            return bool(found)

        await eventually(announced, timeout=20, what="the MCP server to serve")
        yield found[0]
    finally:
        if proc.returncode is None:
            proc.terminate()
        async with asyncio.timeout(15):
            code = await proc.wait()
        assert code == 0, _read(log)  # a clean stop: SIGTERM shuts it down, exit 0


@asynccontextmanager
async def http_session(url: str, token: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def tools_of(session: ClientSession) -> dict[str, types.Tool]:
    return {t.name: t for t in (await session.list_tools()).tools}


def role_enum(tool: types.Tool) -> list[str]:
    role = tool.input_schema["properties"]["role"]
    branch = next((b for b in role.get("anyOf", []) if b.get("type") == "string"), role)
    return list(branch["enum"])


async def call(session: ClientSession, name: str, **arguments: Any) -> dict[str, Any]:
    """A tool call that must succeed; its structured result."""
    result = await session.call_tool(name, arguments)
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(session: ClientSession, name: str, **arguments: Any) -> str:
    """A tool call that must fail as a tool error; its text."""
    result = await session.call_tool(name, arguments)
    assert result.is_error, _text(result)
    return _text(result)


async def read(session: ClientSession, uri: str) -> Any:
    contents = (await session.read_resource(uri)).contents
    text = contents[0]
    assert isinstance(text, types.TextResourceContents)
    return json.loads(text.text)


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def _read(log: Path) -> str:
    return log.read_text()
