"""Initial schema: jobs, job_chunks (per-chunk checkpoints), api_keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = "('pending', 'running', 'completed', 'failed', 'cancelled')"

POSTGRES = [
    f"""
    CREATE TABLE jobs (
        job_id              uuid PRIMARY KEY,
        owner               text NOT NULL,
        status              text NOT NULL CHECK (status IN {_STATUSES}),
        config              jsonb NOT NULL,
        progress            smallint NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        progress_details    jsonb NOT NULL DEFAULT '{{}}',
        created_at          timestamptz NOT NULL DEFAULT now(),
        started_at          timestamptz,
        updated_at          timestamptz NOT NULL DEFAULT now(),
        completed_at        timestamptz,
        error               text,
        output_files        jsonb NOT NULL DEFAULT '[]',
        summary             jsonb,
        attempts            integer NOT NULL DEFAULT 0,
        max_attempts        integer NOT NULL DEFAULT 3,
        lease_owner         text,
        lease_expires_at    timestamptz,
        cancel_requested_at timestamptz,
        idempotency_key     text
    ) WITH (fillfactor = 80)
    """,
    """CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key)
       WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX jobs_created ON jobs (created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_pending ON jobs (created_at, job_id) WHERE status = 'pending'",
    "CREATE INDEX jobs_running ON jobs (job_id) WHERE status = 'running'",
    """CREATE INDEX jobs_owner_active ON jobs (owner)
       WHERE status IN ('pending', 'running')""",
    """
    CREATE TABLE job_chunks (
        job_id      uuid NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        chunk       integer NOT NULL,
        summary     jsonb NOT NULL,
        worker_id   text NOT NULL,
        finished_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job_id, chunk)
    )
    """,
    """
    CREATE TABLE api_keys (
        key_id          text PRIMARY KEY,
        name            text NOT NULL,
        secret_sha256   text NOT NULL UNIQUE,
        admin           boolean NOT NULL DEFAULT false,
        max_patients    bigint,
        max_active_jobs integer,
        created_at      timestamptz NOT NULL DEFAULT now(),
        revoked_at      timestamptz
    )
    """,
]

SQLITE = [
    f"""
    CREATE TABLE jobs (
        job_id              TEXT PRIMARY KEY,
        owner               TEXT NOT NULL,
        status              TEXT NOT NULL CHECK (status IN {_STATUSES}),
        config              TEXT NOT NULL,
        progress            INTEGER NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
        progress_details    TEXT NOT NULL DEFAULT '{{}}',
        created_at          TEXT NOT NULL,
        started_at          TEXT,
        updated_at          TEXT NOT NULL,
        completed_at        TEXT,
        error               TEXT,
        output_files        TEXT NOT NULL DEFAULT '[]',
        summary             TEXT,
        attempts            INTEGER NOT NULL DEFAULT 0,
        max_attempts        INTEGER NOT NULL DEFAULT 3,
        lease_owner         TEXT,
        lease_expires_at    TEXT,
        cancel_requested_at TEXT,
        idempotency_key     TEXT
    )
    """,
    """CREATE UNIQUE INDEX jobs_idempotency ON jobs (owner, idempotency_key)
       WHERE idempotency_key IS NOT NULL""",
    "CREATE INDEX jobs_created ON jobs (created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_owner_created ON jobs (owner, created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, job_id DESC)",
    "CREATE INDEX jobs_pending ON jobs (created_at, job_id) WHERE status = 'pending'",
    "CREATE INDEX jobs_running ON jobs (job_id) WHERE status = 'running'",
    """CREATE INDEX jobs_owner_active ON jobs (owner)
       WHERE status IN ('pending', 'running')""",
    """
    CREATE TABLE job_chunks (
        job_id      TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
        chunk       INTEGER NOT NULL,
        summary     TEXT NOT NULL,
        worker_id   TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        PRIMARY KEY (job_id, chunk)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE api_keys (
        key_id          TEXT PRIMARY KEY,
        name            TEXT NOT NULL,
        secret_sha256   TEXT NOT NULL UNIQUE,
        admin           INTEGER NOT NULL DEFAULT 0,
        max_patients    INTEGER,
        max_active_jobs INTEGER,
        created_at      TEXT NOT NULL,
        revoked_at      TEXT
    )
    """,
]


def upgrade() -> None:
    statements = POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    for table in ("api_keys", "job_chunks", "jobs"):
        op.execute(f"DROP TABLE {table}")
