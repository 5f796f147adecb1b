"""One store core: a row version on every job, SQLite's lease clock, PostgreSQL's notify trigger.

- `version` (both): bumped by every change of a job; waiters and the user's conditional writes
  compare it, never a timestamp (a clock stepped back made an event stream wait for ever).
- `lease_deadline`, `lease_boot` (SQLite only, by necessity): the lease on the host's boot clock
  and the boot it was taken in (see jobs/sql/sqlite.sql); PostgreSQL uses its server's now().
  A job running at the upgrade has neither, so the reaper treats its lease as expired.
- `jobs_notify` (PostgreSQL only, by necessity): NOTIFY on every change of a job (channel
  patientgen_job, payload the job id) and when a job becomes pending (patientgen_work), so no
  statement of the store has to remember to announce its change.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOTIFY_FUNCTION = """
CREATE FUNCTION patientgen_jobs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('patientgen_job', OLD.job_id::text);
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        PERFORM pg_notify('patientgen_job', NEW.job_id::text);
    END IF;
    IF NEW.status = 'pending' AND (TG_OP = 'INSERT' OR OLD.status <> 'pending') THEN
        PERFORM pg_notify('patientgen_work', '');
    END IF;
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN version bigint NOT NULL DEFAULT 0")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(NOTIFY_FUNCTION)
        op.execute(
            "CREATE TRIGGER jobs_notify AFTER INSERT OR UPDATE OR DELETE ON jobs"
            " FOR EACH ROW EXECUTE FUNCTION patientgen_jobs_notify()"
        )
    else:
        op.execute("ALTER TABLE jobs ADD COLUMN lease_deadline REAL")
        op.execute("ALTER TABLE jobs ADD COLUMN lease_boot TEXT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER jobs_notify ON jobs")
        op.execute("DROP FUNCTION patientgen_jobs_notify()")
    else:
        op.execute("ALTER TABLE jobs DROP COLUMN lease_boot")
        op.execute("ALTER TABLE jobs DROP COLUMN lease_deadline")
    op.execute("ALTER TABLE jobs DROP COLUMN version")
