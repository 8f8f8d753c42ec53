#!/usr/bin/env python3
"""Resources, prompts, completion and logging of Nexus Hub through the official MCP Python
SDK (`pip install mcp`), in both eras (a legacy `initialize` session and stateless
`discover`).

    python3 resources_prompts.py <mcp-url> <token>

The token must read zone eng holding notes/guide.md ("# Guide\\nhello\\n"), many/ and
bin/x.bin (not UTF-8), as hub-cli/tests/mcp_resources.rs seeds it. Prints `ok: <era>` for
each era; any failure prints one line and exits 1.
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_mcp_sdk import open_transport  # noqa: E402

from mcp import ClientSession  # noqa: E402
from mcp import types  # noqa: E402


async def list_resources(session: ClientSession, cursor):
    """One page: SDK 2.x takes `params`, 1.x a `cursor`."""
    if not cursor:
        return await session.list_resources()
    try:
        return await session.list_resources(params=types.PaginatedRequestParams(cursor=cursor))
    except TypeError:
        return await session.list_resources(cursor=cursor)


async def exercise(url: str, token: str, era: str) -> None:
    async with open_transport(url, token) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            if era == "initialize":
                await session.initialize()
            else:
                await session.discover()

            uris: list[str] = []
            cursor = None
            for _ in range(50):
                page = await list_resources(session, cursor)
                uris += [str(r.uri) for r in page.resources]
                cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
                if not cursor:
                    break
            assert "nexus://files/notes/guide.md" in uris, f"{era}: {uris[:5]}"
            assert len(uris) == len(set(uris)), f"{era}: duplicates"

            r = await session.read_resource("nexus://files/notes/guide.md")
            first = r.contents[0]
            assert getattr(first, "text", None) == "# Guide\nhello\n", f"{era}: {first}"
            b = await session.read_resource("nexus://files/bin/x.bin")
            blob = getattr(b.contents[0], "blob", None)
            assert blob and base64.b64decode(blob) == b"\xff\xfe\x00\x01", f"{era}: {b.contents[0]}"

            templates = await session.list_resource_templates()
            listed = getattr(templates, "resource_templates", None) or getattr(templates, "resourceTemplates")
            got = [getattr(t, "uri_template", None) or getattr(t, "uriTemplate", None) for t in listed]
            assert got == ["nexus://files/{path}"], f"{era}: {got}"

            prompts = await session.list_prompts()
            names = sorted(p.name for p in prompts.prompts)
            assert names == ["file_analysis_prompt", "search_and_summarize_prompt"], f"{era}: {names}"
            p = await session.get_prompt("search_and_summarize_prompt", {"query": "rate limits"})
            assert "rate limits" in p.messages[0].content.text, f"{era}: {p}"

            c = await session.complete(
                types.ResourceTemplateReference(type="ref/resource", uri="nexus://files/{path}"),
                {"name": "path", "value": "notes/g"},
            )
            assert c.completion.values == ["notes/guide.md"], f"{era}: {c.completion}"
            c = await session.complete(
                types.ResourceTemplateReference(type="ref/resource", uri="nexus://files/{path}"),
                {"name": "path", "value": "../"},
            )
            assert c.completion.values == [], f"{era}: ../ completed to {c.completion.values}"

            if era == "initialize":
                await session.set_logging_level("info")
    print(f"ok: {era}")


async def main() -> None:
    url, token = sys.argv[1], sys.argv[2]
    for era in ("initialize", "discover"):
        await asyncio.wait_for(exercise(url, token, era), 60)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"fail: {e}")
        sys.exit(1)
