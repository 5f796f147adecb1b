"""SQLite: the job list's indexes lead with the status, as PostgreSQL's do since 0008.

SQLite is the default store, and a caller without a key lists as the one owner `local`. Its list
queries (sqlite.sql) filter `status IN (...)` and order by (created_at, job_id); with the
indexes of 0001 the planner walked `jobs_owner_created` (or `jobs_created`) and filtered the
statuses as it went: a page of the 3 running jobs among 20,000 finished ones took about 240,000
virtual-machine steps (25 ms), growing with the table. On
- `jobs_status_created` (status, created_at DESC, job_id DESC): every owner's jobs (kept), and
- `jobs_owner_status_created` (owner, status, created_at DESC, job_id DESC): one owner's, which
  also counts an owner's active jobs (the per-key limit), so `jobs_owner_active` goes,
SQLite searches each asked status's run in order and stops after the page (about 100 steps for
that page, 2,300 for a page of every status). `jobs_created` and `jobs_owner_created` go:
nothing reads them now. tests/jobs/test_sqlite_plans.py counts the steps.

A submit now writes four index entries (the key, the pending queue, the two list indexes)
instead of six, and a status change touches two list indexes instead of three.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE INDEX jobs_owner_status_created"
        " ON jobs (owner, status, created_at DESC, job_id DESC)"
    )
    op.execute("DROP INDEX jobs_created")
    op.execute("DROP INDEX jobs_owner_created")
    op.execute("DROP INDEX jobs_owner_active")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE INDEX jobs_owner_active ON jobs (owner) WHERE status IN ('pending', 'running')"
    )
    op.execute("CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, job_id DESC)")
    op.execute("CREATE INDEX jobs_created ON jobs (created_at DESC, job_id DESC)")
    op.execute("DROP INDEX jobs_owner_status_created")
