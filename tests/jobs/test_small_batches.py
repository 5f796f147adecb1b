"""Small jobs run in batches (runner.run_small_jobs), on SQLite and PostgreSQL: the same files and
the same guarantees as one job at a time (cancel, lost lease, priority, failures)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from patientgen.formats import bundle
from patientgen.jobs.files import JobFiles
from patientgen.jobs.model import JobStatus, RunOutcome
from patientgen.jobs.runner import SMALL_JOB_PATIENTS, run_job, run_small_jobs
from patientgen.jobs.worker import Worker
from patientgen.scenario import Scenario
from tests.support import wait_until

FORMATS = ["json", "ndjson", "csv", "fhir"]


def _scenario(n: int, seed: int = 3) -> Scenario:
    return Scenario(name="small", total_patients=n, seed=seed)


def _batched(caplog) -> int:
    """How many jobs the runner wrote in a batch (so a test fails if batching silently stops)."""
    return sum("in a batch" in r.getMessage() for r in caplog.records)


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_claim_of_small_jobs_takes_only_first_attempts_of_one_small_chunk(service, store):
    small = service.submit(_scenario(3), ["ndjson"], "a")[0]
    service.submit(_scenario(6), ["ndjson"], "a")  # two chunks of the suite's 5
    service.submit(_scenario(3), ["ndjson"], "a", output_dir=Path("/nonexistent/out"))
    tried = service.submit(_scenario(2), ["ndjson"], "a")[0]
    store.claim("w", 60, job_id=tried.job_id)
    store.release(tried.job_id, "w")  # released: pending again, and attempts given back
    got = store.claim("w", 60, limit=10, max_patients=SMALL_JOB_PATIENTS)
    assert {j.job_id for j in got} == {small.job_id, tried.job_id}
    assert store.claim("w", 60, limit=10, max_patients=SMALL_JOB_PATIENTS) == []
    assert len(store.claim("w", 60, limit=10)) == 2  # the others are there for a plain claim


def test_a_batch_writes_what_one_job_at_a_time_writes(service, store, settings, caplog):
    caplog.set_level(logging.INFO, logger="patientgen.jobs.runner")
    scenarios = [_scenario(n, seed=n) for n in (1, 2, 5)]
    alone = [service.submit(s, FORMATS, "a")[0] for s in scenarios]
    for job in alone:
        (claimed,) = store.claim("one", 60, job_id=job.job_id)
        assert run_job(store, settings, "one", claimed) == RunOutcome.COMPLETED
    batched = [service.submit(s, FORMATS, "b")[0] for s in scenarios]
    claimed = store.claim("batch", 60, limit=10)
    assert run_small_jobs(store, settings, "batch", claimed) == [RunOutcome.COMPLETED] * 3
    assert _batched(caplog) == 3
    files = JobFiles(settings.data_dir)
    for one, many in zip(alone, batched, strict=True):
        one_job, many_job = service.get(one.job_id), service.get(many.job_id)
        assert many_job.status == JobStatus.COMPLETED and many_job.attempts == 1
        assert many_job.output_files == one_job.output_files
        assert many_job.summary == one_job.summary
        assert _files(files.folder(many.job_id)) == _files(files.folder(one.job_id))
    leftovers = [p for p in files.root.rglob("*") if ".tmp-" in p.name or p.name == ".parts"]
    assert leftovers == []


def test_cancel_and_lost_lease_in_a_batch(service, store, settings, caplog):
    caplog.set_level(logging.INFO, logger="patientgen.jobs.runner")
    keep, cancel, lost = (service.submit(_scenario(2, seed=i), FORMATS, "a")[0] for i in range(3))
    claimed = store.claim("w", 0.5, limit=3)
    service.cancel(cancel.job_id)
    # `lost`: the lease runs out, the reaper hands it back, another worker holds it now
    store.heartbeat(keep.job_id, "w", 60)
    store.heartbeat(cancel.job_id, "w", 60)
    wait_until(lambda: store.reap(), timeout=5, step=0.05)
    (taken,) = store.claim("other", 60, job_id=lost.job_id)
    outcomes = run_small_jobs(store, settings, "w", claimed)
    assert _batched(caplog) == 3
    by_id = dict(zip((j.job_id for j in claimed), outcomes, strict=True))
    assert by_id[keep.job_id] == RunOutcome.COMPLETED
    assert by_id[cancel.job_id] == RunOutcome.CANCELLED
    assert by_id[lost.job_id] == RunOutcome.LEASE_LOST
    files = JobFiles(settings.data_dir)
    assert service.get(cancel.job_id).status == JobStatus.CANCELLED
    assert not files.folder(cancel.job_id).exists()  # removed inside the cancelling write
    now = service.get(lost.job_id)
    assert now.status == JobStatus.RUNNING and now.lease_owner == "other"
    assert taken.attempts == 2
    # the new owner's run gives the same files the stalled batch wrote
    assert run_job(store, settings, "other", taken) == RunOutcome.COMPLETED
    assert service.get(lost.job_id).status == JobStatus.COMPLETED


def test_a_failing_batch_runs_each_job_alone(service, store, settings):
    good = service.submit(_scenario(2), ["ndjson"], "a")[0]
    bad = service.submit(_scenario(2, seed=9), ["ndjson"], "a")[0]
    files = JobFiles(settings.data_dir)
    files.root.mkdir(parents=True)
    files.folder(bad.job_id).write_text("a file where the job's folder goes")
    claimed = store.claim("w", 60, limit=2)
    outcomes = run_small_jobs(store, settings, "w", claimed)
    by_id = dict(zip((j.job_id for j in claimed), outcomes, strict=True))
    assert by_id == {good.job_id: RunOutcome.COMPLETED, bad.job_id: RunOutcome.FAILED}
    assert service.get(good.job_id).status == JobStatus.COMPLETED
    assert service.get(bad.job_id).error
    assert not any(".tmp-" in p.name for p in files.root.rglob("*"))


def test_a_worker_batches_small_jobs_behind_the_queue_head(service, store, settings, caplog):
    """The first job of a batch is the queue's next job (priority first); the worker then tops
    the batch up with small jobs, and every job completes once."""
    caplog.set_level(logging.INFO, logger="patientgen.jobs.runner")
    big = service.submit(_scenario(12), ["ndjson"], "a", priority=5)[0]
    small = [service.submit(_scenario(1, seed=i), ["ndjson"], "a")[0] for i in range(20)]
    worker = Worker(settings, max_jobs=21)
    worker.run()
    assert worker.outcomes == {RunOutcome.COMPLETED: 21}
    assert _batched(caplog) == 20
    jobs = [service.get(j.job_id) for j in [big, *small]]
    assert all(j.status == JobStatus.COMPLETED and j.attempts == 1 for j in jobs)
    assert min(j.completed_at for j in jobs[1:]) >= jobs[0].completed_at
    expected = bundle.write_all(_scenario(1, seed=4), ["ndjson"], settings.data_dir / "ref")
    assert jobs[5].output_files == [f.as_dict() for f in bundle.outputs(expected)]


def test_a_batch_slower_than_its_lease_keeps_its_jobs(
    service, store, settings, monkeypatch, caplog
):
    """On a busy machine a batch may take longer than a lease: its heartbeat extends every lease
    of the batch, so the reaper takes none of them and each completes at its first attempt."""
    settings = settings.model_copy(update={"lease_seconds": 1.0})  # a heartbeat every 1/3 s
    jobs = [service.submit(_scenario(2, seed=i), ["ndjson"], "a")[0] for i in range(3)]
    claimed = store.claim("w", settings.lease_seconds, limit=3)
    write_runs = bundle.write_runs
    reaped: list = []

    def slow_write_runs(runs):  # the real write, after three leases' time of reaping
        for _ in range(15):
            reaped.extend(store.reap())
            time.sleep(0.2)
        return write_runs(runs)

    monkeypatch.setattr(bundle, "write_runs", slow_write_runs)
    caplog.set_level(logging.INFO, logger="patientgen.jobs.runner")
    assert run_small_jobs(store, settings, "w", claimed) == [RunOutcome.COMPLETED] * 3
    assert _batched(caplog) == 3 and reaped == []
    assert all(service.get(j.job_id).attempts == 1 for j in jobs)
