"""Workers: claim jobs, run them, reap expired leases; N slots in N processes.

- Each slot is a process with a unique worker id `host-pid-start` (start in microseconds since the
  epoch, so an id is never reused) that loops: reap expired leases (every worker is a reaper),
  claim one job, run it (runner.run_job), or wait for work (LISTEN/NOTIFY on PostgreSQL, a cheap
  change counter on SQLite). When the job it claimed is small, it claims more small jobs and runs
  them all as one batch (runner.run_small_jobs); a claim never passes over a job of higher
  priority than the first of the batch, which is always the queue's next job.
- A worker that found no pending job helps with running jobs' chunks (runner.help_chunk: one
  chunk claim at a time, of the first job in the queue's order with a chunk free), then looks
  for pending jobs again: pending jobs always come first, so a huge job never starves small
  ones (`help_chunks` False: a worker only ever runs the jobs it claimed).
- SIGTERM/SIGINT: the running job stops at its next chunk boundary and is released at once, so
  another worker continues it without waiting for the lease to expire; the process exits 0.
- The database going away never kills a worker: it logs, waits and reconnects (a server at its
  connection limit included); the job it held is resumed by whoever claims it next.
- Once the database answers, and before it claims anything, a worker checks that it keeps jobs'
  files in the storage the database records (files.ensure_same_storage; the first records its
  own): with another it stops with StorageMismatch, and a pool's slot that meets it is not
  restarted.
- The reaper removes the files of a job it ends (cancelled, or failed for good) only inside its
  own conditional write (files.py); it never touches a job that another worker holds.
- `WorkerPool` runs N slots as child processes (spawned, since the work is CPU-bound and the
  parent may have threads) and restarts a slot that died; `serve --workers N` embeds it.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from typing import Any
from uuid import UUID

from patientgen.jobs.files import JobFiles, ensure_same_storage, job_files
from patientgen.jobs.model import (
    Job,
    JobStatus,
    RunOutcome,
    StorageMismatch,
    StoreUnavailable,
)
from patientgen.jobs.runner import (
    SMALL_BATCH,
    SMALL_JOB_PATIENTS,
    help_chunk,
    is_small,
    run_job,
    run_small_jobs,
)
from patientgen.jobs.sql_store import connect
from patientgen.jobs.store import JobStore
from patientgen.settings import Settings

#: Connections of one worker process's pool: its claim loop and its heartbeat thread.
WORKER_CONNECTIONS = 2
#: The exit code of a pool's slot that must not be restarted: its storage is not the one the
#: database records (restarting it would only fail again).
EXIT_MISCONFIGURED = 2

log = logging.getLogger(__name__)


class Backoff:
    """The pauses of a process while the database or the object storage cannot be reached:
    FIRST seconds, doubling with each failure in a row up to LONGEST; `reset()` once a try
    went through. Every such wait of a worker (connecting, handing a job or a chunk back,
    a claim that failed) is one of these, so none retries hundreds of times a second."""

    FIRST = 0.5
    LONGEST = 5.0

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._next = self.FIRST

    def pause(self) -> None:
        self._stop.wait(self._next)
        self._next = min(self._next * 2, self.LONGEST)

    def reset(self) -> None:
        self._next = self.FIRST


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns() // 1000}"


class Worker:
    """One job slot. `run()` blocks until `stop` is set (or `max_jobs` jobs were run)."""

    def __init__(
        self,
        settings: Settings,
        stop: threading.Event | None = None,
        worker_id: str | None = None,
        max_jobs: int | None = None,
    ) -> None:
        self.settings = settings
        self.stop = stop or threading.Event()
        self.worker_id = worker_id or new_worker_id()
        self.max_jobs = max_jobs
        self.outcomes: dict[str, int] = {}
        self._store: JobStore | None = None
        self._files = job_files(settings)
        self._last_reap = 0.0
        # every settings.sweep_interval s (files.JobFiles.sweep: what a process that died right
        # after ending a job left, and idle copies); the first reap of a worker sweeps
        self._last_sweep: float | None = None
        self._backoff = Backoff(self.stop)

    def _connect(self) -> JobStore | None:
        return connect_retrying(
            self.settings, self.stop, f"worker {self.worker_id}", WORKER_CONNECTIONS
        )

    def wake(self) -> None:
        """Cut short the wait for work of `run` (after `stop` was set: it then returns at once
        instead of after up to a second)."""
        store = self._store
        if store is not None:
            store.wake()

    def run(self) -> None:
        log.info("worker %s started", self.worker_id)
        store = self._connect()
        if store is None:
            return
        self._store = store
        ran = 0
        try:
            while not self.stop.is_set():
                if self.max_jobs is not None and ran >= self.max_jobs:
                    break
                try:
                    self._maybe_reap(store)
                    jobs = store.claim(self.worker_id, self.settings.lease_seconds)
                    if not jobs:
                        if not (
                            self.settings.help_chunks
                            and help_chunk(store, self.settings, self.worker_id, self.stop)
                        ):
                            store.wait_for_work(min(1.0, self.settings.reap_interval))
                        self._backoff.reset()
                        continue
                    left = SMALL_BATCH if self.max_jobs is None else self.max_jobs - ran
                    outcomes = self._run(store, jobs[0], min(SMALL_BATCH, left))
                    for job, outcome in outcomes:
                        ran += 1
                        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
                        if outcome == RunOutcome.UNAVAILABLE:
                            self._wait_and_release(store, job.job_id)
                    # a job handed back for an outage: not claimed again at once, to fail again
                    if any(o == RunOutcome.UNAVAILABLE for _, o in outcomes):
                        self._backoff.pause()
                    else:
                        self._backoff.reset()
                except StoreUnavailable as exc:  # a claim, or a helper's chunk (given back)
                    log.warning("worker %s: store unavailable (%s)", self.worker_id, exc)
                    self._backoff.pause()
        finally:
            store.close()
            log.info("worker %s stopped", self.worker_id)

    def _run(self, store: JobStore, job: Job, batch: int) -> list[tuple[Job, RunOutcome]]:
        """Run the claimed `job`; a small one with up to batch-1 more small jobs claimed now."""
        if not is_small(job, self._files):
            return [(job, run_job(store, self.settings, self.worker_id, job, self.stop))]
        jobs = [job]
        if batch > 1:
            with contextlib.suppress(StoreUnavailable):  # else the batch is the first job alone
                jobs += store.claim(
                    self.worker_id,
                    self.settings.lease_seconds,
                    limit=batch - 1,
                    max_patients=SMALL_JOB_PATIENTS,
                )
        outcomes = run_small_jobs(store, self.settings, self.worker_id, jobs, self.stop)
        return list(zip(jobs, outcomes, strict=True))

    def _maybe_reap(self, store: JobStore) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.settings.reap_interval:
            return
        self._last_reap = now
        reap(store, self._files)
        if self._last_sweep is None or now - self._last_sweep >= self.settings.sweep_interval:
            self._last_sweep = now
            try:
                swept = self._files.sweep(store, turn=self.settings.sweep_interval)
            except StoreUnavailable:
                raise
            except Exception:  # object storage unreachable: the next sweep tries again
                log.warning(
                    "worker %s: sweep of shared storage failed", self.worker_id, exc_info=True
                )
            else:
                if swept:
                    log.info("worker %s: swept %d leftover object(s)", self.worker_id, swept)

    def _wait_and_release(self, store: JobStore, job_id: Any) -> None:
        """After losing the database mid-job: once it is back, hand the job back at once (if we
        still hold it) instead of letting it wait for its lease to expire."""
        backoff = Backoff(self.stop)
        while not self.stop.is_set():
            try:
                store.release(job_id, self.worker_id)
                return
            except StoreUnavailable:
                backoff.pause()
            except Exception:  # lease lost or job gone: nothing to hand back
                return


def reap(store: JobStore, files: JobFiles) -> list[tuple[UUID, JobStatus]]:
    """Return jobs whose lease expired to the queue, or end them; a job that ends without
    completing keeps no files (removed inside the reaper's own write)."""
    reaped = store.reap(inside=files.detach)
    for job_id, status in reaped:
        log.warning("reaper: job %s whose lease expired is now %s", job_id, status.value)
    files.purge()
    return reaped


def connect_checked(settings: Settings, max_connections: int) -> JobStore:
    """The store, for a process that runs or serves jobs: its storage checked against the one
    the database records (StorageMismatch; files.ensure_same_storage)."""
    store = connect(settings, max_connections=max_connections)
    try:
        ensure_same_storage(store, settings)
    except BaseException:
        store.close()
        raise
    return store


def connect_retrying(
    settings: Settings, stop: threading.Event, who: str, max_connections: int
) -> JobStore | None:
    """The store (`connect_checked`), retried with a pause (Backoff) while the database cannot
    be reached or has no connection free (None once `stop` is set); the storage is checked once
    it answers."""
    backoff = Backoff(stop)
    while not stop.is_set():
        try:
            return connect_checked(settings, max_connections)
        except StoreUnavailable as exc:
            log.warning("%s: store unavailable (%s); retrying", who, exc)
            backoff.pause()
    return None


def _install_signal_handlers(stop: threading.Event, worker: Worker | None = None) -> None:
    def handler(signum: int, frame: object) -> None:
        log.info("signal %d: stopping at the next chunk boundary", signum)
        stop.set()
        if worker is not None:
            worker.wake()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _slot_main(settings_data: dict[str, Any], log_level: int) -> None:
    """Entry point of a worker process."""
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(processName)s %(message)s"
    )
    stop = threading.Event()
    worker = Worker(Settings(**settings_data), stop)
    _install_signal_handlers(stop, worker)
    try:
        worker.run()
    except StorageMismatch as exc:  # the storage was switched since the pool started
        log.error("%s", exc)
        raise SystemExit(EXIT_MISCONFIGURED) from None


class WorkerPool:
    """N worker processes; `start()` returns at once, `stop()` stops them gracefully."""

    def __init__(self, settings: Settings, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.settings = settings
        self.concurrency = concurrency
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[Any] = []
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None
        self._lock = threading.Lock()

    def _spawn(self, slot: int) -> Any:
        proc = self._ctx.Process(
            target=_slot_main,
            args=(self.settings.model_dump(), logging.getLogger().getEffectiveLevel()),
            name=f"patientgen-worker-{slot}",
        )
        proc.start()
        return proc

    def start(self) -> None:
        with self._lock:
            self._procs = [self._spawn(i) for i in range(self.concurrency)]
        self._supervisor = threading.Thread(
            target=self._supervise, name="patientgen-pool", daemon=True
        )
        self._supervisor.start()

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._procs]

    def _supervise(self) -> None:
        while not self._stopping.wait(1.0):
            with self._lock:
                for i, proc in enumerate(self._procs):
                    # exit code 0: the slot was told to stop (e.g. Ctrl-C reached the whole
                    # process group); EXIT_MISCONFIGURED: it would only fail again (it logged
                    # why); anything else is a crash and the slot is started again
                    if (
                        not proc.is_alive()
                        and proc.exitcode not in (0, EXIT_MISCONFIGURED)
                        and not self._stopping.is_set()
                    ):
                        log.warning(
                            "worker process %s exited (%s); restarting", proc.pid, proc.exitcode
                        )
                        self._procs[i] = self._spawn(i)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM every slot (each releases its job at the next chunk boundary) and wait."""
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(5)

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_worker(settings: Settings, concurrency: int = 1) -> int:
    """Run `concurrency` job slots until SIGTERM/SIGINT; returns the exit code (0).
    StorageMismatch once the database answers, if it records another storage."""
    stop = threading.Event()
    if concurrency == 1:
        worker = Worker(settings, stop)
        _install_signal_handlers(stop, worker)
        worker.run()
        return 0
    _install_signal_handlers(stop)
    checked = connect_retrying(settings, stop, "worker", 1)  # the storage, before any slot
    if checked is None:
        return 0
    checked.close()
    pool = WorkerPool(settings, concurrency)
    pool.start()
    while not stop.wait(0.5):
        pass
    pool.stop()
    return 0
