"""Waiting for changes: one watcher thread per store wakes the threads that wait for a job's
next update (event streams, `generate` following a job) and idle workers waiting for work.

Notifying dialects (PostgreSQL) LISTEN on one connection: always for new work, and for the
changes of jobs only once this process has waited for one (a worker process is not woken by
every change of every job). Polling dialects (SQLite) watch a cheap change counter and, when it
moves, read the row versions of the watched jobs and wake only the waiters whose job changed.
Waiters compare row versions, never timestamps, and re-check on their own every few seconds
(every poll interval while the watcher is down), so a lost notification delays, never loses, an
update.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from patientgen.jobs.dialects import JOB_CHANNEL, LISTENING, WORK_CHANNEL, Dialect
from patientgen.jobs.model import Job, StoreUnavailable

log = logging.getLogger(__name__)


class Watcher:
    """The waiters of one store and the thread that wakes them."""

    def __init__(
        self,
        dialect: Dialect,
        get: Callable[[UUID], Job],
        versions: Callable[[Sequence[UUID]], dict[UUID, int]],
        poll_interval: float,
    ) -> None:
        self._dialect = dialect
        self._get = get
        self._versions = versions
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._waiters: dict[UUID, set[threading.Event]] = {}
        self._work = threading.Event()
        self._watching = threading.Event()  # the watcher sees new work right now
        self._jobs_watched = threading.Event()  # ... and every change of a job
        self._wants_jobs = False  # somebody waited for a job's update: watch the jobs too
        self._watcher: threading.Thread | None = None
        self._closed = False

    def close(self) -> None:
        """Stop watching; every thread waiting for an update gets None at once (a thread an
        event stream abandoned at shutdown would otherwise hold the process's exit)."""
        self._closed = True
        self._wake_all()

    def _wake_all(self) -> None:
        with self._lock:
            for waiting in self._waiters.values():
                for event in waiting:
                    event.set()

    def join(self) -> None:
        if self._watcher is not None:
            self._watcher.join(timeout=2)

    def wait_for_update(self, job_id: UUID, since: int | None, timeout: float) -> Job | None:
        """The job as soon as its version differs from `since` (at once when since is None);
        None after `timeout` seconds without a change, or once the store is closed. JobNotFound
        when it does not exist."""
        self._wants_jobs = True
        self._ensure_watcher()
        event = threading.Event()
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(event)
        deadline = time.monotonic() + timeout
        try:
            if since is not None:  # give the watcher a moment; until it is up, the loop polls
                self._jobs_watched.wait(min(timeout, 1.0))
            while True:
                if self._closed:
                    return None
                job = self._get(job_id)
                if since is None or job.version != since:
                    return job
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                # a safety re-check every few seconds; every poll interval while not watching
                step = 5.0 if self._jobs_watched.is_set() else self.poll_interval
                event.wait(min(left, step))
                event.clear()
        finally:
            with self._lock:
                waiting = self._waiters.get(job_id)
                if waiting is not None:
                    waiting.discard(event)
                    if not waiting:
                        del self._waiters[job_id]

    def wait_for_work(self, timeout: float) -> None:
        """Block until a job may be claimable (a change was seen) or `timeout` passed."""
        self._ensure_watcher()
        if self._watching.is_set():
            self._work.wait(timeout)
        else:
            time.sleep(min(timeout, self.poll_interval))
        self._work.clear()

    def wake_work(self) -> None:
        """End a wait_for_work at once (its caller then looks at its stop flag)."""
        self._work.set()

    def _ensure_watcher(self) -> None:
        with self._lock:
            if self._watcher is None or not self._watcher.is_alive():
                target = self._listen if self._dialect.notifies else self._poll
                self._watcher = threading.Thread(
                    target=target, name=f"patientgen-{self._dialect.name}-watcher", daemon=True
                )
                self._watcher.start()

    def _wake(self, job_ids: Sequence[UUID] | None) -> None:
        """Wake the waiters of these jobs (None: everyone, work waiters included)."""
        if job_ids is None:
            self._work.set()
        with self._lock:
            for job_id in self._waiters if job_ids is None else job_ids:
                for event in self._waiters.get(job_id, ()):
                    event.set()

    def _channels(self) -> frozenset[str]:
        """New work always; the changes of jobs only in a process that waits for them (a worker
        process would otherwise be woken by every change of every job)."""
        return frozenset({WORK_CHANNEL, JOB_CHANNEL} if self._wants_jobs else {WORK_CHANNEL})

    def _listen(self) -> None:
        """Notifying dialects: dispatch notifications; reconnect when the connection drops."""
        while not self._closed:
            try:
                for channel, payload in self._dialect.listen(1.0, self._channels):
                    if self._closed:
                        return
                    if channel == LISTENING:  # (re)subscribed: anything may have changed
                        self._watching.set()
                        if JOB_CHANNEL in payload.split(","):
                            self._jobs_watched.set()
                        self._wake(None)
                    elif channel == WORK_CHANNEL:
                        self._work.set()
                    elif channel == JOB_CHANNEL:
                        with contextlib.suppress(ValueError):  # not a job id: nobody waits
                            self._wake([UUID(payload)])
            except StoreUnavailable as exc:
                if not self._closed:
                    log.warning("%s; reconnecting", exc)
            self._watching.clear()
            self._jobs_watched.clear()
            self._wake(None)
            if not self._closed:
                time.sleep(self.poll_interval)

    def _poll(self) -> None:
        """Polling dialects: a cheap change counter; on a change, the versions of the watched
        jobs, and only their changed waiters are woken."""
        seen: dict[UUID, int | None] = {}
        counter: int | None = None
        step = min(self.poll_interval, 0.1)
        while not self._closed:
            try:
                now = self._dialect.change_counter()
                with self._lock:
                    ids = list(self._waiters)
                changed = now != counter
                if changed:
                    self._work.set()
                counter = now
                if ids and (changed or any(i not in seen for i in ids)):
                    current = self._versions(ids)
                    moved = [i for i in ids if seen.get(i, -1) != current.get(i)]
                    seen = {i: current.get(i) for i in ids}
                    self._wake(moved)
                self._watching.set()
                self._jobs_watched.set()
            except StoreUnavailable:
                self._watching.clear()
                self._jobs_watched.clear()
            time.sleep(step)
