"""Access to the dashboard: small ASGI middlewares, one concern each (starlette's style),
stacked by :func:`raytuner.dashboard._app.create_app` in this order, outermost first:

- :class:`SecurityHeaders`: the Content-Security-Policy and its companions on every answer;
- :class:`HostCheck` (loopback dashboards): the Host header must name this machine, so a
  page on another site cannot reach the dashboard through DNS rebinding;
- :class:`TokenCheck` (when there is a token): every request carries it;
- :class:`BodyLimit`: no request body over :data:`MAX_BODY_BYTES`, checked on the
  Content-Length and on the bytes as they arrive, so memory never grows with a body;
- :class:`WriteCheck`: read-only, and the CSRF token, on everything but GET and HEAD.
"""

from __future__ import annotations

import ipaddress
import re
import secrets

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raytuner.dashboard._responses import error

#: The largest request body (a control command is a few dozen bytes).
MAX_BODY_BYTES = 64 << 10
COOKIE = "raytuner_token"
_PORT_RE = re.compile(r"[0-9]{1,5}")
_LENGTH_RE = re.compile(r"[0-9]{1,20}")

# 'unsafe-eval': plotly's WebGL traces (parallel coordinates) compile their draw calls with
# `new Function` (regl), and plotly ships no CSP-strict bundle in its Python package.
# Inline scripts stay forbidden, and they are what injected markup would need.
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def cookie_name(scope: Scope) -> str:
    """The access cookie's name, which carries the server's port: cookies are shared by
    every port of a host, and two dashboards on one host must not log each other out."""
    server = scope.get("server")
    return f"{COOKIE}_{server[1]}" if server and server[1] else COOKIE


def parse_host(header: str) -> str | None:
    """The host of a Host header, without its port (``[::1]:9265`` -> ``::1``), lowercase;
    None when it is malformed."""
    value = header.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and _PORT_RE.fullmatch(rest[1:]))):
            return None
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    if value.count(":") > 1:  # a bare IPv6 address: not what a browser sends, but unambiguous
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            return None
    host, colon, port = value.partition(":")
    if colon and not _PORT_RE.fullmatch(port):
        return None
    return host or None


def is_this_machine(host: str) -> bool:
    """``localhost`` or a loopback address, written as such (a name other than localhost
    may be an attacker's, resolved to 127.0.0.1: DNS rebinding)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                            (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class HostCheck:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            header = Headers(scope=scope).get("host", "")
            host = parse_host(header)
            if host is None:
                await error(scope["path"], 400, f"The Host header {header[:100]!r} is malformed.")(scope, receive, send)
                return
            if not is_this_machine(host):
                message = (f"Host {host[:100]!r} is not this dashboard's address; open the address it printed when "
                           "it started (http://127.0.0.1:PORT/ or http://localhost:PORT/).")
                await error(scope["path"], 403, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TokenCheck:
    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        name = cookie_name(scope)
        given = request.query_params.get("token")
        bearer = request.headers.get("authorization", "")
        offered = given or request.cookies.get(name) or (bearer[7:] if bearer.startswith("Bearer ") else None)
        if offered is None or not secrets.compare_digest(offered.encode(), self.token):
            message = ("This dashboard needs its access token: open the address it printed when it started (it "
                       "ends in ?token=...), or pass the token as 'Authorization: Bearer TOKEN'.")
            await error(scope["path"], 401, message)(scope, receive, send)
            return
        if not given:  # it came in a cookie or a header: nothing to set
            await self.app(scope, receive, send)
            return
        # Strict: never sent along from another site's page; HttpOnly: no script reads it.
        cookie = f"{name}={given}; Path=/; HttpOnly; SameSite=Strict".encode()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, scope: Scope) -> object:
        message = (f"The request body is over {self.max_bytes // 1024} KiB; a control command is a small JSON "
                   'object such as {"command": "set_limits", "args": {"max_concurrent": 4}}.')
        return error(scope["path"], 413, message, headers={"Connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None and not _LENGTH_RE.fullmatch(length.strip()):
            await error(scope["path"], 400, "The Content-Length header is not a number.")(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:
            await self._too_large(scope)(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)  # never read: the server holds back what is sent
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client left
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope)(scope, receive, send)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


class WriteCheck:
    def __init__(self, app: ASGIApp, *, csrf: str, read_only: bool):
        self.app = app
        self.csrf = csrf.encode()
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            if self.read_only:
                message = "This dashboard is read-only (--read-only): control actions are off."
                await error(scope["path"], 403, message)(scope, receive, send)
                return
            given = Headers(scope=scope).get("x-csrf-token", "")
            if not secrets.compare_digest(given.encode(), self.csrf):
                message = ("Missing or wrong CSRF token: send control actions from the dashboard's own page (it sets "
                           "the X-CSRF-Token header).")
                await error(scope["path"], 403, message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
