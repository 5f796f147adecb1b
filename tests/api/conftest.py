"""Fixtures of the API tests: the real `patientgen serve` in a subprocess on a free port, against a
real SQLite file or a real PostgreSQL database (the suite's PostgreSQL fixture), with API keys."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import CLI, ServeProcess, free_port, key_from, running, serve_args, service_env

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Service(ServeProcess):
    """A running `patientgen serve` and what the tests need to talk to it."""

    env: dict[str, str]
    data_dir: Path
    database_url: str
    port: int
    workers: int
    auth: str
    log: Path
    keys: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def client(self, key: str | None = "alice", **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30, **kwargs)

    def serve_argv(self) -> list[str]:
        return [*CLI, *serve_args(self.port, self.workers, self.auth)]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (serve and its embedded workers); unless killed, give
        the group's worker processes a moment to exit after their parent."""
        self.stop_serve(sig, wait_group=sig != signal.SIGKILL)

    def kill(self) -> None:
        """kill -9 of serve and everything it started (as a crash of the machine would)."""
        self.stop(signal.SIGKILL)


def make_service(
    tmp: Path,
    database_url: str | None,
    *,
    workers: int = 1,
    auth: str = "required",
    extra_env: dict[str, str] | None = None,
) -> Service:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    url = database_url or f"sqlite:///{data_dir / 'patientgen.db'}"
    values = {
        "PATIENTGEN_LEASE_SECONDS": "3",
        "PATIENTGEN_POLL_INTERVAL": "0.1",
        "PATIENTGEN_CHUNK_SIZE": "1000",
        **(extra_env or {}),
    }
    env = service_env(data_dir, url, **values)
    return Service(
        env=env,
        data_dir=data_dir,
        database_url=url,
        port=free_port(),
        workers=workers,
        auth=auth,
        log=tmp / "serve.log",
    )


def add_keys(service: Service) -> None:
    """alice and bob (ordinary), root (admin), capped (limits); alice's key made by the CLI."""
    service.keys["alice"] = key_from(service.cli("keys", "create", "alice"))

    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    settings = Settings(data_dir=service.data_dir, database_url=service.database_url)
    store = JobService.open(settings)
    try:
        service.keys["bob"] = store.create_key("bob", False, None, None)[1]
        service.keys["root"] = store.create_key("root", True, None, None)[1]
        service.keys["capped"] = store.create_key("capped", False, 100, 1)[1]
    finally:
        store.close()


def wait_running(client: httpx.Client, job_id: str, at_least: int = 1) -> dict:
    """The job once it runs with progress >= `at_least`; it must stay pending or running on the
    way, and get there within 30 s."""
    deadline = time.monotonic() + 30
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] == "running" and job["progress"] >= at_least:
            return job
        assert job["status"] in ("pending", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def finished(client: httpx.Client, job_id: str, timeout: float = 120) -> dict:
    """The job once it has ended (completed, failed or cancelled), within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("pending", "running"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the suite's PostgreSQL server (tests/conftest.py owns it)."""
    return request.getfixturevalue("pg_database_factory")()


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def per_store(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    **options: Any,
) -> Iterator[Service]:
    """A started service with keys on the store `request.param` names (a STORES fixture)."""
    tmp = tmp_path_factory.mktemp(f"{label}-{request.param}")
    url = postgres_url(request) if request.param == "postgres" else None
    yield from started_with_keys(make_service(tmp, url, **options))


def started_with_keys(svc: Service) -> Iterator[Service]:
    """Start `svc` (which applies the migrations), make its keys, yield it, stop it."""
    with running(svc):
        svc.start()
        add_keys(svc)
        yield svc


@pytest.fixture(scope="module", params=STORES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One running service per store for a whole test module, with keys."""
    yield from per_store(request, tmp_path_factory, "api", workers=1)


@pytest.fixture(scope="module")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with one embedded worker on SQLite only (where the store does not matter)."""
    yield from started_with_keys(make_service(tmp_path_factory.mktemp("api-sqlite"), None))


def api_only_with(
    tmp_path_factory: pytest.TempPathFactory, label: str, auth: str = "required", **env: str
) -> Iterator[Service]:
    """An API-only service (no embedded worker: jobs stay pending) on SQLite, with keys, and the
    settings `env` gives (PATIENTGEN_<NAME> for each name=value)."""
    extra = {f"PATIENTGEN_{name.upper()}": value for name, value in env.items()}
    svc = make_service(tmp_path_factory.mktemp(label), None, workers=0, auth=auth, extra_env=extra)
    yield from started_with_keys(svc)


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API-only service (no embedded worker: jobs stay pending) on SQLite."""
    yield from api_only_with(tmp_path_factory, "api-only")
