"""Alembic environment: migrations always run on a connection the caller passes in (see
`patientgen.jobs.migrations.upgrade`), never from an ini file."""

from __future__ import annotations

from alembic import context

from patientgen.jobs.migrations import VERSION_TABLE

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reachable by running alembic by hand
    raise RuntimeError("run migrations through `patientgen db upgrade`")

context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    transaction_per_migration=True,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
