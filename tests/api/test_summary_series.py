"""The care chain's per-hour series lives in summary.json, never in the database.

Before, the series (occupancy and queue of every unit for every hour) was stored in the job's row
and in its chunk 0's row, and sent with every `GET /jobs/{id}`: a 1,000-patient job with a
medical plan of 1,200 units (20 fronts of 60) over 365 days made a 42 MB row, each GET of it took
0.9 s, and a list page holding it 0.6 s. Now the row, the job document and the list carry the
summary without it; `GET /jobs/{id}/summary` serves summary.json, which has it.
Real `serve` on SQLite, real HTTP, the real database file.
"""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from tests.api.conftest import Service, finished
from tests.api.test_api_jobs import read_events


@pytest.mark.timeout(120)
def test_the_series_is_in_summary_json_and_never_in_the_database(live_sqlite: Service) -> None:
    with live_sqlite.client("alice") as client:
        # two chunks of the default 1,000: chunk 0 carries the simulation's statistics
        body = {"scenario": {"total_patients": 1200, "seed": 4, "duration_days": 30,
                             "capacity": "sized"}, "formats": ["csv"]}  # fmt: skip
        job_id = client.post("/jobs", json=body).json()["job_id"]
        job = finished(client, job_id, timeout=90)
        assert job["status"] == "completed", job["error"]
        brief = job["summary"]["care_chain"]["simulation"]
        assert "hourly" not in brief and brief["operating_table_hours"]
        listed = next(j for j in client.get("/jobs").json()["items"] if j["job_id"] == job_id)
        assert listed["summary"] == job["summary"]
        # an event stream of the completed job: its one `end` event carries the same summary
        ((kind, ended),) = read_events(client, f"/jobs/{job_id}/events")
        assert kind == "end" and ended["summary"] == job["summary"]
        assert "hourly" not in ended["summary"]["care_chain"]["simulation"]

        whole = client.get(f"/jobs/{job_id}/summary")
        assert whole.status_code == 200
        assert whole.headers["content-type"].startswith("application/json")
        file = client.get(f"/jobs/{job_id}/files/summary.json")
        assert whole.content == file.content
        entry = next(f for f in job["output_files"] if f["name"] == "summary.json")
        assert whole.headers["etag"] == f'"{hashlib.sha256(whole.content).hexdigest()}"'
        assert entry["sha256"] == hashlib.sha256(whole.content).hexdigest()
        again = client.get(
            f"/jobs/{job_id}/summary", headers={"If-None-Match": whole.headers["etag"]}
        )
        assert again.status_code == 304
    simulation = whole.json()["care_chain"]["simulation"]
    assert len(simulation["hourly"]) > 0
    assert {k: v for k, v in simulation.items() if k != "hourly"} == brief
    rest = {k: v for k, v in whole.json().items() if k != "care_chain"}
    assert {k: v for k, v in job["summary"].items() if k != "care_chain"} == rest

    db = live_sqlite.data_dir / "patientgen.db"
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        (stored,) = conn.execute("SELECT summary FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert '"operating_table_hours"' in stored and '"hourly"' not in stored


def test_the_summary_of_a_job_without_one(api_only: Service) -> None:
    with api_only.client("alice") as client:
        pending = client.post("/jobs", json={"scenario": {"total_patients": 5}}).json()["job_id"]
        response = client.get(f"/jobs/{pending}/summary")
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        assert "pending" in response.json()["detail"]
        missing = client.get("/jobs/00000000-0000-4000-8000-000000000000/summary")
        assert missing.status_code == 404
