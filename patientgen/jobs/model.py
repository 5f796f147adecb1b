"""The Job record, its statuses, THE transition rules, API keys, and the domain errors.

Every change of a job's status in either store goes through `transition` (directly, or via
`sources_of`, which the stores use to condition their UPDATEs on the allowed source statuses), so
the allowed transitions are written down exactly once:

    pending → running → completed | failed | cancelled
    pending → cancelled
    running → pending              (lease expired with attempts left, or released on shutdown)
    failed | cancelled → pending   (explicit retry)
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
ACTIVE_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
TERMINAL_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.PENDING}
    ),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.FAILED: frozenset({JobStatus.PENDING}),
    JobStatus.CANCELLED: frozenset({JobStatus.PENDING}),
}


class JobError(Exception):
    """Base of the job layer's domain errors."""


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


class InvalidCursor(JobError, ValueError):
    def __init__(self, cursor: str) -> None:
        super().__init__(f"invalid cursor {cursor[:40]!r}")


class StoreUnavailable(JobError):
    """The database cannot be reached (down, restarting, locked for too long)."""


class KeyNotFound(JobError, LookupError):
    def __init__(self, key_id: str) -> None:
        super().__init__(f"API key {key_id} not found")
        self.key_id = key_id


class Action(StrEnum):
    """What happens to a job; each action moves it along edges of the transition graph."""

    CLAIM = "claim"  # a worker takes a pending job
    COMPLETE = "complete"  # the worker finished it
    FAIL = "fail"  # the job raised, or its lease expired with no attempts left
    CANCEL = "cancel"  # pending: at once; running: by its worker at the next chunk boundary
    RELEASE = "release"  # the worker stops gracefully and hands the job back
    REQUEUE = "requeue"  # its lease expired and attempts remain
    RETRY = "retry"  # explicit retry by a user


_RULES: dict[Action, dict[JobStatus, JobStatus]] = {
    Action.CLAIM: {JobStatus.PENDING: JobStatus.RUNNING},
    Action.COMPLETE: {JobStatus.RUNNING: JobStatus.COMPLETED},
    Action.FAIL: {JobStatus.RUNNING: JobStatus.FAILED},
    Action.CANCEL: {JobStatus.PENDING: JobStatus.CANCELLED, JobStatus.RUNNING: JobStatus.CANCELLED},
    Action.RELEASE: {JobStatus.RUNNING: JobStatus.PENDING},
    Action.REQUEUE: {JobStatus.RUNNING: JobStatus.PENDING},
    Action.RETRY: {JobStatus.FAILED: JobStatus.PENDING, JobStatus.CANCELLED: JobStatus.PENDING},
}
# Every action stays on the edges of the graph in the module docstring.
assert all(t in _ALLOWED[s] for rule in _RULES.values() for s, t in rule.items())

_HINTS = {
    Action.RETRY: "only failed or cancelled jobs can be retried",
    Action.CANCEL: "only pending or running jobs can be cancelled",
}


def transition(job_id: object, current: str, action: Action) -> JobStatus:
    """THE transition function: the status `action` moves a `current` job to, or
    InvalidTransition (and nothing changes) when the action is not allowed from there."""
    state = JobStatus(current)
    target = _RULES[action].get(state)
    if target is None:
        hint = _HINTS.get(action, "")
        reason = f"cannot {action.value} a {state.value} job" + (f" ({hint})" if hint else "")
        raise InvalidTransition(job_id, state.value, action.value, reason)
    return target


def sources_of(action: Action) -> tuple[str, ...]:
    """The statuses from which `action` is allowed (the stores put these in their WHERE)."""
    return tuple(sorted(s.value for s in _RULES[action]))


def target_of(action: Action, source: JobStatus = JobStatus.RUNNING) -> JobStatus:
    return _RULES[action][source]


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

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


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
