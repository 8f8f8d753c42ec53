#!/usr/bin/env python3
"""Resource subscriptions of Nexus Hub through the official MCP Python SDK (`pip install mcp`),
in a legacy session: `resources/subscribe`, a change told by `notifications/resources/updated`,
`resources/unsubscribe`, and nothing told after it. With `--listen`, the 2026-07-28 era
instead (SDK 2.x): `Client.listen` on the path's URI, acknowledged with it honored, told of an
edit, and not of a write to another file.

    python3 subscriptions.py <mcp-url> <token> <path> [--listen]

The token must read and write <path> (a file path as the tools take it). Prints `ok: told`
then `ok: quiet`; any failure prints one line and exits 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_mcp_sdk import open_transport  # noqa: E402

from mcp import ClientSession  # noqa: E402
from mcp import types  # noqa: E402

# The SDK warns that resources/subscribe is legacy-only: that is the era tested here.
warnings.simplefilter("ignore")


async def run(url: str, token: str, path: str) -> None:
    uri = "nexus://files/" + path.lstrip("/")
    told: asyncio.Queue[str] = asyncio.Queue()

    async def on_message(m) -> None:
        n = getattr(m, "root", m)
        if isinstance(n, types.ResourceUpdatedNotification):
            await told.put(str(n.params.uri))

    async with open_transport(url, token) as streams:
        async with ClientSession(streams[0], streams[1], message_handler=on_message) as s:
            init = await s.initialize()
            resources = init.capabilities.resources
            assert resources is not None and resources.subscribe, f"no subscribe capability: {init.capabilities}"
            await s.call_tool("nexus_write_file", {"path": path, "content": "v1\n"})
            await s.subscribe_resource(uri)
            await s.call_tool("nexus_edit_file", {"path": path, "edits": [{"old_str": "v1", "new_str": "v2"}]})
            got = await asyncio.wait_for(told.get(), 20)
            assert got == uri, f"told {got}, subscribed {uri}"
            print("ok: told")
            await s.unsubscribe_resource(uri)
            await s.call_tool("nexus_write_file", {"path": path, "content": "v3\n"})
            # A later subscription's notification is the sentinel: nothing may come before it.
            sentinel = path + ".sentinel"
            await s.call_tool("nexus_write_file", {"path": sentinel, "content": "s\n"})
            await s.subscribe_resource("nexus://files/" + sentinel.lstrip("/"))
            await s.call_tool("nexus_write_file", {"path": sentinel, "content": "s2\n"})
            got = await asyncio.wait_for(told.get(), 20)
            assert got.endswith(".sentinel"), f"told {got} after unsubscribing"
            print("ok: quiet")


async def listen(url: str, token: str, path: str) -> None:
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    uri = "nexus://files/" + path.lstrip("/")
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
            assert c.protocol_version == "2026-07-28", c.protocol_version
            await c.call_tool("nexus_write_file", {"path": path, "content": "v1\n"})
            async with c.listen(resource_subscriptions=[uri]) as sub:
                assert list(sub.honored.resource_subscriptions or []) == [uri], f"honored: {sub.honored}"
                await c.call_tool("nexus_edit_file", {"path": path, "edits": [{"old_str": "v1", "new_str": "v2"}]})
                got = await asyncio.wait_for(sub.__anext__(), 20)
                assert getattr(got, "uri", None) == uri, f"told {got}, listening to {uri}"
                print("ok: told")
                # Another file changes, then the watched one: only the watched one is told.
                await c.call_tool("nexus_write_file", {"path": path + ".other", "content": "o\n"})
                await c.call_tool("nexus_write_file", {"path": path, "content": "v3\n"})
                got = await asyncio.wait_for(sub.__anext__(), 20)
                assert getattr(got, "uri", None) == uri, f"told {got} of a file not listened to"
                print("ok: quiet")


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--listen"]
    if len(args) != 3:
        print(__doc__)
        return 2
    try:
        asyncio.run((listen if "--listen" in sys.argv else run)(*args))
    except Exception as e:  # one line for the Rust test's message
        print(f"FAILED: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
