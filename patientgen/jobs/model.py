"""The Job record, its statuses, THE transition table, run outcomes, API keys, domain errors.

Every status a store writes is the one `transition` returns for an action; the stores only add
the conditions that make the write safe (the source status, the lease holder, the row version):

    pending → running → completed | failed | cancelled
    pending → cancelled
    running → running              (a cancel requested: its worker stops at the next chunk)
    running → pending              (lease expired with attempts left, or released on shutdown)
    failed | cancelled → pending   (explicit retry)
    pending | completed | failed | cancelled → gone   (delete)

The reaper's decision (`reap_action`), what a user may do to a job now (`allowed_actions`) and the
active and terminal sets are defined here once; the API, client, runner and web page use them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Statuses that still hold a worker slot or a place in the queue.
ACTIVE_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
#: Statuses a job stays in until a user acts (retry or delete).
TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

_ALLOWED: dict[JobStatus, frozenset[JobStatus | None]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, None}),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.PENDING,
            JobStatus.RUNNING,
        }
    ),
    JobStatus.COMPLETED: frozenset({None}),
    JobStatus.FAILED: frozenset({JobStatus.PENDING, None}),
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING, None}),
}


class JobError(Exception):
    """Base of the job layer's domain errors."""


class TooManyActiveJobs(JobError):
    """The owner already has `limit` pending or running jobs."""

    def __init__(self, owner: str, active: int, limit: int) -> None:
        super().__init__(f"{owner} already has {active} pending or running jobs (limit {limit})")
        self.owner = owner
        self.active = active
        self.limit = limit


class JobNotFound(JobError, LookupError):
    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id} not found")
        self.job_id = job_id


class InvalidTransition(JobError):
    def __init__(self, job_id: object, current: str, action: str, reason: str = "") -> None:
        detail = reason or f"cannot {action} a {current} job"
        super().__init__(f"job {job_id}: {detail}")
        self.job_id = job_id
        self.current = current
        self.action = action


class IdempotencyConflict(JobError):
    def __init__(self, key: str, job_id: object) -> None:
        super().__init__(
            f"idempotency key {key!r} was already used for job {job_id} with a different request"
        )
        self.key = key
        self.job_id = job_id


class LeaseLost(JobError):
    """A worker wrote to a job it no longer holds (another worker took it over, or it ended)."""

    def __init__(self, job_id: object, worker_id: str) -> None:
        super().__init__(f"job {job_id}: worker {worker_id} no longer holds its lease")
        self.job_id = job_id
        self.worker_id = worker_id


class ChunkLost(JobError):
    """A worker wrote a chunk it no longer holds: its claim expired and another worker took
    it, or the job left the run the claim was taken in (it ended, was requeued or released);
    nothing was recorded."""

    def __init__(self, job_id: object, chunk: int, worker_id: str) -> None:
        super().__init__(f"job {job_id}: worker {worker_id} no longer holds chunk {chunk}")
        self.job_id = job_id
        self.chunk = chunk
        self.worker_id = worker_id


class CancelRequested(JobError):
    """A worker tried to complete a job it holds after a cancel was requested: it ends the job
    cancelled instead (a cancel that was accepted always cancels)."""

    def __init__(self, job_id: object) -> None:
        super().__init__(f"job {job_id}: a cancel was requested")
        self.job_id = job_id


class InvalidCursor(JobError, ValueError):
    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor[:40]!r}")


class StoreUnavailable(JobError):
    """The database cannot be reached (down, restarting, locked for too long)."""

    #: What the API says of it (503): the store that is away, never the driver's words.
    public_detail = "The job store is unavailable; retry shortly."


class StorageMismatch(JobError):
    """This process keeps jobs' files elsewhere than the database records for its jobs
    (`files.ensure_same_storage`): it would write files no other host finds, or read none of
    theirs. `recorded` and `ours` are storage names (`files.storage_name`)."""

    def __init__(self, recorded: str, ours: str) -> None:
        super().__init__(
            f"this database's jobs keep their files in {_storage_words(recorded)}; this process"
            f" has {_setting_words(ours)}. Set it the same on every host, or run"
            " 'patientgen db use-storage' to switch (earlier jobs' files are not moved)."
        )
        self.recorded = recorded
        self.ours = ours


def _storage_words(name: str) -> str:
    return "each host's data folder (local)" if name == "local" else name


def _setting_words(name: str) -> str:
    if name == "local":
        return "PATIENTGEN_STORAGE_URL unset (local files)"
    return f"PATIENTGEN_STORAGE_URL={name}"


class OutputReplaced(JobError, FileNotFoundError):
    """A completed job's `generate --out` folder no longer holds its files: another run wrote
    its own there (the same folder named again), or someone changed them. Nothing of the job is
    served then: another run's bytes under this job's name and ETag would be a false answer.
    A FileNotFoundError, as for files no longer stored; `public_detail` is what the API says
    (no server path)."""

    public_detail = (
        "The job's files are no longer stored: another run wrote its own into the job's output "
        "folder (generate --out), or they were changed there."
    )

    def __init__(self, job_id: UUID, folder: str) -> None:
        super().__init__(
            f"job {job_id}: its output folder {folder} no longer holds its files: another run "
            "wrote its own there, or they were changed"
        )
        self.job_id = job_id


class JobsActive(JobError):
    """A change that would split jobs between two storages, refused while `active` jobs are
    pending or running."""

    def __init__(self, active: int) -> None:
        super().__init__(
            f"cannot switch the storage: {active} job(s) pending or running would be split"
            " between two storages; wait for them to end (or cancel them) first"
        )
        self.active = active


class KeyNotFound(JobError, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")
        self.key_id = key_id


class ScenarioNotFound(JobError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"saved scenario {name!r} not found")
        self.name = name


class ScenarioChanged(JobError):
    """A conditional save did not hold: the scenario exists (create only), or it is not the
    version the caller read (it was replaced or deleted since); `current` is what is there now."""

    def __init__(self, name: str, current: SavedScenario | None) -> None:
        held = "is gone" if current is None else f"is at version {current.version}"
        super().__init__(f"saved scenario {name!r} {held}")
        self.name = name
        self.current = current


class Action(StrEnum):
    """What happens to a job; each action moves it along edges of the transition graph."""

    CLAIM = "claim"  # a worker takes a pending job
    COMPLETE = "complete"  # the worker finished it
    FAIL = "fail"  # the job raised, or its lease expired with no attempts left
    CANCEL = "cancel"  # a user: a pending job at once, a running one is asked to stop
    CANCELLED = "cancelled"  # a running job stops on a cancel (its worker, or the reaper)
    RELEASE = "release"  # the worker stops gracefully and hands the job back
    REQUEUE = "requeue"  # its lease expired and attempts remain
    RETRY = "retry"  # explicit retry by a user
    DELETE = "delete"  # a user removes the job and its files


#: THE transition table: for each action, the status it moves each allowed source to (None: the
#: job is gone).
RULES: dict[Action, dict[JobStatus, JobStatus | None]] = {
    Action.CLAIM: {JobStatus.PENDING: JobStatus.RUNNING},
    Action.COMPLETE: {JobStatus.RUNNING: JobStatus.COMPLETED},
    Action.FAIL: {JobStatus.RUNNING: JobStatus.FAILED},
    Action.CANCEL: {JobStatus.PENDING: JobStatus.CANCELLED, JobStatus.RUNNING: JobStatus.RUNNING},
    Action.CANCELLED: {JobStatus.RUNNING: JobStatus.CANCELLED},
    Action.RELEASE: {JobStatus.RUNNING: JobStatus.PENDING},
    Action.REQUEUE: {JobStatus.RUNNING: JobStatus.PENDING},
    Action.RETRY: {JobStatus.FAILED: JobStatus.PENDING, JobStatus.CANCELLED: JobStatus.PENDING},
    Action.DELETE: {
        JobStatus.PENDING: None,
        JobStatus.COMPLETED: None,
        JobStatus.FAILED: None,
        JobStatus.CANCELLED: None,
    },
}
# Every action stays on the edges of the graph in the module docstring.
assert all(t in _ALLOWED[s] for rule in RULES.values() for s, t in rule.items())

#: The actions a user may take (the rest are a worker's or the reaper's).
USER_ACTIONS = (Action.CANCEL, Action.RETRY, Action.DELETE)

_HINTS = {
    Action.RETRY: "only failed or cancelled jobs can be retried",
    Action.CANCEL: "only pending or running jobs can be cancelled",
    Action.DELETE: "cancel it first",
}


def transition(job_id: object, current: str, action: Action) -> JobStatus | None:
    """THE transition function: the status `action` moves a `current` job to (None: deleted),
    or InvalidTransition (and nothing changes) when the action is not allowed from there."""
    state = JobStatus(current)
    rule = RULES[action]
    if state not in rule:
        hint = _HINTS.get(action, "")
        reason = f"cannot {action.value} a {state.value} job" + (f" ({hint})" if hint else "")
        raise InvalidTransition(job_id, state.value, action.value, reason)
    return rule[state]


def worker_transition(job_id: object, action: Action) -> JobStatus:
    """The status a worker's (or the reaper's) `action` on its running job writes."""
    target = transition(job_id, JobStatus.RUNNING, action)
    assert target is not None
    return target


def reap_action(attempts: int, max_attempts: int, cancel_requested: bool) -> Action:
    """What the reaper does with a running job whose lease expired."""
    if cancel_requested:
        return Action.CANCELLED
    if attempts < max_attempts:
        return Action.REQUEUE
    return Action.FAIL


def allowed_actions(status: str, cancel_requested: bool = False) -> list[str]:
    """The user actions a job in `status` allows now (the job document carries them)."""
    state = JobStatus(status)
    allowed = [a.value for a in USER_ACTIONS if state in RULES[a]]
    if cancel_requested and state == JobStatus.RUNNING:
        allowed.remove(Action.CANCEL.value)  # asked already; its worker is stopping
    return allowed


class RunOutcome(StrEnum):
    """How one run of a claimed job by one worker ended."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    RELEASED = "released"  # graceful stop: handed back at a chunk boundary
    LEASE_LOST = "lease_lost"  # another worker (or the reaper) holds the job now
    UNAVAILABLE = "unavailable"  # the database went away mid-run


def lost_worker_error(attempts: int, worker: str | None) -> str:
    """The error of a job whose worker kept disappearing until no attempt was left."""
    return (
        f"worker lost: the lease of worker {worker} expired and all {attempts} attempts"
        " are used up (retry the job to run it again)"
    )


class Job(BaseModel):
    """One job as stored. Timestamps are timezone-aware UTC."""

    model_config = ConfigDict(frozen=True)

    job_id: UUID
    owner: str
    status: JobStatus
    config: dict[str, Any]
    progress: int = Field(ge=0, le=100)
    progress_details: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None = None
    updated_at: datetime
    completed_at: datetime | None = None
    error: str | None = None
    output_files: list[dict[str, Any]] = Field(default_factory=list)
    summary: dict[str, Any] | None = None
    attempts: int = 0
    max_attempts: int = 3
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    idempotency_key: str | None = None
    priority: int = 0
    #: Bumped by every change of the row: what waiters compare (never a clock).
    version: int = 0

    @property
    def allowed_actions(self) -> list[str]:
        return allowed_actions(self.status, self.cancel_requested_at is not None)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def retry_resumes(self) -> bool:
        """Whether an explicit retry goes on from where the last run stopped. A delivery's does
        (its cursor and report are kept: what the target acknowledged is not sent again); a
        generation's starts again (the run that ended left no files to go on from)."""
        return "delivery" in self.config


class NewJob(BaseModel):
    """What a store needs to insert a job."""

    model_config = ConfigDict(frozen=True)

    job_id: UUID
    owner: str
    config: dict[str, Any]
    max_attempts: int
    idempotency_key: str | None = None
    priority: int = 0


class ApiKey(BaseModel):
    """An API key's record; the secret itself is never stored, only its sha256."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    admin: bool = False
    max_patients: int | None = None
    max_active_jobs: int | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class ChunkRecord(BaseModel):
    """A finished chunk of a job: its index, partial summary and the worker that wrote it."""

    model_config = ConfigDict(frozen=True)

    chunk: int
    summary: dict[str, Any]
    worker_id: str
    finished_at: datetime


class ChunkClaim(BaseModel):
    """A chunk of a running job claimed by one worker (`chunk` None: none was free), with what
    the job's chunk phase looked like then: its attempt, chunks recorded so far and in all."""

    model_config = ConfigDict(frozen=True)

    job: Job
    chunk: int | None
    attempt: int
    recorded: int
    chunks_total: int

    @property
    def finished(self) -> bool:
        """Every chunk of the job is recorded."""
        return self.recorded >= self.chunks_total


class SavedScenario(BaseModel):
    """A named scenario kept on the server for its owner; `version` grows with each replacement
    (1: as first saved). Listings leave `scenario` out (None)."""

    model_config = ConfigDict(frozen=True)

    owner: str
    name: str
    version: int
    created_at: datetime
    updated_at: datetime
    scenario: dict[str, Any] | None = None
