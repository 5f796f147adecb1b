"""Versioned schema migrations (Alembic), run programmatically with a Config built in code.

`upgrade(url)` brings a database to the head revision and is safe when several processes start at
once: on PostgreSQL they serialise on an advisory lock, on SQLite on a file lock next to the
database file. Every process that opens a store calls it; when the database is already at head,
a cheap check of the version table skips Alembic altogether.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: The newest revision (a test checks it equals Alembic's head).
HEAD = "0011"
FIRST = "0001"
VERSION_TABLE = "patientgen_schema_version"
_ADVISORY_KEY = 0x70617469656E74  # "patient"


def sqlalchemy_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite URL: {url}")
    return Path(url[len("sqlite:///") :])


def sqlite_file(url: str) -> Path:
    """The SQLite database's path, its folder made and writable (SQLite writes its journal
    beside the database); ValueError, saying which folder and why, when it is not."""
    from patientgen.folders import folder_problem

    path = sqlite_path(url)
    problem = folder_problem(path.parent, keep=True)
    if problem is not None:
        raise ValueError(
            f"cannot write to the folder of the SQLite database {path.parent}: {problem}"
        )
    return path


def _config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("version_table", VERSION_TABLE)
    cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _locked_connection(url: str, idle_in_transaction_timeout: float | None = None) -> Iterator[Any]:
    """A SQLAlchemy connection holding the migration lock of this database (on PostgreSQL with
    the bound every connection of ours has: `dialects.pg_options`; default: the setting's)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from patientgen.jobs.dialects import pg_options
    from patientgen.settings import IDLE_IN_TRANSACTION_TIMEOUT

    if url.startswith("sqlite:///"):
        path = sqlite_file(url)
        with open(f"{path}.migrate-lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                engine.dispose()
                fcntl.flock(lock, fcntl.LOCK_UN)
        return
    if idle_in_transaction_timeout is None:
        idle_in_transaction_timeout = IDLE_IN_TRANSACTION_TIMEOUT
    engine = create_engine(
        sqlalchemy_url(url),
        poolclass=NullPool,
        connect_args={"options": pg_options(idle_in_transaction_timeout)},
    )
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _ADVISORY_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
                conn.commit()
    finally:
        engine.dispose()


def upgrade(
    url: str, revision: str = "head", idle_in_transaction_timeout: float | None = None
) -> None:
    """Upgrade the database at `url` to `revision` (default head), holding the migration lock."""
    from alembic import command

    with _locked_connection(url, idle_in_transaction_timeout) as conn:
        command.upgrade(_config(conn), revision)
        conn.commit()


def current(url: str) -> str | None:
    """The revision the database is at (None: empty database)."""
    from alembic.runtime.migration import MigrationContext

    with _locked_connection(url) as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def heads() -> list[str]:
    from alembic.script import ScriptDirectory

    return list(ScriptDirectory.from_config(_config(None)).get_heads())


def history() -> list[tuple[str, str]]:
    """(revision, message) from first to head."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config(None))
    revs = list(script.walk_revisions())
    return [(r.revision, r.doc or "") for r in reversed(revs)]


def version_query() -> str:
    """The SQL the stores run to see whether a database is already at head."""
    return f"SELECT version_num FROM {VERSION_TABLE}"


def ensure_schema(store: Any) -> None:
    """Upgrade to head unless the database is there already (cheap check first)."""
    from patientgen.jobs.model import StoreUnavailable

    if store.schema_version() == HEAD:
        return
    try:
        bound = getattr(store.dialect, "idle_in_transaction_timeout", None)
        upgrade(store.url, idle_in_transaction_timeout=bound)
    except Exception as exc:  # sqlalchemy/alembic wrap connection errors in their own types
        if is_connection_error(exc):
            raise StoreUnavailable(f"cannot migrate {safe_url(store.url)}: {exc}") from exc
        raise


def is_connection_error(exc: BaseException) -> bool:
    from patientgen.jobs.dialects import DATABASE_ERRORS

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DATABASE_ERRORS):
            return True
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__ == "OperationalError"


def safe_url(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
