"""Support code shared by the test folders: free ports, polling, the environment of a subprocess,
and a real `patientgen serve` in its own process group (started, awaited, stopped)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx

#: The CLI run by the interpreter of the tests (no dependency on the installed script).
CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 30, step: float = 0.05) -> T:
    """Poll `predicate` until it returns something truthy (returned); fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(step)


def clean_env(values: dict[str, str]) -> dict[str, str]:
    """The environment of the tests without any PATIENTGEN_* from the outside, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(values)
    return env


def service_env(data_dir: Path, database_url: str, **values: str) -> dict[str, str]:
    """`clean_env` for a service on `data_dir` and `database_url`, unbuffered, plus `values`."""
    return clean_env(
        {
            "PATIENTGEN_DATA_DIR": str(data_dir),
            "PATIENTGEN_DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
            **values,
        }
    )


def serve_args(port: int, workers: int, auth: str) -> list[str]:
    """The arguments of `patientgen serve` on `port` with `workers` and `auth`, logging warnings."""
    return [
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--auth",
        auth,
        "--log-level",
        "warning",
    ]


def stop_group(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    *,
    timeout: float = 20,
    wait_group: bool = False,
) -> None:
    """Send `sig` to the process group of `proc`, SIGKILL it if `proc` outlives `timeout`; with
    `wait_group`, then give the group's other processes up to 10 s to exit."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    if wait_group:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(proc.pid):
            time.sleep(0.05)


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (the state first, utime and
    stime at 11 and 12); None when the process is gone. The name may hold spaces and
    parentheses: the fields start after its last ')'."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_alive(pgid: int) -> bool:
    """Whether a process of the process group `pgid` still runs. A zombie does not count: it has
    exited, and only waits for its parent to collect it. The group's orphans (serve's
    multiprocessing resource tracker, for one) are collected by PID 1, which here does so only
    every 2 s or so; `os.killpg(pgid, 0)` succeeds until then."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():  # no /proc: zombies count as alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.glob("[0-9]*"):
        fields = proc_stat(entry.name)
        if fields is None:  # gone meanwhile
            continue
        state, pgrp = fields[0], fields[2]
        if int(pgrp) == pgid and state not in ("Z", "X"):
            return True
    return False


class ServeProcess:
    """A running `patientgen serve`, mixed into each folder's `Service` dataclass (which has the
    fields `env`, `data_dir`, `log`, `port` and `proc` and says how serve starts: `serve_argv`).
    Output is appended to `log`; serve runs in its own process group, so stopping the group
    stops its embedded workers too."""

    env: dict[str, str]
    data_dir: Path
    log: Path
    port: int
    proc: subprocess.Popen[bytes] | None

    #: Seconds `start` waits for /healthz to answer 200.
    start_timeout: float = 30
    #: Seconds `cli` lets a command run.
    cli_timeout: float = 60

    def serve_argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        """Where serve listens (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    @property
    def health_url(self) -> str:
        return self.url + "/healthz"

    def start(self) -> None:
        """Start serve and wait until /healthz answers 200 (RuntimeError if it exits or not)."""
        assert self.proc is None
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.serve_argv(),
            env=self.env,
            cwd=self.data_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.health_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"serve did not start: {self.log.read_text()[-3000:]}")

    def stop_serve(self, sig: int = signal.SIGTERM, *, wait_group: bool = False) -> None:
        """Stop the process group (see `stop_group`) and forget the process."""
        if self.proc is None:
            return
        stop_group(self.proc, sig, wait_group=wait_group)
        self.proc = None

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`patientgen ARGS` with the service's environment, in its data folder."""
        return subprocess.run(
            [*CLI, *args],
            env=self.env,
            cwd=self.data_dir,
            capture_output=True,
            text=True,
            timeout=self.cli_timeout,
        )


@contextlib.contextmanager
def running(svc: Any) -> Iterator[Any]:
    """`svc` for the duration of the block; stopped afterwards, whatever happens."""
    try:
        yield svc
    finally:
        svc.stop()


def key_from(result: subprocess.CompletedProcess[str]) -> str:
    """The key printed by a successful `patientgen keys create` (its last line)."""
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def delivery_settings(folder: Path, **values: Any) -> Any:
    """Settings of the delivery tests: SQLite in `folder`, short leases, quick retries."""
    from patientgen.settings import Settings

    defaults: dict[str, Any] = {"lease_seconds": 2, "poll_interval": 0.1,
                                "delivery_retries": 2, "delivery_backoff": 0.05}  # fmt: skip
    return Settings(
        data_dir=folder,
        database_url=f"sqlite:///{folder / 'patientgen.db'}",
        **{**defaults, **values},
    )
