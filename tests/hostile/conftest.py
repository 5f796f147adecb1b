"""Fixtures of the hostile-input and load tests: a real `patientgen serve` in a subprocess.

The service runs on a free loopback port with a temporary data folder, keys required even on
loopback (`--auth required`), and API keys made through the CLI as a user would make them. Every
test in this folder is marked `hostile` (run them alone with `pytest -m hostile`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import (
    ServeProcess,
    T,
    free_port,
    key_from,
    running,
    serve_args,
    service_env,
    wait_until,
)

#: Patients one job of the fuzzing key may ask for: generated jobs stay tiny.
MAX_PATIENTS = 20
#: Pending or running jobs the fuzzing key may have at once (so 429 is exercised too).
MAX_ACTIVE_JOBS = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hostile)


@dataclass
class Service(ServeProcess):
    """A running `patientgen serve` (its process group) and the keys made for it."""

    env: dict[str, str]
    data_dir: Path
    log: Path
    port: int = field(default_factory=free_port)
    workers: int = 1
    keys: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    #: Python run before the CLI in the serve process (e.g. to shorten a constant for a test).
    prelude: str = ""

    #: Here serve gets 60 s to answer, a CLI command 120 s.
    start_timeout = 60
    cli_timeout = 120

    def headers(self, key: str = "fuzz") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def client(self, key: str = "fuzz", **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.headers(key), timeout=30, **kwargs)

    def create_key(self, name: str, *options: str) -> str:
        self.keys[name] = key_from(self.cli("keys", "create", name, *options))
        return self.keys[name]

    def serve_argv(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            self.prelude + "\nfrom patientgen.cli import main; main()",
            *serve_args(self.port, self.workers, "required"),
        ]

    def stop(self) -> None:
        """SIGTERM to the process group (serve and its workers), SIGKILL if it lingers."""
        self.stop_serve()

    def server_errors(self) -> list[str]:
        """Lines of the service's log that report an unexpected error."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or "unexpected error" in line or "Exception in ASGI" in line
        ]


def make_service(
    tmp: Path, database_url: str | None = None, *, workers: int = 1, **extra: str
) -> Service:
    data_dir = tmp / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    env = service_env(
        data_dir,
        database_url or f"sqlite:///{data_dir / 'patientgen.db'}",
        PATIENTGEN_LEASE_SECONDS="5",
        PATIENTGEN_POLL_INTERVAL="0.1",
        PATIENTGEN_CHUNK_SIZE="1000",
        **extra,
    )
    return Service(env=env, data_dir=data_dir, log=tmp / "serve.log", workers=workers)


@pytest.fixture(scope="session")
def hostile_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """SQLite, one embedded worker, keys required; `fuzz` is a key with small limits, `other`
    an ordinary key, `admin` an admin key (all made by `patientgen keys create`)."""
    svc = make_service(tmp_path_factory.mktemp("hostile"))
    svc.create_key(
        "fuzz", "--max-patients", str(MAX_PATIENTS), "--max-active-jobs", str(MAX_ACTIVE_JOBS)
    )
    svc.create_key("other")
    svc.create_key("admin", "--admin")
    with running(svc):
        svc.start()
        yield svc


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, step: float = 0.1) -> T:
    """`wait_until` with the patience of this folder (60 s, polled every 0.1 s)."""
    return wait_until(predicate, timeout, step)
