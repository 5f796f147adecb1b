"""Migrations: head matches Alembic, a database holding jobs upgrades from the first revision to
head without losing any, and several processes may upgrade at once."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from datetime import UTC, datetime

import pytest

from patientgen.jobs import migrations
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings


def test_head_constant_matches_alembic():
    assert migrations.heads() == [migrations.HEAD]
    assert migrations.history()[0][0] == migrations.FIRST
    assert len(migrations.history()) >= 2


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    return request.getfixturevalue("pg_database_factory")()


def _insert_rev1_jobs(url: str, n: int) -> list[str]:
    """Jobs as revision 0001 stored them (no priority column yet)."""
    scenario = Scenario(total_patients=3).model_dump_json()
    config = f'{{"scenario": {scenario}, "formats": ["ndjson"], "chunk_size": 5}}'
    ids = [str(uuid.uuid4()) for _ in range(n)]
    statuses = ["pending", "completed", "failed", "cancelled"]
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (i, "alice", statuses[k % 4], config, f"2026-01-01 00:00:{k:02d}.000000")
        for k, i in enumerate(ids)
    ]
    if url.startswith("sqlite"):
        with sqlite3.connect(migrations.sqlite_path(url)) as conn:
            conn.executemany(
                "INSERT INTO jobs (job_id, owner, status, config, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(*r, r[-1]) for r in rows],
            )
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            for r in rows:
                conn.execute(
                    "INSERT INTO jobs (job_id, owner, status, config, created_at, updated_at)"
                    " VALUES (%s, %s, %s, %s::jsonb, %s, %s)",
                    (*r[:4], stamp, stamp),
                )
    return ids


def test_upgrade_from_first_revision_keeps_jobs(fresh_url, tmp_path):
    migrations.upgrade(fresh_url, migrations.FIRST)
    assert migrations.current(fresh_url) == migrations.FIRST
    ids = _insert_rev1_jobs(fresh_url, 20)
    settings = Settings(database_url=fresh_url, data_dir=tmp_path)
    with JobService.open(settings) as service:  # opening applies the remaining migrations
        assert migrations.current(fresh_url) == migrations.HEAD
        assert service.ready()["at_head"]
        jobs = {str(j.job_id): j for j in service.list(limit=500).items}
        assert sorted(jobs) == sorted(ids)
        assert all(j.priority == 0 for j in jobs.values())
        assert service.counts()["pending"] == 5
        claimed = service.store.claim("w", 30, limit=10)
        assert len(claimed) == 5 and all(j.status == JobStatus.RUNNING for j in claimed)


def test_concurrent_upgrades_are_safe(fresh_url):
    errors: list[BaseException] = []

    def run():
        try:
            migrations.upgrade(fresh_url)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert migrations.current(fresh_url) == migrations.HEAD


def test_upgrade_takes_the_hourly_series_out_of_stored_summaries(fresh_url, tmp_path):
    """Revision 0011: the care chain's per-hour series, stored in job and chunk rows before (a
    42 MB row for a year of 1,200 units), is removed from them; summary.json keeps it."""
    migrations.upgrade(fresh_url, "0010")
    (job_id,) = _insert_rev1_jobs(fresh_url, 1)
    simulation = {"operating_table_hours": {"R2-A-1": 3.5}, "hourly": {"R2-A-1": {"queue": [0, 2]}}}
    summary = json.dumps({"patients": 3, "care_chain": {"deaths": 1, "simulation": simulation}})
    plain = json.dumps({"patients": 3})  # a summary without a care chain stays as it was
    if fresh_url.startswith("sqlite"):
        with sqlite3.connect(migrations.sqlite_path(fresh_url)) as conn:
            conn.execute("UPDATE jobs SET summary = ? WHERE job_id = ?", (summary, job_id))
            conn.executemany(
                "INSERT INTO job_chunks (job_id, chunk, summary, worker_id, finished_at)"
                " VALUES (?, ?, ?, 'w', '2026-01-01 00:00:00.000000')",
                [(job_id, 0, summary), (job_id, 1, plain)],
            )
    else:
        import psycopg

        with psycopg.connect(fresh_url) as conn:
            conn.execute("UPDATE jobs SET summary = %s::jsonb WHERE job_id = %s", (summary, job_id))
            for chunk, data in ((0, summary), (1, plain)):
                conn.execute(
                    "INSERT INTO job_chunks (job_id, chunk, summary, worker_id)"
                    " VALUES (%s, %s, %s::jsonb, 'w')",
                    (job_id, chunk, data),
                )
    settings = Settings(database_url=fresh_url, data_dir=tmp_path)
    brief = {"patients": 3, "care_chain": {"deaths": 1, "simulation": {
        "operating_table_hours": {"R2-A-1": 3.5}}}}  # fmt: skip
    with JobService.open(settings) as service:
        assert service.get(uuid.UUID(job_id)).summary == brief
        chunks = {c.chunk: c.summary for c in service.store.chunks(uuid.UUID(job_id))}
    assert chunks == {0: brief, 1: {"patients": 3}}
