"""`patientgen db upgrade|status|use-storage`: the schema of the configured store, and the
storage its jobs' files live in (files.ensure_same_storage)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from patientgen.cli.app import app
from patientgen.cli.common import (
    EXIT_UNAVAILABLE,
    LENIENT,
    DatabaseOption,
    fail,
    load_settings,
    no_extra,
    open_service,
)

db_app = typer.Typer(
    help="Database schema migrations and the storage of its jobs' files.", no_args_is_help=True
)
app.add_typer(db_app, name="db")


def _url(database_url: str | None, data_dir: Path | None) -> str:
    url = load_settings(database_url=database_url, data_dir=data_dir).database_url
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        fail(f"unsupported database URL {url!r} (use sqlite:///path or postgresql://...)")
    return url


def _unavailable(exc: Exception) -> None:
    from patientgen.jobs.migrations import is_connection_error

    if is_connection_error(exc):
        fail(f"cannot reach the database: {str(exc).splitlines()[0]}", EXIT_UNAVAILABLE)
    if isinstance(exc, ValueError):  # e.g. the SQLite database's folder cannot be made
        fail(str(exc))
    raise exc


DataDir = Annotated[Path | None, typer.Option("--data-dir", metavar="DIR")]


@db_app.command("upgrade", context_settings=LENIENT)
def upgrade(
    ctx: typer.Context,
    revision: Annotated[str, typer.Option("--revision", help="Target revision.")] = "head",
    database_url: DatabaseOption = None,
    data_dir: DataDir = None,
) -> None:
    """Upgrade the schema to the newest revision (safe while other processes run)."""
    from patientgen.jobs import migrations

    no_extra(ctx)
    url = _url(database_url, data_dir)
    known = {r for r, _ in migrations.history()}
    if revision != "head" and revision not in known:
        fail(f"unknown revision {revision!r} (known: {', '.join(sorted(known))}, head)")
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    try:
        migrations.upgrade(url, revision, settings.db_idle_in_transaction_timeout)
        now = migrations.current(url)
    except Exception as exc:
        _unavailable(exc)
    print(f"database at revision {now} (head {migrations.HEAD})")


@db_app.command("status", context_settings=LENIENT)
def status(
    ctx: typer.Context, database_url: DatabaseOption = None, data_dir: DataDir = None
) -> None:
    """Show the schema revision of the database, whether it is at head, and the storage its
    jobs' files live in."""
    from patientgen.jobs import migrations

    no_extra(ctx)
    url = _url(database_url, data_dir)
    try:
        now = migrations.current(url)
    except Exception as exc:
        _unavailable(exc)
    state = "up to date" if now == migrations.HEAD else "needs `patientgen db upgrade`"
    print(f"revision {now or '(empty database)'}, head {migrations.HEAD}: {state}")
    for rev, doc in migrations.history():
        mark = "*" if rev == now else " "
        print(f" {mark} {rev}  {doc.splitlines()[0] if doc else ''}")
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    storage = _recorded_storage(settings) if now == migrations.HEAD else "after an upgrade"
    print(f"storage: {storage}")


def _recorded_storage(settings: Any) -> str:
    from patientgen.jobs.model import StoreUnavailable
    from patientgen.jobs.service import JobService

    try:
        recorded = JobService.recorded_storage(settings)
    except StoreUnavailable as exc:
        fail(f"cannot reach the database: {str(exc).splitlines()[0]}", EXIT_UNAVAILABLE)
    return recorded or "none recorded (the first worker or serve records its own)"


@db_app.command("use-storage", context_settings=LENIENT)
def use_storage(
    ctx: typer.Context, database_url: DatabaseOption = None, data_dir: DataDir = None
) -> None:
    """Record this process's storage (PATIENTGEN_STORAGE_URL; unset: each host's data folder) as
    where the database's jobs keep their files. Refused while a job is pending or running; the
    files of earlier jobs are not moved (they stay readable only where they were written)."""
    no_extra(ctx)
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        before, now = service.use_storage()
    if before == now:
        print(f"storage: {now} (unchanged)")
        return
    print(f"storage: {now} (was {before or 'none recorded'})")
    if before is not None:
        print(
            f"earlier jobs' files stay where they were ({before}): they are not moved, and a"
            f" process on {now} cannot read them"
        )
