"""Chunk claims: a running job's chunks as work any worker may claim.

- `chunk_phases`: one row while a running job's chunk phase is open to helpers (its owner opened
  it after the care-chain phase, the flow result being in the parts folder); `attempt` is the
  job's attempt that opened it, `chunks_total` how many chunks it has.
- `chunk_claims`: one row per chunk being written, by one worker, leased on the database's one
  clock like a job (PostgreSQL: `lease_expires_at` on now(); SQLite, by necessity: the host's
  boot clock and the boot id, as `jobs.lease_deadline`, `jobs.lease_boot`). A recorded chunk
  has no claim: it is in `job_chunks`.

Both are deleted in the write that takes the job out of `running` (finish, reap, retry), so a
claim never outlives the run of the job it was taken in. No existing row changes: a database
holding jobs upgrades without losing any (a job running at the upgrade opens its phase when it
is resumed).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

POSTGRES = (
    """
    CREATE TABLE chunk_phases (
        job_id        uuid PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
        attempt       integer NOT NULL,
        chunks_total  integer NOT NULL,
        opened_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    """
    CREATE TABLE chunk_claims (
        job_id            uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        chunk             integer NOT NULL,
        attempt           integer NOT NULL,
        worker_id         text NOT NULL,
        lease_expires_at  timestamptz NOT NULL,
        PRIMARY KEY (job_id, chunk)
    )
    """,
)

SQLITE = (
    """
    CREATE TABLE chunk_phases (
        job_id        TEXT PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
        attempt       INTEGER NOT NULL,
        chunks_total  INTEGER NOT NULL,
        opened_at     TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE chunk_claims (
        job_id          TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        chunk           INTEGER NOT NULL,
        attempt         INTEGER NOT NULL,
        worker_id       TEXT NOT NULL,
        lease_expires_at TEXT NOT NULL,
        lease_deadline  REAL NOT NULL,
        lease_boot      TEXT NOT NULL,
        PRIMARY KEY (job_id, chunk)
    ) WITHOUT ROWID
    """,
)


def upgrade() -> None:
    for statement in POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE chunk_claims")
    op.execute("DROP TABLE chunk_phases")
