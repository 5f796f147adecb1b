"""Sending HL7 v2 messages to a listener over MLLP, one at a time, each acknowledged.

MLLP frames a message as <VT> message <FS><CR> (0x0B ... 0x1C 0x0D) on a TCP connection; the
listener answers each with an ACK whose MSA segment says AA/CA (accepted), AE/CE (application
error) or AR/CR (rejected), and whose MSA-2 echoes the message's control id (MSH-10). A message
counts as delivered only once its ACK is read; AE/AR are rejections (with the ACK's text), and
the next message goes on. The connection is kept for the next message; a listener that closes
it after each one (many do) costs a new connection, not a retry. A connection that breaks, or an
ACK that does not come within the timeout, is reconnected and the message sent again (the
listener may then see it twice: MSH-10 is the same, as HL7 intends, so it can tell). After
`retries` failed tries in a row (waiting `backoff` s, then twice that...): TargetUnreachable.
With `tls`, the connection is TLS (the listener's certificate and name checked against the
context's CAs); a certificate that does not verify is TargetUntrusted at once, never retried.
"""

from __future__ import annotations

import socket
import ssl

from patientgen.delivery import (
    Item,
    Pause,
    Rejection,
    TargetFailed,
    TargetUnreachable,
    untrusted,
)

START = b"\x0b"
END = b"\x1c\x0d"
ACCEPTED = frozenset({"AA", "CA"})
ANSWERS = ACCEPTED | {"AE", "AR", "CE", "CR"}
MAX_ACK_BYTES = 1 << 20


def frame(message: bytes) -> bytes:
    return START + message + END


def control_id(message: bytes) -> str:
    """MSH-10 of an ER7 message (its field separator is the 4th byte)."""
    head = message.split(b"\r", 1)[0]
    fields = head.split(head[3:4]) if len(head) > 3 else []
    return fields[9].decode(errors="replace") if len(fields) > 9 else ""


def read_ack(data: bytes) -> tuple[str, str, str]:
    """(MSA-1 code, MSA-2 control id, MSA-3 text) of an ACK; TargetFailed if it is none."""
    segments = [s for s in data.replace(b"\n", b"\r").split(b"\r") if s]
    if not segments or not segments[0].startswith(b"MSH") or len(segments[0]) < 4:
        raise TargetFailed(f"the listener's answer is not an HL7 message: {data[:80]!r}")
    separator = segments[0][3:4]
    for segment in segments[1:]:
        fields = segment.split(separator)
        if fields[0] == b"MSA":
            code = fields[1].decode(errors="replace") if len(fields) > 1 else ""
            if code not in ANSWERS:
                raise TargetFailed(f"the listener's ACK has an unknown MSA-1 code {code!r}")
            acked = fields[2].decode(errors="replace") if len(fields) > 2 else ""
            text = fields[3].decode(errors="replace") if len(fields) > 3 else ""
            return code, acked, text
    raise TargetFailed("the listener's answer has no MSA segment")


class MllpTarget:
    """An MLLP listener at host:port."""

    group_size = 1

    def __init__(
        self,
        host: str,
        port: int,
        pause: Pause,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 1.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        self.port = port
        self.pause = pause
        self.timeout = timeout
        self.retries = 0
        self.max_retries = retries
        self.backoff = backoff
        self._sock: socket.socket | None = None
        self._buffer = b""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}{' (TLS)' if self.tls else ''}"

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    def send(self, items: list[Item]) -> list[Rejection]:
        rejected = []
        for item in items:
            code, text = self._exchange(item.data)
            if code not in ACCEPTED:
                rejected.append(Rejection(item.ref, code, text))
        return rejected

    def _exchange(self, message: bytes) -> tuple[str, str]:
        expected = control_id(message)
        failures = 0
        while True:
            reused = self._sock is not None
            try:
                sock = self._connect()
                sock.sendall(frame(message))
                code, acked, text = read_ack(self._read_frame(sock))
            except ssl.SSLCertVerificationError as exc:
                self.close()
                raise untrusted(f"the MLLP listener at {self.where}", exc) from None
            except (OSError, _Broken) as exc:
                self.close()
                if reused:  # many listeners close after each message: a new one at once
                    continue
                failures += 1
                if failures > self.max_retries:
                    raise TargetUnreachable(
                        f"no acknowledgement from the MLLP listener at {self.where} after "
                        f"{self.max_retries} retries: {exc or type(exc).__name__}"
                    ) from None
                self.retries += 1
                self.pause(self.backoff * 2.0 ** (failures - 1))
                continue
            if acked != expected:
                self.close()
                raise TargetFailed(
                    f"the MLLP listener at {self.where} acknowledged {acked!r} for message "
                    f"{expected!r}"
                )
            return code, text

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                except BaseException:
                    sock.close()
                    raise
            self._sock = sock
        return self._sock

    def _read_frame(self, sock: socket.socket) -> bytes:
        while END not in self._buffer:
            data = sock.recv(65536)
            if not data:
                raise _Broken("the listener closed the connection")
            self._buffer += data
            if len(self._buffer) > MAX_ACK_BYTES:
                raise TargetFailed(f"the MLLP listener at {self.where} sent no frame end")
        data, self._buffer = self._buffer.split(END, 1)
        start = data.find(START)
        return data[start + 1 :] if start >= 0 else data


class _Broken(Exception):
    """The connection ended before an ACK came."""
