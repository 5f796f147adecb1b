"""A retried delivery goes on from where it stopped (issue 11's delivery, a defect of its retry).

A delivery to an MLLP listener fails when the listener goes away mid-way (no acknowledgement,
then refused connections); the user brings the listener back and retries the job. Before, a
retry cleared the job's progress and every message was sent again from the first casualty: each
message the listener had already acknowledged arrived twice, and a patient-tracking system fed
that way holds every admission twice. Now the retry keeps the delivery's cursor and report.

The listener (tests/mllp_listener.py) is a few lines of the standard library, so the test
controls exactly which message is acknowledged and when the listener vanishes.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from tests.mllp_listener import Acks, serve_mllp
from tests.support import delivery_settings, free_port
from tests.test_push_mllp import make_source

pytestmark = pytest.mark.timeout(120)


def test_a_retried_delivery_sends_no_acknowledged_message_again(tmp_path: Path) -> None:
    port = free_port()
    job_id, expected = make_source(tmp_path, 40)
    acks = Acks(stop_after=len(expected) // 3)
    settings = delivery_settings(tmp_path)
    with JobService.open(settings) as service:
        target = {"target": "mllp", "host": "127.0.0.1", "port": port}
        delivery, _ = service.push(job_id, target)
        for _ in serve_mllp(port, acks):  # the listener hangs up mid-way, then is gone
            failed, _ = service.run_here(delivery.job_id, threading.Event())
        assert acks.gone.is_set()
        assert failed.status == JobStatus.FAILED, failed.error
        first_run = list(acks.acked)
        assert first_run == expected[: len(first_run)] and 0 < len(first_run) < len(expected)

        acks.stop_after = None  # the listener is back: the user retries the delivery
        service.retry(delivery.job_id)
        for _ in serve_mllp(port, acks):
            ended, _ = service.run_here(delivery.job_id, threading.Event())
    assert ended.status == JobStatus.COMPLETED, ended.error
    twice = [cid for cid, n in Counter(acks.acked).items() if n > 1]
    assert twice == [], f"{len(twice)} acknowledged messages sent again by the retry"
    assert acks.acked == expected  # every message, in order, once
    report = ended.summary
    assert report["delivered"] == len(expected) and report["rejected"] == 0
