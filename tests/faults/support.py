"""Helpers of the fault tests: real `patientgen serve` and `patientgen worker` subprocesses that
the tests kill, an HTTP client that rides out outages, reference outputs, orphan checks and an
audit of every status change a job went through (a trigger the test adds to the jobs table)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support import service_env, wait_until

PATIENTGEN = str(Path(sys.executable).with_name("patientgen"))


def make_env(data_dir: Path, database_url: str, **extra: Any) -> dict[str, str]:
    """The environment of every process of one test (PATIENTGEN_* from the outside dropped)."""
    values = {"PATIENTGEN_POLL_INTERVAL": "0.1", "NO_COLOR": "1"}
    values.update({f"PATIENTGEN_{k.upper()}": str(v) for k, v in extra.items()})
    return service_env(data_dir, database_url, **values)


class Proc:
    """A `patientgen ...` subprocess in its own process group, its output appended to a log."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> Proc:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [PATIENTGEN, *self.args],
                env=self.env,
                cwd=self.env["PATIENTGEN_DATA_DIR"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """kill -9 of the process and everything it started (its process group)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.kills += 1

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM (graceful); kill -9 after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            return None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def serve(env: dict[str, str], port: int, log: Path, workers: int = 0) -> Proc:
    args = ["serve", "--port", str(port), "--workers", str(workers), "--auth", "off"]
    return Proc("api", [*args, "--log-level", "warning"], env, log)


def worker(env: dict[str, str], log: Path, name: str = "worker") -> Proc:
    return Proc(name, ["worker", "--log-level", "warning"], env, log)


def wait_healthy(port: int, proc: Proc | None = None, timeout: float = 30) -> None:
    url = f"http://127.0.0.1:{port}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc is not None and proc.proc.poll() is not None:
            raise AssertionError(f"{proc.name} exited: {proc.text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no answer on {url} within {timeout} s")


def call(
    client: httpx.Client,
    method: str,
    path: str,
    *,
    deadline: float = 60,
    **kwargs: Any,
) -> httpx.Response:
    """A request retried while the API is down (connection errors) or answers 503; any other
    answer is returned. Raises after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        try:
            response = client.request(method, path, **kwargs)
            if response.status_code != 503:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > end:
            raise AssertionError(f"{method} {path}: no answer within {deadline} s")
        time.sleep(0.1)


# -- outputs -------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class References:
    """sha256 of every output file of a clean, uninterrupted in-process run, computed once per
    distinct (scenario, formats)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._cache: dict[str, dict[str, str]] = {}
        self._internal: set[str] = set()

    def get(self, scenario: dict[str, Any], formats: list[str]) -> dict[str, str]:
        from patientgen.formats import bundle
        from patientgen.formats.bundle import write_all
        from patientgen.scenario import Scenario

        key = json.dumps([scenario, sorted(formats)], sort_keys=True)
        if key not in self._cache:
            out = self.folder / f"ref-{len(self._cache)}"
            files = write_all(Scenario.model_validate(scenario), formats, out)
            self._cache[key] = {f.name: f.sha256 for f in files}
            self._internal |= {f.name for f in files} - {f.name for f in bundle.outputs(files)}
        return self._cache[key]

    def outputs(self, scenario: dict[str, Any], formats: list[str]) -> dict[str, str]:
        """get() without the internal indexes: what a job lists as its output files."""
        every = self.get(scenario, formats)
        return {name: sha for name, sha in every.items() if name not in self._internal}


def assert_output_identical(job: dict[str, Any], data_dir: Path, refs: References) -> None:
    """The job's recorded output files and the files on disk are byte-identical to a clean run."""
    expected = refs.get(job["config"]["scenario"], job["config"]["formats"])
    recorded = {f["name"]: f["sha256"] for f in job["output_files"]}
    listed = refs.outputs(job["config"]["scenario"], job["config"]["formats"])
    assert recorded == listed, job["job_id"]
    folder = data_dir / "jobs" / job["job_id"]
    on_disk = {
        p.relative_to(folder).as_posix(): sha256_of(p) for p in folder.rglob("*") if p.is_file()
    }
    assert on_disk == expected, job["job_id"]


#: How long the trash may hold a folder after the commit that moved it there: the process that
#: committed empties it right after (JobFiles.purge), so a test that saw the commit through the
#: API can look before the purge has run.
PURGE_WAIT = 10.0


def assert_no_orphans(data_dir: Path, job_ids: set[str]) -> None:
    """No folder of an unknown job, no parts folder, no temporary file under data_dir/jobs, and
    nothing left in the trash of removed folders once the last commit's purge had its moment."""
    jobs_dir = data_dir / "jobs"
    trash = jobs_dir / ".trash"
    with contextlib.suppress(AssertionError):  # still full: the assertion below says with what
        wait_until(lambda: not (trash.is_dir() and any(trash.iterdir())), timeout=PURGE_WAIT)
    folders = {p.name for p in jobs_dir.iterdir()} if jobs_dir.exists() else set()
    if ".trash" in folders:
        assert not list(trash.iterdir()), f"left in the trash: {list(trash.iterdir())[:5]}"
        folders.discard(".trash")
    assert folders <= job_ids, f"folders of unknown jobs: {sorted(folders - job_ids)[:5]}"
    leftovers = [
        p.relative_to(data_dir).as_posix()
        for p in jobs_dir.rglob("*")
        if p.name == ".parts" or ".tmp-" in p.name
    ]
    assert not leftovers, f"orphan files: {leftovers[:10]}"


# -- an audit of status changes (test-only instrumentation of the jobs table) --------------------

_SQLITE_AUDIT = [
    "CREATE TABLE IF NOT EXISTS fault_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " job_id TEXT, old TEXT, new TEXT, owner TEXT)",
    "CREATE TRIGGER IF NOT EXISTS fault_audit_t AFTER UPDATE OF status ON jobs"
    " WHEN old.status <> new.status BEGIN"
    " INSERT INTO fault_audit (job_id, old, new, owner)"
    " VALUES (new.job_id, old.status, new.status, old.lease_owner); END",
]
_PG_AUDIT = [
    "CREATE TABLE IF NOT EXISTS fault_audit (seq bigserial PRIMARY KEY,"
    " job_id uuid, old text, new text, owner text)",
    "CREATE OR REPLACE FUNCTION fault_audit_f() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN INSERT INTO fault_audit (job_id, old, new, owner)"
    " VALUES (NEW.job_id, OLD.status, NEW.status, OLD.lease_owner); RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER fault_audit_t AFTER UPDATE OF status ON jobs FOR EACH ROW"
    " WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION fault_audit_f()",
]


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def install_audit(database_url: str) -> None:
    """Record every status change of every job in `fault_audit` (the schema must exist)."""
    if database_url.startswith("sqlite:"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(_sqlite_path(database_url))) as conn:
            for sql in _SQLITE_AUDIT:
                conn.execute(sql)
            conn.commit()
    else:
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            for sql in _PG_AUDIT:
                conn.execute(sql)


def query(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    if database_url.startswith("sqlite:"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(_sqlite_path(database_url))) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def transitions(database_url: str) -> dict[str, list[tuple[str, str]]]:
    """job_id -> [(old, new), ...] in the order they happened."""
    rows = query(database_url, "SELECT job_id, old, new FROM fault_audit ORDER BY seq")
    out: dict[str, list[tuple[str, str]]] = {}
    for job_id, old, new in rows:
        out.setdefault(str(job_id), []).append((old, new))
    return out


def migrate(data_dir: Path, database_url: str) -> None:
    """Create the schema (as the service would at start-up)."""
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    JobService.open(Settings(data_dir=data_dir, database_url=database_url)).close()
