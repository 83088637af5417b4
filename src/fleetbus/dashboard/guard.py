"""Who may use the dashboard: one guard in front of every request — pages, assets, the JSON
API, the live streams and the actions. There is no other way in.

- **A loopback bind** (the default, 127.0.0.1) answers only requests addressed to a loopback
  name (the ``Host`` header): a web page elsewhere that points its own DNS name at 127.0.0.1
  (DNS rebinding) gets nothing.
- **The access token** printed at start (``fleetbus dashboard`` always makes one: every user
  of the machine reaches its loopback address, an agent running under an account of its own
  too): ``?token=...`` once (answered with a cookie and a redirect to the same address
  without it, so it stays out of history and logs), then the cookie (HttpOnly,
  SameSite=Strict), or ``Authorization: Bearer`` for scripts. Anything else gets 401. A
  dashboard opened without one (``open_dashboard(token=None)``, on loopback only) trusts
  every local user.
- **Actions** (every method but GET and HEAD) need the dashboard's own request header, which
  a page of another site cannot send without the dashboard's consent (a CORS preflight it
  never grants), and, when the browser names one, an ``Origin`` that is the dashboard's: no
  other site can make a visitor's browser replay or purge dead letters.
- **Every answer** carries a Content-Security-Policy that runs the dashboard's own script
  only: text from the wire that somehow reached the page as markup still could not run.
"""

from __future__ import annotations

import ipaddress
import secrets
from urllib.parse import urlencode, urlsplit

from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ACTION_HEADER", "COOKIE", "Guard", "is_loopback", "new_token"]

COOKIE = "fleetbus_dashboard"
ACTION_HEADER = "x-fleetbus-dashboard"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the dashboard on this machine."""
    name = host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard:
    """The ASGI middleware that applies the rules above."""

    def __init__(self, app: ASGIApp, *, token: str | None, host: str) -> None:
        self.app = app
        self.token = token
        self.hosts = LOOPBACK_NAMES | {host.strip("[]")}
        self.loopback = is_loopback(host)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        response = self._refusal(conn) or self._token_in_address(conn)
        if response is not None:
            await response(scope, receive, _secured(send))
            return
        await self.app(scope, receive, _secured(send))

    def _refusal(self, conn: HTTPConnection) -> Response | None:
        if self.token is None or self.loopback:
            name = urlsplit("//" + conn.headers.get("host", "")).hostname or ""
            if name not in self.hosts:
                return PlainTextResponse("unexpected Host: use the dashboard's own address", 403)
        if self.token is not None and not self._allowed(conn):
            return PlainTextResponse("the dashboard needs its access token", 401)
        if conn.scope["method"] not in ("GET", "HEAD"):
            origin = conn.headers.get("origin")
            own = f"{conn.url.scheme}://{conn.headers.get('host', '')}"
            if conn.headers.get(ACTION_HEADER) != "1" or (origin is not None and origin != own):
                return PlainTextResponse("actions come from the dashboard's own pages", 403)
        return None

    def _allowed(self, conn: HTTPConnection) -> bool:
        assert self.token is not None
        auth = conn.headers.get("authorization", "")
        offered = [
            conn.query_params.get("token", ""),
            conn.cookies.get(COOKIE, ""),
            auth[7:] if auth.lower().startswith("bearer ") else "",
        ]
        return any(secrets.compare_digest(o.encode(), self.token.encode()) for o in offered if o)

    def _token_in_address(self, conn: HTTPConnection) -> Response | None:
        """A token given in the address: keep it in a cookie, and go where it pointed."""
        if self.token is None or "token" not in conn.query_params:
            return None
        rest = [(k, v) for k, v in conn.query_params.multi_items() if k != "token"]
        target = conn.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        return response


def _secured(send: Send) -> Send:
    async def with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
        await send(message)

    return with_headers
