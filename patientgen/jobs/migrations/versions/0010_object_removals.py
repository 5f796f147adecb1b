"""Object storage: the jobs whose objects a write removed, so the sweep need not list the bucket.

- `object_removals`: one row per job whose files a fenced write removed (a failure, a cancel,
  a completion that drops its parts, a delete, a reap that ends a job), recorded in the same
  transaction as that write when the database's jobs keep their files in object storage
  (SqlStore.record_removals). The process that made the write deletes the objects right after
  its commit (files.ObjectFiles.purge); a row says "check this job's objects", so the sweep
  finishes what a process that died before its purge left, reading these rows instead of
  listing every object of the bucket at each interval. The whole bucket is listed only every
  `storage_listing_interval` (for what no write could record: a part a stalled helper sent
  after its job ended). `recorded_at` is the database's clock (SQLite: the writer's, which
  only paces the sweep).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

POSTGRES = """
    CREATE TABLE object_removals (
        job_id       uuid PRIMARY KEY,
        recorded_at  timestamptz NOT NULL DEFAULT now()
    )
"""

SQLITE = """
    CREATE TABLE object_removals (
        job_id       TEXT PRIMARY KEY,
        recorded_at  TEXT NOT NULL
    ) WITHOUT ROWID
"""


def upgrade() -> None:
    op.execute(POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE)


def downgrade() -> None:
    op.execute("DROP TABLE object_removals")
