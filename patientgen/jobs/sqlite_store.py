"""The embedded store: one SQLite file in WAL mode (stdlib sqlite3).

Each thread gets its own connection. Every write runs in `BEGIN IMMEDIATE`, so a claim takes the
database's write lock before it reads the pending jobs: two workers can never claim the same job.
Waiting for job updates uses one shared poller thread per store that watches `PRAGMA data_version`
and wakes only the waiters whose job changed.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from patientgen.jobs._codec import dumps, later, loads, parse_ts, ts, utcnow
from patientgen.jobs.migrations import sqlite_path
from patientgen.jobs.model import (
    Action,
    ApiKey,
    ChunkRecord,
    InvalidTransition,
    Job,
    JobNotFound,
    JobStatus,
    KeyNotFound,
    LeaseLost,
    NewJob,
    StoreUnavailable,
    lost_worker_error,
    sources_of,
    target_of,
    transition,
)
from patientgen.jobs.store import Completion

COLUMNS = (
    "job_id, owner, status, config, progress, progress_details, created_at, started_at, "
    "updated_at, completed_at, error, output_files, summary, attempts, max_attempts, lease_owner, "
    "lease_expires_at, cancel_requested_at, idempotency_key, priority"
)
KEY_COLUMNS = "key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at"


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


RUNNING = "'running'"


def _job(row: sqlite3.Row) -> Job:
    return Job(
        job_id=UUID(row["job_id"]),
        owner=row["owner"],
        status=row["status"],
        config=loads(row["config"]),
        progress=row["progress"],
        progress_details=loads(row["progress_details"]),
        created_at=parse_ts(row["created_at"]),
        started_at=parse_ts(row["started_at"]),
        updated_at=parse_ts(row["updated_at"]),
        completed_at=parse_ts(row["completed_at"]),
        error=row["error"],
        output_files=loads(row["output_files"]),
        summary=loads(row["summary"]),
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        lease_owner=row["lease_owner"],
        lease_expires_at=parse_ts(row["lease_expires_at"]),
        cancel_requested_at=parse_ts(row["cancel_requested_at"]),
        idempotency_key=row["idempotency_key"],
        priority=row["priority"],
    )


def _key(row: sqlite3.Row) -> ApiKey:
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        admin=bool(row["admin"]),
        max_patients=row["max_patients"],
        max_active_jobs=row["max_active_jobs"],
        created_at=parse_ts(row["created_at"]),
        revoked_at=parse_ts(row["revoked_at"]),
    )


class SqliteStore:
    """JobStore on a SQLite file."""

    def __init__(self, url: str, *, busy_timeout: float = 10.0, poll_interval: float = 0.5):
        self.url = url
        self.path = sqlite_path(url)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout = busy_timeout
        self.poll_interval = poll_interval
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._waiters: dict[UUID, set[threading.Event]] = {}
        self._poller: threading.Thread | None = None
        self._work_version: int | None = None

    # -- connections -----------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreUnavailable("store is closed")
            try:
                conn = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout,
                    isolation_level=None,
                    check_same_thread=False,
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite database {self.path}: {exc}") from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._errors():
            yield conn

    def close(self) -> None:
        self._closed = True
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    def ping(self) -> None:
        with self._read() as c:
            c.execute("SELECT 1").fetchone()

    # -- submit and read -------------------------------------------------------------------------
    def _insert(self, c: sqlite3.Connection, new: NewJob, now: str) -> None:
        c.execute(
            "INSERT INTO jobs (job_id, owner, status, config, created_at, updated_at,"
            " max_attempts, idempotency_key, priority) VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
            (
                str(new.job_id),
                new.owner,
                dumps(new.config),
                now,
                now,
                new.max_attempts,
                new.idempotency_key,
                new.priority,
            ),
        )

    def create(self, new: NewJob) -> tuple[Job, bool]:
        with self._write() as c:
            if new.idempotency_key is not None:
                row = c.execute(
                    f"SELECT {COLUMNS} FROM jobs WHERE owner = ? AND idempotency_key = ?",
                    (new.owner, new.idempotency_key),
                ).fetchone()
                if row is not None:
                    return _job(row), False
            self._insert(c, new, ts(utcnow()))
            row = c.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (str(new.job_id),)
            ).fetchone()
        return _job(row), True

    def create_many(self, news: Sequence[NewJob]) -> int:
        with self._write() as c:
            now = ts(utcnow())
            for new in news:
                self._insert(c, new, now)
        return len(news)

    def _get(self, c: sqlite3.Connection, job_id: UUID) -> Job:
        row = c.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = ?", (str(job_id),)).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def get(self, job_id: UUID) -> Job:
        with self._read() as c:
            return self._get(c, job_id)

    def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[JobStatus] | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[Job]:
        where, args = [], []
        if owner is not None:
            where.append("owner = ?")
            args.append(owner)
        if statuses:
            where.append("status IN " + _in([JobStatus(s).value for s in statuses]))
        if after is not None:
            where.append("(created_at, job_id) < (?, ?)")
            args += [ts(after[0]), str(after[1])]
        sql = f"SELECT {COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        with self._read() as c:
            return [_job(r) for r in c.execute(sql, (*args, limit))]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobStatus}
        with self._read() as c:
            for status, n in c.execute("SELECT status, count(*) FROM jobs GROUP BY status"):
                out[status] = n
        return out

    def active_count(self, owner: str) -> int:
        with self._read() as c:
            (n,) = c.execute(
                "SELECT count(*) FROM jobs WHERE owner = ? AND status IN ('pending', 'running')",
                (owner,),
            ).fetchone()
        return n

    # -- worker side -----------------------------------------------------------------------------
    def claim(
        self, worker_id: str, lease_seconds: float, limit: int = 1, job_id: UUID | None = None
    ) -> list[Job]:
        now = utcnow()
        only = "" if job_id is None else " AND job_id = ?"
        with self._write() as c:
            rows = c.execute(
                f"UPDATE jobs SET status = ?, attempts = attempts + 1, lease_owner = ?,"
                f" lease_expires_at = ?, started_at = coalesce(started_at, ?), updated_at = ?"
                f" WHERE job_id IN (SELECT job_id FROM jobs"
                f"   WHERE status IN {_in(sources_of(Action.CLAIM))}{only}"
                f"   ORDER BY priority DESC, created_at, job_id LIMIT ?)"
                f" RETURNING {COLUMNS}",
                (
                    target_of(Action.CLAIM, JobStatus.PENDING).value,
                    worker_id,
                    ts(later(now, lease_seconds)),
                    ts(now),
                    ts(now),
                    *([] if job_id is None else [str(job_id)]),
                    limit,
                ),
            ).fetchall()
        jobs = [_job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.created_at, str(j.job_id)))
        return jobs

    def _fenced(
        self, c: sqlite3.Connection, job_id: UUID, worker_id: str, sets: str, args: Sequence[Any]
    ) -> Job:
        row = c.execute(
            f"UPDATE jobs SET {sets} WHERE job_id = ? AND status = {RUNNING} AND lease_owner = ?"
            f" RETURNING {COLUMNS}",
            (*args, str(job_id), worker_id),
        ).fetchone()
        if row is None:
            self._get(c, job_id)  # JobNotFound when it is gone
            raise LeaseLost(job_id, worker_id)
        return _job(row)

    def heartbeat(
        self,
        job_id: UUID,
        worker_id: str,
        lease_seconds: float,
        progress: int | None = None,
        progress_details: dict[str, Any] | None = None,
    ) -> Job:
        now = utcnow()
        with self._write() as c:
            return self._fenced(
                c,
                job_id,
                worker_id,
                "lease_expires_at = ?, updated_at = ?, progress = coalesce(?, progress),"
                " progress_details = coalesce(?, progress_details)",
                (
                    ts(later(now, lease_seconds)),
                    ts(now),
                    progress,
                    None if progress_details is None else dumps(progress_details),
                ),
            )

    def record_chunk(
        self,
        job_id: UUID,
        worker_id: str,
        chunk: int,
        summary: dict[str, Any],
        progress: int,
        progress_details: dict[str, Any],
    ) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._fenced(
                c,
                job_id,
                worker_id,
                "updated_at = ?, progress = ?, progress_details = ?",
                (now, progress, dumps(progress_details)),
            )
            c.execute(
                "INSERT INTO job_chunks (job_id, chunk, summary, worker_id, finished_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (job_id, chunk) DO UPDATE SET"
                " summary = excluded.summary, worker_id = excluded.worker_id,"
                " finished_at = excluded.finished_at",
                (str(job_id), chunk, dumps(summary), worker_id, now),
            )
        return job

    def chunks(self, job_id: UUID) -> list[ChunkRecord]:
        with self._read() as c:
            rows = c.execute(
                "SELECT chunk, summary, worker_id, finished_at FROM job_chunks"
                " WHERE job_id = ? ORDER BY chunk",
                (str(job_id),),
            ).fetchall()
        return [
            ChunkRecord(
                chunk=r["chunk"],
                summary=loads(r["summary"]),
                worker_id=r["worker_id"],
                finished_at=parse_ts(r["finished_at"]),
            )
            for r in rows
        ]

    _END = "lease_owner = NULL, lease_expires_at = NULL"

    def complete(
        self,
        job_id: UUID,
        worker_id: str,
        output_files: list[dict[str, Any]],
        summary: dict[str, Any] | None,
    ) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._complete(c, job_id, worker_id, output_files, summary, now)
            if job is None:
                self._get(c, job_id)
                raise LeaseLost(job_id, worker_id)
            return job

    def _complete(
        self,
        c: sqlite3.Connection,
        job_id: UUID,
        worker_id: str,
        output_files: list[dict[str, Any]],
        summary: dict[str, Any] | None,
        now: str | None,
    ) -> Job | None:
        row = c.execute(
            f"UPDATE jobs SET status = ?, {self._END}, progress = 100, completed_at = ?,"
            " updated_at = ?, output_files = ?, summary = ?, error = NULL,"
            " progress_details = json_set(progress_details, '$.phase', 'completed')"
            f" WHERE job_id = ? AND status IN {_in(sources_of(Action.COMPLETE))}"
            " AND lease_owner = ?"
            f" RETURNING {COLUMNS}",
            (
                target_of(Action.COMPLETE).value,
                now,
                now,
                dumps(output_files),
                None if summary is None else dumps(summary),
                str(job_id),
                worker_id,
            ),
        ).fetchone()
        if row is None:
            return None
        c.execute("DELETE FROM job_chunks WHERE job_id = ?", (str(job_id),))
        return _job(row)

    def complete_many(self, worker_id: str, completions: Sequence[Completion]) -> list[UUID]:
        now = ts(utcnow())
        done: list[UUID] = []
        with self._write() as c:
            for job_id, files, summary in completions:
                if self._complete(c, job_id, worker_id, files, summary, now) is not None:
                    done.append(job_id)
        return done

    def fail(self, job_id: UUID, worker_id: str, error: str) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._fenced(
                c,
                job_id,
                worker_id,
                f"status = ?, {self._END}, error = ?, completed_at = ?, updated_at = ?,"
                " progress_details = json_set(progress_details, '$.phase', 'failed')",
                (target_of(Action.FAIL).value, error, now, now),
            )
            c.execute("DELETE FROM job_chunks WHERE job_id = ?", (str(job_id),))
        return job

    def release(self, job_id: UUID, worker_id: str) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            return self._fenced(
                c,
                job_id,
                worker_id,
                f"status = ?, {self._END}, attempts = max(attempts - 1, 0), updated_at = ?,"
                " progress_details = json_set(progress_details, '$.phase', 'queued')",
                (target_of(Action.RELEASE).value, now),
            )

    def mark_cancelled(self, job_id: UUID, worker_id: str) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._fenced(
                c,
                job_id,
                worker_id,
                f"status = ?, {self._END}, completed_at = ?, updated_at = ?,"
                " progress_details = json_set(progress_details, '$.phase', 'cancelled')",
                (target_of(Action.CANCEL).value, now, now),
            )
            c.execute("DELETE FROM job_chunks WHERE job_id = ?", (str(job_id),))
        return job

    def reap(self) -> list[tuple[UUID, JobStatus]]:
        now = utcnow()
        out: list[tuple[UUID, JobStatus]] = []
        with self._write() as c:
            rows = c.execute(
                "SELECT job_id, attempts, max_attempts, lease_owner, cancel_requested_at"
                f" FROM jobs WHERE status = {RUNNING} AND lease_expires_at < ?",
                (ts(now),),
            ).fetchall()
            for r in rows:
                if r["cancel_requested_at"] is not None:
                    target, error = target_of(Action.CANCEL), None
                elif r["attempts"] < r["max_attempts"]:
                    target, error = target_of(Action.REQUEUE), None
                else:
                    target = target_of(Action.FAIL)
                    error = lost_worker_error(r["attempts"], r["lease_owner"])
                terminal = target != JobStatus.PENDING
                c.execute(
                    f"UPDATE jobs SET status = ?, {self._END}, error = ?, updated_at = ?,"
                    " completed_at = ?, progress_details = json_set(progress_details,"
                    " '$.phase', ?) WHERE job_id = ? AND status = 'running'",
                    (
                        target.value,
                        error,
                        ts(now),
                        ts(now) if terminal else None,
                        target.value if terminal else "queued",
                        r["job_id"],
                    ),
                )
                if terminal:
                    c.execute("DELETE FROM job_chunks WHERE job_id = ?", (r["job_id"],))
                out.append((UUID(r["job_id"]), target))
        return out

    # -- user side -------------------------------------------------------------------------------
    def request_cancel(self, job_id: UUID) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._get(c, job_id)
            transition(job_id, job.status, Action.CANCEL)
            if job.status == JobStatus.PENDING:
                sets = (
                    "status = 'cancelled', completed_at = :now, progress_details ="
                    " json_set(progress_details, '$.phase', 'cancelled'), "
                )
            else:  # running: its worker stops at the next chunk boundary
                sets = ""
            row = c.execute(
                f"UPDATE jobs SET {sets}updated_at = :now,"
                " cancel_requested_at = coalesce(cancel_requested_at, :now)"
                f" WHERE job_id = :id AND status = :status RETURNING {COLUMNS}",
                {"now": now, "id": str(job_id), "status": job.status.value},
            ).fetchone()
        return _job(row)

    def retry(self, job_id: UUID) -> Job:
        now = ts(utcnow())
        with self._write() as c:
            job = self._get(c, job_id)
            transition(job_id, job.status, Action.RETRY)
            row = c.execute(
                "UPDATE jobs SET status = 'pending', attempts = 0, error = NULL, progress = 0,"
                " progress_details = '{}', started_at = NULL, completed_at = NULL,"
                " cancel_requested_at = NULL, output_files = '[]', summary = NULL,"
                f" updated_at = ? WHERE job_id = ? AND status IN {_in(sources_of(Action.RETRY))}"
                f" RETURNING {COLUMNS}",
                (now, str(job_id)),
            ).fetchone()
            c.execute("DELETE FROM job_chunks WHERE job_id = ?", (str(job_id),))
        return _job(row)

    def delete(self, job_id: UUID) -> None:
        with self._write() as c:
            job = self._get(c, job_id)
            if job.status == JobStatus.RUNNING:
                raise InvalidTransition(
                    job_id, job.status, "delete", "cannot delete a running job (cancel it first)"
                )
            c.execute("DELETE FROM jobs WHERE job_id = ?", (str(job_id),))

    # -- waiting ---------------------------------------------------------------------------------
    def _data_version(self) -> int:
        with self._read() as c:
            return c.execute("PRAGMA data_version").fetchone()[0]

    def wait_for_work(self, timeout: float) -> None:
        """Sleep until another connection commits (cheap `PRAGMA data_version`) or timeout."""
        deadline = time.monotonic() + timeout
        start = self._data_version()
        step = min(self.poll_interval, 0.1)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(step, left))
            if self._data_version() != start:
                return

    def wait_for_update(self, job_id: UUID, since: datetime | None, timeout: float) -> Job | None:
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
            if self._poller is None or not self._poller.is_alive():
                self._poller = threading.Thread(
                    target=self._poll, name="patientgen-sqlite-poller", daemon=True
                )
                self._poller.start()
        deadline = time.monotonic() + timeout
        try:
            while True:
                job = self.get(job_id)
                if since is None or job.updated_at > since:
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                event.wait(left)
                event.clear()
        finally:
            with self._lock:
                waiting = self._waiters.get(job_id)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_id]

    def _poll(self) -> None:
        """The one poller of this store: wakes the waiters of jobs that changed."""
        seen: dict[UUID, str] = {}
        version = None
        while not self._closed:
            with self._lock:
                ids = list(self._waiters)
            if not ids:
                seen.clear()
                time.sleep(0.05)
                continue
            try:
                now_version = self._data_version()
                if now_version != version or any(i not in seen for i in ids):
                    version = now_version
                    with self._read() as c:
                        rows = c.execute(
                            "SELECT job_id, updated_at FROM jobs WHERE job_id IN "
                            f"({', '.join('?' * len(ids))})",
                            [str(i) for i in ids],
                        ).fetchall()
                    current = {UUID(r[0]): r[1] for r in rows}
                    with self._lock:
                        for job_id in ids:
                            stamp = current.get(job_id, "gone")
                            if seen.get(job_id) != stamp:
                                seen[job_id] = stamp
                                for event in self._waiters.get(job_id, ()):
                                    event.set()
            except StoreUnavailable:
                pass
            time.sleep(min(self.poll_interval, 0.1))

    # -- API keys --------------------------------------------------------------------------------
    def insert_key(self, key: ApiKey, secret_sha256: str) -> None:
        with self._write() as c:
            c.execute(
                "INSERT INTO api_keys (key_id, name, secret_sha256, admin, max_patients,"
                " max_active_jobs, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.name,
                    secret_sha256,
                    int(key.admin),
                    key.max_patients,
                    key.max_active_jobs,
                    ts(key.created_at),
                ),
            )

    def key_by_hash(self, secret_sha256: str) -> ApiKey | None:
        with self._read() as c:
            row = c.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = ?", (secret_sha256,)
            ).fetchone()
        return None if row is None else _key(row)

    def list_keys(self) -> list[ApiKey]:
        with self._read() as c:
            rows = c.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at").fetchall()
        return [_key(r) for r in rows]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._write() as c:
            c.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE key_id = ?",
                (ts(utcnow()), key_id),
            )
            row = c.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
        if row is None:
            raise KeyNotFound(key_id)
        return _key(row)

    # -- migrations ------------------------------------------------------------------------------
    def schema_version(self) -> str | None:
        from patientgen.jobs.migrations import version_query

        try:
            with self._read() as c:
                row = c.execute(version_query()).fetchone()
        except StoreUnavailable as exc:
            if "no such table" in str(exc):
                return None
            raise
        return None if row is None else row[0]
