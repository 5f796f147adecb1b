"""JobService: the only API of the job layer (for api/ and cli/).

It opens the store named by `settings.database_url` (SQLite file or PostgreSQL), applies the
migrations, and offers submit / get / list / cancel / retry / delete / counts, waiting for updates,
the folders of jobs, and API keys. Owners: a job belongs to the key that made it; `owner=None`
means an admin who sees everything, and someone else's job looks exactly like a missing one.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import hashlib
import secrets
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from patientgen.jobs._codec import utcnow
from patientgen.jobs.model import (
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
    StoreUnavailable,
)
from patientgen.jobs.store import JobStore
from patientgen.scenario import Scenario
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
    "StoreUnavailable",
    "open_store",
]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


def open_store(settings: Settings, *, max_connections: int = 10, migrate: bool = True) -> JobStore:
    """Open the store `settings.database_url` names, upgrading its schema to head first."""
    url = settings.database_url
    store: JobStore
    if url.startswith("sqlite:///"):
        from patientgen.jobs.sqlite_store import SqliteStore

        store = SqliteStore(url, poll_interval=settings.poll_interval)
    elif url.startswith(("postgresql://", "postgres://")):
        from patientgen.jobs.postgres_store import PostgresStore

        store = PostgresStore(
            url,
            max_connections=max_connections,
            timeout=settings.db_timeout,
            poll_interval=settings.poll_interval,
        )
    else:
        raise ValueError(
            f"unsupported database URL {url!r} (use sqlite:///path or postgresql://...)"
        )
    if migrate:
        try:
            ensure_schema(store)
        except BaseException:
            store.close()
            raise
    return store


def ensure_schema(store: JobStore) -> None:
    """Upgrade to head unless the database is there already (cheap check first)."""
    from patientgen.jobs import migrations

    if store.schema_version() == migrations.HEAD:
        return
    try:
        migrations.upgrade(store.url)
    except Exception as exc:  # sqlalchemy/alembic wrap connection errors in their own types
        if _is_connection_error(exc):
            raise StoreUnavailable(f"cannot migrate {_safe_url(store.url)}: {exc}") from exc
        raise


def _is_connection_error(exc: BaseException) -> bool:
    import sqlite3

    import psycopg

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.OperationalError | sqlite3.OperationalError):
            return True
        seen = seen.__cause__ or seen.__context__
    return type(exc).__name__ == "OperationalError"


def _safe_url(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url


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

    @classmethod
    def open(cls, settings: Settings | None = None, *, max_connections: int = 10) -> JobService:
        settings = settings or get_settings()
        return cls(settings, open_store(settings, max_connections=max_connections))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> JobService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health ----------------------------------------------------------------------------------
    def ready(self) -> dict[str, Any]:
        """Raise StoreUnavailable unless the database answers; report the schema revision."""
        from patientgen.jobs import migrations

        self.store.ping()
        revision = self.store.schema_version()
        return {"database": "ok", "revision": revision, "at_head": revision == migrations.HEAD}

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
    ) -> tuple[Job, bool]:
        """Enqueue a job. Returns (job, created); the same owner and idempotency key with the
        same request give back the existing job, with another request IdempotencyConflict.
        ValueError for bad formats; pydantic ValidationError for a bad scenario dict."""
        from patientgen.formats import FORMATS
        from patientgen.formats.bundle import normalize_formats

        if not isinstance(scenario, Scenario):
            scenario = Scenario.model_validate(scenario)
        chosen = list(normalize_formats(list(formats) if formats is not None else FORMATS))
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
            config["output_dir"] = str(Path(output_dir).resolve())
        new = NewJob(
            job_id=uuid4(),
            owner=owner,
            config=config,
            max_attempts=self.settings.max_attempts,
            idempotency_key=idempotency_key,
            priority=priority,
        )
        job, created = self.store.create(new)
        if not created and (
            job.config["scenario"] != config["scenario"]
            or job.config["formats"] != chosen
            or job.priority != priority
        ):
            raise IdempotencyConflict(idempotency_key or "", job.job_id)
        return job, created

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
        """Remove the job and its files; InvalidTransition while it runs."""
        job = self.get(job_id, owner)
        self.store.delete(job.job_id)
        shutil.rmtree(self.job_dir(job.job_id), ignore_errors=True)

    def counts(self) -> dict[str, int]:
        return self.store.counts()

    def active_count(self, owner: str) -> int:
        return self.store.active_count(owner)

    def chunks(self, job_id: UUID | str) -> builtins.list[ChunkRecord]:
        return self.store.chunks(_uuid(job_id))

    def wait_for_update(
        self, job_id: UUID | str, since: datetime | None, timeout: float
    ) -> Job | None:
        """The job as soon as its updated_at is newer than `since` (at once when since is None);
        None after `timeout` seconds without a change. JobNotFound when it does not exist."""
        return self.store.wait_for_update(_uuid(job_id), since, timeout)

    def job_dir(self, job_id: UUID | str) -> Path:
        return job_dir(self.settings, _uuid(job_id))

    def output_dir(self, job: Job) -> Path:
        """Where a job's final files are (its folder, or the folder `generate --out` chose)."""
        return output_dir(self.settings, job)

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


def job_dir(settings: Settings, job_id: UUID) -> Path:
    return Path(settings.data_dir) / "jobs" / str(job_id)


def output_dir(settings: Settings, job: Job) -> Path:
    chosen = job.config.get("output_dir")
    return Path(chosen) if chosen else job_dir(settings, job.job_id)


def _uuid(job_id: UUID | str) -> UUID:
    if isinstance(job_id, UUID):
        return job_id
    try:
        return UUID(str(job_id))
    except ValueError:
        raise JobNotFound(job_id) from None
