"""Database outage (issue 6, item 1).

A throwaway PostgreSQL cluster of the test's own, on a free port, restarted (`pg_ctl stop -m fast`
and `-m immediate`) in the middle of a running multi-chunk job, under a real `patientgen serve
--workers 0` and a separate `patientgen worker`, both subprocesses:

- while the database is down, every endpoint that needs it answers 503 problem+json quickly (no
  hang, no 500, no stack trace) and /healthz still answers 200;
- once it is back, neither process having been restarted, the API answers again and the worker
  carries on: every job finishes, each completed exactly once (an audit trigger records every
  status change), none lost or duplicated (a submit that got 503 and was retried with its
  Idempotency-Key made one job), and the output is byte-identical (sha256) to a clean run.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.support import (
    assert_no_orphans,
    assert_output_identical,
    call,
    install_audit,
    make_env,
    migrate,
    serve,
    transitions,
    wait_healthy,
    worker,
)
from tests.support import free_port, wait_until

pytestmark = [pytest.mark.postgres]

#: Bounds every answer while the database is down: the store gives up connecting after
#: PATIENTGEN_DB_TIMEOUT (1 s here); a hang would hit the client's own 30 s timeout.
DOWN_ANSWER_SECONDS = 8.0


@pytest.fixture(scope="module")
def cluster(pg_cluster_factory):
    """A PostgreSQL cluster of our own on a free port (initdb/pg_ctl as the postgres user when
    run as root): the tests stop and start it."""
    return pg_cluster_factory()


def _job(client: httpx.Client, job_id: str) -> dict:
    response = call(client, "GET", f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _assert_503_problem(response: httpx.Response, elapsed: float) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 503
    assert problem["type"].endswith("service-unavailable")
    assert "Traceback" not in response.text and "psycopg" not in response.text
    assert "Retry-After" in response.headers
    assert elapsed < DOWN_ANSWER_SECONDS, elapsed


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_database_restart_mid_job(cluster, tmp_path, refs, mode):
    import psycopg

    with psycopg.connect(f"{cluster.url}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS outage_{mode}")
        conn.execute(f"CREATE DATABASE outage_{mode}")
    url = f"{cluster.url}/outage_{mode}"
    data = tmp_path / "data"
    migrate(data, url)
    install_audit(url)
    env = make_env(
        data, url, lease_seconds=3, chunk_size=10, chunk_delay=0.2, db_timeout=1, max_attempts=3
    )
    port = free_port()
    api = serve(env, port, tmp_path / "api.log").start()
    work = worker(env, tmp_path / "worker.log").start()
    try:
        wait_healthy(port, api)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30)
        bodies = {
            "long": {
                "scenario": {"name": "outage", "seed": 11, "total_patients": 120},
                "formats": ["json", "ndjson", "csv"],
            },
            "queued": {
                "scenario": {"name": "queued", "seed": 12, "total_patients": 15},
                "formats": ["ndjson", "fhir"],
            },
            "during": {
                "scenario": {"name": "during", "seed": 13, "total_patients": 7},
                "formats": ["csv"],
            },
        }
        ids = {}
        for name in ("long", "queued"):
            response = client.post("/jobs", json=bodies[name], headers={"Idempotency-Key": name})
            assert response.status_code == 202, response.text
            ids[name] = response.json()["job_id"]

        # the long job is running and has checkpointed a few chunks (of 12)
        wait_until(
            lambda: _job(client, ids["long"])["progress_details"].get("chunks_done", 0) >= 3,
            timeout=60,
        )
        before = _job(client, ids["long"])
        assert before["status"] == "running"
        cluster.stop(mode)

        requests = [
            ("GET", f"/jobs/{ids['long']}", {}),
            ("GET", "/jobs", {}),
            ("GET", f"/jobs/{ids['long']}/files", {}),
            ("GET", "/readyz", {}),
            ("POST", "/jobs", {"json": bodies["during"], "headers": {"Idempotency-Key": "during"}}),
        ]
        for method, path, kwargs in requests:
            started = time.monotonic()
            response = client.request(method, path, **kwargs)
            _assert_503_problem(response, time.monotonic() - started)
            print(f"{method} {path}: 503 in {time.monotonic() - started:.2f} s")
        assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        time.sleep(1.0)  # a real outage, longer than a heartbeat
        assert api.alive() and work.alive()
        cluster.start()
        back = time.monotonic()

        # the API reconnects: the retried submit makes its job (once)
        response = call(
            client, "POST", "/jobs", json=bodies["during"], headers={"Idempotency-Key": "during"}
        )
        assert response.status_code == 202, response.text
        ids["during"] = response.json()["job_id"]
        api_back = time.monotonic() - back
        again = client.post(
            "/jobs", json=bodies["during"], headers={"Idempotency-Key": "during"}
        ).json()
        assert again["job_id"] == ids["during"]

        # the worker reconnects and finishes everything
        def all_done() -> bool:
            return all(_job(client, i)["status"] == "completed" for i in ids.values())

        wait_until(all_done, timeout=90, step=0.2)
        print(
            f"database back: API answering after {api_back:.2f} s,"
            f" all jobs completed after {time.monotonic() - back:.2f} s"
        )
        assert api.alive(), api.text()[-2000:]
        assert work.alive(), work.text()[-2000:]

        listed = client.get("/jobs", params={"limit": 200}).json()["items"]
        assert sorted(j["job_id"] for j in listed) == sorted(ids.values())  # none lost or doubled
        for job_id in ids.values():
            assert_output_identical(_job(client, job_id), data, refs)
        audit = transitions(url)
        for name, job_id in ids.items():
            news = [new for _, new in audit[job_id]]
            assert news.count("completed") == 1, (name, audit[job_id])
            assert "failed" not in news and news[-1] == "completed", (name, audit[job_id])
        assert_no_orphans(data, set(ids.values()))

        # both processes stop gracefully afterwards (they were never restarted)
        assert work.stop() == 0, work.text()[-2000:]
        assert api.stop() == 0, api.text()[-2000:]
        assert "Traceback" not in api.text(), api.text()[-3000:]
    finally:
        work.kill9()
        api.kill9()
