"""A minimal MLLP listener for the delivery tests, from the standard library (socketserver):
it acknowledges every message AA and records its control id (MSH-10), or hangs up without an
ACK once `stop_after` messages were acknowledged, so a test decides exactly what arrives.

    acks = Acks()
    for _ in serve_mllp(port, acks):   # listening while inside the loop
        ...
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from patientgen.delivery.mllp import control_id

START, END = b"\x0b", b"\x1c\r"


@dataclass
class Acks:
    """What the listener acknowledged, in order; it hangs up (without an ACK) on message
    `stop_after + 1` and then stops listening."""

    stop_after: int | None = None
    acked: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    gone: threading.Event = field(default_factory=threading.Event)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    acks: Acks


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        acks = self.server.acks
        buffer = b""
        while chunk := self.request.recv(65536):
            buffer += chunk
            while END in buffer:
                frame, buffer = buffer.split(END, 1)
                message = frame[frame.index(START) + 1 :]
                cid = control_id(message)
                with acks.lock:
                    if acks.stop_after is not None and len(acks.acked) >= acks.stop_after:
                        acks.gone.set()  # hang up before acknowledging it
                        return
                    acks.acked.append(cid)
                body = (
                    f"MSH|^~\\&|TRACKING|TEST|PATIENTGEN|TEST|20260101000000||ACK|a{len(buffer)}|P|"
                    f"2.5.1\rMSA|AA|{cid}\r"
                )
                self.request.sendall(START + body.encode() + END)


class _TlsServer(_Server):
    """The same over TLS: each accepted connection wrapped with the server's context."""

    context: ssl.SSLContext

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        return self.context.wrap_socket(sock, server_side=True), address


def serve_mllp(port: int, acks: Acks, tls: ssl.SSLContext | None = None) -> Iterator[_Server]:
    """Listen on 127.0.0.1:`port` (over TLS with the server context `tls`) while iterated."""
    server: _Server
    if tls is None:
        server = _Server(("127.0.0.1", port), _Handler)
    else:
        server = _TlsServer(("127.0.0.1", port), _Handler)
        server.context = tls
    server.acks = acks
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
