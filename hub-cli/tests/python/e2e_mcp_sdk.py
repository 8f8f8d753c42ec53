#!/usr/bin/env python3
"""Nexus Hub against the official MCP Python SDK (`pip install mcp`).

    python3 e2e_mcp_sdk.py <mcp-url> <token>
    NEXUS_SDK_PREFIX=/zone/eng python3 e2e_mcp_sdk.py …   (paths under a prefix)
    NEXUS_MCP_URL=… NEXUS_API_KEY=… python3 e2e_mcp_sdk.py

With a single-zone token, in both eras (a legacy `initialize` session and the stateless
2026 era through `ClientSession.discover`): list_tools (nexus_read_file is there), write a
file and read it back (under $NEXUS_SDK_PREFIX when set: a multi-zone token names its
zone, e.g. /zone/eng), then the text tools (markdown section, block_type, a paged read,
nexus_md_structure, edits with preview, whitespace and fuzzy matching); with a wrong token every HTTP response the SDK receives is a 401
with a `WWW-Authenticate: Bearer resource_metadata=…` challenge (checked on the responses
themselves, not on error text). An SDK without `discover` is a failure, not a skip.
Exit 0 when every check passes; any failure prints one line and exits 1.

Works with SDK 1.x (`streamablehttp_client(url, headers=…)`) and 2.x
(`streamable_http_client(url, http_client=…)`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import os
import sys
import uuid

try:
    import mcp  # noqa: F401
    from mcp import ClientSession
except ImportError:
    print("error: the MCP Python SDK is missing: run `python3 -m pip install mcp`", file=sys.stderr)
    sys.exit(2)


def open_transport(url: str, token: str, responses: list[tuple[int, str]] | None = None):
    """The SDK's streamable-HTTP client with an Authorization header, 1.x or 2.x.

    Each response's HTTP status and `WWW-Authenticate` header are appended to `responses`
    (the SDK itself turns a 401 into a generic error).
    """
    headers = {"Authorization": f"Bearer {token}"}

    async def record(response) -> None:
        if responses is not None:
            responses.append((response.status_code, response.headers.get("www-authenticate", "")))

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


async def exercise(
    url: str, token: str, era: str, responses: list[tuple[int, str]] | None = None
) -> None:
    async with open_transport(url, token, responses) as streams:
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

            prefix = os.environ.get("NEXUS_SDK_PREFIX", "").rstrip("/")
            path = f"{prefix}/python-sdk/{era}-{uuid.uuid4().hex[:8]}.md"
            content = f"written by the MCP Python SDK ({era})\nline two\n"
            w = await session.call_tool("nexus_write_file", {"path": path, "content": content})
            assert not is_error(w), f"{era}: write failed: {text_of(w)}"
            r = await session.call_tool("nexus_read_file", {"path": path})
            assert not is_error(r), f"{era}: read failed: {text_of(r)}"
            assert text_of(r) == content, f"{era}: read back {text_of(r)!r}, wrote {content!r}"

            e = await session.call_tool("nexus_read_file", {"path": f"{prefix}/python-sdk/missing.md"})
            assert is_error(e), f"{era}: reading a missing file should be a tool error"

            await search_tools(session, era, path)
            await text_tools(session, era, f"{prefix}/python-sdk/{era}-{uuid.uuid4().hex[:8]}-guide.md")


async def search_tools(session: ClientSession, era: str, path: str) -> None:
    """The search tools' arguments on the file just written (its own path keeps the eras
    apart)."""

    async def call(tool: str, args: dict) -> dict:
        r = await session.call_tool(tool, args)
        assert not is_error(r), f"{era}: {tool} {args} failed: {text_of(r)}"
        return json.loads(text_of(r))

    g = await call(
        "nexus_grep",
        {"pattern": "two", "files": [path], "before_context": 1, "include": "*.md"},
    )
    assert [(m["line"], m["text"], m.get("before")) for m in g["items"]] == [
        (2, "line two", [f"written by the MCP Python SDK ({era})"])
    ], f"{era}: grep with context: {g}"
    g = await call("nexus_grep", {"pattern": "(", "fixed_strings": True, "files": [path], "count_only": True})
    assert g["counts"] == [{"path": path, "count": 1}] and g["matches"] == 1, f"{era}: count_only: {g}"
    g = await call("nexus_grep", {"pattern": "SDK", "files": [path], "invert_match": True})
    assert [m["line"] for m in g["items"]] == [2], f"{era}: invert_match: {g}"
    gl = await call("nexus_glob", {"pattern": "**/*.md", "files": [path, path + ".nope"]})
    assert gl["items"] == [path], f"{era}: glob files: {gl}"
    parent = path.rsplit("/", 1)[0]
    md = await session.call_tool(
        "nexus_list_files", {"path": parent, "response_format": "markdown", "details": False}
    )
    assert not is_error(md) and f"- `{path}`" in text_of(md), f"{era}: list markdown: {text_of(md)}"
    s = await call("nexus_semantic_search", {"query": f"python sdk {era}", "path": path, "search_mode": "semantic"})
    assert [h["path"] for h in s["items"]] == [path], f"{era}: search: {s}"
    assert s["semantic_degraded"] is True and s["search_mode"] == "keyword", f"{era}: search: {s}"



GUIDE = "# Guide\n\n## Install\n\n```sh\n# not a heading\nmake\n```\n\n## Use\n\nrun it\n"


async def text_tools(session, era: str, path: str) -> None:
    """Markdown sections and blocks, paging, nexus_md_structure, fuzzy edit with preview."""
    w = await session.call_tool("nexus_write_file", {"path": path, "content": GUIDE})
    assert not is_error(w), f"{era}: write failed: {text_of(w)}"

    async def read(**args) -> str:
        r = await session.call_tool("nexus_read_file", {"path": path, **args})
        assert not is_error(r), f"{era}: read {args} failed: {text_of(r)}"
        return r

    r = await read(section="Install")
    assert text_of(r) == "## Install\n\n```sh\n# not a heading\nmake\n```\n\n", f"{era}: section {text_of(r)!r}"
    r = await read(block_type="code")
    assert text_of(r) == "```sh\n# not a heading\nmake\n```\n", f"{era}: code {text_of(r)!r}"
    r = await read(offset=0, limit=2)
    texts = [getattr(c, "text", "") for c in r.content]
    assert texts == ["# Guide\n\n", "[12 lines in all; more follow: read again with offset=2]"], f"{era}: page {texts!r}"
    r = await session.call_tool("nexus_read_file", {"path": path, "section": "Missing"})
    assert is_error(r) and "no section" in text_of(r), f"{era}: missing section: {text_of(r)!r}"

    s = await session.call_tool("nexus_md_structure", {"path": path})
    assert not is_error(s), f"{era}: md_structure failed: {text_of(s)}"
    structure = json.loads(text_of(s))
    paths = [h["path"] for h in structure["headings"]]
    assert paths == ["Guide", "Guide/Install", "Guide/Use"], f"{era}: headings {paths}"

    edit = {"path": path, "edits": [{"old_str": "run  it", "new_str": "run it twice"}]}
    p = await session.call_tool("nexus_edit_file", {**edit, "preview": True})
    assert not is_error(p), f"{era}: preview failed: {text_of(p)}"
    preview = json.loads(text_of(p))
    assert preview["preview"] is True and "+run it twice" in preview["diff"], f"{era}: preview {preview}"
    assert text_of(await read()) == GUIDE, f"{era}: a preview wrote"
    e = await session.call_tool("nexus_edit_file", {**edit, "fuzzy_threshold": 0.9})
    assert not is_error(e), f"{era}: edit failed: {text_of(e)}"
    done = json.loads(text_of(e))
    assert done["matches"][0]["how"] == "whitespace" and done["diff"], f"{era}: edit {done}"
    n = await session.call_tool("nexus_edit_file", {"path": path, "edits": [{"old_str": "## Usee\n\nrun it twise", "new_str": "## Use\n\nrun it"}]})
    assert not is_error(n), f"{era}: fuzzy edit failed: {text_of(n)}"
    assert json.loads(text_of(n))["matches"][0]["how"] == "fuzzy", f"{era}: {text_of(n)}"
    assert text_of(await read()) == GUIDE, f"{era}: fuzzy edit did not restore the text"


async def bad_token_is_refused(url: str, era: str) -> None:
    bad = "sk-" + "A" * 43
    responses: list[tuple[int, str]] = []
    try:
        await asyncio.wait_for(exercise(url, bad, era, responses), 20)
    except asyncio.TimeoutError:
        raise AssertionError(f"{era}: a bad token hung instead of getting HTTP 401") from None
    except AssertionError:
        raise
    except BaseException:  # noqa: BLE001 - the SDK raises exception groups; judged below
        pass
    else:
        raise AssertionError(f"{era}: a bad token was accepted (responses {responses})")
    # What the hub answered, as the SDK's HTTP client received it: at least one response,
    # and every one of them a 401 with the RFC 9728 challenge.
    assert responses, f"{era}: a bad token failed before any HTTP response"
    for status, challenge in responses:
        assert status == 401, f"{era}: a bad token got HTTP {status} (responses {responses})"
        assert challenge.startswith('Bearer resource_metadata="') and challenge.endswith(
            '/.well-known/oauth-protected-resource", scope="files:read files:write"'
        ), f"{era}: 401 without the challenge: {challenge!r}"


async def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("NEXUS_MCP_URL", "")
    token = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("NEXUS_API_KEY", "")
    if not url or not token:
        print("usage: e2e_mcp_sdk.py <mcp-url> <token>  (or NEXUS_MCP_URL, NEXUS_API_KEY)", file=sys.stderr)
        return 2
    # scripts/test installs `mcp>=1.9`; the stateless era needs `ClientSession.discover`.
    if not hasattr(ClientSession, "discover"):
        version = importlib.metadata.version("mcp")
        print(
            f"error: MCP Python SDK {version} lacks ClientSession.discover (the stateless era): "
            "run `python3 -m pip install -U mcp`",
            file=sys.stderr,
        )
        return 1
    for era in ["initialize", "discover"]:
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
