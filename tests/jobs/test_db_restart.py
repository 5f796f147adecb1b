"""A worker keeps going when PostgreSQL restarts under it (issue 6 relies on this)."""

from __future__ import annotations

import signal
import time

import pytest

from patientgen.jobs import migrations
from patientgen.jobs.model import JobStatus, StoreUnavailable
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings
from tests.jobs.helpers import WorkerProcess
from tests.support import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.faults, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster(pg_cluster_factory):
    """A throwaway cluster of our own: the test stops and starts it."""
    return pg_cluster_factory()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_worker_survives_a_database_restart(cluster, tmp_path, mode):
    import psycopg

    with psycopg.connect(f"{cluster.url}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE restart_{mode}")
    url = f"{cluster.url}/restart_{mode}"
    migrations.upgrade(url)
    settings = Settings(
        database_url=url,
        data_dir=tmp_path / "data",
        lease_seconds=3,
        chunk_size=5,
        poll_interval=0.1,
        db_timeout=2,
    )
    service = JobService.open(settings)
    try:
        job, _ = service.submit(Scenario(total_patients=40, seed=3), ["ndjson"], "alice")
        with WorkerProcess(settings, tmp_path / "w.log", chunk_delay=0.3) as worker:
            wait_until(lambda: len(service.chunks(job.job_id)) >= 2, timeout=30)
            cluster.stop(mode)
            with pytest.raises(StoreUnavailable):
                service.get(job.job_id)
            time.sleep(1.5)
            cluster.start()
            final = wait_until(
                lambda: _status(service, job.job_id) == JobStatus.COMPLETED, timeout=60
            )
            assert final
            assert worker.proc.poll() is None, worker.text()  # never died
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0
        done = service.get(job.job_id)
        assert done.progress == 100 and done.output_files
    finally:
        service.close()


def _status(service, job_id):
    try:
        return service.get(job_id).status
    except StoreUnavailable:
        return None
