"""One job's chunks on several worker processes (issue 13, item 1), on a real SQLite file and on
PostgreSQL: `patientgen worker` processes share one data folder; idle ones claim chunks of the
running job one at a time.

- The files of a 20,000-patient job (chunks of 1,000; NDJSON, CSV, FHIR) are byte-identical
  (sha256) to a clean in-process run with 1, 2 and 4 workers, every chunk is written exactly
  once, and with more than one worker more than one process writes chunks.
- kill -9 of a helper while it holds a chunk: its claim expires, that chunk alone is written
  again (by the owner or another helper), the job completes once with identical files and
  nothing left behind.
- kill -9 of the job's owner: the job is reaped and resumed by a helper, the chunks recorded by
  anyone are kept (those in flight in the dead owner's run are written again), identical files.
"""

from __future__ import annotations

import re
import sqlite3
from uuid import UUID

import pytest

from patientgen.formats import bundle
from patientgen.jobs import migrations
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from tests.jobs.helpers import WorkerProcess, digests
from tests.support import wait_until

pytestmark = pytest.mark.slow

FORMATS = ["ndjson", "csv", "fhir"]
PATIENTS = 20_000
CHUNK = 1_000
CHUNKS = PATIENTS // CHUNK
SCENARIO = Scenario(name="chunk claims", total_patients=PATIENTS, seed=13)
#: Long enough that a busy 2-core machine never loses a live lease; recovery takes about this.
LEASE = 4.0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    """sha256 of every file of a clean run in this process (internal indexes included)."""
    out = tmp_path_factory.mktemp("reference")
    return {f.name: f.sha256 for f in bundle.write_all(SCENARIO, FORMATS, out, chunk_size=CHUNK)}


@pytest.fixture
def big(settings):
    """The test's settings with chunks of 1,000 and a lease a loaded machine keeps."""
    return settings.model_copy(update={"chunk_size": CHUNK, "lease_seconds": LEASE})


def _writes(text: str, job_id: UUID) -> list[int]:
    return [int(m) for m in re.findall(rf"job {job_id}: chunk (\d+) \[\d+, \d+\) written", text)]


def _claims(url: str, job_id: UUID) -> dict[int, str]:
    """The job's chunk claims as stored: chunk -> worker id."""
    if url.startswith("sqlite"):
        with sqlite3.connect(migrations.sqlite_path(url)) as conn:
            rows = conn.execute(
                "SELECT chunk, worker_id FROM chunk_claims WHERE job_id = ?", (str(job_id),)
            ).fetchall()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT chunk, worker_id FROM chunk_claims WHERE job_id = %s::uuid", (job_id,)
            ).fetchall()
    return {int(chunk): str(worker) for chunk, worker in rows}


def _held_by(url: str, job_id: UUID, pid: int) -> int | None:
    """A chunk the worker process `pid` holds a claim on (its id is host-pid-start)."""
    return next((c for c, w in _claims(url, job_id).items() if f"-{pid}-" in w), None)


def _completed(service: JobService, job_id: UUID):
    job = service.get(job_id)
    assert job.status not in (JobStatus.FAILED, JobStatus.CANCELLED), job.error
    return job.status == JobStatus.COMPLETED and job


def _assert_identical(service: JobService, job, reference: dict[str, str]) -> None:
    """The job's folder holds exactly a clean run's files (no parts folder, no temporary file
    of any worker), and each output file listed has the clean run's sha256."""
    folder = service.job_dir(job.job_id)
    assert digests(folder) == reference
    assert job.output_files
    for listed in job.output_files:
        assert reference[listed["name"]] == listed["sha256"]
    others = [p.name for p in folder.parent.iterdir() if p.name not in (".trash", folder.name)]
    assert others == []


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_output_identical_for_1_2_4_workers(big, tmp_path, reference, workers):
    with JobService.open(big) as service:
        job, _ = service.submit(SCENARIO, FORMATS, "alice")
        procs = [WorkerProcess(big, tmp_path / f"w{i}.log") for i in range(workers)]
        try:
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        finally:
            for proc in procs:
                proc.kill_group()
                proc.wait()
        _assert_identical(service, final, reference)
        assert final.attempts == 1 and final.progress == 100
        writes = {i: _writes(proc.text(), job.job_id) for i, proc in enumerate(procs)}
        # every chunk written exactly once, whoever wrote it
        assert sorted(c for w in writes.values() for c in w) == list(range(CHUNKS))
        writers = [i for i, w in writes.items() if w]
        if workers > 1:  # the idle workers helped with the one job
            assert len(writers) > 1, writes
        assert final.progress_details["chunks_done"] == CHUNKS
        assert final.progress_details["patients_done"] == PATIENTS


def test_kill9_of_a_helper_holding_a_chunk(big, tmp_path, reference):
    slow = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(slow) as service:
        job, _ = service.submit(SCENARIO, FORMATS, "alice")
        owner = WorkerProcess(slow, tmp_path / "owner.log")
        helper = None
        try:
            wait_until(lambda: len(service.chunks(job.job_id)) >= 1, timeout=60)
            assert f"-{owner.proc.pid}-" in str(service.get(job.job_id).lease_owner)
            helper = WorkerProcess(slow, tmp_path / "helper.log")
            wait_until(lambda: _writes(helper.text(), job.job_id), timeout=60)

            def holding() -> tuple[int] | None:  # a chunk after the one(s) it recorded
                chunk = _held_by(slow.database_url, job.job_id, helper.proc.pid)
                fresh = chunk is not None and chunk not in _writes(helper.text(), job.job_id)
                return (chunk,) if fresh else None

            (held,) = wait_until(holding, timeout=60)
            helper.kill_group()  # kill -9 while it writes chunk `held`
            helper.wait()
            # the claim is left behind, unrecorded: the owner takes it over once it expires
            assert held in {c for c, w in _claims(slow.database_url, job.job_id).items()}
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        finally:
            for proc in (owner, helper):
                if proc is not None:
                    proc.kill_group()
                    proc.wait()
        assert helper is not None
        by_helper = _writes(helper.text(), job.job_id)
        by_owner = _writes(owner.text(), job.job_id)
        assert by_helper and held not in by_helper
        # only the chunk the helper died in was written again: each chunk recorded once
        assert sorted(by_helper + by_owner) == list(range(CHUNKS))
        assert f"chunk {held} claimed by" in helper.text()
        assert final.attempts == 1  # the owner never lost the job: it completed once
        _assert_identical(service, final, reference)


def test_kill9_of_the_owner(big, tmp_path, reference):
    slow = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(slow) as service:
        job, _ = service.submit(SCENARIO, FORMATS, "alice")
        owner = WorkerProcess(slow, tmp_path / "owner.log")
        helpers: list[WorkerProcess] = []
        marks: list[int] = []
        try:
            wait_until(lambda: len(service.chunks(job.job_id)) >= 1, timeout=60)
            assert f"-{owner.proc.pid}-" in str(service.get(job.job_id).lease_owner)
            helpers = [WorkerProcess(slow, tmp_path / f"h{i}.log") for i in range(2)]
            wait_until(lambda: any(_writes(h.text(), job.job_id) for h in helpers), timeout=60)
            owner.kill_group()  # kill -9 of the job's owner, its helpers at work
            owner.wait()
            before = {c.chunk for c in service.chunks(job.job_id)}
            marks = [len(h.text()) for h in helpers]  # what they wrote from now on
            assert 1 <= len(before) < CHUNKS
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        finally:
            for proc in (owner, *helpers):
                proc.kill_group()
                proc.wait()
        assert final.attempts == 2  # reaped once, resumed by a helper
        # the chunks recorded when the owner died were kept: none was written again
        again = [
            c
            for h, mark in zip(helpers, marks, strict=True)
            for c in _writes(h.text()[mark:], job.job_id)
        ]
        assert not before & set(again), (before, again)
        _assert_identical(service, final, reference)
