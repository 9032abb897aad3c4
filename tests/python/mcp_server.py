"""An MCP server built with the official MCP Python SDK (FastMCP, Streamable HTTP) for aigate's
tests (tests/support/mcp_server.rs starts it). It serves a few GitHub-like tools, one that
streams log and progress notifications before its result and one that holds its answer until
the test releases it, and records every HTTP request it receives (method, headers, body) as a
JSON line in $RECORD, so tests can read what reached the server (a request whose body never
arrived complete is recorded as `{"incomplete": true}` and not processed).

Environment: PORT, RECORD, and optionally TLS_CERT/TLS_KEY (https), JSON=1 (JSON answers instead
of SSE), STATELESS=1, EVENTS=1 (an event store: resumable streams), HOLD_FILE (the `hold` tool
waits until this file exists), EXTRA_TOOLS=N (that many more tools, for big lists).
"""

import asyncio
import json
import os

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from mcp.server.transport_security import TransportSecuritySettings

PORT = int(os.environ["PORT"])
RECORD = os.environ["RECORD"]
HOLD_FILE = os.environ.get("HOLD_FILE", "")

event_store = None
if os.environ.get("EVENTS") == "1":
    from mcp.server.streamable_http import EventMessage, EventStore

    class MemoryEvents(EventStore):
        """Keeps every event so a GET with Last-Event-ID can replay a stream."""

        def __init__(self):
            self.events = []

        async def store_event(self, stream_id, message):
            event_id = str(len(self.events) + 1)
            self.events.append((event_id, stream_id, message))
            return event_id

        async def replay_events_after(self, last_event_id, send_callback):
            stream = next((s for e, s, _ in self.events if e == last_event_id), None)
            if stream is None:
                return None
            after = False
            for e, s, m in self.events:
                if after and s == stream and m is not None:
                    await send_callback(EventMessage(m, e))
                if e == last_event_id:
                    after = True
            return stream

    event_store = MemoryEvents()

mcp = FastMCP(
    "aigate-test-server",
    host="127.0.0.1",
    port=PORT,
    streamable_http_path="/mcp/",
    json_response=os.environ.get("JSON") == "1",
    stateless_http=os.environ.get("STATELESS") == "1",
    event_store=event_store,
    # The gateway reaches it as api.githubcopilot.com (upstream_resolve): that Host is expected.
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
)


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
async def echo(text: str, ctx: Context) -> str:
    """Echo text back (a log notification first)."""
    await ctx.info(f"echoing {len(text)} chars")
    return text


@mcp.tool()
async def progress(steps: int, ctx: Context) -> str:
    """Report progress `steps` times, then answer."""
    for i in range(steps):
        await ctx.report_progress(i + 1, steps)
        await asyncio.sleep(0.05)
    return f"done after {steps} steps"


@mcp.tool()
async def hold(ctx: Context) -> str:
    """Send a notification, then hold the answer until HOLD_FILE exists."""
    await ctx.info("holding")
    for _ in range(600):
        if HOLD_FILE and os.path.exists(HOLD_FILE):
            break
        await asyncio.sleep(0.05)
    return "released"


@mcp.tool()
def whoami(ctx: Context) -> str:
    """Tell which credential reached the server (a server echoing what it should not)."""
    request = ctx.request_context.request
    return "authorization: " + (request.headers.get("authorization", "") if request is not None else "")


@mcp.tool()
def search_code(query: str) -> str:
    """Search code."""
    return f"results for {query}"


@mcp.tool()
def get_issue(number: int) -> str:
    """Get an issue."""
    return f"issue {number}"


@mcp.tool()
def create_pull_request(title: str) -> str:
    """Open a pull request."""
    return f"opened {title}"


@mcp.tool()
def delete_repository(name: str) -> str:
    """Delete a repository (nobody should be allowed this)."""
    return f"deleted {name}"


for n in range(int(os.environ.get("EXTRA_TOOLS", "0"))):

    def make(n):
        def extra(x: str = "") -> str:
            return f"extra {n}"

        extra.__name__ = f"extra_{n:03d}"
        extra.__doc__ = f"Extra tool number {n} " + "padding " * 20
        return extra

    mcp.tool()(make(n))


def recording(app):
    """ASGI middleware: append each request (method, path, headers, body) to RECORD."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        chunks = []
        more = True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                # The sender never finished the body: nothing is processed (recorded as such).
                with open(RECORD, "a") as f:
                    f.write(json.dumps({"incomplete": True, "path": scope["path"]}) + "\n")
                return
            chunks.append(msg.get("body", b""))
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        line = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode(),
            "headers": {k.decode().lower(): v.decode() for k, v in scope["headers"]},
            "body": body.decode("utf-8", "replace"),
        }
        with open(RECORD, "a") as f:
            f.write(json.dumps(line) + "\n")
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return wrapped


if __name__ == "__main__":
    app = recording(mcp.streamable_http_app())
    tls = {}
    if os.environ.get("TLS_CERT"):
        tls = {"ssl_certfile": os.environ["TLS_CERT"], "ssl_keyfile": os.environ["TLS_KEY"]}
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning", **tls)
