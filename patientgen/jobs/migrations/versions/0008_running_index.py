"""PostgreSQL: the job list's indexes lead with the status, the reaper gets a partial index of
the running jobs, and three indexes go.

Before, a page of jobs was one index scan in created_at order (`jobs_created`, or
`jobs_owner_created` for one owner) that filtered the statuses as it went: a page of the 45
running jobs among 300,000 finished ones walked all 300,000 entries (148 ms), and more as the
table grew. `jobs_status_created` existed, but that query could not use it. The list queries
(postgres.sql) now merge one scan per status of
- `jobs_status_created` (status, created_at DESC, job_id DESC): every owner's jobs (kept), and
- `jobs_owner_status_created` (owner, status, created_at DESC, job_id DESC): one owner's, which
  also counts an owner's active jobs (the per-key limit), so `jobs_owner_active` goes;
each scan reads at most a page (0.2-0.5 ms at 300,000 jobs, and no more as the table grows).
`jobs_created` and `jobs_owner_created` go with the old query.

`jobs_running` (lease_expires_at) WHERE status = 'running' holds only running jobs: the
reaper's read of expired leases no longer walks the running entries of a full index.

A submit now writes four index entries (the key, the pending queue, the two list indexes)
instead of six, and so does every status change (none is a HOT update).

SQLite keeps its indexes here: its list queries are one scan (it has no LATERAL join); 0009 gives
it the same two list indexes.

The new indexes are built under a lock that holds off writes to the jobs table while the table
is read once for each.

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
    op.execute(
        "CREATE INDEX jobs_owner_status_created"
        " ON jobs (owner, status, created_at DESC, job_id DESC)"
    )
    op.execute("DROP INDEX jobs_created")
    op.execute("DROP INDEX jobs_owner_created")
    op.execute("DROP INDEX jobs_owner_active")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX jobs_owner_active ON jobs (owner) WHERE status IN ('pending', 'running')"
    )
    op.execute("CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, job_id DESC)")
    op.execute("CREATE INDEX jobs_created ON jobs (created_at DESC, job_id DESC)")
    op.execute("DROP INDEX jobs_owner_status_created")
    op.execute("DROP INDEX jobs_running")
