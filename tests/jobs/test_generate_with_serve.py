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


def test_a_job_whose_out_folder_another_run_rewrote_serves_nothing_false(tmp_path: Path) -> None:
    """Found by rerunning the README's `generate --out` example with another seed: the second
    job's files replaced the first's in the folder, and the first job (still completed) served
    them, under its own ETag, through the API and `jobs patients`. A job whose folder no longer
    holds its own files (the manifest it wrote, each file at its recorded size) says so, and
    serves nothing; a rerun that wrote the same bytes leaves the earlier job readable."""
    import hashlib

    import httpx

    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    svc = make_service(tmp_path, None, workers=1, auth="off")
    out = tmp_path / "results"
    runs = {"first": ("--seed", "1"), "second": ("--seed", "2"), "again": ("--seed", "2")}
    ids: dict[str, str] = {}
    with running(svc):
        svc.start()
        settings = Settings(data_dir=svc.data_dir, database_url=svc.database_url)
        with JobService.open(settings) as service:
            for run, seed in runs.items():
                made = svc.cli("generate", "--preset", "peacekeeping", "--patients", "6", *seed,
                               "--format", "csv,ndjson", "--out", str(out))  # fmt: skip
                assert made.returncode == 0, made.stderr
                # the second replaces the first's files and says so; the third writes the same
                # bytes as the second, which stays readable: nothing to say
                said = "replaced the files an earlier run left in" in made.stderr
                assert said == (run == "second"), (run, made.stderr)
                known = {str(j.job_id) for j in service.list(statuses=["completed"]).items}
                (ids[run],) = known - set(ids.values())
            recorded = {
                run: {f["name"]: f["sha256"] for f in service.get(jid).output_files}
                for run, jid in ids.items()
            }
        assert recorded["first"]["patients.csv"] != recorded["second"]["patients.csv"]
        assert recorded["second"] == recorded["again"]

        with httpx.Client(base_url=svc.api, timeout=30) as api:
            for run in ("second", "again"):  # the folder holds their bytes: served
                got = api.get(f"/jobs/{ids[run]}/files/patients.csv")
                assert got.status_code == 200, got.text
                assert hashlib.sha256(got.content).hexdigest() == recorded[run]["patients.csv"]
            first = ids["first"]
            for path in (
                f"/jobs/{first}/files/patients.csv",
                f"/jobs/{first}/files/summary.json",
                f"/jobs/{first}/archive",
                f"/jobs/{first}/patients",
                f"/jobs/{first}/summary",
            ):
                refused = api.get(path)
                assert refused.status_code == 404, (path, refused.status_code)
                if path.endswith("/files/patients.csv"):  # its old ETag: 404 too, never 304
                    etag = f'"{recorded["first"]["patients.csv"]}"'
                    again = api.get(path, headers={"If-None-Match": etag})
                    assert again.status_code == 404, again.status_code
                problem = refused.json()
                assert "another run" in problem["detail"], (path, problem)
                assert str(out) not in problem["detail"]  # no server path in an answer
        listed = svc.cli("jobs", "patients", ids["first"])
        assert listed.returncode == 2, listed
        assert listed.stderr.count("\n") == 1 and "another run" in listed.stderr, listed.stderr
        assert svc.cli("jobs", "patients", ids["second"]).returncode == 0
