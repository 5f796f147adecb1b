"""The one job store: every piece of a store's logic, written once for SQLite and PostgreSQL.

The SQL lives in named queries: `sql/common.sql` holds those both databases run as written, and
`sql/sqlite.sql` and `sql/postgres.sql` each dialect's own form of the others, with the same names
and parameters; what else differs (connections, the clock, encoding, notifications) is in
`dialects.py`. Here, and only here:

- every status written is the one `model.transition` returns for an action; each UPDATE also
  checks what makes it safe: the lease holder for a worker's writes (fencing: `LeaseLost`), the
  row version read under the row lock for a user's or the reaper's;
- a completion never lands after a cancel was requested (`CancelRequested`: the worker then ends
  the job cancelled), so a cancel that was accepted always cancels;
- files of a job are removed only by the `inside` callback of a fenced write, run inside that
  write's transaction after the write succeeded (the caller passes `JobFiles.detach`, which only
  renames the folder away): no worker that lost its lease, and no user action that was refused,
  ever removes a file; with object storage (`record_removals`) that write also records the job
  (`object_removals`), so the sweep finds what a process that died before deleting the objects
  left without listing the bucket;
- a submit's idempotency lookup, active-job count and insert are one transaction, serialised per
  owner (an idempotent repeat returns its job before any limit is checked);
- lease times come from the database's one clock (`Dialect.clock`), never from a worker's; waiters
  compare row versions, never timestamps;
- a running job's chunks are claimed one at a time (`claim_chunk`) by its owner and by helpers,
  under the job's row lock (SQLite: the write lock), so two workers never hold one chunk; a chunk
  is recorded (`record_claimed_chunk`) only by the worker whose claim it still is, while the job
  is running the attempt the claim was taken in, not asked to cancel; every write that takes a
  job out of `running` deletes its claims and closes its chunk phase in the same transaction;
- a service fact (what every process on the database must agree on, such as its storage:
  files.ensure_same_storage) is recorded only if absent and read back in the same transaction,
  so concurrent first records agree; it is replaced only while no job is pending or running,
  with every write to jobs held off until the replacement commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from patientgen.jobs._codec import dumps
from patientgen.jobs.dialects import Dialect, PostgresDialect, SqliteDialect, Tx
from patientgen.jobs.model import (
    TERMINAL_STATUSES,
    Action,
    ApiKey,
    CancelRequested,
    ChunkClaim,
    ChunkLost,
    ChunkRecord,
    Job,
    JobNotFound,
    JobsActive,
    JobStatus,
    KeyNotFound,
    LeaseLost,
    NewJob,
    SavedScenario,
    ScenarioChanged,
    ScenarioNotFound,
    TooManyActiveJobs,
    lost_worker_error,
    reap_action,
    transition,
    worker_transition,
)
from patientgen.jobs.store import Completion, Inside
from patientgen.jobs.watch import Watcher
from patientgen.settings import IDLE_IN_TRANSACTION_TIMEOUT

log = logging.getLogger(__name__)

_JOB_TIMES = (
    "created_at",
    "started_at",
    "updated_at",
    "completed_at",
    "lease_expires_at",
    "cancel_requested_at",
)
_KEY_TIMES = ("created_at", "revoked_at")
_CHUNK_TIMES = ("finished_at",)
_SCENARIO_TIMES = ("created_at", "updated_at")
#: Every status, for a list that filters none (the list queries always name the statuses).
_EVERY_STATUS = frozenset(s.value for s in JobStatus)
#: The keyset of a first page: it lies after every job (newest first, so it sorts above all).
_BEFORE_EVERY_JOB = (datetime.max.replace(tzinfo=UTC), UUID(int=(1 << 128) - 1))

#: The phase a job's progress shows after each action that ends a run.
_PHASE = {
    Action.COMPLETE: "completed",
    Action.FAIL: "failed",
    Action.CANCELLED: "cancelled",
    Action.RELEASE: "queued",
    Action.REQUEUE: "queued",
}


class SqlStore:
    """JobStore on SQLite or PostgreSQL, by its dialect."""

    def __init__(
        self,
        url: str,
        dialect: Dialect,
        *,
        poll_interval: float = 0.5,
        record_removals: bool = False,
    ) -> None:
        self.url = url
        self.dialect = dialect
        self.poll_interval = poll_interval
        #: Record each job whose files a write's `inside` removed (object storage: the sweep
        #: reads these instead of listing the bucket; see `removals_due`).
        self.record_removals = record_removals
        self.watcher = Watcher(dialect, self.get, self._versions, poll_interval)

    # -- rows and transactions -------------------------------------------------------------------
    def _job(self, row: dict[str, Any]) -> Job:
        return Job.model_validate(self.dialect.row(row, _JOB_TIMES))

    def _key(self, row: dict[str, Any]) -> ApiKey:
        return ApiKey.model_validate(self.dialect.row(row, _KEY_TIMES))

    def _read(self) -> Any:
        """A read of one statement."""
        return self.dialect.transaction(write=False, single=True)

    def _write_one(self) -> Any:
        """A write of one statement (its own transaction)."""
        return self.dialect.transaction(write=True, single=True)

    def _write(self) -> Any:
        return self.dialect.transaction(write=True)

    def close(self) -> None:
        self.watcher.close()
        self.dialect.close()
        self.watcher.join()

    def ping(self) -> None:
        with self._read() as t:
            t.one("ping")

    def schema_version(self) -> str | None:
        from patientgen.jobs.migrations import VERSION_TABLE

        with self._read() as t:
            if t.one("schema_table", table=VERSION_TABLE) in (None, {"t": None}):
                return None
            row = t.one("schema_version")
        return None if row is None else str(row["version_num"])

    # -- service facts ---------------------------------------------------------------------------
    def fact(self, name: str) -> str | None:
        with self._read() as t:
            row = t.one("fact", name=name)
        return None if row is None else str(row["value"])

    def record_fact(self, name: str, value: str) -> str:
        """Insert-if-absent, then read in the same transaction: concurrent first records all
        return the one that committed first (PostgreSQL: the second insert waits for the first
        to commit and does nothing; SQLite: BEGIN IMMEDIATE runs them one after the other)."""
        with self._write() as t:
            t.run("record_fact", name=name, value=value, **self.dialect.clock())
            return str(_row(t.one("fact", name=name))["value"])

    def replace_fact_when_idle(self, name: str, value: str) -> str | None:
        """Replace the fact while no job is pending or running (JobsActive otherwise), with
        every write to jobs held off until it commits (`lock_jobs`)."""
        with self._write() as t:
            t.run("lock_jobs")
            active = int(_row(t.one("active_jobs"))["n"])
            if active:
                raise JobsActive(active)
            before = t.one("fact", name=name)
            t.run("put_fact", name=name, value=value, **self.dialect.clock())
        return None if before is None else str(before["value"])

    def take_turn(self, name: str, every: float) -> bool:
        """The turn row (a service fact of no value) moves to now only if older than `every`
        seconds, in one statement: concurrent callers are ordered by its row lock (SQLite: the
        write lock), and the first one's move makes the others' condition false."""
        with self._write() as t:
            taken = t.one("take_turn", name=name, every=every, **self.dialect.clock())
        return taken is not None

    # -- submit and read -------------------------------------------------------------------------
    def create(self, new: NewJob, max_active: int | None = None) -> tuple[Job, bool]:
        """Insert a pending job; with an idempotency key the owner used already, the existing job
        and False (before any limit is checked); TooManyActiveJobs when the owner has
        `max_active` pending or running jobs. One transaction; with a limit, serialised per owner
        (the count and the insert cannot interleave with another submit's). Without one, the
        unique index on (owner, idempotency_key) alone decides a race between repeats."""
        with self._write() if max_active is not None else self._write_one() as t:
            if max_active is not None:
                t.one("lock_owner", owner=new.owner)
                if (found := self._find_idempotent(t, new)) is not None:
                    return found, False
                active = int(_row(t.one("active_count", owner=new.owner))["n"])
                if active >= max_active:
                    raise TooManyActiveJobs(new.owner, active, max_active)
            row = t.one(
                "insert_job",
                job_id=str(new.job_id),
                owner=new.owner,
                status=JobStatus.PENDING.value,
                config=dumps(new.config),
                max_attempts=new.max_attempts,
                idempotency_key=new.idempotency_key,
                priority=new.priority,
                **self.dialect.clock(),
            )
        if row is not None:
            return self._inserted(new, self.dialect.row(row, ("created_at",))["created_at"]), True
        with self._read() as t:  # a repeat: the insert met the unique index (a committed job)
            found = self._find_idempotent(t, new)
        if found is None:  # the job it repeats was deleted since: submit it again
            return self.create(new, max_active)
        return found, False

    @staticmethod
    def _inserted(new: NewJob, created_at: datetime) -> Job:
        """The job `insert_job` wrote: `new`, pending, the columns' defaults, created (and
        updated) at the database's time. Not read back: reading and validating the whole row
        was about a tenth of a submit's client CPU (the contract suite compares it with
        `get`)."""
        return Job(
            job_id=new.job_id,
            owner=new.owner,
            status=JobStatus.PENDING,
            config=new.config,
            progress=0,
            created_at=created_at,
            updated_at=created_at,
            max_attempts=new.max_attempts,
            idempotency_key=new.idempotency_key,
            priority=new.priority,
        )

    def _find_idempotent(self, t: Tx, new: NewJob) -> Job | None:
        if new.idempotency_key is None:
            return None
        row = t.one("find_idempotent", owner=new.owner, idempotency_key=new.idempotency_key)
        return None if row is None else self._job(row)

    def create_many(self, news: Sequence[NewJob]) -> int:
        """Insert many pending jobs (no idempotency keys, no limits) in one transaction."""
        pending, clock = JobStatus.PENDING.value, self.dialect.clock()
        rows = [
            {
                "job_id": str(n.job_id),
                "owner": n.owner,
                "status": pending,
                "config": dumps(n.config),
                "max_attempts": n.max_attempts,
                "priority": n.priority,
                **clock,
            }
            for n in news
        ]
        with self._write_one() as t:  # one statement: a COPY on PostgreSQL
            t.insert_rows("insert_jobs", rows)
        return len(news)

    def get(self, job_id: UUID) -> Job:
        with self._read() as t:
            row = t.one("get_job", job_id=str(job_id))
        if row is None:
            raise JobNotFound(job_id)
        return self._job(row)

    def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[JobStatus] | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[Job]:
        """Newest first (created_at, job_id descending), strictly after the keyset `after`."""
        query, params = self.list_query(owner, statuses, limit, after)
        with self._read() as t:
            rows = t.all(query, **params)
        return [self._job(r) for r in rows]

    def list_query(
        self,
        owner: str | None,
        statuses: Sequence[JobStatus] | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> tuple[str, dict[str, Any]]:
        """The named query and parameters list_jobs runs (tests read its plan)."""
        wanted = {JobStatus(s).value for s in statuses} if statuses else _EVERY_STATUS
        created, job_id = after or _BEFORE_EVERY_JOB
        return "list_jobs" if owner is None else "list_owner_jobs", {
            "owner": owner,
            "statuses": dumps(sorted(wanted)),
            "after_created": self.dialect.ts(created),
            "after_id": str(job_id),
            "limit": limit,
        }

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in JobStatus}
        with self._read() as t:
            for row in t.all("counts"):
                out[row["status"]] = int(row["n"])
        return out

    def active_count(self, owner: str) -> int:
        with self._read() as t:
            return int(_row(t.one("active_count", owner=owner))["n"])

    # -- worker side (fenced) --------------------------------------------------------------------
    def claim(
        self,
        worker_id: str,
        lease_seconds: float,
        limit: int = 1,
        job_id: UUID | None = None,
        max_patients: int | None = None,
    ) -> list[Job]:
        """Take up to `limit` pending jobs (highest priority, oldest first) for `worker_id`;
        with `job_id`, that job only (if pending); with `max_patients`, only jobs never tried
        before, of one chunk of 1 to `max_patients` patients, written into their own folder."""
        with self._write_one() as t:
            rows = t.all(
                "claim",
                status=transition(job_id, JobStatus.PENDING, Action.CLAIM),
                from_status=JobStatus.PENDING.value,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                lease_until=self.dialect.lease_until(lease_seconds),
                only_id=None if job_id is None else str(job_id),
                limit=limit,
                max_patients=max_patients,
                **self.dialect.clock(),
            )
        jobs = [self._job(r) for r in rows]
        jobs.sort(key=lambda j: (-j.priority, j.created_at, str(j.job_id)))
        return jobs

    def _lost(self, t: Tx, job_id: UUID, worker_id: str) -> LeaseLost:
        """Why a fenced write changed nothing: JobNotFound (raised), CancelRequested (raised)
        for a completion of a job still held, else the LeaseLost to raise."""
        row = t.one("get_job", job_id=str(job_id))
        if row is None:
            raise JobNotFound(job_id)
        job = self._job(row)
        held = job.status == JobStatus.RUNNING and job.lease_owner == worker_id
        if held and job.cancel_requested_at is not None:
            raise CancelRequested(job_id)
        return LeaseLost(job_id, worker_id)

    def _beat(
        self,
        t: Tx,
        job_id: UUID,
        worker_id: str,
        lease_seconds: float,
        progress: int | None,
        progress_details: dict[str, Any] | None,
        keep_counts: bool = False,
    ) -> Job:
        row = t.one(
            "heartbeat",
            job_id=str(job_id),
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            lease_until=self.dialect.lease_until(lease_seconds),
            progress=progress,
            progress_details=None if progress_details is None else dumps(progress_details),
            keep_counts=keep_counts,
            **self.dialect.clock(),
        )
        if row is None:
            raise self._lost(t, job_id, worker_id)
        return self._job(row)

    def heartbeat(
        self,
        job_id: UUID,
        worker_id: str,
        lease_seconds: float,
        progress: int | None = None,
        progress_details: dict[str, Any] | None = None,
        inside: Inside | None = None,
        keep_counts: bool = False,
    ) -> Job:
        """Extend the lease (and save progress); return the job (it shows cancel requests).
        `inside` runs in the same transaction once the lease is confirmed. `keep_counts`: the
        stored chunks_done and patients_done stay (every worker's recorded chunks count there)."""
        with self._write() if inside else self._write_one() as t:
            job = self._beat(
                t, job_id, worker_id, lease_seconds, progress, progress_details, keep_counts
            )
            if inside is not None:
                self._remove_files(t, job, inside)
        return job

    def heartbeat_many(self, job_ids: Sequence[UUID], worker_id: str, lease_seconds: float) -> int:
        """Extend the leases this worker holds among `job_ids` (a batch); how many it holds."""
        with self._write_one() as t:
            return t.run(
                "heartbeat_many",
                job_ids=dumps([str(i) for i in job_ids]),
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                lease_until=self.dialect.lease_until(lease_seconds),
                **self.dialect.clock(),
            )

    # -- chunk claims (fenced by the claim and the job's run) ------------------------------------
    def _close_chunks(self, t: Tx, job_id: UUID) -> None:
        """The job leaves `running`: its claims and its open chunk phase go (same transaction)."""
        t.run("delete_chunk_claims", job_id=str(job_id))
        t.run("delete_chunk_phase", job_id=str(job_id))

    def open_chunks(self, job_id: UUID, worker_id: str, chunks_total: int) -> Job:
        """The owner opens its job's chunk phase: from now on any worker may claim its chunks
        (LeaseLost unless `worker_id` holds the job)."""
        with self._write() as t:
            job = self._locked(t, job_id)
            if job.status != JobStatus.RUNNING or job.lease_owner != worker_id:
                raise LeaseLost(job_id, worker_id)
            t.run(
                "open_chunks",
                job_id=str(job_id),
                attempt=job.attempts,
                chunks_total=chunks_total,
                **self.dialect.clock(),
            )
        return job

    def claim_chunk(
        self, worker_id: str, lease_seconds: float, job_id: UUID | None = None
    ) -> ChunkClaim | None:
        """Claim the first chunk no one recorded or holds (a claim whose lease expired is
        free). With `job_id` (the job's owner): a chunk of that job, or a claim whose `chunk`
        is None when none is free (LeaseLost unless the worker holds the job and its chunk
        phase is open). Without (a helper): a chunk of the first job, in the queue's order,
        whose chunk phase is open and not asked to cancel; None when no such job has one free."""
        if job_id is not None:
            with self._write() as t:
                found = self._open_phase(t, job_id)
                if found is None or found[0].lease_owner != worker_id:
                    raise LeaseLost(job_id, worker_id)
                return self._claim_in(t, *found, worker_id, lease_seconds)
        with self._read() as t:
            candidates = [UUID(str(r["job_id"])) for r in t.all("open_phases", limit=8)]
        for candidate in candidates:
            with self._write() as t:
                found = self._open_phase(t, candidate)
                if found is None or found[0].cancel_requested_at is not None:
                    continue
                claim = self._claim_in(t, *found, worker_id, lease_seconds)
            if claim.chunk is not None:
                return claim
        return None

    def _open_phase(self, t: Tx, job_id: UUID) -> tuple[Job, int] | None:
        """The job (its row locked) and its number of chunks, while it runs the attempt that
        opened its chunk phase; None otherwise."""
        row = t.one("lock_job", job_id=str(job_id))
        phase = t.one("chunk_phase", job_id=str(job_id))
        if row is None or phase is None:
            return None
        job = self._job(row)
        if job.status != JobStatus.RUNNING or job.attempts != int(phase["attempt"]):
            return None
        return job, int(phase["chunks_total"])

    def _claim_in(
        self, t: Tx, job: Job, chunks_total: int, worker_id: str, lease_seconds: float
    ) -> ChunkClaim:
        """Claim the first free chunk of `job`, whose row this transaction holds."""
        job_id = str(job.job_id)
        recorded = {int(r["chunk"]) for r in t.all("recorded_chunks", job_id=job_id)}
        clock = self.dialect.clock()
        held = {
            int(r["chunk"])
            for r in t.all("chunk_claims", job_id=job_id, **clock)
            if not r["expired"]
        }
        free = next((c for c in range(chunks_total) if c not in recorded and c not in held), None)
        if free is not None:
            t.run(
                "claim_chunk",
                job_id=job_id,
                chunk=free,
                attempt=job.attempts,
                worker_id=worker_id,
                lease_seconds=lease_seconds,
                lease_until=self.dialect.lease_until(lease_seconds),
                **clock,
            )
        return ChunkClaim(
            job=job,
            chunk=free,
            attempt=job.attempts,
            recorded=len(recorded),
            chunks_total=chunks_total,
        )

    def extend_chunk(self, claim: ChunkClaim, worker_id: str, lease_seconds: float) -> bool:
        """Extend this worker's claim; False once it is no longer this worker's."""
        with self._write_one() as t:
            return bool(
                t.run(
                    "extend_chunk",
                    job_id=str(claim.job.job_id),
                    chunk=claim.chunk,
                    worker_id=worker_id,
                    attempt=claim.attempt,
                    lease_seconds=lease_seconds,
                    lease_until=self.dialect.lease_until(lease_seconds),
                    **self.dialect.clock(),
                )
            )

    def release_chunk(self, claim: ChunkClaim, worker_id: str) -> bool:
        """Give up this worker's claim at once (whether it still held it)."""
        with self._write_one() as t:
            return bool(t.run("drop_chunk_claim", **self._claim_key(claim, worker_id)))

    def _claim_key(self, claim: ChunkClaim, worker_id: str) -> dict[str, Any]:
        return {
            "job_id": str(claim.job.job_id),
            "chunk": claim.chunk,
            "worker_id": worker_id,
            "attempt": claim.attempt,
        }

    def record_claimed_chunk(
        self,
        claim: ChunkClaim,
        worker_id: str,
        summary: dict[str, Any],
        patients: int,
        progress_details: dict[str, Any] | None = None,
    ) -> Job:
        """Record this worker's claimed chunk as done with its partial summary, and count its
        `patients` in the job's progress (`progress_details`: the owner's snapshot, whose counts
        give way to the stored ones). ChunkLost (nothing changes) unless the claim is still
        this worker's and the job still runs the attempt it was taken in; CancelRequested once
        a cancel was asked for (the claim stays: release it)."""
        job_id, chunk = claim.job.job_id, claim.chunk
        assert chunk is not None
        with self._write() as t:
            job = self._locked(t, job_id)
            if job.status != JobStatus.RUNNING or job.attempts != claim.attempt:
                raise ChunkLost(job_id, chunk, worker_id)
            if job.cancel_requested_at is not None:
                raise CancelRequested(job_id)
            if not t.run("drop_chunk_claim", **self._claim_key(claim, worker_id)):
                raise ChunkLost(job_id, chunk, worker_id)
            total = int(job.config["scenario"]["total_patients"])
            row = t.one(
                "count_chunk",
                job_id=str(job_id),
                patients=patients,
                patients_total=max(total, 1),
                progress_details=None if progress_details is None else dumps(progress_details),
                **self.dialect.clock(),
            )
            t.run(
                "record_chunk",
                job_id=str(job_id),
                chunk=chunk,
                summary=dumps(summary),
                worker_id=worker_id,
                **self.dialect.clock(),
            )
        return self._job(_row(row))

    def chunks(self, job_id: UUID) -> list[ChunkRecord]:
        with self._read() as t:
            rows = t.all("chunks", job_id=str(job_id))
        return [ChunkRecord.model_validate(self.dialect.row(r, _CHUNK_TIMES)) for r in rows]

    def finish(
        self,
        job_id: UUID,
        worker_id: str,
        action: Action,
        *,
        output_files: list[dict[str, Any]] | None = None,
        summary: dict[str, Any] | None = None,
        error: str | None = None,
        inside: Inside | None = None,
    ) -> Job:
        """End this worker's run of a job with `action` (complete, fail, cancelled, release):
        the one fenced write for each. LeaseLost (nothing changes) unless the worker holds the
        job; CancelRequested for a completion once a cancel was asked for."""
        status = worker_transition(job_id, action)
        terminal = status in TERMINAL_STATUSES
        with self._write() as t:
            row = t.one(
                "finish",
                job_id=str(job_id),
                worker_id=worker_id,
                status=status.value,
                terminal=terminal,
                give_back=1 if action == Action.RELEASE else 0,
                progress=100 if action == Action.COMPLETE else None,
                output_files=None if output_files is None else dumps(output_files),
                set_summary=action == Action.COMPLETE,
                summary=None if summary is None else dumps(summary),
                error=error,
                phase=_PHASE[action],
                unless_cancelled=action == Action.COMPLETE,
                **self.dialect.clock(),
            )
            if row is None:
                raise self._lost(t, job_id, worker_id)
            self._close_chunks(t, job_id)
            if terminal:
                t.run("delete_chunks", job_id=str(job_id))
            job = self._job(row)
            if inside is not None:
                self._remove_files(t, job, inside)
        return job

    def complete(
        self,
        job_id: UUID,
        worker_id: str,
        output_files: list[dict[str, Any]],
        summary: dict[str, Any] | None,
    ) -> Job:
        return self.finish(
            job_id, worker_id, Action.COMPLETE, output_files=output_files, summary=summary
        )

    def complete_many(self, worker_id: str, completions: Sequence[Completion]) -> list[UUID]:
        """Complete many jobs in one statement; return the ids completed (the others had lost
        their lease, or were asked to cancel). The chunk checkpoints of those that had any go
        in a second statement: if that one is lost, a completed job keeps rows nothing reads
        (a completed job never resumes; a delete removes them)."""
        if not completions:
            return []
        batch = [{"job_id": str(i), "output_files": f, "summary": s} for i, f, s in completions]
        with self._write_one() as t:
            rows = t.all(
                "finish_many",
                batch=dumps(batch),
                worker_id=worker_id,
                status=worker_transition(None, Action.COMPLETE).value,
                phase=_PHASE[Action.COMPLETE],
                **self.dialect.clock(),
            )
        checkpointed = [str(r["job_id"]) for r in rows if r["checkpoints"]]
        if checkpointed:
            with self._write_one() as t:
                t.run("delete_chunks_many", job_ids=dumps(checkpointed))
        return [UUID(str(r["job_id"])) for r in rows]

    def fail(self, job_id: UUID, worker_id: str, error: str, inside: Inside | None = None) -> Job:
        return self.finish(job_id, worker_id, Action.FAIL, error=error, inside=inside)

    def release(self, job_id: UUID, worker_id: str) -> Job:
        """Give a running job back to the queue at once (graceful stop); the attempt is not
        counted, its recorded chunks stay."""
        return self.finish(job_id, worker_id, Action.RELEASE)

    def mark_cancelled(self, job_id: UUID, worker_id: str, inside: Inside | None = None) -> Job:
        return self.finish(job_id, worker_id, Action.CANCELLED, inside=inside)

    def reap(self, inside: Inside | None = None) -> list[tuple[UUID, JobStatus]]:
        """Jobs whose lease expired: cancelled when a cancel was requested, else back to pending
        (attempts left) or failed. `inside(job)` (it removes the job's files) runs in the
        transaction for each job that ends here, never for one back in the queue."""
        out: list[tuple[UUID, JobStatus]] = []
        with self._write() as t:
            clock = self.dialect.clock()
            for expired in [self._job(r) for r in t.all("expired", **clock)]:
                action = reap_action(
                    expired.attempts, expired.max_attempts, expired.cancel_requested_at is not None
                )
                status = worker_transition(expired.job_id, action)
                terminal = status in TERMINAL_STATUSES
                row = t.one(
                    "reap_one",
                    job_id=str(expired.job_id),
                    version=expired.version,
                    status=status.value,
                    terminal=terminal,
                    error=(
                        lost_worker_error(expired.attempts, expired.lease_owner)
                        if action == Action.FAIL
                        else None
                    ),
                    phase=_PHASE[action],
                    **clock,
                )
                if row is None:
                    continue
                self._close_chunks(t, expired.job_id)
                if terminal:
                    t.run("delete_chunks", job_id=str(expired.job_id))
                if terminal and inside is not None:
                    self._remove_files(t, self._job(row), inside)
                out.append((expired.job_id, status))
        return out

    # -- user side -------------------------------------------------------------------------------
    def _locked(self, t: Tx, job_id: UUID) -> Job:
        row = t.one("lock_job", job_id=str(job_id))
        if row is None:
            raise JobNotFound(job_id)
        return self._job(row)

    def _user_action(self, job_id: UUID, action: Action) -> Job:
        """A user's cancel or retry: the row locked, its status moved as the table says (the
        query of the same name writes it, conditioned on the version read under the lock)."""
        with self._write() as t:
            job = self._locked(t, job_id)
            status = transition(job_id, job.status, action)
            assert status is not None
            extra = {"keep_progress": job.retry_resumes} if action == Action.RETRY else {}
            row = t.one(
                action.value,
                job_id=str(job_id),
                version=job.version,
                status=status.value,
                terminal=status in TERMINAL_STATUSES,
                phase=status.value,
                **extra,
                **self.dialect.clock(),
            )
            if action == Action.RETRY:
                t.run("delete_chunks", job_id=str(job_id))
                self._close_chunks(t, job_id)
        return self._job(_row(row))

    def request_cancel(self, job_id: UUID) -> Job:
        """A pending job is cancelled at once; a running one is asked to stop (its worker ends
        it cancelled at the next chunk boundary, or before completing)."""
        return self._user_action(job_id, Action.CANCEL)

    def retry(self, job_id: UUID) -> Job:
        return self._user_action(job_id, Action.RETRY)

    def if_ended(self, job_id: UUID, inside: Inside) -> bool:
        """Run `inside(job)` under the job's row lock if it has ended (completed, failed or
        cancelled: no worker may hold it until a retry, which has to wait for the lock)."""
        with self._write() as t:
            job = self._locked(t, job_id)
            if job.status not in TERMINAL_STATUSES:
                return False
            inside(job)
        return True

    def delete(self, job_id: UUID, inside: Inside | None = None) -> None:
        """Remove a job that is not running; `inside(job)` runs before the transaction
        commits (InvalidTransition while it runs)."""
        with self._write() as t:
            job = self._locked(t, job_id)
            transition(job_id, job.status, Action.DELETE)
            t.run("delete_job", job_id=str(job_id), version=job.version)
            if inside is not None:
                self._remove_files(t, job, inside)

    def statuses(self, job_ids: Sequence[UUID]) -> dict[UUID, JobStatus]:
        """The status of each of these jobs that exists, in one read."""
        with self._read() as t:
            rows = t.all("statuses", job_ids=dumps([str(i) for i in job_ids]))
        return {UUID(str(r["job_id"])): JobStatus(r["status"]) for r in rows}

    def _versions(self, job_ids: Sequence[UUID]) -> dict[UUID, int]:
        """The row versions of these jobs (those that exist)."""
        with self._read() as t:
            rows = t.all("versions", job_ids=dumps([str(i) for i in job_ids]))
        return {UUID(str(r["job_id"])): int(r["version"]) for r in rows}

    # -- what the writes removed (object storage) ------------------------------------------------
    def _remove_files(self, t: Tx, job: Job, inside: Inside) -> None:
        """Run a write's `inside(job)` (it removes the job's files) in the write's
        transaction, and with `record_removals` record the job there too, so that no removal is
        forgotten by a process that dies before deleting the objects."""
        inside(job)
        if self.record_removals:
            t.run("record_removal", job_id=str(job.job_id), **self.dialect.clock())

    def removals_due(self, older_than: float, limit: int) -> list[tuple[UUID, str]]:
        """Up to `limit` jobs recorded more than `older_than` seconds ago, oldest first, each with
        when it was recorded (to give back to `forget_removals`)."""
        with self._read() as t:
            rows = t.all("removals_due", older_than=older_than, limit=limit, **self.dialect.clock())
        return [(UUID(str(r["job_id"])), str(r["recorded_at"])) for r in rows]

    def forget_removals(self, removals: Sequence[tuple[UUID, str]]) -> None:
        """Drop these records, as `removals_due` gave them; a job recorded again since stays."""
        if removals:
            with self._write_one() as t:
                t.run("forget_removals", rows=dumps([[str(j), at] for j, at in removals]))

    # -- waiting ---------------------------------------------------------------------------------
    def wait_for_update(self, job_id: UUID, since: int | None, timeout: float) -> Job | None:
        """The job as soon as its version differs from `since` (at once when since is None);
        None after `timeout` seconds without a change. JobNotFound when it does not exist."""
        return self.watcher.wait_for_update(job_id, since, timeout)

    def wait_for_work(self, timeout: float) -> None:
        """Block until a job may be claimable (a change was seen) or `timeout` passed."""
        self.watcher.wait_for_work(timeout)

    def wake(self) -> None:
        self.watcher.wake_work()

    # -- API keys --------------------------------------------------------------------------------
    def insert_key(self, key: ApiKey, secret_sha256: str) -> None:
        with self._write() as t:
            t.run(
                "insert_key",
                key_id=key.key_id,
                name=key.name,
                secret_sha256=secret_sha256,
                admin=key.admin,
                max_patients=key.max_patients,
                max_active_jobs=key.max_active_jobs,
                created_at=self.dialect.ts(key.created_at),
            )

    def key_by_hash(self, secret_sha256: str) -> ApiKey | None:
        with self._read() as t:
            row = t.one("key_by_hash", secret_sha256=secret_sha256)
        return None if row is None else self._key(row)

    def list_keys(self) -> list[ApiKey]:
        with self._read() as t:
            return [self._key(r) for r in t.all("list_keys")]

    def revoke_key(self, key_id: str) -> ApiKey:
        with self._write() as t:
            row = t.one("revoke_key", key_id=key_id, **self.dialect.clock())
        if row is None:
            raise KeyNotFound(key_id)
        return self._key(row)

    # -- saved scenarios -------------------------------------------------------------------------
    def _saved(self, row: dict[str, Any]) -> SavedScenario:
        return SavedScenario.model_validate(self.dialect.row(row, _SCENARIO_TIMES))

    def put_scenario(
        self, owner: str, name: str, scenario: dict[str, Any], expected: int | None = None
    ) -> SavedScenario:
        """Save (or replace: its version grows) the owner's scenario `name`; `expected` 0 creates
        only, N replaces only version N (ScenarioChanged, with what is there now, otherwise)."""
        params = {"owner": owner, "name": name, "scenario": dumps(scenario)}
        with self._write_one() as t:
            if expected:
                row = t.one("replace_scenario", version=expected, **params, **self.dialect.clock())
            else:
                row = t.one(
                    "put_scenario", only_new=expected == 0, **params, **self.dialect.clock()
                )
            if row is None:
                current = t.one("get_scenario", owner=owner, name=name)
                raise ScenarioChanged(name, None if current is None else self._saved(current))
        return self._saved(row)

    def get_scenario(self, owner: str, name: str) -> SavedScenario:
        with self._read() as t:
            row = t.one("get_scenario", owner=owner, name=name)
        if row is None:
            raise ScenarioNotFound(name)
        return self._saved(row)

    def list_scenarios(self, owner: str) -> list[SavedScenario]:
        """The owner's saved scenarios by name, without their content."""
        with self._read() as t:
            return [self._saved(r) for r in t.all("list_scenarios", owner=owner)]

    def delete_scenario(self, owner: str, name: str) -> None:
        with self._write_one() as t:
            if not t.run("delete_scenario", owner=owner, name=name):
                raise ScenarioNotFound(name)


def _row(row: dict[str, Any] | None) -> dict[str, Any]:
    """The row of a statement that always returns one."""
    if row is None:  # pragma: no cover - the statements guarantee a row
        raise RuntimeError("expected a row")
    return row


def open_store(
    url: str,
    *,
    max_connections: int = 10,
    timeout: float = 5.0,
    poll_interval: float = 0.5,
    idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_TIMEOUT,
    record_removals: bool = False,
) -> SqlStore:
    """The store a database URL names (not migrated: see `migrations.ensure_schema`);
    `idle_in_transaction_timeout`: see `Settings.db_idle_in_transaction_timeout`;
    `record_removals`: see SqlStore."""
    from patientgen.jobs.migrations import sqlite_file

    dialect: Dialect
    if url.startswith("sqlite:///"):
        dialect = SqliteDialect(sqlite_file(url))
    elif url.startswith(("postgresql://", "postgres://")):
        dialect = PostgresDialect(
            url,
            max_connections=max_connections,
            timeout=timeout,
            idle_in_transaction_timeout=idle_in_transaction_timeout,
        )
    else:
        raise ValueError(
            f"unsupported database URL {url!r} (use sqlite:///path or postgresql://...)"
        )
    return SqlStore(url, dialect, poll_interval=poll_interval, record_removals=record_removals)


def connect(settings: Any, *, max_connections: int = 10, migrate: bool = True) -> SqlStore:
    """The store `settings.database_url` names, its schema upgraded to head first (StoreUnavailable
    while the database cannot be reached, ValueError for a URL of no known database)."""
    from patientgen.jobs import migrations

    store = open_store(
        settings.database_url,
        max_connections=max_connections,
        timeout=settings.db_timeout,
        poll_interval=settings.poll_interval,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        record_removals=bool(settings.storage_url),  # object storage: the sweep reads them
    )
    if migrate:
        try:
            migrations.ensure_schema(store)
        except BaseException:
            store.close()
            raise
    return store
