"""The HTTP/1.1 protocol `patientgen serve` gives uvicorn: httptools with a bounded request head.

uvicorn's httptools protocol keeps a request line and headers of any size in memory until they
end (a client could send a header of gigabytes); its h11 protocol stops at 16 KiB. This one
answers 431 and closes the connection once the head of a request passes MAX_HEAD_BYTES.

uvicorn also waits for ever for a head that never ends (slowloris: thousands of connections,
each sending a few bytes of a head now and then) and for the first byte on a fresh connection.
Invariant here: a connection always has a head timer running unless a request head has been
received completely and its response is not finished yet. The timer starts when the connection
opens and again when a response ends (so it bounds idle keep-alive too), and is cancelled by
`on_headers_complete`; when it fires the connection is closed (with a 408 if no response is
under way on it).
"""

from __future__ import annotations

import asyncio

import orjson

from patientgen.api.problems import PROBLEM_MEDIA_TYPE, problem_type

#: Request line plus headers, in bytes (h11's default limit is 16 KiB; browsers send about 1-8).
MAX_HEAD_BYTES = 64 * 1024
#: Seconds a request head may take (from connection or previous response) unless told otherwise.
DEFAULT_HEAD_TIMEOUT = 10.0


class _HeadTooLarge(Exception):
    pass


def bounded_http_protocol(head_timeout: float = DEFAULT_HEAD_TIMEOUT) -> type | str:
    """The protocol class for `uvicorn.Config(http=...)` (h11, bounded in size but without the
    head timeout, without httptools). `head_timeout`: seconds a request head may take."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn without its "standard" extra
        return "h11"

    class BoundedHeadProtocol(HttpToolsProtocol):
        _in_head = False
        _head_bytes = 0
        _refused = False
        _too_large = False
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._start_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.cycle.response_complete:
                # No pipelined request was started: the next head (or the idle wait for it) is
                # bounded from now on.
                self._start_head_timer()

        def _start_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(head_timeout, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:
                # No response under way on this connection: say why before closing (a partial
                # head or an idle keep-alive; an idle client ignores it).
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                    b"connection: close\r\n\r\n"
                )
            self.transport.close()

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                self._refuse()
            else:
                super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0
            if self._head_timer is None:  # a pipelined request: its head is bounded too
                self._start_head_timer()

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._cancel_head_timer()
            size = len(self.url) + sum(len(k) + len(v) + 4 for k, v in self.headers)
            if size > MAX_HEAD_BYTES:
                # A head that arrived in one piece. Raising makes the parser fail, and uvicorn
                # then calls send_400_response, which answers 431 for it.
                self._too_large = True
                raise _HeadTooLarge
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            if self._refused or self.transport.is_closing():
                return  # the rest of a refused request is read and dropped
            super().data_received(data)
            if self._in_head and not self._refused:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD_BYTES:
                    self._in_head = False
                    self._refuse()

        def _refuse(self) -> None:
            self._cancel_head_timer()
            body = orjson.dumps(
                {
                    "type": problem_type("malformed-request"),
                    "title": "Request header fields too large",
                    "status": 431,
                    "detail": f"The request line and headers exceed {MAX_HEAD_BYTES} bytes.",
                }
            )
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                + f"content-type: {PROBLEM_MEDIA_TYPE}\r\n".encode()
                + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            # Close only after a moment of reading and dropping what the client still sends:
            # closing with unread bytes would reset the connection and lose the answer.
            self._refused = True
            self.loop.call_later(1.0, self.transport.close)

    return BoundedHeadProtocol
