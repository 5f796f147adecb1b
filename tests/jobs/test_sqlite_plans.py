"""SQLite: a page of the job list reads the page, not the owner's jobs.

SQLite is the default store, and a caller without a key lists as the one owner `local`: every
page the web page shows is an owner's page. A page of the 3 running jobs among that owner's
20,000 finished ones must cost about a page of work. Before migration 0009 the planner walked
`jobs_owner_created` and filtered the statuses as it went (about 240,000 virtual-machine steps
and 25 ms for those 20,000 jobs, growing with them). The work is counted in SQLite's own
virtual-machine instructions (a progress handler), which do not depend on the machine's speed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from uuid import uuid4

from patientgen.jobs.model import JobStatus, NewJob

FINISHED = 20_000
PAGE = 51
#: Instructions per progress-handler call.
STEP = 100
#: A page's work, with room: a page of every status reads one short run per status (about
#: 2,300 instructions); walking 20,000 index entries takes about 240,000.
BOUND = 20_000


def _instructions(path: Path, sql: str, params: dict[str, Any]) -> tuple[int, int]:
    """(virtual-machine instructions, rows) of one run of `sql` on the database at `path`."""
    conn = sqlite3.connect(path)
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    try:
        conn.set_progress_handler(tick, STEP)
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.close()
    return count[0] * STEP, len(rows)


def test_a_page_of_one_status_reads_the_page(tmp_path: Path) -> None:
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    path = tmp_path / "jobs.db"
    settings = Settings(database_url=f"sqlite:///{path}", data_dir=tmp_path / "data")
    with JobService.open(settings) as service:
        store = service.store
        store.create_many(
            [
                NewJob(job_id=uuid4(), owner="local", config={}, max_attempts=3)
                for _ in range(FINISHED + 3)
            ]
        )
        with sqlite3.connect(path) as conn:  # all finished but the 3 oldest, which run
            conn.execute(
                "UPDATE jobs SET status = CASE WHEN rowid <= 3 THEN 'running' ELSE 'completed' END"
            )
        running = store.list_jobs("local", [JobStatus.RUNNING], PAGE, None)
        assert [j.status for j in running] == [JobStatus.RUNNING] * 3
        assert running == store.list_jobs(None, [JobStatus.RUNNING], PAGE, None)

        pages = [(owner, [JobStatus.RUNNING]) for owner in (None, "local")]
        pages += [(owner, None) for owner in (None, "local")]  # every status
        pages += [("local", [JobStatus.COMPLETED, JobStatus.PENDING])]
        for owner, statuses in pages:  # the query and parameters list_jobs runs
            query, params = store.list_query(owner, statuses, PAGE, None)
            work, rows = _instructions(path, store.dialect.queries[query], params)
            assert 0 < rows <= PAGE
            assert work <= BOUND, (query, statuses, work)

        # the per-key limit's count of one owner's active jobs is an index search too
        work, rows = _instructions(path, store.dialect.queries["active_count"], {"owner": "local"})
        assert rows == 1 and work <= BOUND, work


def test_the_list_indexes_lead_with_the_status(tmp_path: Path) -> None:
    """The jobs table's indexes after migration 0009, the same list indexes as PostgreSQL's:
    a pending job without an idempotency key has four index entries (its key, the pending
    queue, the two list indexes), where it had six."""
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    path = tmp_path / "jobs.db"
    JobService.open(Settings(database_url=f"sqlite:///{path}", data_dir=tmp_path / "d")).close()
    with sqlite3.connect(path) as conn:
        names = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs'"
                " AND sql IS NOT NULL"
            )
        }
    assert names == {
        "jobs_status_created",
        "jobs_owner_status_created",
        "jobs_pending",  # partial: pending jobs
        "jobs_idempotency",  # partial: jobs with a key
    }  # and the primary key's own index (no sql)
