#!/usr/bin/env python3
"""Signing in to Nexus Hub through its OAuth pages in a real browser.

    python3 oauth_browser.py sdk <mcp-url> <username> <password> <shots-dir> [<name>]
        The MCP Python SDK's OAuthClientProvider connects to <mcp-url> with no token:
        it discovers the protected-resource metadata and the hub's authorization server,
        registers (RFC 7591), and sends the browser to the login page; headless Chromium
        (driven over WebDriver by chromedriver) fills the login and consent pages; the SDK
        redeems the code and calls tools (list, write, read back). Prints `ok: python-sdk`.

    python3 oauth_browser.py browse <authorization-url> <username> <password> <shots-dir> <name>
        Only the browser part, for another client (rmcp): opens the URL, signs in, allows,
        waits for the redirect to the loopback callback and prints `callback: <url>`.

    python3 oauth_browser.py paste <authorization-url> <username> <password> <shots-dir> <name>
        The browser on another machine than the client (`claude mcp login --no-browser` over
        SSH): the redirect URI's host does not resolve in the browser, so the redirect lands
        nowhere, as it would there; prints `redirect: <url>`, the address the browser was
        sent to, for the user to paste back into the client. Nothing is listened on.

A <username> of the form `upstream:<provider>:<login>` signs in through the hub's upstream
OpenID provider instead: the browser clicks "Continue with …" on the hub's login page, signs
in as <login> with <password> on the provider's own page (oidc-provider's development
sign-in form, `login` and `password`), allows its consent page if it shows one, and comes
back to the hub's consent page.

A screenshot of each page is saved under <shots-dir> (`<name>-login.png`,
`<name>-consent.png`; through a provider also `<name>-upstream-login.png` and
`<name>-upstream-consent.png`). Any failure prints one line and exits 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid

CHROMIUM = os.environ.get("NEXUS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NEXUS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Callback:
    """The client's loopback redirect target: records the first /callback query."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/callback"
        self.got = threading.Event()
        self.query = ""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.startswith("/callback"):
                    outer.query = urllib.parse.urlsplit(self.path).query
                    outer.got.set()
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.end_headers()
                self.wfile.write(b"<p>Signed in. You can close this window.</p>")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Browser:
    """Headless Chromium through chromedriver's WebDriver API (plain HTTP, JSON)."""

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.port = free_port()
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("chromedriver did not start") from None
                time.sleep(0.1)
        self.profile = tempfile.mkdtemp(prefix="nexus-chromium-")
        caps = {
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--disable-dev-shm-usage",
                            "--window-size=900,900",
                            f"--user-data-dir={self.profile}",
                            *(extra_args or []),
                        ],
                    },
                }
            }
        }
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise AssertionError(f"webdriver {method} {path}: {e.read()[:300]!r}") from None

    def s(self, path: str) -> str:
        return f"/session/{self.session}{path}"

    def go(self, url: str) -> None:
        self.call("POST", self.s("/url"), {"url": url})

    def find(self, css: str) -> str:
        deadline = time.time() + 15
        while True:
            try:
                found = self.call("POST", self.s("/element"), {"using": "css selector", "value": css})
                if isinstance(found, dict) and ELEMENT in found:
                    return found[ELEMENT]
                raise AssertionError(f"no element: {found}")
            except AssertionError:
                if time.time() > deadline:
                    raise AssertionError(f"no element {css} on {self.url()}: {self.source()[:400]}") from None
                time.sleep(0.1)

    def type(self, css: str, text: str) -> None:
        self.call("POST", self.s(f"/element/{self.find(css)}/value"), {"text": text})

    def click(self, css: str) -> None:
        self.call("POST", self.s(f"/element/{self.find(css)}/click"), {})

    def url(self) -> str:
        return self.call("GET", self.s("/url"))

    def source(self) -> str:
        return self.call("GET", self.s("/source")) or ""

    def shot(self, path: str) -> None:
        png = base64.b64decode(self.call("GET", self.s("/screenshot")))
        with open(path, "wb") as f:
            f.write(png)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("DELETE", self.s(""))
        self.driver.terminate()
        with contextlib.suppress(Exception):
            self.driver.wait(10)


def upstream_sign_in(b: Browser, provider: str, login: str, password: str, shots: str, name: str) -> None:
    """From the hub's login page through the provider's pages back to the hub's consent."""
    hub = urllib.parse.urlsplit(b.url()).netloc
    b.click(f"#continue-{provider}")
    b.find("input[name=login]")
    assert urllib.parse.urlsplit(b.url()).netloc != hub, f"not at the provider: {b.url()}"
    b.shot(os.path.join(shots, f"{name}-upstream-login.png"))
    b.type("input[name=login]", login)
    b.type("input[name=password]", password)
    b.click("button[type=submit]")
    # The provider's consent page, unless it goes straight back to the hub.
    deadline = time.time() + 20
    while time.time() < deadline:
        if urllib.parse.urlsplit(b.url()).netloc == hub and 'id="allow"' in b.source():
            return
        if 'name="prompt" value="consent"' in b.source():
            b.shot(os.path.join(shots, f"{name}-upstream-consent.png"))
            b.click("button[type=submit]")
            return
        time.sleep(0.1)
    raise AssertionError(f"neither the provider's consent nor the hub's: {b.url()}: {b.source()[:400]}")


def sign_in(
    url: str,
    user: str,
    password: str,
    shots: str,
    name: str,
    callback: Callback | None,
    browser_args: list[str] | None = None,
) -> str:
    """Login page → consent page → allow; returns the redirect URL the browser reached.

    With a `callback`, the URL it received; without one, the address the browser was sent
    to, read from the browser once it starts with the request's `redirect_uri`.
    """
    os.makedirs(shots, exist_ok=True)
    redirect = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)).get("redirect_uri", "")
    b = Browser(browser_args)
    try:
        b.go(url)
        b.find("#continue-" + user.split(":")[1] if user.startswith("upstream:") else "#username")
        assert "Sign in to Nexus Hub" in b.source(), f"not the login page: {b.source()[:300]}"
        b.shot(os.path.join(shots, f"{name}-login.png"))
        if user.startswith("upstream:"):
            _, provider, login = user.split(":", 2)
            upstream_sign_in(b, provider, login, password, shots, name)
        else:
            b.type("#username", user)
            b.type("#password", password)
            b.click("#sign-in")
        b.find("#allow")
        assert "Allow" in b.source(), f"not the consent page: {b.source()[:300]}"
        b.shot(os.path.join(shots, f"{name}-consent.png"))
        b.click("#allow")
        if callback is not None:
            if not callback.got.wait(30):
                raise AssertionError(f"the browser never reached the callback; it is at {b.url()}: {b.source()[:300]}")
            return f"{callback.url}?{callback.query}"
        assert redirect, f"no redirect_uri in {url}"
        deadline = time.time() + 30
        while True:
            at = b.url() or ""
            if at.startswith(redirect + "?"):
                b.shot(os.path.join(shots, f"{name}-redirect.png"))
                return at
            if time.time() > deadline:
                raise AssertionError(f"the browser was never sent to {redirect}; it is at {at}: {b.source()[:300]}")
            time.sleep(0.1)
    finally:
        b.close()


ANSI = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-9;?]*[A-Za-z]")


def claude_login(claude: str, server: str, user: str, password: str, shots: str, name: str) -> None:
    """`claude mcp login --no-browser` on a pty, the browser in `paste` mode between."""
    import fcntl
    import select
    import struct
    import termios

    master, slave = os.openpty()
    # Wide enough that the URL is never wrapped across lines.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 1000, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY" and not k.startswith("NEXUS_")}
    proc = subprocess.Popen(
        [claude, "mcp", "login", server, "--no-browser"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=env.get("HOME"),
        start_new_session=True,
    )
    os.close(slave)
    seen = ""

    def read_until(done, within: float) -> bool:
        nonlocal seen
        deadline = time.time() + within
        while not done(seen):
            left = deadline - time.time()
            if left <= 0:
                return False
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side closed, Claude Code exited
                return done(seen)
            if not chunk:
                return done(seen)
            seen += chunk.decode("utf-8", "replace")
        return True

    try:
        if not read_until(lambda t: "paste the redirect URL" in t, 60):
            raise AssertionError(f"Claude Code never asked for the redirect URL: {ANSI.sub('', seen)[-1500:]!r}")
        found = re.search(r"(https?://[^\s\x07\x1b]+/oauth/authorize\?[^\s\x07\x1b]+)", seen)
        assert found, f"no authorization URL in: {ANSI.sub('', seen)[-1500:]!r}"
        auth_url = found.group(1)
        print(f"authorize: {auth_url}")
        redirect = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query)).get("redirect_uri", "")
        host = urllib.parse.urlsplit(redirect).hostname or ""
        landed = sign_in(auth_url, user, password, shots, name, None, resolve_nowhere(host))
        print(f"redirect: {landed}")
        os.write(master, landed.encode() + b"\r")
        read_until(lambda t: False, 60)
        try:
            code = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"Claude Code did not finish: {ANSI.sub('', seen)[-1500:]!r}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    print("claude: " + ANSI.sub("", seen).replace("\r", ""))
    print(f"exit: {code}")


def resolve_nowhere(host: str) -> list[str]:
    """Chromium arguments under which `host` does not resolve (the browser is elsewhere)."""
    # A name (Claude Code says `localhost`) can be made not to resolve; an address cannot.
    assert host and not host.replace(".", "").isdigit() and ":" not in host, f"redirect host {host!r} is not a name"
    return [f"--host-resolver-rules=MAP {host} ~NOTFOUND"]


class Memory:
    """The SDK's token storage, in memory."""

    def __init__(self) -> None:
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, info) -> None:
        self.client = info


async def sdk(url: str, user: str, password: str, shots: str, name: str = "python-sdk") -> None:
    from mcp import ClientSession
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    callback = Callback()
    seen: dict[str, str] = {}

    async def redirect_handler(auth_url: str) -> None:
        seen["url"] = auth_url

    async def callback_handler() -> AuthorizationCodeResult:
        final = await asyncio.to_thread(sign_in, seen["url"], user, password, shots, name, callback)
        q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
        assert "code" in q, f"no code in the callback: {q}"
        return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Python SDK",
            redirect_uris=[callback.url],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            scope="files:read files:write",
        ),
        storage=Memory(),
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    try:
        async with create_mcp_http_client(auth=provider) as http:
            async with streamable_http_client(url, http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    names = {t.name for t in tools.tools}
                    assert "nexus_write_file" in names, f"tools: {sorted(names)}"
                    path = f"/python-oauth/{uuid.uuid4().hex[:8]}.md"
                    content = "written after a browser login\n"
                    w = await session.call_tool("nexus_write_file", {"path": path, "content": content})
                    assert not getattr(w, "is_error", False) and not getattr(w, "isError", False), f"write: {w}"
                    r = await session.call_tool("nexus_read_file", {"path": path})
                    text = "".join(getattr(c, "text", "") for c in r.content)
                    assert text == content, f"read back {text!r}"
                    print(f"wrote: {path}")
    finally:
        callback.close()
    assert "url" in seen, "the SDK never sent the browser to the hub"
    parsed = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(seen["url"]).query))
    assert parsed.get("code_challenge_method") == "S256" and parsed.get("resource"), f"request: {parsed}"
    print("ok: python-sdk")


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "sdk" and len(sys.argv) in (6, 7):
        asyncio.run(asyncio.wait_for(sdk(*sys.argv[2:]), 180))
        return 0
    if mode == "browse" and len(sys.argv) == 7:
        auth_url, user, password, shots, name = sys.argv[2:7]
        redirect = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query)).get("redirect_uri", "")
        # The client chose its redirect URI: listen there.
        callback = Callback(urllib.parse.urlsplit(redirect).port)
        try:
            print(f"callback: {sign_in(auth_url, user, password, shots, name, callback)}")
        finally:
            callback.close()
        return 0
    if mode == "paste" and len(sys.argv) == 7:
        auth_url, user, password, shots, name = sys.argv[2:7]
        redirect = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(auth_url).query)).get("redirect_uri", "")
        host = urllib.parse.urlsplit(redirect).hostname or ""
        print(f"redirect: {sign_in(auth_url, user, password, shots, name, None, resolve_nowhere(host))}")
        return 0
    if mode == "claude-login" and len(sys.argv) == 8:
        claude_login(*sys.argv[2:8])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
