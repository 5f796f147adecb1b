"""The `fhir-bundle` format through the API (issue 11): asked for by name, never by default."""

from __future__ import annotations

import time

import orjson

from tests.api.conftest import Service


def _wait(client, job_id: str) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_transaction_bundles_on_request_only(live_sqlite: Service) -> None:
    with live_sqlite.client("alice") as client:
        response = client.post(
            "/jobs",
            json={
                "preset": "mass-casualty-drill",
                "overrides": {"total_patients": 40},
                "formats": ["json", "ndjson", "csv", "fhir", "fhir-bundle"],
            },
        )
        assert response.status_code == 202, response.text
        job = _wait(client, response.json()["job_id"])
        assert job["status"] == "completed", job["error"]
        files = {f["name"]: f for f in client.get(f"/jobs/{job['job_id']}/files").json()["items"]}
        entry = files["fhir-bundles.ndjson"]
        assert entry["format"] == "fhir-bundle" and entry["records"] == 40
        body = client.get(f"/jobs/{job['job_id']}/files/fhir-bundles.ndjson")
        assert body.headers["content-type"].startswith("application/fhir+ndjson")
        bundles = [orjson.loads(line) for line in body.content.splitlines()]
        assert len(bundles) == 40 and {b["type"] for b in bundles} == {"transaction"}

        # without formats a job writes the default ones: no bundles
        response = client.post(
            "/jobs", json={"preset": "peacekeeping", "overrides": {"total_patients": 5}}
        )
        assert response.status_code == 202, response.text
        assert response.json()["config"]["formats"] == ["json", "ndjson", "csv", "fhir"]
