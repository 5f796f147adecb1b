"""What differs between SQLite and PostgreSQL, and nothing else: connections and transactions,
the database's clock, how values are encoded, and how a process learns that something changed.

The whole exception tree of the job layer's database access is here, in one table
(`DATABASE_ERRORS`): every driver error that means "the database cannot be reached or is busy"
becomes `StoreUnavailable` in `Dialect.transaction` (and in the watcher's `change_counter` and
`listen`, which use connections of their own), and nowhere else.

- `SqliteDialect`: a bounded pool of connections (`SQLITE_CONNECTIONS`), each opened once and
  closed with the store, shared by every thread of the process (file descriptors stay flat however
  many threads come and go). A connection is used by one thread at a time and never closed while
  a thread uses it: Python's sqlite3 does not guard that, and the process crashes. Writes run in
  `BEGIN IMMEDIATE`. The clock of every lease is the host's boot clock (`CLOCK_BOOTTIME`) with
  the boot id (see sqlite.sql); change detection is `PRAGMA data_version`.
- `PostgresDialect`: one psycopg_pool per store (a worker process opens one store, so one pool),
  the server's now() as the clock, LISTEN/NOTIFY on one extra connection for change detection.
  The pool only logs why a connect failed; its connection class keeps the reason, so the
  `StoreUnavailable` of a wait that found no connection says why (refused, unknown role, ...).
  Every connection it opens (and the migrations', `pg_options`) has a bound on how long it may
  sit idle inside a transaction: past it the server ends the session (its transaction rolled
  back, its row locks released), and the process, when it runs again, gets the server's
  `IdleInTransactionSessionTimeout` or, when it notices the closed socket first, an
  `OperationalError`: both are in `DATABASE_ERRORS`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from patientgen.jobs._codec import later, loads, parse_ts, ts, utcnow
from patientgen.jobs.model import StoreUnavailable
from patientgen.settings import IDLE_IN_TRANSACTION_TIMEOUT

SQL_DIR = Path(__file__).resolve().parent / "sql"
#: The queries both dialects run as written (each dialect file holds only its own forms).
COMMON_SQL = SQL_DIR / "common.sql"
#: Connections of one SQLite store (a process opens one store per role): enough for the API's
#: store threads to read side by side; writers queue on SQLite's one write lock anyway.
SQLITE_CONNECTIONS = 4
#: How often a thread waiting for a free SQLite connection looks whether the store was closed.
_CLOSED_CHECK = 0.1
#: A pooled PostgreSQL connection that answered this recently is handed out without a check.
RECENT = 2.0
#: The pseudo-channel `listen` reports a change of subscription on.
LISTENING = ""
JOB_CHANNEL = "patientgen_job"
WORK_CHANNEL = "patientgen_work"

#: Every driver error that means the database is unreachable, restarting or busy for too long.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    # the server ended our session, idle in a transaction past idle_in_transaction_session_timeout
    # (the process was stopped there): the transaction is rolled back, the connection is gone
    psycopg.errors.IdleInTransactionSessionTimeout,
    PoolTimeout,
)

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def load_queries(
    path: Path,
    placeholder: Callable[[str], str] | None = None,
    shared: Sequence[Path] = (COMMON_SQL,),
) -> dict[str, str]:
    """The named queries of one dialect's file and of the `shared` files (common.sql: the SQL
    both databases run as written): `-- name: x` starts query x (comments kept out). A name is
    written once: twice in one file, or in a shared file and the dialect's, is a ValueError."""
    queries: dict[str, str] = {}
    for source in (*shared, path):
        text = source.read_text()
        names = list(_NAME.finditer(text))
        for here, after in zip(names, [*names[1:], None], strict=True):
            name = here.group(1)
            if name in queries:
                raise ValueError(f"query {name!r} is written twice ({source.name})")
            body = text[here.end() : after.start() if after else len(text)]
            lines = [
                ln for ln in body.splitlines() if ln.strip() and not ln.lstrip().startswith("--")
            ]
            sql = "\n".join(lines).strip().rstrip(";")
            queries[name] = placeholder(sql) if placeholder else sql
    return queries


class Tx:
    """One transaction: named queries run in it, by the dialect's `execute` (a SQLite connection's
    or a psycopg cursor's: both return a cursor), and rows inserted in bulk by its `insert_rows`
    (SQLite: executemany of the named INSERT; PostgreSQL: COPY into the columns the named query
    lists)."""

    __slots__ = ("_execute", "_insert_rows", "_queries")

    def __init__(
        self,
        execute: Callable[..., Any],
        insert_rows: Callable[[str, Sequence[dict[str, Any]]], object],
        queries: dict[str, str],
    ) -> None:
        self._execute = execute
        self._insert_rows = insert_rows
        self._queries = queries

    def one(self, query: str, /, **params: Any) -> dict[str, Any] | None:
        # fetchall: a statement with RETURNING is only finished once every row was read
        rows = self._execute(self._queries[query], params).fetchall()
        return dict(rows[0]) if rows else None

    def all(self, query: str, /, **params: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in self._execute(self._queries[query], params).fetchall()]

    def run(self, query: str, /, **params: Any) -> int:
        return int(self._execute(self._queries[query], params).rowcount)

    def insert_rows(self, query: str, rows: Sequence[dict[str, Any]], /) -> None:
        """Insert these rows (each a dict of the query's parameters) in one go."""
        self._insert_rows(self._queries[query], rows)


# -- SQLite ---------------------------------------------------------------------------------------


@functools.cache
def boot_id() -> str:
    """This boot of the host (read once: it cannot change while the process lives)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # pragma: no cover - not Linux: the monotonic clock, per process
        return f"monotonic-{os.getpid()}"


def boot_clock() -> tuple[float, str]:
    """(seconds on the host's boot clock, the boot id): the SQLite store's lease clock."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME), boot_id()
    return time.monotonic(), boot_id()  # pragma: no cover - not Linux


class SqliteDialect:
    """Every dialect has: `transaction(write, single)` (a Tx; `single`: the caller runs one
    statement, which the database may run on its own), `clock()` (the clock parameters every
    query gets, empty where the server has the clock), `ts`, `lease_until` (the lease end a
    worker's write records where the database has no clock), `row` (timestamps and JSON
    decoded), `notifies` with `listen` (NOTIFY) or `change_counter` (polled), `close`."""

    name = "sqlite"
    notifies = False

    def __init__(self, path: Path, *, busy_timeout: float = 10.0, size: int = SQLITE_CONNECTIONS):
        self.path = path
        self.busy_timeout = busy_timeout
        self.size = size
        self.queries = load_queries(SQL_DIR / "sqlite.sql")
        # `size` slots, each a connection once first used (None until then)
        self._idle: queue.LifoQueue[sqlite3.Connection | None] = queue.LifoQueue()
        for _ in range(size):
            self._idle.put(None)
        self._closed = False
        self._watch_conn: sqlite3.Connection | None = None
        # held while the watcher's connection is used, opened or closed
        self._watch_lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
        return conn

    def _take(self) -> sqlite3.Connection | None:
        """A free slot (None: not opened yet), waiting up to `busy_timeout` for one; a thread
        that waits when the store closes is told at once, not when its wait ends."""
        deadline = time.monotonic() + self.busy_timeout
        while not self._closed:
            try:
                return self._idle.get(timeout=min(_CLOSED_CHECK, self.busy_timeout))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    raise StoreUnavailable(
                        f"SQLite database {self.path}: no connection free"
                    ) from None
        raise StoreUnavailable("store is closed")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._take()
        try:
            conn = conn or self._open()
        except BaseException:
            self._idle.put(None)
            raise
        try:
            yield conn
        finally:
            self._idle.put(conn)
            if self._closed:  # closed while in use: close() could not close this one
                self._close_idle()

    @contextlib.contextmanager
    def transaction(self, write: bool, single: bool = False) -> Iterator[Tx]:
        with self._connection() as conn:
            try:
                if write:
                    conn.execute("BEGIN IMMEDIATE")
                try:
                    yield Tx(conn.execute, conn.executemany, self.queries)
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                if write:
                    conn.execute("COMMIT")
            except DATABASE_ERRORS as exc:
                raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def clock(self) -> dict[str, Any]:
        mono, boot = boot_clock()
        return {"now": ts(utcnow()), "mono": mono, "boot": boot}

    def ts(self, value: datetime | None) -> str | None:
        return None if value is None else ts(value)

    def row(self, row: dict[str, Any], timestamps: tuple[str, ...]) -> dict[str, Any]:
        for key in timestamps:
            row[key] = parse_ts(row.get(key))
        for key in ("config", "progress_details", "output_files", "summary", "scenario"):
            if key in row:
                row[key] = loads(row[key])
        return row

    def lease_until(self, seconds: float) -> str:
        """The wall time a lease is shown to end at (informational: leases run on the boot
        clock)."""
        return ts(later(utcnow(), seconds))

    def change_counter(self) -> int:
        """PRAGMA data_version of a connection of its own (it counts the commits of every
        *other* connection, so it must never write), used by the one watcher thread."""
        with self._watch_lock:
            if self._closed:
                raise StoreUnavailable("store is closed")
            try:
                if self._watch_conn is None:
                    self._watch_conn = self._open()
                return int(self._watch_conn.execute("PRAGMA data_version").fetchone()[0])
            except DATABASE_ERRORS as exc:
                raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def listen(
        self, timeout: float, channels: Callable[[], frozenset[str]]
    ) -> Iterator[tuple[str, str]]:  # pragma: no cover
        raise NotImplementedError("SQLite has no notifications; poll change_counter()")

    def close(self) -> None:
        """Close every connection no thread is using; one in use is closed when its thread is
        done with it (Python's sqlite3 does not guard a connection closed under a running
        statement: the process crashes)."""
        self._closed = True
        self._close_idle()
        with self._watch_lock:
            if self._watch_conn is not None:
                self._watch_conn.close()
                self._watch_conn = None

    def _close_idle(self) -> None:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return
            if conn is not None:
                conn.close()


# -- PostgreSQL -----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


#: Why the last connect to each URL failed (the pool only logs it; PoolTimeout says only that
#: no connection came): the driver's message on one line, dropped once a connect succeeds.
_CONNECT_ERRORS: dict[str, str] = {}


class _Connection(psycopg.Connection[Any]):
    """The pool's connections: a failed connect leaves its reason in _CONNECT_ERRORS."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            _CONNECT_ERRORS[conninfo] = " ".join(str(exc).split())
            raise
        _CONNECT_ERRORS.pop(conninfo, None)
        return conn


def _psycopg_placeholders(sql: str) -> str:
    return _PLACEHOLDER.sub(r"%(\1)s", sql)


_COPY_COLUMNS = re.compile(r"^COPY\s+\w+\s*\(([^)]*)\)", re.IGNORECASE)


def _copy(cur: psycopg.Cursor[Any], statement: str, rows: Sequence[dict[str, Any]]) -> None:
    """Rows into `COPY table (columns) FROM STDIN`: each row's values of those columns, by name
    (PostgreSQL's bulk path; a COPY of one statement is one transaction in autocommit)."""
    match = _COPY_COLUMNS.match(statement)
    if match is None:  # pragma: no cover - a named query that is not a COPY
        raise ValueError(f"not a COPY with a column list: {statement[:60]}")
    columns = [c.strip() for c in match.group(1).split(",")]
    with cur.copy(statement) as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def application_name() -> str:
    """How this process's connections show in pg_stat_activity."""
    return f"patientgen-{os.getpid()}"


def pg_options(idle_in_transaction_timeout: float) -> str:
    """The server settings of every PostgreSQL connection we open (libpq `options`): UTC, no JIT,
    and the bound on a session idle inside a transaction
    (`Settings.db_idle_in_transaction_timeout`; 0: none). A process stopped inside a transaction
    (SIGSTOP, a frozen VM, a stall) would otherwise keep its row locks, and the reaper's SKIP
    LOCKED would pass over its job for as long as the process lives."""
    millis = max(0, round(idle_in_transaction_timeout * 1000))
    # jit off: every query here is short, and a generic plan whose estimate passes
    # jit_above_cost (a list of unknown length, say) compiled for 10 ms to run for 0.2 ms
    return f"-c timezone=UTC -c idle_in_transaction_session_timeout={millis} -c jit=off"


class PostgresDialect:
    """See SqliteDialect for what a dialect has."""

    name = "postgresql"
    notifies = True

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        timeout: float = 5.0,
        idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.idle_in_transaction_timeout = idle_in_transaction_timeout
        self.options = pg_options(idle_in_transaction_timeout)
        self.queries = load_queries(SQL_DIR / "postgres.sql", _psycopg_placeholders)
        self.pool = ConnectionPool(
            url,
            min_size=0,
            max_size=max_connections,
            kwargs={
                "autocommit": True,  # transactions are explicit (see transaction)
                "connect_timeout": max(1, round(timeout)),
                "options": self.options,
                "application_name": application_name(),
            },
            configure=lambda conn: set_json_loads(loads, conn),
            check=self._check,
            connection_class=_Connection,
            timeout=timeout,
            max_idle=60,
            open=False,
            name="patientgen",
        )
        self._used: dict[int, float] = {}  # id(connection) -> when it last answered
        self.pool.open(wait=False)
        self._closed = False
        self._listen_conn: psycopg.Connection[Any] | None = None

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Before a pooled connection is handed out: a round trip to check it, unless it
        answered in the last RECENT seconds (a connection in steady use costs nothing; one that
        sat idle, maybe across a server restart, is checked and replaced if dead)."""
        if time.monotonic() - self._used.get(id(conn), float("-inf")) > RECENT:
            ConnectionPool.check_connection(conn)

    @contextlib.contextmanager
    def transaction(self, write: bool, single: bool = False) -> Iterator[Tx]:
        if self._closed:
            raise StoreUnavailable("store is closed")
        sent: list[float] = []  # when the last statement answered had been sent

        def execute(query: str, params: dict[str, Any]) -> Any:
            now = time.monotonic()
            result = cur.execute(query, params)
            sent[:] = [now]
            return result

        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                if single:  # autocommit: the one statement is its own transaction
                    yield Tx(cur.execute, functools.partial(_copy, cur), self.queries)
                else:
                    with conn.transaction():
                        yield Tx(execute, functools.partial(_copy, cur), self.queries)
                self._used[id(conn)] = time.monotonic()
        except DATABASE_ERRORS as exc:
            reason = str(exc)
            if isinstance(exc, PoolTimeout) and (last := _CONNECT_ERRORS.get(self.url)):
                reason = f"{last} (no connection within {self.timeout:g} s)"
            raise StoreUnavailable(
                f"PostgreSQL unavailable: {reason}".strip() + self._ended_idle(sent)
            ) from exc

    def _ended_idle(self, sent: list[float]) -> str:
        """Why the server may have ended the session: this transaction's last statement answered
        was sent longer ago than the bound (the process was stopped or stalled inside the
        transaction, maybe before it had read that answer). The server says so itself
        (IdleInTransactionSessionTimeout) only when its message is read before the closed socket
        is noticed; otherwise the driver sees just a closed connection."""
        bound = self.idle_in_transaction_timeout
        since = time.monotonic() - sent[0] if sent else 0.0
        if bound <= 0 or since < bound:
            return ""
        return (
            f" (this transaction sent its last statement {since:.1f} s before, longer than"
            f" idle_in_transaction_session_timeout, {bound:g} s: the server ends a session idle"
            " that long in a transaction, rolling it back)"
        )

    def clock(self) -> dict[str, Any]:
        return {}

    def ts(self, value: datetime | None) -> datetime | None:
        return value

    def row(self, row: dict[str, Any], timestamps: tuple[str, ...]) -> dict[str, Any]:
        return row

    def lease_until(self, seconds: float) -> None:
        return None

    def change_counter(self) -> int:  # pragma: no cover
        raise NotImplementedError("PostgreSQL notifies; use listen()")

    def listen(
        self, timeout: float, channels: Callable[[], frozenset[str]]
    ) -> Iterator[tuple[str, str]]:
        """Notifications (channel, payload) as they come, on the channels `channels()` names
        (asked again at least every `timeout` s); after each change of subscription, (LISTENING,
        the channels, comma-separated). StoreUnavailable when the connection is lost."""
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, round(self.timeout)),
                application_name=application_name(),
                options=self.options,
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        self._listen_conn = conn
        current: frozenset[str] = frozenset()
        try:
            while not self._closed:
                wanted = channels()
                if wanted != current:
                    for channel in sorted(wanted - current):
                        conn.execute(f"LISTEN {channel}")
                    for channel in sorted(current - wanted):
                        conn.execute(f"UNLISTEN {channel}")
                    current = wanted
                    yield LISTENING, ",".join(sorted(current))
                for note in conn.notifies(timeout=timeout):
                    yield note.channel, note.payload
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL listener lost its connection: {exc}") from exc
        finally:
            self._listen_conn = None
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        self._closed = True
        conn = self._listen_conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        self.pool.close(timeout=2)


Dialect = SqliteDialect | PostgresDialect
