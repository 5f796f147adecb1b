"""Jobs with a medical plan (issue 10, item 3) on SQLite and PostgreSQL: the care-chain phase
runs first and is checkpointed in the job's parts folder; a worker killed mid-job is followed by
one that reads that checkpoint and writes the missing chunks; the files are byte-identical to a
clean run in one process. Small jobs with a plan run in batches and write the same files."""

from __future__ import annotations

import logging
import signal

import pytest
from care_chain_support import drill

from patientgen.formats import bundle
from patientgen.jobs.model import JobStatus, RunOutcome
from patientgen.jobs.runner import run_job, run_small_jobs
from tests.jobs.helpers import WorkerProcess, digests
from tests.support import wait_until

FORMATS = ["json", "ndjson", "csv", "fhir"]
pytestmark = pytest.mark.slow


def test_crash_and_resume_with_a_medical_plan_is_byte_identical(service, settings, tmp_path):
    scenario = drill("starved", total_patients=40, name="chain resume", seed=8)
    written = bundle.write_all(scenario, FORMATS, tmp_path / "reference", chunk_size=7)
    reference = {f.name: f.sha256 for f in written}  # the internal indexes too
    outputs = {f.name: f.sha256 for f in bundle.outputs(written)}
    job, _ = service.submit(scenario, FORMATS, "alice")  # chunk_size 5: 8 chunks
    parts = service.job_dir(job.job_id) / ".parts"
    with WorkerProcess(settings, tmp_path / "a.log", chunk_delay=0.4) as first:
        wait_until(lambda: len(service.chunks(job.job_id)) >= 3, timeout=60)
        first.kill_group()
        first.wait()
    assert (parts / bundle.CHAIN_FILE).is_file()  # the first phase was checkpointed
    done_first = {c.chunk for c in service.chunks(job.job_id)}
    assert 3 <= len(done_first) < 8
    with WorkerProcess(settings, tmp_path / "b.log") as second:
        final = wait_until(
            lambda: (j := service.get(job.job_id)).status == JobStatus.COMPLETED and j,
            timeout=60,
        )
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
        log = second.text()
    assert "care-chain phase read from its checkpoint" in log
    assert "care-chain phase computed" not in log
    assert final.attempts == 2
    assert {f["name"]: f["sha256"] for f in final.output_files} == outputs
    assert digests(service.job_dir(job.job_id)) == reference
    assert final.summary is not None and final.summary["care_chain"]["died_waiting"] >= 0


def test_one_job_and_a_batch_of_small_jobs_with_a_plan_agree(service, store, settings, caplog):
    caplog.set_level(logging.INFO, logger="patientgen.jobs.runner")
    scenarios = [drill("starved", total_patients=n, name="small chain", seed=n) for n in (3, 5)]
    alone = [service.submit(s, FORMATS, "a")[0] for s in scenarios]
    for job in alone:
        (claimed,) = store.claim("one", 60, job_id=job.job_id)
        assert run_job(store, settings, "one", claimed) == RunOutcome.COMPLETED
    batched = [service.submit(s, FORMATS, "b")[0] for s in scenarios]
    claimed = store.claim("batch", 60, limit=10)
    assert run_small_jobs(store, settings, "batch", claimed) == [RunOutcome.COMPLETED] * 2
    assert sum("in a batch" in r.getMessage() for r in caplog.records) == 2
    for one, other in zip(alone, batched, strict=True):
        assert digests(service.job_dir(one.job_id)) == digests(service.job_dir(other.job_id))
