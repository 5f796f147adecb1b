"""Fixtures of the hostile-input and load tests: a real `patientgen serve` in a subprocess.

The service runs on a free loopback port with a temporary data folder, keys required even on
loopback (`--auth required`), and API keys made through the CLI as a user would make them. Every
test in this folder is marked `hostile` (run them alone with `pytest -m hostile`).
"""

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

CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]
#: Patients one job of the fuzzing key may ask for: generated jobs stay tiny.
MAX_PATIENTS = 20
#: Pending or running jobs the fuzzing key may have at once (so 429 is exercised too).
MAX_ACTIVE_JOBS = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.hostile)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
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

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    def headers(self, key: str = "fuzz") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[key]}"}

    def client(self, key: str = "fuzz", **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.api, headers=self.headers(key), timeout=30, **kwargs)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def create_key(self, name: str, *options: str) -> str:
        made = self.cli("keys", "create", name, *options)
        assert made.returncode == 0, made.stderr
        self.keys[name] = made.stdout.strip().splitlines()[-1]
        return self.keys[name]

    def start(self) -> None:
        assert self.proc is None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                self.prelude + "\nfrom patientgen.cli import main; main()",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--auth",
                "required",
                "--log-level",
                "warning",
            ],
            env=self.env,
            cwd=self.data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
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

    def stop(self) -> None:
        """SIGTERM to the process group (serve and its workers), SIGKILL if it lingers."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        {
            "PATIENTGEN_DATA_DIR": str(data_dir),
            "PATIENTGEN_DATABASE_URL": database_url or f"sqlite:///{data_dir / 'patientgen.db'}",
            "PATIENTGEN_LEASE_SECONDS": "5",
            "PATIENTGEN_POLL_INTERVAL": "0.1",
            "PATIENTGEN_CHUNK_SIZE": "1000",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
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
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


def wait_for(predicate, timeout: float = 60.0, step: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll until `predicate()` is truthy (returned); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)
