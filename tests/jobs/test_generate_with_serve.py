"""`patientgen generate` while `patientgen serve` runs on the same data folder (finding 7 of the
hostile review: generate claimed the store directly and failed with "taken by another worker"
while the service's worker finished the job). It goes through the service now: it runs the job
itself, or follows it to the end while the service's worker runs it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import make_service
from tests.support import running, wait_until

pytestmark = pytest.mark.slow


def test_generate_follows_a_job_the_service_runs(tmp_path: Path) -> None:
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    svc = make_service(
        tmp_path,
        None,
        workers=1,
        auth="off",
        extra_env={"PATIENTGEN_CHUNK_SIZE": "5", "PATIENTGEN_CHUNK_DELAY": "0.3"},
    )
    with running(svc):
        svc.start()
        submitted = svc.cli("jobs", "submit", "--preset", "peacekeeping", "--patients", "30")
        assert submitted.returncode == 0, submitted.stderr
        job_id = submitted.stdout.strip()
        settings = Settings(data_dir=svc.data_dir, database_url=svc.database_url)
        with JobService.open(settings) as service:
            running_job = wait_until(
                lambda: (j := service.get(job_id)).status.value == "running" and j, timeout=30
            )
            resumed = svc.cli("generate", "--resume", job_id)
            assert resumed.returncode == 0, resumed.stderr
            assert "Wrote 30 patients" in resumed.stdout
            done = service.get(job_id)
            assert done.status.value == "completed"
            # claimed once, by the service's worker that already ran it when generate started:
            # generate followed it and never took it over
            assert done.attempts == 1 and done.started_at == running_job.started_at, done

            # a new job while serve runs: whoever takes it, generate ends with its files
            fresh = svc.cli(
                "generate", "--preset", "urban-assault", "--patients", "12", "--format", "csv"
            )
            assert fresh.returncode == 0, fresh.stderr
            assert "Wrote 12 patients" in fresh.stdout
            listed = service.list(statuses=["completed"]).items
            assert len(listed) == 2
            for job in listed:
                folder = service.output_dir(job)
                assert all((folder / f["name"]).is_file() for f in job.output_files)
