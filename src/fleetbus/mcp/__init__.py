"""``fleetbus mcp``: an MCP server through which an LLM host (Claude Desktop, Claude Code,
Cursor) joins a fleet as one role, with that role's credentials and nothing more.

- ``reach``: what the identity may do, read from the fleet file (pure);
- ``calls``: every call into fleetbus, one method per tool or resource;
- ``inbox``: the role's inbox read for a host, at least once;
- ``tools``: the declarative tool table;
- ``server``: the SDK's server, the resources, stdio and streamable HTTP.

Needs the ``mcp`` extra (``pip install 'fleetbus[mcp]'``). docs/mcp.md has the whole story.
"""

from fleetbus.mcp.server import build_server, serve

__all__ = ["build_server", "serve"]
