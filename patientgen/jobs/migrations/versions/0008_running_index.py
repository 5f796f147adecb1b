"""PostgreSQL: the reaper's scan of running jobs gets a partial index of its own, and the index
on (status, created_at, job_id) goes.

`jobs_status_created` was kept for two reads, and PostgreSQL's planner used it for neither: the
list query filters statuses with `status IN (subquery)` and orders by created_at across them, so it
walks `jobs_created` (or `jobs_owner_created`) and filters; the reaper's `expired` read
(`status = 'running' AND lease_expires_at < now()`) walked the running jobs' entries of a full
index that every job ever submitted had to be written into. `jobs_running` holds only running
jobs, ordered by lease end: a submit no longer writes into it (one index fewer on every insert,
and on every status change, none of which is a HOT update), and the reaper reads only the
expired leases. The active-job count is served by `jobs_owner_active`, as before.

SQLite keeps `jobs_status_created`: its planner reads the job counts (GROUP BY status) from it as
a covering index, and its reaper scans it.

Building `jobs_running` reads the table once under a lock that holds off writes; the index holds
only the jobs running at the time.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX jobs_running ON jobs (lease_expires_at) WHERE status = 'running'")
    op.execute("DROP INDEX jobs_status_created")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, job_id DESC)")
    op.execute("DROP INDEX jobs_running")
