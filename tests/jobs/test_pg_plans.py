"""PostgreSQL: a page of the job list reads the page, not the table.

A page of the 3 running jobs among 20,000 finished ones, for every owner and for one owner, must
read about a page of index entries and remove none by a filter (before migration 0008 and the
per-status list queries, the scan in created_at order walked all 20,000 entries and filtered
them). The plans are the server's own, EXPLAIN ANALYZE of the store's named queries with the
parameters the store passes.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from patientgen.jobs.model import JobStatus

pytestmark = pytest.mark.postgres

FINISHED = 20_000
PAGE = 51


def _walk(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes.extend(_walk(child))
    return nodes


def _read(url: str, store: Any, query: str, params: dict[str, Any]) -> tuple[int, int, set[str]]:
    """(rows the scans returned, rows their filters removed, node types) of one run."""
    with psycopg.connect(url) as conn:
        explained = conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + store.dialect.queries[query], params
        ).fetchone()
    assert explained is not None
    nodes = _walk(explained[0][0]["Plan"])
    scans = [n for n in nodes if "Scan" in n["Node Type"] and n["Node Type"] != "Function Scan"]
    returned = sum(n["Actual Rows"] * n["Actual Loops"] for n in scans)
    removed = sum(n.get("Rows Removed by Filter", 0) * n["Actual Loops"] for n in scans)
    return returned, removed, {n["Node Type"] for n in nodes}


def test_a_page_of_one_status_reads_the_page(pg_database_factory, tmp_path):
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    url = pg_database_factory()
    with JobService.open(Settings(database_url=url, data_dir=tmp_path / "data")) as service:
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO jobs (job_id, owner, status, config, created_at)"
                " SELECT gen_random_uuid(), 'owner' || mod(i, 20), 'completed', '{}'::jsonb,"
                "        now() - i * interval '1 second'"
                " FROM generate_series(1, %s) AS i",
                (FINISHED,),
            )
            conn.execute(
                "INSERT INTO jobs (job_id, owner, status, config, created_at)"
                " SELECT gen_random_uuid(), 'owner3', 'running', '{}'::jsonb,"
                "        now() - interval '1 day' - i * interval '1 second'"
                " FROM generate_series(1, 3) AS i"
            )
            conn.execute("ANALYZE jobs")
        store = service.store
        running = store.list_jobs(None, [JobStatus.RUNNING], PAGE, None)
        assert [j.status for j in running] == [JobStatus.RUNNING] * 3
        assert running == store.list_jobs("owner3", [JobStatus.RUNNING], PAGE, None)
        everything = store.list_jobs(None, None, PAGE, None)
        assert len(everything) == PAGE and everything[0].status == JobStatus.COMPLETED

        running = [JobStatus.RUNNING]
        for owner in (None, "owner3"):  # the query and parameters list_jobs runs
            query, params = store.list_query(owner, running, PAGE, None)
            returned, removed, nodes = _read(url, store, query, params)
            assert returned <= PAGE and removed == 0, (query, returned, removed)
            assert "Seq Scan" not in nodes, (query, nodes)
        query, params = store.list_query(None, None, PAGE, None)  # every status
        returned, removed, nodes = _read(url, store, query, params)
        assert returned <= 5 * PAGE and removed == 0 and "Seq Scan" not in nodes
        # a page further on: the keyset is an index condition too
        after = (everything[-1].created_at, everything[-1].job_id)
        query, params = store.list_query(None, None, PAGE, after)
        returned, removed, nodes = _read(url, store, query, params)
        assert returned <= 5 * PAGE and removed == 0 and "Seq Scan" not in nodes


def test_a_submit_writes_four_index_entries(pg_database_factory, tmp_path):
    """The jobs table's indexes after migration 0008 (README: a submit writes four index
    entries, not six): the key, the pending queue and the two list indexes take a pending job;
    the idempotency index only a job with a key, jobs_running only a running job."""
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    url = pg_database_factory()
    JobService.open(Settings(database_url=url, data_dir=tmp_path / "data")).close()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'"
        ).fetchall()
    partial = {name for name, definition in rows if " WHERE " in definition}
    full = {name for name, _ in rows} - partial
    assert full == {"jobs_pkey", "jobs_status_created", "jobs_owner_status_created"}
    assert partial == {"jobs_pending", "jobs_running", "jobs_idempotency"}
