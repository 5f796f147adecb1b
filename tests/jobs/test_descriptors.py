"""File descriptors stay flat on the default SQLite store (finding 2 of the hostile review).

The SQLite store used to open one connection (2 descriptors) per thread that ever touched it: a
worker leaked one per job that heartbeats (a fresh heartbeat thread each), the API one per thread
of its pools as they turned over, until `Too many open files`. The descriptor counts are read from
/proc/<pid>/fd of the real processes.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from uuid import uuid4

import pytest

from patientgen.jobs.model import JobStatus, NewJob
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings
from tests.jobs.helpers import WorkerProcess
from tests.support import free_port, wait_until

pytestmark = pytest.mark.slow


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_worker_descriptors_stay_flat_over_many_jobs(tmp_path: Path) -> None:
    jobs = 120
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'jobs.db'}",
        lease_seconds=0.15,  # a heartbeat every 0.05 s: every job heartbeats
        poll_interval=0.05,
    )
    with JobService.open(settings) as service:
        config = {
            "scenario": Scenario(name="fd", total_patients=1, seed=3).model_dump(mode="json"),
            "formats": ["ndjson"],
            "chunk_size": 1000,
        }
        service.store.create_many(
            [NewJob(job_id=uuid4(), owner="fd", config=config, max_attempts=3) for _ in range(jobs)]
        )
        with WorkerProcess(settings, tmp_path / "worker.log", chunk_delay=0.06) as worker:
            pid = worker.proc.pid
            wait_until(lambda: service.counts()["completed"] >= 20, timeout=120)
            early = open_fds(pid)
            wait_until(lambda: service.counts()["completed"] == jobs, timeout=300, step=0.2)
            late = open_fds(pid)
        counts = service.counts()
    assert counts[JobStatus.COMPLETED.value] == jobs, counts
    assert late - early <= 4, (early, late, worker.text()[-2000:])


def _flood(port: int, path: str, streams: int) -> None:
    """Open `streams` event streams at once, read each one's first event, then drop them all."""
    socks = []
    try:
        for _ in range(streams):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            socks.append(s)
        for s in socks:
            head = s.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
        time.sleep(1.0)  # each stream now waits for the job's next update on a thread
    finally:
        for s in socks:
            s.close()


def test_api_descriptors_stay_flat_over_floods_of_event_streams(tmp_path: Path) -> None:
    from tests.api.conftest import make_service
    from tests.support import running

    svc = make_service(
        tmp_path,
        None,
        workers=0,  # the job stays pending: every stream stays open until dropped
        auth="off",
        extra_env={"PATIENTGEN_MAX_STREAMS_PER_KEY": "2000"},
    )
    svc.port = free_port()
    with running(svc):
        svc.start()
        import httpx

        with httpx.Client(base_url=svc.api, timeout=30) as client:
            job = client.post(
                "/jobs", json={"preset": "peacekeeping", "overrides": {"total_patients": 3}}
            ).json()
            for _ in range(20):
                assert client.get(f"/jobs/{job['job_id']}").status_code == 200
        assert svc.proc is not None
        before = open_fds(svc.proc.pid)
        counts = []
        for _ in range(2):
            _flood(svc.port, f"/api/v1/jobs/{job['job_id']}/events", 500)
            # the server notices the dropped streams at their next keep-alive or update
            time.sleep(1.5)
            counts.append(open_fds(svc.proc.pid))
        with httpx.Client(base_url=svc.api, timeout=10) as client:
            assert client.get(f"/jobs/{job['job_id']}").status_code == 200
    # sockets of streams still being torn down may linger a moment; connections may not grow
    assert max(counts) - before <= 40, (before, counts)
    assert counts[-1] - counts[0] <= 20, (before, counts)
