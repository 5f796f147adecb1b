"""A stalled worker must never remove the files of a later, completed run of its job.

Finding 1 of the hostile review, reproduced on SQLite and PostgreSQL: a worker saw a cancel
request, was paused (SIGSTOP: a frozen VM, a swap storm) past its lease, and woke (SIGCONT) after
the job had been cancelled by the reaper, retried by the user and completed by another worker; it
then removed the job's folder, so the job stayed `completed` and every download was a 404. The
pause lands at seeded moments after the cancel, while the first worker sleeps between chunks
having seen the request.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.faults.support import make_env, migrate, sha256_of, worker
from tests.support import wait_until

SEED = 11
LEASE_SECONDS = 0.9  # heartbeats every 0.3 s
CHUNK_DELAY = 3.0


@pytest.mark.parametrize(
    ("store", "round_"),
    [("sqlite", 0), pytest.param("postgres", 1, marks=pytest.mark.postgres)],
)
def test_stalled_worker_leaves_a_later_completed_run_alone(tmp_path, request, refs, store, round_):
    from patientgen.jobs.service import JobService
    from patientgen.scenario import Scenario
    from patientgen.settings import Settings

    rng = random.Random(SEED * 10 + round_)
    data = tmp_path / "data"
    if store == "postgres":
        url = request.getfixturevalue("pg_database_factory")()
    else:
        url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(data, url)
    settings = Settings(data_dir=data, database_url=url, chunk_size=50, lease_seconds=30)
    formats = ["ndjson", "csv"]
    scenario = Scenario(name="stalled", seed=80 + round_, total_patients=400)
    # the first worker sleeps after each chunk: it sees the cancel while it sleeps
    slow = make_env(data, url, lease_seconds=LEASE_SECONDS, chunk_delay=CHUNK_DELAY, max_attempts=5)
    fast = make_env(data, url, lease_seconds=LEASE_SECONDS, max_attempts=5)
    first = worker(slow, tmp_path / "first.log", "first")
    second = worker(fast, tmp_path / "second.log", "second")
    with JobService.open(settings) as service:
        job, _ = service.submit(scenario, formats)
        try:
            first.start()
            wait_until(lambda: len(service.chunks(job.job_id)) >= 1, timeout=30)
            service.cancel(job.job_id)
            # its heartbeats (every 0.3 s) see the request well within the 3 s sleep
            time.sleep(0.7 + rng.uniform(0.0, 1.0))
            os.killpg(first.pid, signal.SIGSTOP)
            stopped_at = time.monotonic()

            second.start()  # its reaper ends the job (cancel requested, lease expired)
            wait_until(lambda: service.get(job.job_id).status.value == "cancelled", timeout=30)
            service.retry(job.job_id)
            done = wait_until(
                lambda: (j := service.get(job.job_id)).status.value == "completed" and j,
                timeout=60,
                step=0.1,
            )
            expected = refs.get(scenario.model_dump(mode="json"), formats)
            listed = refs.outputs(scenario.model_dump(mode="json"), formats)
            assert {f["name"]: f["sha256"] for f in done.output_files} == listed

            # paused past the end of its sleep: on waking, its next step is the chunk boundary
            time.sleep(max(0.0, stopped_at + CHUNK_DELAY + 0.5 - time.monotonic()))
            os.killpg(first.pid, signal.SIGCONT)
            wait_until(lambda: "another worker owns it" in first.text(), timeout=30)
            time.sleep(0.5)

            after = service.get(job.job_id)
            assert after.status.value == "completed"
            folder = service.output_dir(after)
            on_disk = {
                p.relative_to(folder).as_posix(): sha256_of(p)
                for p in folder.rglob("*")
                if p.is_file()
            }
            assert on_disk == expected, first.text()[-3000:]
        finally:
            for proc in (first, second):
                if proc.proc is not None and proc.alive():
                    os.killpg(proc.pid, signal.SIGCONT)
                    proc.stop()
