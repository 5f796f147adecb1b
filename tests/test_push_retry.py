"""A retried delivery goes on from where it stopped (issue 11's delivery, a defect of its retry).

A delivery to an MLLP listener fails when the listener goes away mid-way (no acknowledgement,
then refused connections); the user brings the listener back and retries the job. Before, a
retry cleared the job's progress and every message was sent again from the first casualty: each
message the listener had already acknowledged arrived twice, and a patient-tracking system fed
that way holds every admission twice. Now the retry keeps the delivery's cursor and report.

The listener is a few lines of the standard library (socketserver), so the test controls exactly
which message is acknowledged and when the listener vanishes.
"""

from __future__ import annotations

import socketserver
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from patientgen.delivery.mllp import control_id
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from tests.support import delivery_settings, free_port
from tests.test_push_mllp import make_source

pytestmark = pytest.mark.timeout(120)

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


@pytest.fixture
def port() -> int:
    return free_port()


def _serve(port: int, acks: Acks) -> Iterator[_Server]:
    server = _Server(("127.0.0.1", port), _Handler)
    server.acks = acks
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_retried_delivery_sends_no_acknowledged_message_again(tmp_path: Path, port: int) -> None:
    job_id, expected = make_source(tmp_path, 40)
    acks = Acks(stop_after=len(expected) // 3)
    settings = delivery_settings(tmp_path)
    with JobService.open(settings) as service:
        target = {"target": "mllp", "host": "127.0.0.1", "port": port}
        delivery, _ = service.push(job_id, target)
        for _ in _serve(port, acks):  # the listener hangs up mid-way, then is gone
            failed, _ = service.run_here(delivery.job_id, threading.Event())
        assert acks.gone.is_set()
        assert failed.status == JobStatus.FAILED, failed.error
        first_run = list(acks.acked)
        assert first_run == expected[: len(first_run)] and 0 < len(first_run) < len(expected)

        acks.stop_after = None  # the listener is back: the user retries the delivery
        service.retry(delivery.job_id)
        for _ in _serve(port, acks):
            ended, _ = service.run_here(delivery.job_id, threading.Event())
    assert ended.status == JobStatus.COMPLETED, ended.error
    twice = [cid for cid, n in Counter(acks.acked).items() if n > 1]
    assert twice == [], f"{len(twice)} acknowledged messages sent again by the retry"
    assert acks.acked == expected  # every message, in order, once
    report = ended.summary
    assert report["delivered"] == len(expected) and report["rejected"] == 0
