"""A third-party MCP client for crates/steward-cli/tests/mcp.rs: the official Python SDK (PyPI `mcp`).

Connects to a Steward MCP server, either `steward mcp` over stdio (the command after `--`; every
STEWARD_* variable and HOME/XDG_* of this process is passed to it) or the streamable HTTP endpoint
(`--http URL --header 'Name: value'`), then: the lifecycle (`initialize`, or `server/discover`
with `--lifecycle discover`), `tools/list`, and one `tools/call` per `--call NAME JSON_ARGS`.
Prints one JSON object on stdout:

  {"protocol_version", "server_name", "instructions",
   "tools": [{"name", "annotations": {...}, "input_schema_type"}],
   "calls": [{"name", "is_error", "text"} | {"name", "protocol_error": {"code", "message"}}]}

The server's stderr passes through to this process's stderr.
"""

import argparse
import asyncio
import json
import os
import sys

import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--http", metavar="URL", help="streamable HTTP endpoint instead of a stdio command")
    p.add_argument("--header", action="append", default=[], help="'Name: value' sent on every HTTP request")
    p.add_argument("--lifecycle", choices=["initialize", "discover"], default="initialize")
    p.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    p.add_argument("command", nargs="*", help="the stdio server command (after --)")
    args = p.parse_args()
    if bool(args.http) == bool(args.command):
        p.error("give either --http URL or a command after --")
    return args


async def exercise(session: ClientSession, args: argparse.Namespace) -> dict:
    if args.lifecycle == "discover":
        result = await session.discover()
        protocol_version = session.protocol_version
    else:
        result = await session.initialize()
        protocol_version = result.protocol_version
    out = {
        "protocol_version": protocol_version,
        "server_name": session.server_info.name if session.server_info else None,
        "instructions": result.instructions,
        "tools": [],
        "calls": [],
    }
    listed = await session.list_tools()
    for tool in listed.tools:
        annotations = tool.annotations.model_dump(by_alias=True, exclude_none=True) if tool.annotations else {}
        out["tools"].append({"name": tool.name, "annotations": annotations, "input_schema_type": tool.input_schema.get("type")})
    for name, raw in args.call:
        try:
            called = await session.call_tool(name, json.loads(raw))
        except MCPError as e:
            out["calls"].append({"name": name, "protocol_error": {"code": e.error.code, "message": e.error.message}})
            continue
        text = "".join(c.text for c in called.content if getattr(c, "type", None) == "text")
        out["calls"].append({"name": name, "is_error": bool(called.is_error), "text": text})
    return out


async def main() -> None:
    args = parse_args()
    if args.http:
        headers = {}
        for h in args.header:
            name, _, value = h.partition(":")
            headers[name.strip()] = value.strip()
        async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=120)) as http:
            async with streamable_http_client(args.http, http_client=http) as (read, write):
                async with ClientSession(read, write) as session:
                    out = await exercise(session, args)
    else:
        passed = ("STEWARD_", "XDG_")
        env = {k: v for k, v in os.environ.items() if k.startswith(passed) or k == "HOME"}
        params = StdioServerParameters(command=args.command[0], args=args.command[1:], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write) as session:
                out = await exercise(session, args)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
