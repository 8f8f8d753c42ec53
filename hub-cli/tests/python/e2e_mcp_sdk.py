#!/usr/bin/env python3
"""Nexus Hub against the official MCP Python SDK (`pip install mcp`).

    python3 e2e_mcp_sdk.py <mcp-url> <token>
    NEXUS_MCP_URL=… NEXUS_API_KEY=… python3 e2e_mcp_sdk.py

With a single-zone token: initialize, list_tools (nexus_read_file is there), write a file
and read it back; with a wrong token the hub refuses with HTTP 401. Where the SDK also
speaks the stateless 2026 era (`ClientSession.discover`), the same is done there.
Exit 0 when every check passes; any failure prints one line and exits 1.

Works with SDK 1.x (`streamablehttp_client(url, headers=…)`) and 2.x
(`streamable_http_client(url, http_client=…)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid

try:
    import mcp  # noqa: F401
    from mcp import ClientSession
except ImportError:
    print("error: the MCP Python SDK is missing: run `python3 -m pip install mcp`", file=sys.stderr)
    sys.exit(2)


def open_transport(url: str, token: str, statuses: list[int] | None = None):
    """The SDK's streamable-HTTP client with an Authorization header, 1.x or 2.x.

    HTTP statuses of the responses are appended to `statuses` (the SDK itself turns a 401
    into a generic error).
    """
    headers = {"Authorization": f"Bearer {token}"}

    async def record(response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    def with_hook(client):
        client.event_hooks = {"request": [], "response": [record]}
        return client

    try:
        from mcp.client.streamable_http import streamablehttp_client  # SDK 1.x
        from mcp.shared._httpx_utils import create_mcp_http_client

        def factory(headers=None, timeout=None, auth=None):
            return with_hook(create_mcp_http_client(headers=headers, timeout=timeout, auth=auth))

        return streamablehttp_client(url, headers=headers, httpx_client_factory=factory)
    except ImportError:
        pass
    from mcp.client.streamable_http import streamable_http_client  # SDK 2.x
    from mcp.shared._httpx_utils import create_mcp_http_client

    @contextlib.asynccontextmanager
    async def transport():
        async with with_hook(create_mcp_http_client(headers=headers)) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams

    return transport()


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def is_error(result) -> bool:
    return bool(getattr(result, "is_error", None) or getattr(result, "isError", None))


async def exercise(url: str, token: str, era: str, statuses: list[int] | None = None) -> None:
    async with open_transport(url, token, statuses) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            if era == "initialize":
                await session.initialize()
            else:
                await session.discover()

            tools = await session.list_tools()
            names = {t.name for t in tools.tools}
            assert "nexus_read_file" in names, f"{era}: tools/list lacks nexus_read_file: {sorted(names)}"
            assert not any(n.startswith("nexus_hub_") for n in names), f"{era}: admin tools listed"

            path = f"/python-sdk/{era}-{uuid.uuid4().hex[:8]}.md"
            content = f"written by the MCP Python SDK ({era})\nline two\n"
            w = await session.call_tool("nexus_write_file", {"path": path, "content": content})
            assert not is_error(w), f"{era}: write failed: {text_of(w)}"
            r = await session.call_tool("nexus_read_file", {"path": path})
            assert not is_error(r), f"{era}: read failed: {text_of(r)}"
            assert text_of(r) == content, f"{era}: read back {text_of(r)!r}, wrote {content!r}"

            e = await session.call_tool("nexus_read_file", {"path": "/python-sdk/missing.md"})
            assert is_error(e), f"{era}: reading a missing file should be a tool error"


def mentions_401(exc: BaseException) -> bool:
    """Whether an exception (group) carries an HTTP 401 anywhere inside."""
    seen = [exc]
    while seen:
        e = seen.pop()
        if e is None:
            continue
        if "401" in str(e) or "unauthorized" in str(e).lower():
            return True
        response = getattr(e, "response", None)
        if getattr(response, "status_code", None) == 401:
            return True
        if getattr(getattr(e, "error", None), "code", None) == 401:
            return True
        seen.extend(getattr(e, "exceptions", []) or [])
        seen.append(e.__cause__)
        seen.append(e.__context__)
    return False


async def bad_token_is_refused(url: str, era: str) -> None:
    bad = "sk-" + "A" * 43
    statuses: list[int] = []
    try:
        await asyncio.wait_for(exercise(url, bad, era, statuses), 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"{era}: a bad token hung instead of getting HTTP 401") from None
    except BaseException as e:  # noqa: BLE001 - the SDK raises exception groups
        if isinstance(e, AssertionError):
            raise
        assert 401 in statuses or mentions_401(e), (
            f"{era}: a bad token failed, but not with HTTP 401 (statuses {statuses}): {e!r}"
        )
        assert not any(200 <= s < 300 for s in statuses), f"{era}: a bad token got {statuses}"
        return
    raise AssertionError(f"{era}: a bad token was accepted")


async def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NEXUS_MCP_URL", "")
    token = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("NEXUS_API_KEY", "")
    if not url or not token:
        print("usage: e2e_mcp_sdk.py <mcp-url> <token>  (or NEXUS_MCP_URL, NEXUS_API_KEY)", file=sys.stderr)
        return 2
    eras = ["initialize"]
    if hasattr(ClientSession, "discover"):
        eras.append("discover")
    for era in eras:
        await asyncio.wait_for(exercise(url, token, era), 30)
        await bad_token_is_refused(url, era)
        print(f"ok: {era}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except AssertionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
