"""JobService: the only API of the job layer (for api/ and cli/).

It opens the store named by `settings.database_url` (SQLite file or PostgreSQL), applies the
migrations (and, for a process that runs or serves jobs, checks that it keeps jobs' files in the
storage the database records: files.ensure_same_storage), and offers submit / get / list /
cancel / retry / delete / counts, waiting for updates, running one job in this process
(`run_here`), the folders of jobs, the recorded storage and its switch, and API keys. Owners: a job
belongs to the key that made it; `owner=None` means an admin who sees everything, and someone
else's job looks exactly like a missing one. Limits (active jobs per owner) are checked by the
store in the transaction that inserts the job.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from patientgen.jobs._codec import utcnow
from patientgen.jobs.files import STORAGE_FACT, JobFiles, job_files, use_storage
from patientgen.jobs.model import (
    ACTIVE_STATUSES,
    ApiKey,
    ChunkRecord,
    IdempotencyConflict,
    InvalidCursor,
    InvalidTransition,
    Job,
    JobError,
    JobNotFound,
    JobStatus,
    KeyNotFound,
    LeaseLost,
    NewJob,
    RunOutcome,
    SavedScenario,
    ScenarioChanged,
    ScenarioNotFound,
    StorageMismatch,
    StoreUnavailable,
    TooManyActiveJobs,
)
from patientgen.jobs.sql_store import connect
from patientgen.jobs.store import JobStore

if TYPE_CHECKING:
    from patientgen.delivery import FhirDelivery, MllpDelivery
    from patientgen.jobs.worker import WorkerPool
from patientgen.scenario import Scenario, line_problem
from patientgen.settings import Settings, get_settings

__all__ = [
    "ApiKey",
    "IdempotencyConflict",
    "InvalidCursor",
    "InvalidTransition",
    "Job",
    "JobError",
    "JobNotFound",
    "JobPage",
    "JobService",
    "JobStatus",
    "KeyNotFound",
    "LeaseLost",
    "SavedScenario",
    "ScenarioChanged",
    "ScenarioNotFound",
    "StorageMismatch",
    "StoreUnavailable",
    "TooManyActiveJobs",
]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


def encode_cursor(job: Job) -> str:
    raw = f"{job.created_at.isoformat()}|{job.job_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, job_id = raw.split("|")
        created = datetime.fromisoformat(stamp)
        if created.tzinfo is None:
            raise ValueError("naive timestamp")
        return created, UUID(job_id)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise InvalidCursor(cursor) from exc


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class JobService:
    """The job layer's API. Thread-safe; open one per process and share it."""

    def __init__(self, settings: Settings, store: JobStore) -> None:
        self.settings = settings
        self.store = store
        self.files: JobFiles = job_files(settings)

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        max_connections: int = 10,
        check_storage: bool = False,
    ) -> JobService:
        """The service on the configured store (migrated to head); StoreUnavailable while the
        database cannot be reached, ValueError for an unknown database URL. `check_storage`
        (a process that runs or serves jobs): StorageMismatch unless this process keeps jobs'
        files where the database records (files.ensure_same_storage)."""
        from patientgen.jobs.worker import connect_checked

        settings = settings or get_settings()
        if check_storage:
            return cls(settings, connect_checked(settings, max_connections))
        return cls(settings, connect(settings, max_connections=max_connections))

    @classmethod
    def open_when_ready(cls, settings: Settings, stop: threading.Event) -> JobService:
        """`open` with the storage checked, retried with a growing pause while the database
        cannot be reached or has no connection free (as workers do; the storage is checked once
        it answers); KeyboardInterrupt if `stop` is set first."""
        from patientgen.jobs.worker import connect_retrying

        store = connect_retrying(settings, stop, "service", max_connections=10)
        if store is None:
            raise KeyboardInterrupt
        return cls(settings, store)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> JobService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health ----------------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """Raise StoreUnavailable unless the database and the files' storage answer; report the
        schema revision and where the files are kept."""
        from patientgen.jobs import migrations

        self.store.ping()
        revision = self.store.schema_version()
        storage = self.files.ready()
        return {
            "database": "ok",
            "revision": revision,
            "at_head": revision == migrations.HEAD,
            "storage": storage,
        }

    @staticmethod
    def recorded_storage(settings: Settings) -> str | None:
        """Where the database records its jobs' files (files.storage_name; None: not yet), read
        without migrating it (the schema must be at head); StoreUnavailable while away."""
        store = connect(settings, max_connections=1, migrate=False)
        try:
            return store.fact(STORAGE_FACT)
        finally:
            store.close()

    def use_storage(self) -> tuple[str | None, str]:
        """Record this process's storage as the database's (files.use_storage): (before, now);
        JobsActive while a job is pending or running. No file moves."""
        return use_storage(self.store, self.settings)

    def sweep_copies(self) -> int:
        """Remove this host's copies of the shared storage's files that are no longer needed
        (files.JobFiles.sweep_copies; nothing with local storage)."""
        return self.files.sweep_copies(self.store)

    # -- jobs ------------------------------------------------------------------------------------
    def submit(
        self,
        scenario: Scenario | Mapping[str, Any],
        formats: Iterable[str] | None = None,
        owner: str = "local",
        idempotency_key: str | None = None,
        priority: int = 0,
        *,
        output_dir: Path | None = None,
        max_active_jobs: int | None = None,
    ) -> tuple[Job, bool]:
        """Enqueue a job. Returns (job, created); the same owner and idempotency key with the
        same request give back the existing job (whatever the limits), with another request
        IdempotencyConflict. TooManyActiveJobs when the owner already has `max_active_jobs`
        pending or running jobs (checked in the insert's transaction). ValueError for bad
        formats (or formats unfit for the scenario: format_problems) and for an `output_dir`
        inside the data folder; pydantic ValidationError for a bad scenario dict."""
        from patientgen.formats import DEFAULT_FORMATS
        from patientgen.formats.bundle import format_problems, normalize_formats

        if not isinstance(scenario, Scenario):
            scenario = Scenario.model_validate(scenario)
        chosen = list(normalize_formats(list(formats) if formats is not None else DEFAULT_FORMATS))
        problems = format_problems(scenario.total_patients, chosen)
        if problems:
            raise ValueError("; ".join(problems))
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise ValueError("idempotency key must be 1 to 200 characters")
        if not -1000 <= priority <= 1000:
            raise ValueError("priority must be between -1000 and 1000")
        config: dict[str, Any] = {
            "scenario": scenario.model_dump(mode="json"),
            "formats": chosen,
            "chunk_size": self.settings.chunk_size,
        }
        if output_dir is not None:
            chosen_dir = Path(output_dir).resolve()
            data = self.settings.data_dir.resolve()
            if chosen_dir == data or data in chosen_dir.parents:
                # the jobs' own folders are there: another job's files would be overwritten
                raise ValueError(
                    f"output folder {chosen_dir} is inside the data folder {data} "
                    "(PATIENTGEN_DATA_DIR), whose jobs' folders are the service's: "
                    "choose a folder outside it"
                )
            config["output_dir"] = str(chosen_dir)
        new = NewJob(
            job_id=uuid4(),
            owner=owner,
            config=config,
            max_attempts=self.settings.max_attempts,
            idempotency_key=idempotency_key,
            priority=priority,
        )
        job, created = self.store.create(new, max_active=max_active_jobs)
        if not created and (
            job.config["scenario"] != config["scenario"]
            or job.config["formats"] != chosen
            or job.priority != priority
        ):
            raise IdempotencyConflict(idempotency_key or "", job.job_id)
        return job, created

    def push(
        self,
        source_id: UUID | str,
        delivery: Mapping[str, Any] | FhirDelivery | MllpDelivery,
        owner: str | None = None,
        *,
        new_owner: str = "local",
        idempotency_key: str | None = None,
        max_active_jobs: int | None = None,
    ) -> tuple[Job, bool]:
        """Enqueue a delivery job (jobs/delivery.py): the casualties of the completed job
        `source_id` (JobNotFound unless `owner` may see it) to a FHIR server or MLLP listener.
        InvalidTransition unless the source is a completed generation job; pydantic
        ValidationError for a bad target; ValueError for a replay (`pace`) of a job above
        timeline.MAX_PATIENTS casualties. Idempotency and limits as for `submit`."""
        from pydantic import BaseModel

        from patientgen.delivery import DELIVERY
        from patientgen.delivery.sealed import seal_delivery

        source = self.get(source_id, owner)
        if "delivery" in source.config:
            raise InvalidTransition(
                source.job_id, source.status.value, "push", "a delivery has no casualties to push"
            )
        if source.status != JobStatus.COMPLETED:
            raise InvalidTransition(
                source.job_id,
                source.status.value,
                "push",
                f"the job is {source.status.value}; only a completed job's casualties are pushed",
            )
        target = DELIVERY.validate_python(
            delivery.model_dump() if isinstance(delivery, BaseModel) else delivery
        )
        if target.pace is not None:
            from patientgen.jobs.timeline import MAX_PATIENTS

            count = int(source.config["scenario"]["total_patients"])
            if count > MAX_PATIENTS:
                raise ValueError(
                    f"a replay takes at most {MAX_PATIENTS:,} casualties; the job has {count:,}"
                )
        delivery_config = {
            **target.model_dump(mode="json", exclude_none=True),
            "source_job": str(source.job_id),
        }
        config: dict[str, Any] = {
            "scenario": source.config["scenario"],
            "formats": [],
            "delivery": seal_delivery(delivery_config, self.settings),  # credentials at rest
        }
        new = NewJob(
            job_id=uuid4(),
            owner=new_owner,
            config=config,
            max_attempts=self.settings.max_attempts,
            idempotency_key=idempotency_key,
        )
        job, created = self.store.create(new, max_active=max_active_jobs)
        if not created and self._readable(job.config) != {**config, "delivery": delivery_config}:
            raise IdempotencyConflict(idempotency_key or "", job.job_id)
        return job, created

    def _readable(self, config: dict[str, Any]) -> dict[str, Any]:
        """A delivery job's config with its secrets unsealed (what a repeat is compared with)."""
        from patientgen.delivery.sealed import SecretUnreadable, unseal_delivery

        try:
            return {**config, "delivery": unseal_delivery(config["delivery"], self.settings)}
        except SecretUnreadable:
            return config

    def get(self, job_id: UUID | str, owner: str | None = None) -> Job:
        job = self.store.get(_uuid(job_id))
        if owner is not None and job.owner != owner:
            raise JobNotFound(job_id)
        return job

    def list(
        self,
        owner: str | None = None,
        statuses: Sequence[JobStatus | str] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
        try:
            wanted = [JobStatus(s) for s in statuses] if statuses else None
        except ValueError as exc:
            raise ValueError(
                f"unknown status (choose from {', '.join(s.value for s in JobStatus)})"
            ) from exc
        after = decode_cursor(cursor) if cursor else None
        items = self.store.list_jobs(owner, wanted, limit + 1, after)
        more = len(items) > limit
        items = items[:limit]
        return JobPage(items, encode_cursor(items[-1]) if more else None)

    def cancel(self, job_id: UUID | str, owner: str | None = None) -> Job:
        job = self.get(job_id, owner)
        return self.store.request_cancel(job.job_id)

    def retry(self, job_id: UUID | str, owner: str | None = None) -> Job:
        job = self.get(job_id, owner)
        return self.store.retry(job.job_id)

    def delete(self, job_id: UUID | str, owner: str | None = None) -> None:
        """Remove the job and its files (in the delete's own transaction); InvalidTransition
        while it runs."""
        job = self.get(job_id, owner)
        self.store.delete(job.job_id, inside=self.files.detach)
        self.files.purge()

    # -- saved scenarios ---------------------------------------------------------------------
    def save_scenario(
        self,
        name: str,
        scenario: Scenario | Mapping[str, Any],
        owner: str = "local",
        *,
        expected: int | None = None,
    ) -> SavedScenario:
        """Save (or replace) a named scenario of `owner`, validated first: ValueError for a bad
        name, pydantic ValidationError for a bad scenario (nothing is saved). `expected` 0 saves
        only a new name, N replaces only version N: ScenarioChanged otherwise (nothing saved)."""
        _check_scenario_name(name)
        if not isinstance(scenario, Scenario):
            scenario = Scenario.model_validate(scenario)
        return self.store.put_scenario(owner, name, scenario.model_dump(mode="json"), expected)

    def scenario(self, name: str, owner: str = "local") -> SavedScenario:
        """ScenarioNotFound unless `owner` saved a scenario of that name."""
        return self.store.get_scenario(owner, name)

    def scenarios(self, owner: str = "local") -> builtins.list[SavedScenario]:
        """The owner's saved scenarios by name (without their content)."""
        return self.store.list_scenarios(owner)

    def delete_scenario(self, name: str, owner: str = "local") -> None:
        self.store.delete_scenario(owner, name)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def active_count(self, owner: str) -> int:
        return self.store.active_count(owner)

    def chunks(self, job_id: UUID | str) -> builtins.list[ChunkRecord]:
        return self.store.chunks(_uuid(job_id))

    def wait_for_update(self, job_id: UUID | str, since: int | None, timeout: float) -> Job | None:
        """The job as soon as its version differs from `since` (the `version` of the job last
        seen; at once when None); None after `timeout` seconds without a change. JobNotFound
        when it does not exist."""
        return self.store.wait_for_update(_uuid(job_id), since, timeout)

    def job_dir(self, job_id: UUID | str) -> Path:
        return self.files.folder(_uuid(job_id))

    def output_dir(self, job: Job) -> Path:
        """Where a job's final files are (its folder, or the folder `generate --out` chose)."""
        return self.files.output(job)

    def reading(
        self, job: Job, names: Sequence[str] | None = None
    ) -> contextlib.AbstractContextManager[Path]:
        """Where a completed job's files (`names`, default all) can be read on this host, kept
        there while the block runs (with object storage, fetched the first time;
        FileNotFoundError when they are no longer stored)."""
        return self.files.reading(job, names)

    # -- workers (the CLI's worker and serve) ----------------------------------------------------
    @staticmethod
    def run_workers(settings: Settings, concurrency: int) -> int:
        """Run `concurrency` worker slots in this process (or its children) until SIGTERM or
        SIGINT; the exit code."""
        from patientgen.jobs.worker import run_worker

        return run_worker(settings, concurrency)

    @staticmethod
    def worker_pool(settings: Settings, concurrency: int) -> WorkerPool:
        """A WorkerPool of `concurrency` processes (start() / stop()), for `serve`."""
        from patientgen.jobs.worker import WorkerPool

        return WorkerPool(settings, concurrency)

    # -- running a job in this process (the CLI's generate) --------------------------------------
    def resume(self, job_id: UUID | str) -> Job:
        """A job to go on with: one whose process died is reaped once its lease ran out, a failed
        or cancelled one is retried; a running one is left to its worker."""
        from patientgen.jobs.worker import reap

        job = self.get(job_id)
        if job.status == JobStatus.RUNNING:
            reap(self.store, self.files)
            job = self.get(job_id)
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
            job = self.retry(job_id)
        return job

    def run_here(
        self,
        job_id: UUID | str,
        stop: threading.Event,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> tuple[Job, RunOutcome | None]:
        """Run a job in this process until it ends: claim it and run it; while another worker
        (a `serve` on the same store) holds it, follow its progress, and take it over if it is
        handed back. Returns the job as it ended and this process's outcome (None when another
        worker ran it; RELEASED when `stop` was set)."""
        from patientgen.jobs.runner import run_job
        from patientgen.jobs.worker import new_worker_id, reap

        worker_id = new_worker_id()
        job = self.get(job_id)
        total = int(job.config["scenario"]["total_patients"])
        last_reap = 0.0
        while not stop.is_set():
            if job.status == JobStatus.RUNNING and (
                time.monotonic() - last_reap > self.settings.reap_interval
            ):  # its worker may have died with nobody else to notice
                last_reap = time.monotonic()
                reap(self.store, self.files)
                job = self.get(job.job_id)
            if job.status == JobStatus.PENDING:
                claimed = self.store.claim(
                    worker_id, self.settings.lease_seconds, job_id=job.job_id
                )
                if claimed:
                    outcome = run_job(
                        self.store, self.settings, worker_id, claimed[0], stop, on_progress
                    )
                    return self.get(job.job_id), outcome
            elif job.status not in ACTIVE_STATUSES:
                return job, None
            elif on_progress is not None:
                on_progress(int(job.progress_details.get("patients_done") or 0), total)
            job = self.wait_for_update(job.job_id, job.version, 1.0) or job
        return self.get(job.job_id), RunOutcome.RELEASED

    # -- API keys --------------------------------------------------------------------------------
    def create_key(
        self,
        name: str,
        admin: bool = False,
        max_patients: int | None = None,
        max_active_jobs: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its secret (shown once; only its sha256 is stored)."""
        if not name or len(name) > 100:
            raise ValueError("key name must be 1 to 100 characters")
        problem = line_problem(name)
        if problem is not None:
            raise ValueError(f"key name {problem}")
        for label, value in (("max_patients", max_patients), ("max_active_jobs", max_active_jobs)):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1")
        key = ApiKey(
            key_id="key_" + secrets.token_hex(8),
            name=name,
            admin=admin,
            max_patients=max_patients,
            max_active_jobs=max_active_jobs,
            created_at=utcnow(),
        )
        secret = "pgk_" + secrets.token_urlsafe(32)
        self.store.insert_key(key, hash_secret(secret))
        return key, secret

    def authenticate(self, secret: str) -> ApiKey | None:
        if not secret:
            return None
        key = self.store.key_by_hash(hash_secret(secret))
        return None if key is None or key.revoked_at is not None else key

    def list_keys(self) -> builtins.list[ApiKey]:
        return self.store.list_keys()

    def revoke_key(self, key_id: str) -> ApiKey:
        return self.store.revoke_key(key_id)


def _uuid(job_id: UUID | str) -> UUID:
    if isinstance(job_id, UUID):
        return job_id
    try:
        return UUID(str(job_id))
    except ValueError:
        raise JobNotFound(job_id) from None


#: A saved scenario's name: 1-100 characters, letters, digits, space, `_ . -`, not starting or
#: ending with a space.
SCENARIO_NAME = re.compile(r"[A-Za-z0-9_.-](?:[A-Za-z0-9 _.-]{0,98}[A-Za-z0-9_.-])?")


def _check_scenario_name(name: str) -> None:
    if not SCENARIO_NAME.fullmatch(name):
        raise ValueError(
            "a scenario name is 1-100 letters, digits, spaces, '_', '.' or '-' "
            "(no space at either end)"
        )
