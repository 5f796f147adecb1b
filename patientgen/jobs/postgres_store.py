"""The production store: PostgreSQL through psycopg 3 and psycopg_pool.

- Claims take pending jobs with `FOR UPDATE SKIP LOCKED`; the ORDER BY (priority DESC, created_at,
  job_id) is exactly the partial index `jobs_pending` (WHERE status = 'pending'), so a claim is a
  short index scan whatever the size of the table.
- Heartbeats touch only unindexed columns (lease, progress), so PostgreSQL updates the row in place
  (HOT) on a table with fillfactor 80; chunk summaries live in `job_chunks`, not in the hot row.
- Every change of a job is announced with NOTIFY: channel `patientgen_job` (payload: the job id)
  for `wait_for_update`, channel `patientgen_work` when a job becomes claimable. One listener
  thread per process dispatches them, so idle workers start within a second without polling.
- Connection errors surface as StoreUnavailable; pooled connections are checked before use and the
  listener reconnects, so a restarted server is picked up again without restarting the process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from patientgen.jobs._codec import dumps, loads
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

log = logging.getLogger(__name__)

JOB_CHANNEL = "patientgen_job"
WORK_CHANNEL = "patientgen_work"
COLUMNS = (
    "job_id, owner, status, config, progress, progress_details, created_at, started_at, "
    "updated_at, completed_at, error, output_files, summary, attempts, max_attempts, lease_owner, "
    "lease_expires_at, cancel_requested_at, idempotency_key, priority"
)
J_COLUMNS = ", ".join("j." + c.strip() for c in COLUMNS.split(","))
KEY_COLUMNS = "key_id, name, admin, max_patients, max_active_jobs, created_at, revoked_at"
_END = "lease_owner = NULL, lease_expires_at = NULL"
_DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _announce(update: str) -> str:
    """Wrap an `UPDATE jobs j ...` so it returns the rows and notifies each job's watchers."""
    return (
        f"WITH u AS ({update} RETURNING {J_COLUMNS}) "
        f"SELECT u.*, pg_notify('{JOB_CHANNEL}', u.job_id::text) AS notified FROM u"
    )


def _one(cur: psycopg.Cursor[dict[str, Any]]) -> dict[str, Any]:
    """The row a statement that always returns one row returned."""
    row = cur.fetchone()
    if row is None:  # pragma: no cover - the statements guarantee a row
        raise RuntimeError("expected a row")
    return row


def _job(row: dict[str, Any]) -> Job:
    row.pop("notified", None)
    return Job.model_validate(row)


class PostgresStore:
    """JobStore on PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 10,
        timeout: float = 5.0,
        poll_interval: float = 0.5,
    ):
        self.url = url
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._conninfo = url
        self._kwargs = {
            "autocommit": False,
            "connect_timeout": max(1, round(timeout)),
            "options": "-c timezone=UTC",
        }
        self.pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs=self._kwargs,
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=timeout,
            open=False,
            name="patientgen",
        )
        self.pool.open(wait=False)
        self._closed = False
        self._lock = threading.Lock()
        self._waiters: dict[UUID, set[threading.Event]] = {}
        self._work = threading.Event()
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None
        self._listen_conn: psycopg.Connection[Any] | None = None

    @staticmethod
    def _configure(conn: psycopg.Connection[Any]) -> None:
        set_json_loads(loads, conn)

    @contextlib.contextmanager
    def _tx(self) -> Iterator[psycopg.Cursor[dict[str, Any]]]:
        if self._closed:
            raise StoreUnavailable("store is closed")
        try:
            with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except _DB_ERRORS as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}".strip()) from exc

    def close(self) -> None:
        self._closed = True
        conn = self._listen_conn
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
        if self._listener is not None:
            self._listener.join(timeout=2)
        self.pool.close(timeout=2)

    def ping(self) -> None:
        with self._tx() as cur:
            cur.execute("SELECT 1")

    # -- submit and read -------------------------------------------------------------------------
    _INSERT = (
        "INSERT INTO jobs (job_id, owner, status, config, max_attempts, idempotency_key, priority)"
        " VALUES (%s, %s, 'pending', %s::jsonb, %s, %s, %s)"
    )

    @staticmethod
    def _insert_args(new: NewJob) -> tuple[Any, ...]:
        return (
            new.job_id,
            new.owner,
            dumps(new.config),
            new.max_attempts,
            new.idempotency_key,
            new.priority,
        )

    def create(self, new: NewJob) -> tuple[Job, bool]:
        with self._tx() as cur:
            cur.execute(
                f"WITH i AS ({self._INSERT} ON CONFLICT (owner, idempotency_key)"
                f" WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING {COLUMNS})"
                f" SELECT i.*, pg_notify('{WORK_CHANNEL}', '') AS notified FROM i",
                self._insert_args(new),
            )
            row = cur.fetchone()
            if row is not None:
                return _job(row), True
            cur.execute(
                f"SELECT {COLUMNS} FROM jobs WHERE owner = %s AND idempotency_key = %s",
                (new.owner, new.idempotency_key),
            )
            return _job(_one(cur)), False

    def create_many(self, news: Sequence[NewJob]) -> int:
        with self._tx() as cur:
            cur.executemany(self._INSERT, [self._insert_args(n) for n in news])
            cur.execute("SELECT pg_notify(%s, '')", (WORK_CHANNEL,))
        return len(news)

    def get(self, job_id: UUID) -> Job:
        with self._tx() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = %s", (job_id,))
            row = cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[JobStatus] | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[Job]:
        where: list[str] = []
        args: list[Any] = []
        if owner is not None:
            where.append("owner = %s")
            args.append(owner)
        if statuses:
            where.append("status IN " + _in([JobStatus(s).value for s in statuses]))
        if after is not None:
            where.append("(created_at, job_id) < (%s, %s)")
            args += [after[0], after[1]]
        sql = f"SELECT {COLUMNS} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT %s"
        with self._tx() as cur:
            cur.execute(sql, (*args, limit))
            return [_job(r) for r in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobStatus}
        with self._tx() as cur:
            cur.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status")
            for row in cur.fetchall():
                out[row["status"]] = row["n"]
        return out

    def active_count(self, owner: str) -> int:
        with self._tx() as cur:
            cur.execute(
                "SELECT count(*) AS n FROM jobs"
                " WHERE owner = %s AND status IN ('pending', 'running')",
                (owner,),
            )
            return int(_one(cur)["n"])

    # -- worker side -----------------------------------------------------------------------------
    def claim(
        self, worker_id: str, lease_seconds: float, limit: int = 1, job_id: UUID | None = None
    ) -> list[Job]:
        only = "" if job_id is None else " AND job_id = %(job_id)s"
        sql = (
            "WITH next AS (SELECT job_id FROM jobs"
            f" WHERE status IN {_in(sources_of(Action.CLAIM))}{only}"
            " ORDER BY priority DESC, created_at, job_id"
            " LIMIT %(limit)s FOR UPDATE SKIP LOCKED), "
            "u AS (UPDATE jobs j SET status = %(status)s, attempts = j.attempts + 1,"
            " lease_owner = %(worker)s,"
            " lease_expires_at = now() + make_interval(secs => %(lease)s),"
            " started_at = coalesce(j.started_at, now()), updated_at = now()"
            f" FROM next WHERE j.job_id = next.job_id RETURNING {J_COLUMNS}) "
            f"SELECT u.*, pg_notify('{JOB_CHANNEL}', u.job_id::text) AS notified FROM u"
        )
        with self._tx() as cur:
            cur.execute(
                sql,
                {
                    "limit": limit,
                    "status": target_of(Action.CLAIM, JobStatus.PENDING).value,
                    "worker": worker_id,
                    "lease": lease_seconds,
                    "job_id": job_id,
                },
            )
            jobs = [_job(r) for r in cur.fetchall()]
        jobs.sort(key=lambda j: (-j.priority, j.created_at, str(j.job_id)))
        return jobs

    def _fenced(
        self,
        cur: psycopg.Cursor[dict[str, Any]],
        job_id: UUID,
        worker_id: str,
        sets: str,
        args: Sequence[Any],
    ) -> Job:
        cur.execute(
            _announce(
                f"UPDATE jobs j SET {sets} WHERE job_id = %s AND status = 'running'"
                " AND lease_owner = %s"
            ),
            (*args, job_id, worker_id),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT 1 FROM jobs WHERE job_id = %s", (job_id,))
            if cur.fetchone() is None:
                raise JobNotFound(job_id)
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
        with self._tx() as cur:
            return self._fenced(
                cur,
                job_id,
                worker_id,
                "lease_expires_at = now() + make_interval(secs => %s), updated_at = now(),"
                " progress = coalesce(%s, progress),"
                " progress_details = coalesce(%s::jsonb, progress_details)",
                (
                    lease_seconds,
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
        with self._tx() as cur:
            job = self._fenced(
                cur,
                job_id,
                worker_id,
                "updated_at = now(), progress = %s, progress_details = %s::jsonb",
                (progress, dumps(progress_details)),
            )
            cur.execute(
                "INSERT INTO job_chunks (job_id, chunk, summary, worker_id)"
                " VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (job_id, chunk) DO UPDATE SET"
                " summary = excluded.summary, worker_id = excluded.worker_id,"
                " finished_at = excluded.finished_at",
                (job_id, chunk, dumps(summary), worker_id),
            )
        return job

    def chunks(self, job_id: UUID) -> list[ChunkRecord]:
        with self._tx() as cur:
            cur.execute(
                "SELECT chunk, summary, worker_id, finished_at FROM job_chunks"
                " WHERE job_id = %s ORDER BY chunk",
                (job_id,),
            )
            return [ChunkRecord.model_validate(r) for r in cur.fetchall()]

    _COMPLETE = (
        f"UPDATE jobs j SET status = %(status)s, {_END}, progress = 100, completed_at = now(),"
        " updated_at = now(), output_files = %(files)s::jsonb, summary = %(summary)s::jsonb,"
        " error = NULL,"
        " progress_details = jsonb_set(progress_details, '{phase}', '\"completed\"')"
        f" WHERE job_id = %(id)s AND status IN {_in(sources_of(Action.COMPLETE))}"
        " AND lease_owner = %(worker)s"
    )

    @staticmethod
    def _complete_args(
        job_id: UUID, worker_id: str, files: list[dict[str, Any]], summary: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "status": target_of(Action.COMPLETE).value,
            "files": dumps(files),
            "summary": None if summary is None else dumps(summary),
            "id": job_id,
            "worker": worker_id,
        }

    def complete(
        self,
        job_id: UUID,
        worker_id: str,
        output_files: list[dict[str, Any]],
        summary: dict[str, Any] | None,
    ) -> Job:
        with self._tx() as cur:
            # one round trip: complete, drop the chunk checkpoints, notify
            cur.execute(
                f"WITH u AS ({self._COMPLETE} RETURNING {J_COLUMNS}),"
                " gone AS (DELETE FROM job_chunks c USING u WHERE c.job_id = u.job_id)"
                f" SELECT u.*, pg_notify('{JOB_CHANNEL}', u.job_id::text) AS notified FROM u",
                self._complete_args(job_id, worker_id, output_files, summary),
            )
            row = cur.fetchone()
            if row is None:
                cur.execute("SELECT 1 FROM jobs WHERE job_id = %s", (job_id,))
                if cur.fetchone() is None:
                    raise JobNotFound(job_id)
                raise LeaseLost(job_id, worker_id)
        return _job(row)

    def complete_many(self, worker_id: str, completions: Sequence[Completion]) -> list[UUID]:
        if not completions:
            return []
        sql = (
            f"WITH u AS (UPDATE jobs j SET status = %(status)s, {_END}, progress = 100,"
            " completed_at = now(), updated_at = now(), output_files = d.files,"
            " summary = d.summary, error = NULL,"
            " progress_details = jsonb_set(j.progress_details, '{phase}', '\"completed\"')"
            " FROM unnest(%(ids)s::uuid[], %(files)s::jsonb[], %(summaries)s::jsonb[])"
            " AS d(job_id, files, summary)"
            f" WHERE j.job_id = d.job_id AND j.status IN {_in(sources_of(Action.COMPLETE))}"
            " AND j.lease_owner = %(worker)s"
            " RETURNING j.job_id)"
            " , gone AS (DELETE FROM job_chunks c USING u WHERE c.job_id = u.job_id)"
            f" SELECT u.job_id, pg_notify('{JOB_CHANNEL}', u.job_id::text) AS notified FROM u"
        )
        with self._tx() as cur:
            cur.execute(
                sql,
                {
                    "status": target_of(Action.COMPLETE).value,
                    "ids": [c[0] for c in completions],
                    "files": [dumps(c[1]) for c in completions],
                    "summaries": [None if c[2] is None else dumps(c[2]) for c in completions],
                    "worker": worker_id,
                },
            )
            done = [r["job_id"] for r in cur.fetchall()]
        return done

    def fail(self, job_id: UUID, worker_id: str, error: str) -> Job:
        with self._tx() as cur:
            job = self._fenced(
                cur,
                job_id,
                worker_id,
                f"status = %s, {_END}, error = %s, completed_at = now(), updated_at = now(),"
                " progress_details = jsonb_set(progress_details, '{phase}', '\"failed\"')",
                (target_of(Action.FAIL).value, error),
            )
            cur.execute("DELETE FROM job_chunks WHERE job_id = %s", (job_id,))
        return job

    def release(self, job_id: UUID, worker_id: str) -> Job:
        with self._tx() as cur:
            job = self._fenced(
                cur,
                job_id,
                worker_id,
                f"status = %s, {_END}, attempts = greatest(attempts - 1, 0), updated_at = now(),"
                " progress_details = jsonb_set(progress_details, '{phase}', '\"queued\"')",
                (target_of(Action.RELEASE).value,),
            )
            cur.execute("SELECT pg_notify(%s, '')", (WORK_CHANNEL,))
        return job

    def mark_cancelled(self, job_id: UUID, worker_id: str) -> Job:
        with self._tx() as cur:
            job = self._fenced(
                cur,
                job_id,
                worker_id,
                f"status = %s, {_END}, completed_at = now(), updated_at = now(),"
                " progress_details = jsonb_set(progress_details, '{phase}', '\"cancelled\"')",
                (target_of(Action.CANCEL).value,),
            )
            cur.execute("DELETE FROM job_chunks WHERE job_id = %s", (job_id,))
        return job

    def reap(self) -> list[tuple[UUID, JobStatus]]:
        out: list[tuple[UUID, JobStatus]] = []
        with self._tx() as cur:
            cur.execute(
                "SELECT job_id, attempts, max_attempts, lease_owner, cancel_requested_at"
                " FROM jobs WHERE status = 'running' AND lease_expires_at < now()"
                " FOR UPDATE SKIP LOCKED"
            )
            for r in cur.fetchall():
                if r["cancel_requested_at"] is not None:
                    target, error = target_of(Action.CANCEL), None
                elif r["attempts"] < r["max_attempts"]:
                    target, error = target_of(Action.REQUEUE), None
                else:
                    target = target_of(Action.FAIL)
                    error = lost_worker_error(r["attempts"], r["lease_owner"])
                terminal = target != JobStatus.PENDING
                cur.execute(
                    _announce(
                        f"UPDATE jobs j SET status = %s, {_END}, error = %s, updated_at = now(),"
                        " completed_at = CASE WHEN %s::boolean THEN now() END,"
                        " progress_details ="
                        " jsonb_set(progress_details, '{phase}', to_jsonb(%s::text))"
                        " WHERE job_id = %s AND status = 'running'"
                    ),
                    (
                        target.value,
                        error,
                        terminal,
                        target.value if terminal else "queued",
                        r["job_id"],
                    ),
                )
                if terminal:
                    cur.execute("DELETE FROM job_chunks WHERE job_id = %s", (r["job_id"],))
                out.append((r["job_id"], target))
            if any(t == JobStatus.PENDING for _, t in out):
                cur.execute("SELECT pg_notify(%s, '')", (WORK_CHANNEL,))
        return out

    # -- user side -------------------------------------------------------------------------------
    def _locked(self, cur: psycopg.Cursor[dict[str, Any]], job_id: UUID) -> Job:
        cur.execute(f"SELECT {COLUMNS} FROM jobs WHERE job_id = %s FOR UPDATE", (job_id,))
        row = cur.fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def request_cancel(self, job_id: UUID) -> Job:
        with self._tx() as cur:
            job = self._locked(cur, job_id)
            transition(job_id, job.status, Action.CANCEL)
            sets = ""
            if job.status == JobStatus.PENDING:
                sets = (
                    "status = 'cancelled', completed_at = now(), progress_details ="
                    " jsonb_set(progress_details, '{phase}', '\"cancelled\"'), "
                )
            # running: its worker sees the request and stops at the next chunk boundary
            cur.execute(
                _announce(
                    f"UPDATE jobs j SET {sets}updated_at = now(),"
                    " cancel_requested_at = coalesce(cancel_requested_at, now())"
                    " WHERE job_id = %s"
                ),
                (job_id,),
            )
            return _job(_one(cur))

    def retry(self, job_id: UUID) -> Job:
        with self._tx() as cur:
            job = self._locked(cur, job_id)
            transition(job_id, job.status, Action.RETRY)
            cur.execute(
                _announce(
                    "UPDATE jobs j SET status = 'pending', attempts = 0, error = NULL,"
                    " progress = 0, progress_details = '{}', started_at = NULL,"
                    " completed_at = NULL, cancel_requested_at = NULL, output_files = '[]',"
                    " summary = NULL, updated_at = now() WHERE job_id = %s"
                ),
                (job_id,),
            )
            row = _one(cur)
            cur.execute("DELETE FROM job_chunks WHERE job_id = %s", (job_id,))
            cur.execute("SELECT pg_notify(%s, '')", (WORK_CHANNEL,))
        return _job(row)

    def delete(self, job_id: UUID) -> None:
        with self._tx() as cur:
            job = self._locked(cur, job_id)
            if job.status == JobStatus.RUNNING:
                raise InvalidTransition(
                    job_id, job.status, "delete", "cannot delete a running job (cancel it first)"
                )
            cur.execute("DELETE FROM jobs WHERE job_id = %s", (job_id,))
            cur.execute("SELECT pg_notify(%s, %s)", (JOB_CHANNEL, str(job_id)))

    # -- waiting ---------------------------------------------------------------------------------
    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener is None or not self._listener.is_alive():
                self._listener = threading.Thread(
                    target=self._listen, name="patientgen-pg-listener", daemon=True
                )
                self._listener.start()

    def _listen(self) -> None:
        while not self._closed:
            try:
                conn = psycopg.connect(
                    self._conninfo, autocommit=True, connect_timeout=max(1, round(self.timeout))
                )
            except psycopg.Error:
                time.sleep(self.poll_interval)
                continue
            self._listen_conn = conn
            try:
                conn.execute(f"LISTEN {JOB_CHANNEL}")
                conn.execute(f"LISTEN {WORK_CHANNEL}")
                self._listening.set()
                self._wake_all()  # anything may have changed while we were not listening
                while not self._closed:
                    for note in conn.notifies(timeout=1.0):
                        if note.channel == WORK_CHANNEL:
                            self._work.set()
                        else:
                            self._wake(note.payload)
            except Exception as exc:  # connection lost: reconnect
                if not self._closed:
                    log.warning("PostgreSQL listener lost its connection (%s); reconnecting", exc)
            finally:
                self._listening.clear()
                self._listen_conn = None
                with contextlib.suppress(Exception):
                    conn.close()
            if not self._closed:
                self._wake_all()
                time.sleep(self.poll_interval)

    def _wake(self, payload: str) -> None:
        try:
            job_id = UUID(payload)
        except ValueError:
            return
        with self._lock:
            for event in self._waiters.get(job_id, ()):
                event.set()

    def _wake_all(self) -> None:
        self._work.set()
        with self._lock:
            for events in self._waiters.values():
                for event in events:
                    event.set()

    def wait_for_work(self, timeout: float) -> None:
        self._ensure_listener()
        if not self._listening.is_set():  # not (yet) listening: plain polling
            time.sleep(min(timeout, self.poll_interval))
        else:
            self._work.wait(timeout)
        self._work.clear()

    def wait_for_update(self, job_id: UUID, since: datetime | None, timeout: float) -> Job | None:
        self._ensure_listener()
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
        deadline = time.monotonic() + timeout
        try:
            if since is not None:  # give the listener a moment; until it is up, the loop polls
                self._listening.wait(min(timeout, 1.0))
            while True:
                job = self.get(job_id)
                if since is None or job.updated_at > since:
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # A safety re-check every few seconds, every poll interval while not listening.
                step = 5.0 if self._listening.is_set() else self.poll_interval
                event.wait(min(left, step))
                event.clear()
        finally:
            with self._lock:
                waiting = self._waiters.get(job_id)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_id]

    # -- API keys --------------------------------------------------------------------------------
    def insert_key(self, key: ApiKey, secret_sha256: str) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO api_keys (key_id, name, secret_sha256, admin, max_patients,"
                " max_active_jobs, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    key.key_id,
                    key.name,
                    secret_sha256,
                    key.admin,
                    key.max_patients,
                    key.max_active_jobs,
                    key.created_at,
                ),
            )

    def key_by_hash(self, secret_sha256: str) -> ApiKey | None:
        with self._tx() as cur:
            cur.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = %s", (secret_sha256,)
            )
            row = cur.fetchone()
        return None if row is None else ApiKey.model_validate(row)

    def list_keys(self) -> list[ApiKey]:
        with self._tx() as cur:
            cur.execute(f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at")
            return [ApiKey.model_validate(r) for r in cur.fetchall()]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._tx() as cur:
            cur.execute(
                "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_id = %s"
                f" RETURNING {KEY_COLUMNS}",
                (key_id,),
            )
            row = cur.fetchone()
        if row is None:
            raise KeyNotFound(key_id)
        return ApiKey.model_validate(row)

    # -- migrations ------------------------------------------------------------------------------
    def schema_version(self) -> str | None:
        from patientgen.jobs.migrations import VERSION_TABLE, version_query

        with self._tx() as cur:
            cur.execute("SELECT to_regclass(%s) AS t", (VERSION_TABLE,))
            if _one(cur)["t"] is None:
                return None
            cur.execute(version_query())
            row = cur.fetchone()
        return None if row is None else row["version_num"]
