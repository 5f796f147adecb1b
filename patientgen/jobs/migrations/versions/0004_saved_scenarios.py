"""Saved scenarios: named scenarios kept on the server, per owner.

One row per (owner, name); `version` grows with every replacement, so a client can tell that a
scenario changed since it read it. The scenario is stored as it was validated (JSON).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

POSTGRES = """
CREATE TABLE scenarios (
    owner       text NOT NULL,
    name        text NOT NULL,
    scenario    jsonb NOT NULL,
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner, name)
)
"""

SQLITE = """
CREATE TABLE scenarios (
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL,
    scenario    TEXT NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (owner, name)
) WITHOUT ROWID
"""


def upgrade() -> None:
    op.execute(POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE)


def downgrade() -> None:
    op.execute("DROP TABLE scenarios")
