"""The JobStore protocol: what the one store core (`sql_store.SqlStore`) offers the job layer.

Only `sql/*.sql` and the migrations contain SQL. Every status written is the one
`model.transition` returns; every write a worker makes is conditioned on `lease_owner = worker_id`
and raises `LeaseLost` otherwise (fencing). A chunk claimed by any worker (`claim_chunk`) is
recorded only while the claim is still that worker's and the job still runs the attempt it was
claimed in (`ChunkLost` otherwise); a job leaving `running` drops its claims in that write.
`inside` callbacks run in the transaction of a write that succeeded, before it commits: the only
place a job's files are removed (files.py). Service facts (`fact`, `record_fact`) are what every
process on one database must agree on, such as where its jobs' files live (files.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from patientgen.jobs.model import (
    Action,
    ApiKey,
    ChunkClaim,
    ChunkRecord,
    Job,
    JobStatus,
    NewJob,
    SavedScenario,
)

#: (job_id, output_files, summary) of a job a worker finished.
Completion = tuple[UUID, list[dict[str, Any]], dict[str, Any] | None]
#: Runs inside the transaction of a write that succeeded, with the job as written.
Inside = Callable[[Job], None]


class JobStore(Protocol):
    url: str

    def close(self) -> None: ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def schema_version(self) -> str | None:
        """The migration revision the database is at (None when it has no schema yet)."""

    # -- service facts (what every process on the database must agree on) ------------------------
    def fact(self, name: str) -> str | None:
        """The value recorded for `name` (None: nothing recorded)."""

    def record_fact(self, name: str, value: str) -> str:
        """Record `value` unless a value is recorded already; return the recorded one (of
        concurrent first records, all get the one that won)."""

    def replace_fact_when_idle(self, name: str, value: str) -> str | None:
        """Record `value` in place of any other, in one transaction that no job is inserted or
        changes status during; JobsActive (nothing changes) while a job is pending or running.
        Returns what was recorded before."""

    def take_turn(self, name: str, every: float) -> bool:
        """Whether the caller takes this interval's turn of the periodic task `name` (one run
        per `every` seconds is enough, whoever runs it): True when no caller took it within
        `every` seconds by the database's clock, and taking it starts the next interval; of
        concurrent callers, one."""

    # -- submit and read -------------------------------------------------------------------------
    def create(self, new: NewJob, max_active: int | None = None) -> tuple[Job, bool]:
        """Insert a pending job; with an idempotency key already used by the owner, return the
        existing job and False instead (before any limit); TooManyActiveJobs when the owner has
        `max_active` active jobs. One transaction."""

    def create_many(self, news: Sequence[NewJob]) -> int:
        """Insert many pending jobs (no idempotency keys) in one transaction; return the count."""

    def get(self, job_id: UUID) -> Job: ...

    def statuses(self, job_ids: Sequence[UUID]) -> dict[UUID, JobStatus]:
        """The status of each of these jobs that exists, in one read."""

    def list_jobs(
        self,
        owner: str | None,
        statuses: Sequence[JobStatus] | None,
        limit: int,
        after: tuple[datetime, UUID] | None,
    ) -> list[Job]:
        """Newest first (created_at, job_id descending), strictly after the keyset `after`."""

    def counts(self) -> dict[str, int]: ...

    def active_count(self, owner: str) -> int: ...

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
        `keep_counts`: the stored chunks_done and patients_done stay."""

    def heartbeat_many(self, job_ids: Sequence[UUID], worker_id: str, lease_seconds: float) -> int:
        """Extend the leases this worker holds among `job_ids`; how many it holds."""

    def open_chunks(self, job_id: UUID, worker_id: str, chunks_total: int) -> Job:
        """The owner opens its job's chunk phase to helpers (LeaseLost unless it holds it)."""

    def claim_chunk(
        self, worker_id: str, lease_seconds: float, job_id: UUID | None = None
    ) -> ChunkClaim | None:
        """Claim the first chunk no one recorded or holds: of `job_id` (its owner; `chunk`
        None when none is free), or of the first open job in the queue's order (a helper)."""

    def extend_chunk(self, claim: ChunkClaim, worker_id: str, lease_seconds: float) -> bool:
        """Extend this worker's chunk claim; False once it is not this worker's."""

    def release_chunk(self, claim: ChunkClaim, worker_id: str) -> bool:
        """Give up this worker's chunk claim at once."""

    def record_claimed_chunk(
        self,
        claim: ChunkClaim,
        worker_id: str,
        summary: dict[str, Any],
        patients: int,
        progress_details: dict[str, Any] | None = None,
    ) -> Job:
        """Record the claimed chunk (fenced: ChunkLost, CancelRequested) and count it."""

    def chunks(self, job_id: UUID) -> list[ChunkRecord]: ...

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
        """End this worker's run with `action` (complete, fail, cancelled, release)."""

    def complete(
        self,
        job_id: UUID,
        worker_id: str,
        output_files: list[dict[str, Any]],
        summary: dict[str, Any] | None,
    ) -> Job: ...

    def complete_many(self, worker_id: str, completions: Sequence[Completion]) -> list[UUID]:
        """Complete many jobs in one transaction; return the ids completed (the others had lost
        their lease)."""

    def fail(
        self, job_id: UUID, worker_id: str, error: str, inside: Inside | None = None
    ) -> Job: ...

    def release(self, job_id: UUID, worker_id: str) -> Job:
        """Give a running job back to the queue at once (graceful stop); the attempt is not
        counted."""

    def mark_cancelled(self, job_id: UUID, worker_id: str, inside: Inside | None = None) -> Job: ...

    def reap(self, inside: Inside | None = None) -> list[tuple[UUID, JobStatus]]:
        """Jobs whose lease expired: back to pending (attempts left), else failed; cancelled when
        a cancel was requested; `inside(job)` for each that ends. Returns what it did."""

    # -- user side -------------------------------------------------------------------------------
    def request_cancel(self, job_id: UUID) -> Job: ...

    def retry(self, job_id: UUID) -> Job: ...

    def if_ended(self, job_id: UUID, inside: Inside) -> bool:
        """Run `inside(job)` under the row lock if the job has ended; whether it did."""

    def delete(self, job_id: UUID, inside: Inside | None = None) -> None: ...

    # -- what the writes removed (object storage) ------------------------------------------------
    def removals_due(self, older_than: float, limit: int) -> list[tuple[UUID, str]]:
        """Jobs whose files a write removed more than `older_than` s ago (object storage)."""
        ...

    def forget_removals(self, removals: Sequence[tuple[UUID, str]]) -> None: ...

    # -- waiting ---------------------------------------------------------------------------------
    def wait_for_update(self, job_id: UUID, since: int | None, timeout: float) -> Job | None:
        """The job once its version differs from `since` (None: at once), else None."""

    def wait_for_work(self, timeout: float) -> None:
        """Block until a job may be claimable (new or returned job) or `timeout` passed."""

    def wake(self) -> None:
        """End a wait_for_work at once (a worker told to stop); safe in a signal handler."""

    # -- API keys --------------------------------------------------------------------------------
    def insert_key(self, key: ApiKey, secret_sha256: str) -> None: ...

    def key_by_hash(self, secret_sha256: str) -> ApiKey | None: ...

    def list_keys(self) -> list[ApiKey]: ...

    def revoke_key(self, key_id: str) -> ApiKey: ...

    def put_scenario(
        self, owner: str, name: str, scenario: dict[str, Any], expected: int | None = None
    ) -> SavedScenario:
        """Save or replace (version + 1) the owner's scenario `name`. `expected` makes it
        conditional: 0 creates only, N replaces only version N; ScenarioChanged otherwise."""

    def get_scenario(self, owner: str, name: str) -> SavedScenario:
        """ScenarioNotFound unless the owner saved one of that name."""

    def list_scenarios(self, owner: str) -> list[SavedScenario]:
        """By name, without their content."""

    def delete_scenario(self, owner: str, name: str) -> None:
        """ScenarioNotFound unless the owner saved one of that name."""
