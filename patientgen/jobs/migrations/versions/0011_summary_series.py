"""Stored summaries lose the care chain's per-hour series, which summary.json keeps.

The series (`care_chain.simulation.hourly`: every unit's occupancy and queue for every hour)
grows with units times hours, whatever the patient count: a year of 1,200 units (20 fronts
of 20 R1, 20 R2B and 20 R3 units) was a 42 MB job row for 1,000 patients (and as much again in
its chunk 0's row while it ran), read whole by every `GET /jobs/{id}` and every list page
holding the job. From this revision no summary written to the database has it
(formats/summary.py), and this removes it from the rows written before; summary.json, in the
job's files, keeps it.

Downgrade keeps the rows as they are: an older version shows the summary without the series.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# by necessity two spellings of one statement: jsonb's path operators, SQLite's JSON functions
POSTGRES = """
    UPDATE {table} SET summary = summary #- '{{care_chain,simulation,hourly}}'
    WHERE summary #> '{{care_chain,simulation,hourly}}' IS NOT NULL
"""

SQLITE = """
    UPDATE {table} SET summary = json_remove(summary, '$.care_chain.simulation.hourly')
    WHERE json_type(summary, '$.care_chain.simulation.hourly') IS NOT NULL
"""


def upgrade() -> None:
    statement = POSTGRES if op.get_bind().dialect.name == "postgresql" else SQLITE
    for table in ("jobs", "job_chunks"):
        op.execute(statement.format(table=table))


def downgrade() -> None:
    pass  # nothing to restore: summary.json has the series
