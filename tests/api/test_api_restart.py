"""kill -9 of `patientgen serve` (with its embedded workers) in the middle of a job: after a
restart the job continues, finishes, and its output is byte-identical to an uninterrupted run."""

from __future__ import annotations

import hashlib
import time
import uuid

import httpx
import pytest

from patientgen.scenario import Scenario
from tests.api.conftest import add_keys, make_service, postgres_url, wait_running

pytestmark = [pytest.mark.slow, pytest.mark.faults]


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_and_restart(store: str, request: pytest.FixtureRequest, tmp_path) -> None:
    url = postgres_url(request) if store == "postgres" else None
    service = make_service(
        tmp_path,
        url,
        workers=1,
        # the restarted worker takes the job back once the killed one's lease ran out
        extra_env={
            "PATIENTGEN_CHUNK_SIZE": "250",
            "PATIENTGEN_CHUNK_DELAY": "0.25",
            "PATIENTGEN_LEASE_SECONDS": "1.5",
        },
    )
    service.start()
    try:
        add_keys(service)
        body = {
            "scenario": {"name": "restart", "seed": 77, "total_patients": 3000},
            "formats": ["ndjson", "csv"],
        }
        with service.client("alice") as client:
            job_id = client.post("/jobs", json=body).json()["job_id"]
            job = wait_running(client, job_id, at_least=20)
        assert job["progress"] < 100
        service.kill()

        service.start()  # the same port, data folder and database
        with service.client("alice") as client:
            after = client.get(f"/jobs/{job_id}").json()
            assert after["status"] in ("running", "pending"), after  # nothing lost
            deadline = time.monotonic() + 60
            while after["status"] not in ("completed", "failed", "cancelled"):
                assert time.monotonic() < deadline, after
                time.sleep(0.2)
                after = client.get(f"/jobs/{job_id}").json()
            assert after["status"] == "completed", after
            assert after["attempts"] >= 2
            downloaded = {
                f["name"]: client.get(f"/jobs/{job_id}/files/{f['name']}").content
                for f in after["output_files"]
            }
            jobs = client.get("/jobs").json()["items"]
            assert [j["job_id"] for j in jobs].count(job_id) == 1
    finally:
        service.stop()

    # byte-identical to an uninterrupted run of the same scenario
    from patientgen.formats.bundle import write_all

    reference = tmp_path / f"reference-{uuid.uuid4().hex[:6]}"
    files = write_all(Scenario.model_validate(body["scenario"]), body["formats"], reference)
    for item in files:
        if item.name in ("patients.ndjson", "patients.csv"):
            assert hashlib.sha256(downloaded[item.name]).hexdigest() == item.sha256, item.name


def test_auth_auto_on_loopback_needs_no_key(tmp_path) -> None:
    """`--auth auto` on 127.0.0.1: no key needed; jobs belong to "local"."""
    service = make_service(tmp_path, None, workers=0, auth="auto")
    service.start()
    try:
        response = httpx.post(
            service.api + "/jobs", json={"scenario": {"total_patients": 5}, "formats": ["csv"]}
        )
        assert response.status_code == 202, response.text
        assert response.json()["owner"] == "local"
        assert response.json()["status"] == "pending"  # API-only node: no embedded worker
        listed = httpx.get(service.api + "/jobs").json()["items"]
        assert [j["job_id"] for j in listed] == [response.json()["job_id"]]
        wrong = httpx.get(service.api + "/jobs", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
    finally:
        service.stop()
