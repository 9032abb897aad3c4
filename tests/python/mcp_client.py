"""The official MCP Python SDK's Streamable HTTP client, driven through aigate by its tests
(tests/mcp_sdk.rs). Works with mcp 1.x (httpx, FastMCP era) and 2.x (httpx2). Prints one JSON
object with what the client saw.

Environment: URL (the gateway's MCP endpoint), KEY (the consumer's apikey), TOKEN (an
Authorization the client sends itself, to show the gateway drops it), CALLS (JSON list of
[tool, arguments]), AUTO=1 (2.x only: the high-level Client in mode 'auto', which probes the
2026-07-28 server/discover first and falls back to initialize).
"""

import asyncio
import json
import os
import sys

import mcp
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

MAJOR = int(mcp.__version__.split(".")[0]) if hasattr(mcp, "__version__") else None
if MAJOR is None:
    from importlib.metadata import version

    MAJOR = int(version("mcp").split(".")[0])

if MAJOR >= 2:
    import httpx2 as httpx
    from mcp.shared.exceptions import MCPError as RpcErr
else:
    import httpx
    from mcp.shared.exceptions import McpError as RpcErr

URL = os.environ["URL"]
HEADERS = {"apikey": os.environ["KEY"]}
if os.environ.get("TOKEN"):
    HEADERS["Authorization"] = "Bearer " + os.environ["TOKEN"]
CALLS = json.loads(os.environ.get("CALLS", "[]"))
out = {"major": MAJOR, "calls": [], "logs": [], "progress": []}


def field(obj, *names):
    for n in names:
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def error_of(e):
    err = getattr(e, "error", None)
    code = field(err, "code") if err is not None else field(e, "code")
    message = field(err, "message") if err is not None else str(e)
    return {"error": {"code": code, "message": message}}


async def logging_callback(params):
    out["logs"].append(str(field(params, "data")))


async def progress_callback(progress, total, message):
    out["progress"].append(progress)


async def run_session(session):
    init = await session.initialize()
    out["protocol"] = field(init, "protocolVersion", "protocol_version")
    await exercise(session)


async def exercise(session):
    tools = await session.list_tools()
    out["tools"] = sorted(t.name for t in tools.tools)
    for name, args in CALLS:
        try:
            r = await session.call_tool(name, args, progress_callback=progress_callback)
            texts = [c.text for c in r.content if hasattr(c, "text")]
            out["calls"].append({"tool": name, "is_error": field(r, "isError", "is_error"), "text": texts})
        except RpcErr as e:
            out["calls"].append({"tool": name, **error_of(e)})
    # A notification the client sends on its own.
    await session.send_roots_list_changed()
    out["ping"] = (await session.send_ping()) is not None


async def main():
    http = httpx.AsyncClient(headers=HEADERS, timeout=httpx.Timeout(30, read=60))
    async with http:
        if os.environ.get("AUTO") == "1":
            from mcp import Client

            async with Client(streamable_http_client(URL, http_client=http), logging_callback=logging_callback) as c:
                out["protocol"] = c.protocol_version
                await exercise(c.session if hasattr(c, "session") else c)
        elif MAJOR >= 2:
            async with streamable_http_client(URL, http_client=http) as (read, write):
                async with ClientSession(read, write, logging_callback=logging_callback) as session:
                    await run_session(session)
        else:
            async with streamable_http_client(URL, http_client=http) as (read, write, session_id):
                async with ClientSession(read, write, logging_callback=logging_callback) as session:
                    await run_session(session)
                    out["session_id"] = session_id()
    out["closed"] = True


try:
    asyncio.run(main())
except BaseException as e:  # the 1.x client tears its session down on a 4xx: say so
    def describe(e):
        inner = getattr(e, "exceptions", None)
        if inner:
            return type(e).__name__ + "[" + "; ".join(describe(x) for x in inner) + "]"
        return type(e).__name__ + ": " + str(e)[:300]

    out["crashed"] = describe(e)
print(json.dumps(out))
sys.stdout.flush()
