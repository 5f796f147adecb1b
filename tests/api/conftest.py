"""Fixtures of the API tests: the real `patientgen serve` in a subprocess on a free port, against a
real SQLite file or a real PostgreSQL database (the suite's PostgreSQL fixture), with API keys."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def client(self, key: str | None = "alice", **kwargs: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[key]}"} if key else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30, **kwargs)

    def start(self) -> None:
        assert self.proc is None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--auth",
                self.auth,
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=self.data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the whole process group (serve and its embedded workers)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if sig != signal.SIGKILL:
            # give the group's worker processes a moment to exit after their parent
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        self.proc = None

    def kill(self) -> None:
        """kill -9 of serve and everything it started (as a crash of the machine would)."""
        self.stop(signal.SIGKILL)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=60,
        )


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        {
            "PATIENTGEN_DATA_DIR": str(data_dir),
            "PATIENTGEN_DATABASE_URL": url,
            "PATIENTGEN_LEASE_SECONDS": "3",
            "PATIENTGEN_POLL_INTERVAL": "0.1",
            "PATIENTGEN_CHUNK_SIZE": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
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
    result = service.cli("keys", "create", "alice")
    assert result.returncode == 0, result.stderr
    service.keys["alice"] = result.stdout.strip().splitlines()[-1]

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


def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on the suite's PostgreSQL server (tests/conftest.py owns it)."""
    return request.getfixturevalue("pg_database_factory")()


STORES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="module", params=STORES)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    """One running service per store for a whole test module, with keys."""
    tmp = tmp_path_factory.mktemp(f"api-{request.param}")
    url = postgres_url(request) if request.param == "postgres" else None
    svc = make_service(tmp, url, workers=1)
    svc.start()  # applies the migrations before the keys are made
    add_keys(svc)
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def live_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service with one embedded worker on SQLite only (where the store does not matter)."""
    svc = make_service(tmp_path_factory.mktemp("api-sqlite"), None, workers=1)
    svc.start()
    add_keys(svc)
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture(scope="module")
def api_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An API-only service (no embedded worker: jobs stay pending) on SQLite."""
    svc = make_service(tmp_path_factory.mktemp("api-only"), None, workers=0)
    svc.start()
    add_keys(svc)
    try:
        yield svc
    finally:
        svc.stop()
