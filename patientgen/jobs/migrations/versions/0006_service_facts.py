"""Service facts: what every process on one database must agree on, recorded once.

- `service_facts`: one row per fact, by name. The first is `storage` (files.STORAGE_FACT):
  where this database's jobs keep their files, as `files.storage_name` writes it (`local`, or
  `s3://bucket/prefix` without the endpoint). Every process that runs or serves jobs records
  its own if none is recorded and refuses to start on another (files.ensure_same_storage);
  `patientgen db use-storage` replaces it while no job is pending or running.

No existing row changes. A database upgraded to this revision has nothing recorded: the first
process that runs or serves jobs after the upgrade records its own storage (so every host should
have the same setting before the upgrade, as it had to already).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

POSTGRES = """
    CREATE TABLE service_facts (
        name         text PRIMARY KEY,
        value        text NOT NULL,
        recorded_at  timestamptz NOT NULL DEFAULT now()
    )
"""

SQLITE = """
    CREATE TABLE service_facts (
        name         TEXT PRIMARY KEY,
        value        TEXT NOT NULL,
        recorded_at  TEXT NOT NULL
    ) WITHOUT ROWID
"""


def upgrade() -> None:
    op.execute(POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE)


def downgrade() -> None:
    op.execute("DROP TABLE service_facts")
