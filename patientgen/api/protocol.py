"""The HTTP/1.1 protocol `patientgen serve` gives uvicorn: httptools with a bounded request head.

uvicorn's httptools protocol keeps a request line and headers of any size in memory until they
end (a client could send a header of gigabytes); its h11 protocol stops at 16 KiB. This one
answers 431 and closes the connection once the head of a request passes MAX_HEAD_BYTES.
"""

from __future__ import annotations

import orjson

from patientgen.api.problems import PROBLEM_MEDIA_TYPE, problem_type

#: Request line plus headers, in bytes (h11's default limit is 16 KiB; browsers send about 1-8).
MAX_HEAD_BYTES = 64 * 1024


class _HeadTooLarge(Exception):
    pass


def bounded_http_protocol() -> type | str:
    """The protocol class for `uvicorn.Config(http=...)` (h11, bounded already, without
    httptools)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn without its "standard" extra
        return "h11"

    class BoundedHeadProtocol(HttpToolsProtocol):
        _in_head = False
        _head_bytes = 0
        _refused = False
        _too_large = False

        def send_400_response(self, msg: str) -> None:
            if self._too_large:
                self._refuse()
            else:
                super().send_400_response(msg)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_head = True
            self._head_bytes = 0

        def on_headers_complete(self) -> None:
            self._in_head = False
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
