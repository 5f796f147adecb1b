"""PostgreSQL: one notification per INSERT statement instead of one trigger call per row.

0003's `jobs_notify` ran a PL/pgSQL function for every inserted row, only to send the same
`patientgen_work` notification (which PostgreSQL folds into one per transaction anyway): a
batch of 1,000 jobs paid 1,000 calls. An insert now fires `jobs_inserted` once per statement,
which looks at the inserted rows (a transition table) and notifies if any is pending; updates
and deletes keep the row trigger, whose payload names each job. What a listener receives is
unchanged. SQLite has no trigger (its waiters poll): nothing changes there.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INSERTED_FUNCTION = """
CREATE FUNCTION patientgen_jobs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM inserted WHERE status = 'pending') THEN
        PERFORM pg_notify('patientgen_work', '');
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER jobs_notify ON jobs")
    op.execute(
        "CREATE TRIGGER jobs_notify AFTER UPDATE OR DELETE ON jobs"
        " FOR EACH ROW EXECUTE FUNCTION patientgen_jobs_notify()"
    )
    op.execute(INSERTED_FUNCTION)
    op.execute(
        "CREATE TRIGGER jobs_inserted AFTER INSERT ON jobs REFERENCING NEW TABLE AS inserted"
        " FOR EACH STATEMENT EXECUTE FUNCTION patientgen_jobs_inserted()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER jobs_inserted ON jobs")
    op.execute("DROP FUNCTION patientgen_jobs_inserted()")
    op.execute("DROP TRIGGER jobs_notify ON jobs")
    op.execute(
        "CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OR DELETE ON jobs"
        " FOR EACH ROW EXECUTE FUNCTION patientgen_jobs_notify()"
    )
