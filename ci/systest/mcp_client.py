"""MCP system test client: drives hearthd's /mcp with the official MCP Python SDK.

Usage: mcp_client.py BASE_URL BEARER_TOKEN READ_TOKEN

Connects over Streamable HTTP (initialize handshake), lists tools (checking the
readOnlyHint/destructiveHint annotations), calls server.info, reads and subscribes to
hearth:///public, changes the state through JSON-RPC (db.put.ui) and waits for
notifications/resources/updated. Then connects with a read-scoped token: it sees only
read-only tools and a mutating call is refused. Exits non-zero on any failure, printing
what went wrong.
"""

from __future__ import annotations

import json
import sys
import urllib.request
import warnings

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

# resources/subscribe is the 2025-era API this server implements on purpose.
warnings.simplefilter("ignore", MCPDeprecationWarning)

NOTIFY_TIMEOUT_S = 10


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def rpc(base: str, token: str, method: str, params: dict) -> dict:
    """One JSON-RPC call to /rpc/v1 (blocking; run in a worker thread)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).encode()
    req = urllib.request.Request(
        f"{base}/rpc/v1",
        data=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        reply = json.load(resp)
    check("error" not in reply, f"{method} failed: {reply}")
    return reply


async def main(base: str, token: str, read_token: str) -> None:
    updated: list[str] = []
    got_update = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(message.params.uri)
            got_update.set()
        elif isinstance(message, Exception):
            print(f"transport error: {message!r}", file=sys.stderr)

    # The SDK's own defaults: 30 s to connect/write, 300 s of read for SSE streams.
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30, read=300),
    )
    async with http:
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, mode="legacy", message_handler=on_message) as client:
            version = client.session.protocol_version
            check(version in ("2025-03-26", "2025-06-18"), f"negotiated protocol {version}")
            print(f"connected, protocol {version}")

            tools = await client.list_tools()
            names = {t.name for t in tools.tools}
            check("server.info" in names, f"server.info missing from tools: {sorted(names)}")
            check("auth.login" not in names, "auth.login must not be a tool")
            check(not any(n.startswith("setup.") for n in names), "setup.* must not be tools")
            info_tool = next(t for t in tools.tools if t.name == "server.info")
            check(info_tool.input_schema.get("type") == "object", "server.info has no object schema")
            by_name = {t.name: t for t in tools.tools}
            for name in ("package.uninstall", "package.stop", "server.shutdown", "auth.token.revoke"):
                a = by_name[name].annotations
                check(a is not None and a.destructive_hint is True, f"{name} not marked destructive: {a}")
                check(a.read_only_hint is False, f"{name} marked read-only")
            a = info_tool.annotations
            check(a is not None and a.read_only_hint is True, f"server.info not read-only: {a}")
            check(a.destructive_hint is False, "server.info marked destructive")
            print(f"{len(names)} tools, annotated")

            result = await client.call_tool("server.info", {})
            check(not result.is_error, f"server.info failed: {result.content}")
            text = result.content[0].text  # type: ignore[union-attr]
            info = json.loads(text)
            check(isinstance(info, dict) and info, f"server.info returned {text!r}")
            print(f"server.info: {sorted(info)}")

            bad = await client.call_tool("server.echo", {"message": 5})
            check(bool(bad.is_error), "a failing call must be an isError result")

            resources = await client.list_resources()
            uris = {r.uri for r in resources.resources}
            check("hearth:///public" in uris, f"hearth:///public not listed: {uris}")
            read = await client.read_resource("hearth:///public")
            public = json.loads(read.contents[0].text)  # type: ignore[union-attr]
            check(isinstance(public, dict), "hearth:///public is not a JSON object")

            await client.subscribe_resource("hearth:///public")
            marker = f"mcp-systest-{anyio.current_time()}"
            await anyio.to_thread.run_sync(
                rpc, base, token, "db.put.ui", {"pointer": "/mcpSystest", "value": marker}
            )
            with anyio.fail_after(NOTIFY_TIMEOUT_S):
                await got_update.wait()
            check("hearth:///public" in updated, f"updates for {updated}")
            read = await client.read_resource("hearth:///public/ui/mcpSystest")
            check(json.loads(read.contents[0].text) == marker, "the update is not readable")  # type: ignore[union-attr]
            print(f"notified: {updated}")
    await read_only(base, read_token, len(names))
    print("MCP client test passed")


async def read_only(base: str, read_token: str, all_tools: int) -> None:
    """A read-scoped token sees only read-only tools and cannot call the others."""
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {read_token}"},
        timeout=httpx2.Timeout(30, read=300),
    )
    async with http:
        transport = streamable_http_client(f"{base}/mcp", http_client=http)
        async with Client(transport, mode="legacy") as client:
            tools = await client.list_tools()
            names = {t.name for t in tools.tools}
            check("server.info" in names, f"read token cannot see server.info: {sorted(names)}")
            check(len(names) < all_tools, "read token sees every tool")
            for t in tools.tools:
                a = t.annotations
                check(a is not None and a.read_only_hint is True, f"read token sees {t.name}")
            result = await client.call_tool("db.put.ui", {"pointer": "/x", "value": 1})
            check(bool(result.is_error), "a read token's mutating call must fail")
            text = " ".join(getattr(c, "text", "") for c in result.content)
            check("scope" in text, f"refusal does not say why: {text}")
            result = await client.call_tool("server.info", {})
            check(not result.is_error, f"read token server.info failed: {result.content}")
            print(f"read token: {len(names)} read-only tools, mutation refused")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    try:
        anyio.run(main, sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3])
    except Exception as e:  # noqa: BLE001 - report any failure as the test result
        print(f"MCP client test FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
