"""Every knob of the service, from `PATIENTGEN_*` environment variables or CLI flags.

`get_settings(**overrides)` reads the environment and applies the overrides a command line gave
(`None` values are ignored, so an unset flag keeps the environment's value).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ByteSize, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The default of `Settings.db_idle_in_transaction_timeout`, in seconds.
IDLE_IN_TRANSACTION_TIMEOUT = 10.0


class Settings(BaseSettings):
    """Configuration of one process (API, worker or CLI)."""

    model_config = SettingsConfigDict(env_prefix="PATIENTGEN_", extra="ignore")

    #: Where job folders (and the default SQLite file) live.
    data_dir: Path = Path("./patientgen-data")
    #: `sqlite:///path/to/file.db` or `postgresql://user@host:port/db`. Default: SQLite in data_dir.
    database_url: str = ""
    #: Where jobs' files are shared: empty keeps them in data_dir; `s3://bucket/prefix` keeps
    #: them in S3-compatible object storage that every host reads (data_dir is then each
    #: worker's working folder and each host's read cache; jobs/files.py).
    storage_url: str = ""
    #: The S3 server's URL (empty: the AWS endpoint of storage_region), its region and keys
    #: (empty: boto3's usual sources, such as AWS_ACCESS_KEY_ID or an instance role).
    storage_endpoint: str = ""
    storage_region: str = ""
    storage_access_key: str = ""
    storage_secret_key: SecretStr | None = None
    #: With object storage, how long a host keeps its copy of a completed job's files (the
    #: owner's, or one fetched to be read) after it last wrote or read it: the bucket holds them,
    #: and the sweep removes copies unread for this long.
    storage_cache_seconds: Annotated[float, Field(ge=0, le=365 * 86400)] = 3600.0
    #: With object storage, the most a host's copies of completed jobs' files may take on its
    #: disk (bytes, or a size such as `50GiB`; 0: no bound but storage_cache_seconds): over it,
    #: the sweep removes the least recently read copies not being read until they fit. The
    #: default holds one million-patient FHIR job (about 18 GB) with room to spare; a running
    #: job's working folder is not a copy and is not counted.
    storage_cache_bytes: Annotated[ByteSize, Field(ge=0)] = ByteSize(20 * 2**30)
    #: Seconds between two sweeps of what crashed processes left, and of idle copies (by every
    #: worker, and by the API with object storage; jobs/files.py `sweep`).
    sweep_interval: Annotated[float, Field(gt=0, le=86400)] = 60.0
    #: With object storage, seconds between two listings of every object of the bucket, by one
    #: process of the deployment, for leftovers no write recorded (a part that a helper stalled
    #: past its job's end sent late). Each sweep reads the recorded removals instead.
    storage_listing_interval: Annotated[float, Field(gt=0, le=30 * 86400)] = 86400.0
    #: With object storage, a download is redirected (307) to a URL presigned for this many
    #: seconds instead of streamed through the API; 0 streams it.
    storage_presign_seconds: Annotated[int, Field(ge=0, le=7 * 86400)] = 0
    #: A running job's lease; a worker that stops heartbeating loses its job after this long.
    lease_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    #: Claims of one job before it is failed for good (explicit retry resets the count).
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    #: Patients per chunk (the unit of checkpointing). Recorded in each job at submit.
    chunk_size: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    #: How often idle pollers look for work on SQLite, and the fallback poll on PostgreSQL.
    poll_interval: Annotated[float, Field(gt=0, le=60)] = 0.5
    #: Seconds to wait for a database connection before reporting the store unavailable.
    db_timeout: Annotated[float, Field(gt=0, le=120)] = 5.0
    #: PostgreSQL: the server ends a session of ours that stays this long idle inside a
    #: transaction (`idle_in_transaction_session_timeout`, on every connection we open), so a
    #: process stopped there (SIGSTOP, a frozen VM) cannot keep a job's row lock, and the job,
    #: from everyone. Our transactions are a few statements with nothing slow between them; keep
    #: it a few times shorter than the lease. 0: no bound. SQLite has nothing like it.
    db_idle_in_transaction_timeout: Annotated[float, Field(ge=0, le=3600)] = (
        IDLE_IN_TRANSACTION_TIMEOUT
    )
    #: A worker with no pending job to claim helps with running jobs' chunks (one claim each).
    help_chunks: bool = True
    #: Test and fault-injection knob: sleep this long after every chunk (0 in production).
    chunk_delay: Annotated[float, Field(ge=0, le=60)] = 0.0
    auth: Literal["auto", "required", "off"] = "auto"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    #: Seconds a connection may take to send a complete request head (request line and headers),
    #: counted from the connection's opening or from the end of its previous response (so it
    #: also bounds an idle keep-alive connection). Past it the server closes the connection.
    head_timeout: Annotated[float, Field(gt=0, le=600)] = 10.0
    #: Host header values the API answers (comma list, any port; `*` allows any, `*.example.org`
    #: any subdomain). Empty: the loopback names plus `host` when it is not a wildcard address.
    #: Anything else gets 400 (defence against DNS rebinding).
    allowed_hosts: str = ""
    #: Hosts an API key that is not an admin's may push a job to (comma list; `*.example.org`
    #: any subdomain, `*` any host). Empty: only admins and the anonymous local caller may push
    #: (a push makes this server connect where the caller says).
    push_hosts: str = ""
    #: A push retries a server error or a lost connection this many times in a row, waiting
    #: delivery_backoff seconds, then twice that, and so on, before the delivery job fails.
    delivery_retries: Annotated[int, Field(ge=0, le=20)] = 5
    delivery_backoff: Annotated[float, Field(ge=0.01, le=60)] = 1.0
    #: PEM file of CA certificates a push trusts besides the system's (a test lab's own CA), for
    #: https FHIR servers and MLLP over TLS.
    delivery_ca_file: Path | None = None
    #: The key that seals secrets kept with jobs (a delivery's authorization; delivery/sealed.py):
    #: a Fernet key (`patientgen keys secret` makes one). Unset: one made once in data_dir. Every
    #: process of a deployment needs the same: on several hosts, set it on each.
    secret_key: SecretStr | None = None
    #: /metrics without an API key even where keys are required (false: it needs a valid key).
    metrics_public: bool = False
    #: Event streams (GET /jobs/{id}/events) one key (or the anonymous caller) may hold open at
    #: once in one API process; one more answers 429.
    max_streams_per_key: Annotated[int, Field(ge=1, le=100_000)] = 20
    #: ZIP downloads (GET /jobs/{id}/archive) one key may hold open at once in one API process.
    max_archives_per_key: Annotated[int, Field(ge=1, le=10_000)] = 2
    #: Patients per job the anonymous caller (no key, where keys are optional) may ask for.
    anonymous_max_patients: Annotated[int, Field(ge=1, le=1_000_000_000)] = 1_000_000

    @field_validator("storage_url")
    @classmethod
    def _an_s3_url(cls, value: str) -> str:
        if value:
            from patientgen.jobs.objects import Location

            Location.parse(value)  # StorageUrlError (a ValueError) names what is wrong
        return value

    @field_validator("secret_key")
    @classmethod
    def _a_fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        """Checked where it is read, not where it is first used (a push would fail with 500)."""
        if value is not None:
            try:
                key = base64.urlsafe_b64decode(value.get_secret_value().strip().encode())
            except ValueError:
                key = b""
            if len(key) != 32:
                raise ValueError(
                    "not a Fernet key (32 bytes in URL-safe base64): make one with "
                    "`patientgen keys secret`"
                )
        return value

    @model_validator(mode="after")
    def _default_database(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'patientgen.db'}"
        return self

    @property
    def allowed_host_names(self) -> list[str]:
        """`allowed_hosts` as a list of lower-case names; the default when it is empty."""
        given = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        if given:
            return given
        names = ["localhost", "127.0.0.1", "::1", "[::1]"]
        bound = self.host.strip().lower()
        if bound not in ("", "0.0.0.0", "::", "[::]") and bound not in names:
            names.append(bound)
        return names

    @property
    def heartbeat_interval(self) -> float:
        """Heartbeats (lease extension and progress) run at least every 2 s and thrice a lease."""
        return max(0.05, min(2.0, self.lease_seconds / 3))

    @property
    def reap_interval(self) -> float:
        return max(0.2, min(5.0, self.lease_seconds / 4))


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the non-None `overrides` (CLI flags) applied."""
    given = {key: value for key, value in overrides.items() if value is not None}
    return Settings(**given)
