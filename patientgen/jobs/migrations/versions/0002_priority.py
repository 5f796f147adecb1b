"""Job priority: a `priority` column (existing jobs get 0) and a claim index that orders by it.

The claim query's ORDER BY (priority DESC, created_at, job_id) matches this partial index exactly,
so a claim is an index scan of the pending jobs only. The reaper's scan of running jobs is served
by jobs_status_created, so the separate jobs_running index goes (one index less to maintain on
every status change). On PostgreSQL the jobs table is also vacuumed more eagerly, since every claim
leaves a dead row version behind.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute("ALTER TABLE jobs ADD COLUMN priority integer NOT NULL DEFAULT 0")
    op.execute("DROP INDEX jobs_pending")
    op.execute("DROP INDEX jobs_running")
    op.execute(
        "CREATE INDEX jobs_pending ON jobs (priority DESC, created_at, job_id)"
        " WHERE status = 'pending'"
    )
    if postgres:
        op.execute(
            "ALTER TABLE jobs SET (autovacuum_vacuum_scale_factor = 0.02,"
            " autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_vacuum_cost_delay = 0)"
        )


def downgrade() -> None:
    op.execute("CREATE INDEX jobs_running ON jobs (job_id) WHERE status = 'running'")
    op.execute("DROP INDEX jobs_pending")
    op.execute("CREATE INDEX jobs_pending ON jobs (created_at, job_id) WHERE status = 'pending'")
    op.execute("ALTER TABLE jobs DROP COLUMN priority")
