"""Pure ASGI middleware: bounded request bodies (413), JSON-only bodies (415), slow clients
bounded, request latency, the Host allow-list (400) and security headers.

Invariant of `HostGuard`: a request whose Host header is not on the allow-list never reaches
anything inside it (routes, auth, the store); it gets a 400 problem and nothing else happens.
Invariant of `SecurityHeaders`: every HTTP response carries `X-Content-Type-Options: nosniff`;
every HTML response also a Content-Security-Policy (the strict PAGE_CSP unless the route set a
policy of its own), `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from patientgen.api.problems import Problem

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_log = logging.getLogger("patientgen.api")


class _BodyTooLarge(HTTPException):
    """An HTTPException, so that body parsing passes it on unchanged (rendered as 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body exceeds {limit} bytes.")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


async def send_problem(scope: Scope, send: Send, problem: Problem, *, close: bool = False) -> None:
    """Answer a request with `problem` from a middleware, before anything inside reads its body
    (`close`: and end the connection, whose unread body would be taken for the next request)."""
    response = problem.response(scope.get("path"))
    if close:
        response.headers["connection"] = "close"

    async def no_receive() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, no_receive, send)


def host_name(value: str) -> str | None:
    """The host of a Host header value without its port, lower case, IPv6 without brackets;
    None when it cannot be a host (empty, a port that is not a number)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        port = rest.removeprefix(":") if rest.startswith(":") else rest
    elif value.count(":") == 1:
        name, port = value.split(":")
    else:
        name, port = value, ""  # no port (or an unbracketed IPv6 address, kept whole)
    if port and not port.isdigit():
        return None
    name = name.removesuffix(".")
    return name or None


class HostGuard:
    """Answers 400 `host-not-allowed` to every request whose Host header (any port) is not in
    `allowed`. Entries are host names or addresses (IPv6 with or without brackets), `*.example.org`
    for its subdomains, or `*` for anything. A request without a Host header is refused too
    (unless `*`): a browser always sends one, so DNS rebinding cannot slip through that way."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        names = [n.strip().lower() for n in allowed if n.strip()]
        self.any = "*" in names
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))
        self.exact = {
            n.strip("[]").removesuffix(".") for n in names if n != "*" and not n.startswith("*.")
        }

    def allows(self, header: bytes | None) -> bool:
        if self.any:
            return True
        if header is None:
            return False
        name = host_name(header.decode("latin-1"))
        if name is None:
            return False
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allows(_header(scope, b"host")):
            await self.app(scope, receive, send)
            return
        shown = (_header(scope, b"host") or b"").decode("latin-1")[:100]
        problem = Problem(
            400,
            "host-not-allowed",
            f"This service does not answer for the host {shown!r}; "
            "allow it in PATIENTGEN_ALLOWED_HOSTS.",
        )
        await send_problem(scope, send, problem)


#: The web page's policy: its own scripts, styles, images and API only; no inline code, no
#: plugins, never framed, no <base>, forms post only to itself.
PAGE_CSP = (
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)


class SecurityHeaders:
    """Adds the headers of the invariant above to each response start (never twice, and never
    replacing a Content-Security-Policy a route chose, such as the API docs' own)."""

    def __init__(self, app: ASGIApp, csp: str = PAGE_CSP) -> None:
        self.app = app
        self.html_headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                extra = [(b"x-content-type-options", b"nosniff")]
                ctype = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if ctype.lower().startswith(b"text/html"):
                    extra += self.html_headers
                headers += [(name, value) for name, value in extra if name not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestGuard:
    """Refuses request bodies over `max_body` bytes (by Content-Length or while streaming) and
    bodies that are not JSON on the API paths."""

    def __init__(self, app: ASGIApp, max_body: int, api_prefix: str = "/api/") -> None:
        self.app = app
        self.max_body = max_body
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        length_raw = _header(scope, b"content-length")
        if length_raw is not None:
            try:
                length = int(length_raw)
            except ValueError:
                await self._reject(scope, send, 400, "malformed-request", "Bad Content-Length.")
                return
            if length > self.max_body:
                await self._reject(
                    scope,
                    send,
                    413,
                    "payload-too-large",
                    f"The request body has {length} bytes; the limit is {self.max_body}.",
                )
                return
        has_body = (length_raw is not None and length_raw != b"0") or (
            _header(scope, b"transfer-encoding") is not None
        )
        if has_body and path.startswith(self.api_prefix):
            ctype = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
            if ctype and not (ctype == b"application/json" or ctype.endswith(b"+json")):
                await self._reject(
                    scope,
                    send,
                    415,
                    "unsupported-media-type",
                    f"Send the body as application/json, not {ctype.decode('latin-1')}.",
                )
                return

        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _BodyTooLarge(self.max_body)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if started:
                raise
            await self._reject(
                scope, send, 413, "payload-too-large", f"The body exceeds {self.max_body} bytes."
            )

    async def _reject(self, scope: Scope, send: Send, status: int, slug: str, detail: str) -> None:
        await send_problem(scope, send, Problem(status, slug, detail), close=True)


class LatencyMetrics:
    """Observes every HTTP request's duration by method, route template and status."""

    def __init__(self, app: ASGIApp, histogram: Any) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None)
            self.histogram.labels(scope["method"], template or "unmatched", str(status)).observe(
                time.perf_counter() - start
            )


class _ClientTooSlow(Exception):
    """The client took no bytes of the response within the send timeout."""


class SendTimeout:
    """Bounds slow clients: a response chunk the client does not take within `seconds` (its
    socket buffers stay full) ends the connection, so a stalled download or event stream cannot
    hold a file, a thread or a task for ever."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def bounded_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                try:
                    with anyio.fail_after(self.seconds):
                        await send(message)
                except TimeoutError:
                    raise _ClientTooSlow from None
            else:
                await send(message)

        try:
            await self.app(scope, receive, bounded_send)
        except Exception as exc:
            # An expected end, not an error: no traceback per stalled client in the log (which
            # a client could otherwise flood). Returning with the response unfinished makes the
            # server close the connection.
            slow = (
                exc.split(_ClientTooSlow)[1] is None
                if isinstance(exc, ExceptionGroup)
                else isinstance(exc, _ClientTooSlow)
            )
            if not slow:
                raise
            _log.info(
                "%s %s: the client took no bytes for %s s; connection closed",
                scope.get("method"),
                scope.get("path"),
                self.seconds,
            )
