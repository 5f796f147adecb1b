"""Helpers of the job tests: worker subprocesses, snapshots of the store."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(sys.executable).with_name("patientgen")


def env_for(settings: Any, **extra: Any) -> dict[str, str]:
    env = {
        **os.environ,
        "PATIENTGEN_DATABASE_URL": settings.database_url,
        "PATIENTGEN_DATA_DIR": str(settings.data_dir),
        "PATIENTGEN_LEASE_SECONDS": str(settings.lease_seconds),
        "PATIENTGEN_POLL_INTERVAL": str(settings.poll_interval),
        "PATIENTGEN_MAX_ATTEMPTS": str(settings.max_attempts),
        "PATIENTGEN_CHUNK_SIZE": str(settings.chunk_size),
        "PATIENTGEN_CHUNK_DELAY": str(settings.chunk_delay),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    env.update({f"PATIENTGEN_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class WorkerProcess:
    """`patientgen worker` in a subprocess, its log in a file."""

    def __init__(
        self,
        settings: Any,
        log: Path,
        *args: str,
        environ: dict[str, str] | None = None,
        **env: Any,
    ) -> None:
        self.log = log
        self._out = open(log, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(SCRIPT), "worker", *args],
            env={**env_for(settings, **env), **(environ or {})},
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def kill_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout)
        self._out.close()
        return code

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill_group()
            self.proc.wait(10)
        self._out.close()


def digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def snapshot(service: Any) -> list[tuple[str, str, int, int]]:
    """Everything a bad command could have changed, in a comparable form."""
    items = service.list(limit=500).items
    return [(str(j.job_id), j.status.value, j.attempts, j.priority) for j in items]
