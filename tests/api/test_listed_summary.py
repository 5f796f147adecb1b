"""The jobs list leaves out the care chain's per-hour series (about 70 kB a month of scenario
per job: a page of 50 jobs with medical plans was megabytes); one job's document has it.
Real `serve` on SQLite, real HTTP."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Service
from tests.support import wait_until


def _finished(client: httpx.Client, job_id: str) -> dict:
    wait_until(lambda: client.get(f"/jobs/{job_id}").json()["status"] == "completed", timeout=90)
    return client.get(f"/jobs/{job_id}").json()


@pytest.mark.timeout(120)
def test_a_list_leaves_out_the_hourly_series_and_a_job_has_it(live_sqlite: Service) -> None:
    with live_sqlite.client("alice") as client:
        body = {"scenario": {"total_patients": 300, "seed": 4, "duration_days": 30,
                             "capacity": "sized"}, "formats": ["csv"]}  # fmt: skip
        job_id = client.post("/jobs", json=body).json()["job_id"]
        whole = _finished(client, job_id)
        assert whole["status"] == "completed", whole["error"]
        simulation = whole["summary"]["care_chain"]["simulation"]
        assert len(simulation["hourly"]) > 0
        listed = next(j for j in client.get("/jobs").json()["items"] if j["job_id"] == job_id)
    brief = listed["summary"]["care_chain"]["simulation"]
    assert "hourly" not in brief
    assert brief == {k: v for k, v in simulation.items() if k != "hourly"}
    rest = {k: v for k, v in whole["summary"].items() if k != "care_chain"}
    assert {k: v for k, v in listed["summary"].items() if k != "care_chain"} == rest
    assert (
        len(httpx.Response(200, json=listed).content)
        < len(httpx.Response(200, json=whole).content) / 5
    )
