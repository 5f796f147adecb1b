"""Sending a completed job's HL7 v2 ADT messages to an MLLP listener (issue 11, item 3).

The listener is hl7apy's MLLP server, started by the tests on loopback: it checks the structure of
every message (an ER7 MSH with the standard encoding characters, version 2.5.1, an ADT type and a
control id; every segment one hl7apy knows for 2.5.1) and acknowledges it AA, or AE when the check
fails (or, in one test, for every A08). Every message of the job's adt.hl7 must arrive,
acknowledged, byte for byte as in the file; hl7apy parses a deterministic sample of them at its
strict level (message structure included; test_hl7.py validates the format on its own scenario).
hl7apy's tolerant parse, which this listener used on every message before, rejects less than the
structural check (only a missing MSH, an unknown version or bad encoding characters) at about
15 ms a message. After a kill -9 of the sending process and the same command again, no
acknowledged message is sent twice (but the one whose ACK was read and not yet saved).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hl7apy import load_library
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.mllp import AbstractErrorHandler, AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

from patientgen.delivery.mllp import control_id as control_id_of
from patientgen.formats import hl7
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.settings import Settings
from tests.support import CLI, delivery_settings, free_port, service_env, wait_until

pytestmark = pytest.mark.timeout(300)

MESSAGE_TYPES = ("ADT^A01^ADT_A01", "ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "ADT^A02^ADT_A02",
                 "ADT^A03^ADT_A03")  # fmt: skip
#: The segments of HL7 v2.5.1, as hl7apy defines them.
SEGMENTS = frozenset(load_library("2.5.1").SEGMENTS)
#: Every this many messages (and the first of each type) parsed strictly by hl7apy.
STRICT_EVERY = 20


def check_structure(text: str) -> tuple[str, str]:
    """(MSH-9.2 event, MSH-10 control id) of an ER7 ADT message of ours; ValueError if it is not
    one: MSH first, with the standard encoding characters, version 2.5.1, a type of
    MESSAGE_TYPES and a control id; segments separated by CR, each a 2.5.1 segment."""
    segments = text.removesuffix("\r").split("\r")
    msh = segments[0].split("|")
    if len(msh) < 12 or msh[0] != "MSH" or msh[1] != "^~\\&":
        raise ValueError(f"not an ER7 MSH: {segments[0][:40]!r}")
    if msh[11] != "2.5.1" or msh[8] not in MESSAGE_TYPES or not msh[9]:
        raise ValueError(f"MSH-9 {msh[8]!r}, MSH-10 {msh[9]!r}, MSH-12 {msh[11]!r}")
    for segment in segments:
        name, sep, _ = segment.partition("|")
        if name not in SEGMENTS or not sep or "\n" in segment:
            raise ValueError(f"not a 2.5.1 segment: {segment[:40]!r}")
    return msh[8].split("^")[1], msh[9]


def parse_strictly(text: str) -> Any:
    """The message parsed and validated by hl7apy at its strict level (structure included)."""
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    message.validate()
    return message


@dataclass
class Listener:
    port: int
    received: list[str] = field(default_factory=list)  # control ids, in arrival order
    texts: list[str] = field(default_factory=list)  # the messages received (when checked)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse_event: str = ""  # e.g. "A08": answer AE to those
    check: bool = True  # False: only read MSH-10 (where what arrives, not its content, is tested)

    def ack(self, control_id: str, code: str, text: str = "") -> str:
        body = (
            f"MSH|^~\\&|TRACKING|TEST|PATIENTGEN|TEST|20260101000000||ACK|ack-{control_id[:15]}|P|"
            f"2.5.1\rMSA|{code}|{control_id}|{text}\r"
        )
        return f"\x0b{body}\x1c\r"


def _handler(listener: Listener) -> type[AbstractHandler]:
    class Handler(AbstractHandler):
        def reply(self) -> str:
            if not listener.check:  # only MSH-9 and MSH-10, read from the text
                data = self.incoming_message.encode()
                control_id = control_id_of(data)
                event = data.split(b"\r", 1)[0].split(b"|")[8].split(b"^")[1].decode()
                with listener.lock:
                    if event == listener.refuse_event:
                        listener.refused.append(control_id)
                        return listener.ack(control_id, "AE", f"{event} refused here (test mode)")
                    listener.received.append(control_id)
                return listener.ack(control_id, "AA")
            # checked (a ValueError goes to the error handler: AE); the test parses a sample
            event, control_id = check_structure(self.incoming_message)
            with listener.lock:
                if event == listener.refuse_event:
                    listener.refused.append(control_id)
                    return listener.ack(control_id, "AE", f"{event} refused here (test mode)")
                listener.received.append(control_id)
                listener.texts.append(self.incoming_message)
            return listener.ack(control_id, "AA")

    return Handler


def _error_handler(listener: Listener) -> type[AbstractErrorHandler]:
    class ErrorHandler(AbstractErrorHandler):
        def reply(self) -> str:
            control_id = control_id_of(self.incoming_message.encode())
            return listener.ack(control_id, "AE", f"not parsed: {self.exc}"[:80])

    return ErrorHandler


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener(port=free_port())
    handlers: dict = {kind: (_handler(found),) for kind in MESSAGE_TYPES}
    handlers["ERR"] = (_error_handler(found),)
    server = MLLPServer("127.0.0.1", found.port, handlers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def settings_for(folder: Path) -> Settings:
    return delivery_settings(folder)


def make_job(folder: Path, patients: int) -> tuple[str, list[bytes]]:
    """A completed job with adt.hl7; its id and its messages (without the LF), in order."""
    with JobService.open(settings_for(folder)) as service:
        job, _ = service.submit({"total_patients": patients, "seed": 21}, ["hl7"])
        job, _ = service.run_here(job.job_id, threading.Event())
        assert job.status == JobStatus.COMPLETED
        data = (service.output_dir(job) / hl7.FILE).read_bytes()
    return str(job.job_id), [m for m in data.split(b"\n") if m]


def make_source(folder: Path, patients: int) -> tuple[str, list[str]]:
    """A completed job with adt.hl7; its id and the control ids of its messages, in order."""
    job_id, messages = make_job(folder, patients)
    ids = [control_id_of(m) for m in messages]
    assert len(ids) == len(set(ids)) > patients  # several messages per casualty, ids unique
    return job_id, ids


def push_to(folder: Path, job_id: str, listener: Listener) -> Any:
    with JobService.open(settings_for(folder)) as service:
        target = {"target": "mllp", "host": "127.0.0.1", "port": listener.port}
        delivery, _ = service.push(job_id, target)
        ended, _ = service.run_here(delivery.job_id, threading.Event())
    return ended


def test_every_message_acknowledged_and_parsed(tmp_path: Path, listener: Listener) -> None:
    """Every message of a 500-patient job checked by the listener and acknowledged AA, once each,
    in the file's order and as in the file; a deterministic sample (every STRICT_EVERY-th, and
    the first of each type) parsed and validated by hl7apy at its strict level."""
    job_id, messages = make_job(tmp_path, 500)
    expected = [control_id_of(m) for m in messages]
    assert len(expected) == len(set(expected)) > 500  # several messages per casualty, ids unique
    ended = push_to(tmp_path, job_id, listener)
    assert ended.status == JobStatus.COMPLETED, ended.error
    assert listener.received == expected and listener.refused == []
    assert listener.texts == [m.decode() for m in messages]  # byte for byte (CR-ended)
    firsts: dict[str, int] = {}
    for i, text in enumerate(listener.texts):
        firsts.setdefault(check_structure(text)[0], i)
    assert set(firsts) == {"A01", "A02", "A03", "A04", "A08"}
    sample = sorted({*range(0, len(expected), STRICT_EVERY), *firsts.values()})
    for i in sample:
        message = parse_strictly(listener.texts[i])
        assert message.msh.msh_10.value == expected[i]
    report = ended.summary
    assert report["unit"] == "messages" and report["delivered"] == len(expected)
    assert report["rejected"] == 0 and report["rejections"] == []


def test_refused_messages_are_reported_and_the_rest_goes_on(
    tmp_path: Path, listener: Listener
) -> None:
    """A listener answering AE (here to every A08): each such message is a rejection with the
    ACK's text, and every other message is delivered."""
    job_id, expected = make_source(tmp_path, 60)
    listener.refuse_event = "A08"
    listener.check = False
    ended = push_to(tmp_path, job_id, listener)
    assert ended.status == JobStatus.COMPLETED, ended.error
    arrived = listener.received + listener.refused
    assert sorted(arrived) == sorted(expected) and len(set(arrived)) == len(expected)  # all, once
    report = ended.summary
    assert report["delivered"] == len(listener.received)
    assert report["rejected"] == len(listener.refused) > 0
    first = report["rejections"][0]
    assert first["ref"] == listener.refused[0] and first["status"] == "AE"
    assert "A08 refused here" in first["outcome"]


def test_a_listener_that_is_not_there_fails_clearly(tmp_path: Path) -> None:
    job_id, _ = make_source(tmp_path, 20)
    port = free_port()
    with JobService.open(settings_for(tmp_path)) as service:
        delivery, _ = service.push(job_id, {"target": "mllp", "host": "127.0.0.1", "port": port})
        ended, _ = service.run_here(delivery.job_id, threading.Event())
    assert ended.status == JobStatus.FAILED
    assert f"no acknowledgement from the MLLP listener at 127.0.0.1:{port}" in (ended.error or "")


def test_killed_and_run_again_sends_no_acknowledged_message_twice(
    tmp_path: Path, listener: Listener
) -> None:
    job_id, expected = make_source(tmp_path, 100)
    listener.check = False
    env = service_env(
        tmp_path,
        f"sqlite:///{tmp_path / 'patientgen.db'}",
        PATIENTGEN_LEASE_SECONDS="2",
        PATIENTGEN_POLL_INTERVAL="0.1",
    )
    argv = [*CLI, "push", job_id, "--mllp", f"127.0.0.1:{listener.port}"]
    slow = {**env, "PATIENTGEN_CHUNK_DELAY": "0.01"}
    proc = subprocess.Popen(argv, env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: len(listener.received) >= len(expected) // 3, timeout=120)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = len(listener.received)
    assert before < len(expected)
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "messages/s" in done.stdout
    twice = [cid for cid, n in Counter(listener.received).items() if n > 1]
    # only the message in flight at the kill can come again (its ACK read, not yet saved)
    assert len(twice) <= 1, twice
    assert sorted(set(listener.received)) == sorted(expected)
