"""A worker stopped inside a PostgreSQL transaction that holds its job's row lock (SIGSTOP: a
frozen VM, a process stalled in swap) must not keep the job from everyone while it lives.

The worker is stopped exactly there: its process group gets SIGSTOP, and the test then looks at
the server: the worker's backend (application_name `patientgen-<pid>`) is `idle in transaction`
and the job's row is locked (`FOR UPDATE NOWAIT` from the test fails); anywhere else, the worker
runs on a moment and is stopped again. A second worker is then started. The server ends the
stopped worker's session after `PATIENTGEN_DB_IDLE_IN_TRANSACTION_TIMEOUT` (left at its default
here), which frees the row: the reaper takes the job back after the lease, the second worker
completes it once, byte-identical to an uninterrupted run. Woken (SIGCONT), the stopped worker
meets the server's error (`idle-in-transaction timeout`, or the closed socket: a `StoreUnavailable`
that says the session sat idle in its transaction past the bound), writes nothing and leaves
no file.

Without the bound (before it was set) the reaper's `FOR UPDATE SKIP LOCKED` passed over the
job, and the second worker, helping with its chunks, waited on the row lock: the job was never
completed while the stopped worker lived.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from typing import Any

import pytest

from tests.faults.support import (
    assert_no_orphans,
    install_audit,
    make_env,
    migrate,
    sha256_of,
    transitions,
    worker,
)
from tests.support import wait_until

pytestmark = pytest.mark.postgres

ROUNDS = int(os.environ.get("PATIENTGEN_FAULT_ROUNDS", "2"))
SEED = 25
LEASE_SECONDS = 3.0
FORMATS = ["ndjson", "csv"]
#: The bound on a session idle in its transaction (PATIENTGEN_DB_IDLE_IN_TRANSACTION_TIMEOUT),
#: shorter than its 10 s default so the test waits less; still hundreds of times a transaction.
IDLE_BOUND = 4.0
#: How long the test waits for the job to be completed once the worker is stopped: the bound
#: plus the lease, a reaper period and the rest of the job, with room for a busy machine;
#: without a bound the job is never completed.
RECOVERY_TIMEOUT = 60


def _row_locked(conn: Any, job_id: str) -> bool:
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SELECT 1 FROM jobs WHERE job_id = %s FOR UPDATE NOWAIT", (job_id,))
    except psycopg.errors.LockNotAvailable:
        return True
    return False


def _backend(conn: Any, pid: int) -> tuple[int, str] | None:
    """The worker process's backend that is in a transaction: (backend pid, state)."""
    row = conn.execute(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = %s"
        " AND xact_start IS NOT NULL AND pid <> pg_backend_pid()",
        (f"patientgen-{pid}",),
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _settled(conn: Any, pid: int) -> tuple[int, str] | None:
    """The worker's backend once it is no longer running a statement ((0, "") outside one)."""
    found = _backend(conn, pid)
    if found is None:
        return (0, "")
    return None if found[1] == "active" else found


def _waits_on_a_lock(conn: Any, pid: int) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND wait_event_type = 'Lock'",
        (f"patientgen-{pid}",),
    ).fetchone()
    return bool(row and row[0])


def _stop_inside_a_locking_transaction(
    conn: Any, pid: int, job_id: str, rng: random.Random, seen: Counter[str]
) -> int:
    """SIGSTOP the worker's process group while its backend is idle in a transaction that holds
    the job's row lock; anywhere else it runs on a moment and is stopped again. The backend pid."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        os.killpg(pid, signal.SIGSTOP)
        time.sleep(0.005)  # a statement in flight finishes: the backend goes idle
        found = _backend(conn, pid)
        seen[found[1] if found else "no transaction"] += 1
        if found and found[1] == "active":
            # a stopped process cannot keep a statement of ours running (why no
            # statement_timeout is set): the server finishes it and the session goes idle
            found = wait_until(lambda: _settled(conn, pid), timeout=1, step=0.005)
            seen[f"active, then {found[1] if found[0] else 'no transaction'}"] += 1
        if found and found[1] == "idle in transaction" and _row_locked(conn, job_id):
            return found[0]
        os.killpg(pid, signal.SIGCONT)
        time.sleep(rng.uniform(0.0, 0.01))
    raise AssertionError(f"never caught the worker inside a locking transaction: {dict(seen)}")


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_worker_stopped_holding_the_row_lock_loses_the_job(tmp_path, request, refs, round_):
    import psycopg

    from patientgen.jobs.service import JobService
    from patientgen.scenario import Scenario
    from patientgen.settings import Settings

    rng = random.Random(SEED * 100 + round_)
    url = request.getfixturevalue("pg_database_factory")()
    data = tmp_path / "data"
    migrate(data, url)
    install_audit(url)
    # chunks of 10 patients: the worker spends much of its time in the store's transactions
    settings = Settings(data_dir=data, database_url=url, chunk_size=10, lease_seconds=3)
    env = make_env(
        data,
        url,
        lease_seconds=LEASE_SECONDS,
        max_attempts=10,
        db_idle_in_transaction_timeout=IDLE_BOUND,
    )
    first = worker(env, tmp_path / "first.log", "first")
    second = worker(env, tmp_path / "second.log", "second")
    with JobService.open(settings) as service, psycopg.connect(url, autocommit=True) as conn:
        scenario = Scenario(name="stalled in a transaction", seed=90 + round_, total_patients=3000)
        job, _ = service.submit(scenario, FORMATS)
        job_id = str(job.job_id)
        try:
            first.start()
            wait_until(lambda: service.chunks(job.job_id), timeout=60, step=0.01)
            time.sleep(rng.uniform(0.0, 0.5))  # somewhere in the job
            seen: Counter[str] = Counter()
            backend = _stop_inside_a_locking_transaction(conn, first.pid, job_id, rng, seen)
            stopped = time.monotonic()
            paused_at = service.get(job.job_id)
            assert paused_at.status.value == "running", paused_at
            print(f"stopped inside a locking transaction after {sum(seen.values())} tries {seen}")

            second.start()
            # the second worker, helping with the job's chunks, waits on the row lock
            wait_until(lambda: _waits_on_a_lock(conn, second.pid), timeout=30)
            waiting = time.monotonic()
            wait_until(lambda: not _waits_on_a_lock(conn, second.pid), timeout=RECOVERY_TIMEOUT)
            waited = time.monotonic() - waiting
            wait_until(lambda: service.get(job.job_id).attempts >= 2, timeout=RECOVERY_TIMEOUT)
            taken = time.monotonic() - stopped  # reaped and claimed again
            done = wait_until(
                lambda: (j := service.get(job.job_id)).status.value == "completed" and j,
                timeout=RECOVERY_TIMEOUT,
                step=0.1,
            )
            took = time.monotonic() - stopped
            # the server ended the stopped worker's session, which released the row
            gone = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (backend,)
            ).fetchone()
            assert gone == (0,)
            expected = refs.get(scenario.model_dump(mode="json"), FORMATS)
            listed = refs.outputs(scenario.model_dump(mode="json"), FORMATS)
            assert {f["name"]: f["sha256"] for f in done.output_files} == listed
            assert ("running", "pending") in transitions(url)[job_id]  # reaped, taken over
            folder = data / "jobs" / job_id
            on_disk = {p.name: sha256_of(p) for p in folder.iterdir() if p.is_file()}
            assert on_disk == expected
            print(
                f"stopped at chunk {paused_at.progress_details['chunks_done']}: taken over"
                f" {taken:.1f} s, completed {took:.1f} s after the stop; the second worker"
                f" waited {waited:.1f} s on the row lock"
            )

            os.killpg(first.pid, signal.SIGCONT)
            # the server's error, or the closed socket it left, as the store's StoreUnavailable
            wait_until(lambda: "longer than idle_in_transaction_session_timeout" in first.text())
            assert "store unavailable (PostgreSQL unavailable: " in first.text()
            time.sleep(LEASE_SECONDS + 1.5)  # it wakes, its writes are refused, it goes idle
            assert first.alive(), first.text()[-3000:]
            assert "Traceback" not in first.text(), first.text()[-3000:]

            after = service.get(job.job_id)
            assert after.status.value == "completed"
            assert after.version == done.version  # nothing written to the job since
            assert after.output_files == done.output_files
            assert service.chunks(job.job_id) == []
            on_disk = {p.name: sha256_of(p) for p in folder.iterdir() if p.is_file()}
            assert on_disk == expected
            assert_no_orphans(data, {job_id})
            news = [new for _, new in transitions(url)[job_id]]
            assert news.count("completed") == 1, news
        finally:
            for proc in (first, second):
                proc.kill9()  # SIGKILL ends a stopped process too
