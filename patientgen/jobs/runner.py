"""Runs one claimed job: its chunks, checkpoints, progress, finalize, completion.

A job whose scenario has a medical plan first runs the care-chain simulation of its whole
casualty stream (phase "simulating"; `formats.bundle.care_chain` checkpoints its result in the
parts folder, and every chunk reads it).

A job is a sequence of chunks of patients. Once the flow result is in the parts folder, the owner
opens the job's chunk phase (`store.open_chunks`) and from then on claims its chunks one at a time
(`store.claim_chunk`), as any idle worker may (`help_chunk`): one claim per chunk, leased on the
database's clock and extended by a `ChunkBeat` while the chunk is written, so owner and helpers
never write the same chunk at once. For each claimed chunk `formats.bundle.write_chunk` writes
the part files (temporary name, fsync, rename), then `store.record_claimed_chunk` records it with
its partial summary and counts it in the job's progress: a fenced write, refused unless the
claim is still this worker's and the job still runs the attempt it was claimed in. When no chunk
is left to claim the owner waits for the claimed ones to be recorded (taking over any whose
claim expired), then joins them. On resume the chunks already recorded are skipped; since
patient i depends only on (scenario, seed, i), the joined output is byte-identical whoever wrote
each chunk, and to an uninterrupted run. At the end `bundle.finalize` joins the parts, writes
summary.json and manifest.json, and the job is completed, once, by its owner, with its output
files and summary. A job of one chunk has nothing to resume from or share, so it records no
checkpoint: it is written and completed.

A helper never creates the parts folder or the care-chain file (only the owner does:
`write_chunk(create=False)` in the folder `files.helping` gives), so a helper that writes after
the job ended (its folder removed) fails and leaves nothing behind; it removes only its own
temporary files, and abandons its chunk (releasing the claim) when the job left the run or was
asked to cancel, or its worker stops.

Between chunks the runner honours, in this order: a lost lease (stop, touch nothing), a graceful
stop (release the job at once for another worker), a cancel request (end it cancelled). A cancel
requested while the files are being joined still wins: the completion is refused by the store
(`CancelRequested`) and the job ends cancelled. A heartbeat thread extends the lease and saves
progress at least every 2 s.

Files are removed only through `JobFiles.detach` passed to the fenced write that ends the run
(see files.py): a worker paused past its lease that wakes up later removes nothing.

With object storage (files.py `ObjectFiles`) the same steps hold, with three exchanges through
the bucket: a chunk's part files are shared (`files.share`) before its record, and the
care-chain result once computed; the owner gathers the recorded parts it lacks (`files.gather`)
before it resumes or joins; the final files are published (`files.publish`, manifest last)
before the fenced completion. A helper writes in a scratch folder of its own (`files.helping`).
The owner sends a chunk's parts, and records the chunk, while it writes the next one (`_Sender`:
one chunk in flight, still claimed and extended by the owner; its error raised in the owner's
thread before anything else is sent; the run waits for it whatever ends it).

Small jobs (one chunk of at most SMALL_JOB_PATIENTS patients, first attempt, files in their own
folder) run in batches (`run_small_jobs`): each job's final files are written straight into its
folder (no parts), the disk is waited for once for the whole batch, and the jobs are completed
in one fenced statement. The guarantees are the same: nothing is visible under a final name
before its bytes are on disk, no job is completed before its files are, a cancel asked for
meanwhile ends the job cancelled (its files removed inside that write), and a job whose lease
was lost is left to its new owner. A batch is short (at most SMALL_BATCH jobs of
SMALL_JOB_PATIENTS patients), and one thread extends the leases of the whole batch in one
statement meanwhile, as the heartbeat does for one job.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from pydantic import ValidationError

from patientgen.jobs.files import JobFiles, Scope, job_files
from patientgen.jobs.model import (
    Action,
    CancelRequested,
    ChunkClaim,
    ChunkLost,
    Job,
    JobNotFound,
    LeaseLost,
    RunOutcome,
    StoreUnavailable,
)
from patientgen.jobs.store import JobStore
from patientgen.settings import Settings

log = logging.getLogger(__name__)

#: Jobs of one chunk of at most this many patients run in batches of at most SMALL_BATCH.
SMALL_JOB_PATIENTS = 100
SMALL_BATCH = 16

#: An absolute path in an error text (its folders are the server's business, not the user's);
#: not the path of a URL (after "//" or ":").
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"/:]+/)+(?=[^\s'\"/:]*)")


def describe_error(exc: BaseException) -> str:
    """The job's `error` for an exception: its type and message, paths shown by name only. A
    pydantic ValidationError (a scenario stored before a rule that now refuses it) is each
    invalid field and its problem, on one line."""
    if isinstance(exc, ValidationError):
        from patientgen.scenario import validation_line

        text = f"invalid {exc.title}: {validation_line(exc)}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return _ABSOLUTE_PATH.sub("", text)[:2000]


@dataclass
class Progress:
    """What the runner has done so far; the heartbeat thread saves snapshots of it."""

    patients_total: int
    chunks_total: int
    patients_done: int = 0
    chunks_done: int = 0
    phase: str = "generating"
    started: float = field(default_factory=time.monotonic)
    generated_here: int = 0  # patients generated since this run started (for the rate)
    #: Chunks are recorded by any worker: the stored counts are the truth, the heartbeat keeps
    #: them (`store.heartbeat(keep_counts=True)`) and `observe` brings them here.
    shared: bool = False
    base: int = 0  # patients_done when this run started
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Held while a snapshot is taken and written, so saves reach the store in order.
    save_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> tuple[int | None, dict[str, Any]]:
        with self.lock:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = self.generated_here / elapsed
            left = self.patients_total - self.patients_done
            eta = (left / rate) if rate > 0 else None
            if self.phase != "generating":
                eta = 0.0 if self.phase == "finalizing" else None
            percent = int(99 * self.patients_done / max(self.patients_total, 1))
            return None if self.shared else percent, {
                "phase": self.phase,
                "patients_done": self.patients_done,
                "patients_total": self.patients_total,
                "chunks_done": self.chunks_done,
                "chunks_total": self.chunks_total,
                "rate": round(rate, 1),
                "eta_seconds": None if eta is None else round(eta, 1),
            }

    def observe(self, details: dict[str, Any]) -> None:
        """The counts of every worker's recorded chunks, as stored (`shared` progress)."""
        with self.lock:
            chunks = int(details.get("chunks_done") or 0)
            patients = int(details.get("patients_done") or 0)
            if patients >= self.patients_done:
                self.chunks_done, self.patients_done = chunks, patients
                self.generated_here = max(self.generated_here, patients - self.base)


class Snapshots(Protocol):
    """Progress the heartbeat can save: a snapshot (percent, details; percent None: the stored
    one stays), the lock held while one is taken and written, and whether the stored chunk counts
    win over the snapshot's (`shared`)."""

    save_lock: threading.Lock
    shared: bool

    def snapshot(self) -> tuple[int | None, dict[str, Any]]: ...


class Heartbeat:
    """Extends the lease and saves progress every `settings.heartbeat_interval` seconds."""

    def __init__(
        self, store: JobStore, job: Job, worker_id: str, settings: Settings, progress: Snapshots
    ) -> None:
        self.store = store
        self.job_id = job.job_id
        self.worker_id = worker_id
        self.settings = settings
        self.progress = progress
        self.lost = False
        self.cancel_requested = job.cancel_requested_at is not None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{job.job_id}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_interval):
            try:
                with self.progress.save_lock:  # a checkpoint's newer snapshot is never overwritten
                    percent, details = self.progress.snapshot()
                    job = self.store.heartbeat(
                        self.job_id,
                        self.worker_id,
                        self.settings.lease_seconds,
                        percent,
                        details,
                        keep_counts=self.progress.shared,
                    )
            except (LeaseLost, JobNotFound):
                self.lost = True
                return
            except StoreUnavailable as exc:
                log.warning("heartbeat of job %s failed: %s", self.job_id, exc)
                continue
            if job.cancel_requested_at is not None:
                self.cancel_requested = True
            if isinstance(self.progress, Progress) and self.progress.shared:
                self.progress.observe(job.progress_details)


class _Beat:
    """Calls `beat` every `interval` seconds in a thread of its own while entered, and stops
    once it answered False (what it extends is no longer this worker's: the fenced write after
    it says so). A store that does not answer is logged and tried again at the next beat."""

    def __init__(self, beat: Callable[[], object], interval: float, what: str) -> None:
        self._beat = beat
        self._interval = interval
        self._what = what
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat {what}", daemon=True)

    def __enter__(self) -> _Beat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self._beat() is False:
                    return
            except StoreUnavailable as exc:
                log.warning("heartbeat of %s failed: %s", self._what, exc)


class ChunkBeat(_Beat):
    """Extends one chunk claim while the chunk is written (until it is no longer this
    worker's: `record_claimed_chunk` then refuses the chunk with ChunkLost)."""

    def __init__(
        self, store: JobStore, claim: ChunkClaim, worker_id: str, settings: Settings
    ) -> None:
        super().__init__(
            lambda: store.extend_chunk(claim, worker_id, settings.lease_seconds),
            settings.heartbeat_interval,
            "a chunk claim",
        )


class BatchHeartbeat(_Beat):
    """Extends the leases of a batch of small jobs, in one statement, until the batch is
    written."""

    def __init__(self, store: JobStore, jobs: list[Job], worker_id: str, settings: Settings):
        ids = [job.job_id for job in jobs]
        super().__init__(
            lambda: store.heartbeat_many(ids, worker_id, settings.lease_seconds),
            settings.heartbeat_interval,
            "a batch",
        )


class _Stopped(Exception):
    """The worker was asked to stop; the job was released."""


class Cancel(Exception):
    """A cancel was requested: end the job cancelled."""


@dataclass
class _Run:
    """One run of a claimed job by this worker."""

    store: JobStore
    files: JobFiles
    settings: Settings
    worker_id: str
    job: Job
    stop: threading.Event
    on_progress: Callable[[int, int], None] | None
    written: list[str] = field(default_factory=list)  # final files finalize wrote

    def detach(self, scope: Scope) -> Callable[[Job], None]:
        """The `inside` callback of a fenced write that removes the job's files."""
        return lambda job: self.files.detach(job, scope, self.written)


def run_job(
    store: JobStore,
    settings: Settings,
    worker_id: str,
    job: Job,
    stop: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Run a job this worker has claimed; `on_progress(patients_done, total)` is called after
    each chunk. Returns how the run ended."""
    from patientgen.formats import bundle

    files = job_files(settings)
    run = _Run(store, files, settings, worker_id, job, stop or threading.Event(), on_progress)
    total = int(job.config["scenario"]["total_patients"])
    body: Callable[[], RunOutcome]
    progress: Snapshots
    if "delivery" in job.config:  # a push of a completed job's casualties (jobs/delivery.py)
        from patientgen.jobs.delivery import DeliveryProgress, run_delivery

        kind = str(job.config["delivery"]["target"])
        pushed = DeliveryProgress.resumed(total, kind, job.progress_details)
        progress = pushed

        def body() -> RunOutcome:
            try:
                return run_delivery(run, beat, pushed)
            except Cancel:
                return _end_cancelled(run)
    else:
        chunk_size = int(job.config.get("chunk_size") or settings.chunk_size)
        ranges = bundle.chunk_ranges(total, chunk_size)
        made = Progress(patients_total=total, chunks_total=len(ranges))
        progress = made

        def body() -> RunOutcome:
            return _run(run, beat, made, ranges)

    beat = Heartbeat(store, job, worker_id, settings, progress)
    beat.start()
    try:
        outcome = body()
    except _Stopped:
        return RunOutcome.RELEASED
    except (LeaseLost, JobNotFound) as exc:
        log.warning("job %s: %s; another worker owns it now", job.job_id, exc)
        _after_lost_lease(store, files, job)
        return RunOutcome.LEASE_LOST
    except StoreUnavailable as exc:
        log.warning("job %s: store unavailable (%s); leaving it to the next claim", job.job_id, exc)
        return RunOutcome.UNAVAILABLE
    except Exception as exc:
        log.exception("job %s failed", job.job_id)
        try:
            store.fail(job.job_id, worker_id, describe_error(exc), inside=run.detach(Scope.ALL))
        except (LeaseLost, JobNotFound):
            _after_lost_lease(store, files, job)
            return RunOutcome.LEASE_LOST
        except StoreUnavailable:
            return RunOutcome.UNAVAILABLE
        outcome = RunOutcome.FAILED
    finally:
        beat.stop()
    files.purge()
    return outcome


def _end_cancelled(run: _Run) -> RunOutcome:
    """A cancel was met: the job ends cancelled, its files removed in that write."""
    run.store.mark_cancelled(run.job.job_id, run.worker_id, inside=run.detach(Scope.ALL))
    log.info("job %s cancelled", run.job.job_id)
    return RunOutcome.CANCELLED


def _after_lost_lease(store: JobStore, files: JobFiles, job: Job) -> None:
    """A worker that lost its lease may have written a late part file after its job ended:
    removed under the job's row lock if the job has ended, or at once if it is gone (nobody can
    hold a deleted job). A job still pending or running keeps its parts: they are its new
    owner's (and a late part holds the same bytes the owner writes)."""
    try:
        store.if_ended(job.job_id, lambda ended: files.detach(ended, Scope.PARTS))
    except JobNotFound:
        files.detach(job)
    except StoreUnavailable:
        return
    files.purge()


def is_small(job: Job, files: JobFiles) -> bool:
    """True for a job run_small_jobs may run: its first attempt, one chunk of 1 to
    SMALL_JOB_PATIENTS patients, files in its own folder, no parts folder left by anyone."""
    config = job.config
    total = int(config["scenario"]["total_patients"])
    return (
        "delivery" not in config
        and job.attempts == 1
        and "output_dir" not in config
        and 1 <= total <= min(SMALL_JOB_PATIENTS, int(config.get("chunk_size") or 0))
        and not files.parts(job.job_id).exists()
    )


def run_small_jobs(
    store: JobStore,
    settings: Settings,
    worker_id: str,
    jobs: list[Job],
    stop: threading.Event | None = None,
) -> list[RunOutcome]:
    """Run small jobs this worker has claimed as one batch (see the module docstring); a job
    that is not small, or a batch that fails, runs alone through run_job. Returns each job's
    outcome, in order."""
    from patientgen.formats import bundle
    from patientgen.scenario import Scenario

    files = job_files(settings)
    outcomes: dict[UUID, RunOutcome] = {}
    small = [job for job in jobs if is_small(job, files)]
    try:
        runs = [
            bundle.SmallRun(
                Scenario.model_validate(job.config["scenario"]),
                tuple(job.config["formats"]),
                files.folder(job.job_id),
                files.parts(job.job_id),
                job.attempts,
            )
            for job in small
        ]
        with BatchHeartbeat(store, small, worker_id, settings):
            results = bundle.write_runs(runs)
            for job, (_, listed) in zip(small, results, strict=True):
                files.publish(job.job_id, [f.name for f in listed])
        # the job lists its outputs, not the internal indexes
        written = [(merged, bundle.outputs(listed)) for merged, listed in results]
    except Exception:
        log.warning(
            "a batch of %d small jobs failed; running each alone", len(small), exc_info=True
        )
        small, written = [], []
    for job in small:
        total = int(job.config["scenario"]["total_patients"])
        log.info("job %s: chunk 0 [0, %d) written by %s in a batch", job.job_id, total, worker_id)
    completions = [
        (job.job_id, [f.as_dict() for f in listed], merged)
        for job, (merged, listed) in zip(small, written, strict=True)
    ]
    try:
        completed = set(store.complete_many(worker_id, completions))
    except StoreUnavailable as exc:
        log.warning("store unavailable (%s) completing %d small jobs", exc, len(small))
        outcomes = {job.job_id: RunOutcome.UNAVAILABLE for job in small}
    else:
        for job, (merged, listed) in zip(small, written, strict=True):
            outcomes[job.job_id] = (
                RunOutcome.COMPLETED
                if job.job_id in completed
                else _complete_alone(store, files, worker_id, job, listed, merged)
            )
    for job in jobs:
        if job.job_id not in outcomes:
            outcomes[job.job_id] = run_job(store, settings, worker_id, job, stop)
    return [outcomes[job.job_id] for job in jobs]


def _complete_alone(
    store: JobStore,
    files: JobFiles,
    worker_id: str,
    job: Job,
    listed: list[Any],
    merged: dict[str, Any],
) -> RunOutcome:
    """A small job its batch's completion left out: asked to cancel meanwhile, or no longer
    this worker's. The one-job completion says which, and ends it accordingly."""
    try:
        try:
            store.finish(
                job.job_id,
                worker_id,
                Action.COMPLETE,
                output_files=[f.as_dict() for f in listed],
                summary=merged,
            )
            return RunOutcome.COMPLETED
        except CancelRequested:
            store.mark_cancelled(job.job_id, worker_id, inside=lambda j: files.detach(j, Scope.ALL))
    except (LeaseLost, JobNotFound) as exc:
        log.warning("job %s: %s; another worker owns it now", job.job_id, exc)
        _after_lost_lease(store, files, job)
        return RunOutcome.LEASE_LOST
    except StoreUnavailable:
        return RunOutcome.UNAVAILABLE
    files.purge()
    log.info("job %s cancelled", job.job_id)
    return RunOutcome.CANCELLED


def check_boundary(run: _Run, beat: Heartbeat) -> None:
    """Checks at a chunk boundary: lost lease, graceful stop, cancel request."""
    if beat.lost:
        raise LeaseLost(run.job.job_id, run.worker_id)
    if run.stop.is_set():
        run.store.release(run.job.job_id, run.worker_id)
        log.info("job %s released at a chunk boundary (worker stopping)", run.job.job_id)
        raise _Stopped
    if beat.cancel_requested:
        raise Cancel


def _recorded(
    run: _Run, ranges: list[tuple[int, int]], scenario: Any
) -> tuple[dict[int, Any], list[int]]:
    """The chunks recorded as done, and those among them whose part files are gone (to be
    written again, same bytes; a finished join needs none of them)."""
    from patientgen.formats import bundle

    job, formats = run.job, list(run.job.config["formats"])
    # a chunk is recorded together with progress that counts it (retry clears both): a job whose
    # progress counts no chunk has none to read
    recorded = bool(job.progress_details.get("chunks_done"))
    done = {c.chunk: c.summary for c in run.store.chunks(job.job_id)} if recorded else {}
    parts = run.files.parts(job.job_id)
    if not done:
        if run.files.has_parts(job.job_id):  # nothing recorded: whatever lies there is stale
            run.store.heartbeat(
                job.job_id,
                run.worker_id,
                run.settings.lease_seconds,
                inside=run.detach(Scope.PARTS),
            )
            run.files.purge()  # before this run shares any part of its own
        return done, []
    run.files.gather(job.job_id, [n for chunk in done for n in bundle.chunk_files(formats, chunk)])
    lost = bundle.missing_chunks(parts, formats, done)
    joined = len(done) == len(ranges) and bundle.is_finished(
        scenario, formats, run.files.output(job)
    )
    if lost and not joined:
        log.warning(
            "job %s: the part files of %d recorded chunk(s) are gone; writing them again",
            job.job_id,
            len(lost),
        )
        return done, lost
    return done, []


def _run(
    run: _Run, beat: Heartbeat, progress: Progress, ranges: list[tuple[int, int]]
) -> RunOutcome:
    from patientgen.formats import bundle
    from patientgen.scenario import Scenario

    job = run.job
    scenario = Scenario.model_validate(job.config["scenario"])
    parts = run.files.parts(job.job_id)
    done, lost = _recorded(run, ranges, scenario)
    with progress.lock:
        progress.chunks_done = sum(1 for i in range(len(ranges)) if i in done)
        progress.patients_done = sum(b - a for i, (a, b) in enumerate(ranges) if i in done)
        progress.shared = len(ranges) > 1  # one chunk: nothing to share or resume from
        progress.base = progress.patients_done
    _report(run, progress)
    if scenario.medical_plan is not None and (len(done) < len(ranges) or lost):
        # phase 1: the care-chain simulation of the whole job, checkpointed in its parts folder
        # (read there when an earlier attempt computed it; same bytes either way)
        with progress.lock:
            progress.phase = "simulating"
        run.files.gather(job.job_id, [bundle.CHAIN_FILE])
        bundle.care_chain(scenario, parts)
        if len(ranges) > 1:  # helpers read it
            run.files.share(job.job_id, parts, [bundle.CHAIN_FILE])
        with progress.lock:
            progress.phase = "generating"
    try:
        if len(ranges) == 1:
            summaries = _write_alone(run, beat, progress, scenario, ranges[0])
        else:
            summaries = _write_shared(run, beat, progress, scenario, ranges, lost)
        return _join_and_complete(run, beat, progress, scenario, ranges, summaries)
    except Cancel:
        return _end_cancelled(run)


def _report(run: _Run, progress: Progress) -> None:
    if run.on_progress is not None:
        run.on_progress(progress.patients_done, progress.patients_total)


def _write_alone(
    run: _Run, beat: Heartbeat, progress: Progress, scenario: Any, span: tuple[int, int]
) -> list[dict[str, Any]]:
    """The one chunk of a one-chunk job, written by its owner (no claim, no checkpoint)."""
    from patientgen.formats import bundle

    job = run.job
    check_boundary(run, beat)
    formats = list(job.config["formats"])
    parts = run.files.parts(job.job_id)
    summary = bundle.write_chunk(scenario, formats, parts, 0, *span)
    with progress.lock:
        progress.chunks_done = 1
        progress.patients_done = span[1] - span[0]
        progress.generated_here += span[1] - span[0]
    _report(run, progress)
    log.info("job %s: chunk 0 [%d, %d) written by %s", job.job_id, *span, run.worker_id)
    if run.settings.chunk_delay:
        run.stop.wait(run.settings.chunk_delay)
    return [summary]


def _write_shared(
    run: _Run,
    beat: Heartbeat,
    progress: Progress,
    scenario: Any,
    ranges: list[tuple[int, int]],
    lost: list[int],
) -> list[dict[str, Any]]:
    """The owner's chunk phase: write again the recorded chunks whose parts are gone (no one
    else may claim a recorded chunk), open the phase to helpers, claim and write chunks until
    none is free, wait for the others' to be recorded; the summaries of every chunk, in order."""
    store, job, worker_id = run.store, run.job, run.worker_id
    _write_again(run, beat, scenario, ranges, lost)
    run.files.make_parts(job.job_id)  # helpers never create it
    check_boundary(run, beat)
    with progress.save_lock:  # the totals are there before any worker's record counts
        percent, details = progress.snapshot()
        store.heartbeat(
            job.job_id, worker_id, run.settings.lease_seconds, percent, details, keep_counts=True
        )
    store.open_chunks(job.job_id, worker_id, len(ranges))
    # with object storage a chunk's parts are sent (and the chunk recorded) while the next one
    # is written: at most one chunk in flight, which is still claimed, and extended, by us
    with _Sender(run.files.remote) as sender:
        while True:
            check_boundary(run, beat)
            claim = _claim_own(run)
            if claim.chunk is not None:
                summary = _write_part(run, claim, scenario, ranges)
                sender.then(partial(_share_and_record, run, claim, summary, ranges, progress))
                if run.settings.chunk_delay:
                    run.stop.wait(run.settings.chunk_delay)
                continue
            if sender.wait():  # our own chunk was in flight: see the phase again
                continue
            progress.observe(claim.job.progress_details)
            _report(run, progress)
            if claim.finished:
                break
            # the others' chunks: a record bumps the job's version; an expired claim is free
            store.wait_for_update(job.job_id, claim.job.version, run.settings.heartbeat_interval)
    check_boundary(run, beat)
    recorded = {c.chunk: c.summary for c in store.chunks(job.job_id)}
    missing = [i for i in range(len(ranges)) if i not in recorded]
    if missing:  # pragma: no cover - claim_chunk said every chunk was recorded
        raise RuntimeError(f"chunks {missing[:5]} of job {job.job_id} are not recorded")
    return [recorded[i] for i in range(len(ranges))]


def _write_again(
    run: _Run, beat: Heartbeat, scenario: Any, ranges: list[tuple[int, int]], lost: list[int]
) -> None:
    """The owner writes again (and shares) recorded chunks whose part files are gone: removed
    after a failure that could not be recorded, or lost by the shared storage. No one else may
    claim a recorded chunk; the bytes are the same as the first time."""
    from patientgen.formats import bundle

    job, formats = run.job, list(run.job.config["formats"])
    parts = run.files.parts(job.job_id)
    for index in lost:
        check_boundary(run, beat)
        bundle.write_chunk(scenario, formats, parts, index, *ranges[index], whole=False)
        run.files.share(job.job_id, parts, bundle.chunk_files(formats, index))
        log.info(
            "job %s: chunk %d [%d, %d) written again by %s (its parts were gone)",
            job.job_id,
            index,
            *ranges[index],
            run.worker_id,
        )


class _Sender:
    """Runs each chunk's share-and-record after the next chunk is written, in a thread of its
    own, when `overlap` (object storage: sending is waiting, not computing); at once otherwise.
    At most one is in flight: `then` first waits for the one before, and its error (Cancel,
    StoreUnavailable...) is raised there, in the owner's thread, as it would have been had the
    two run in turn. Leaving the block waits for the one in flight, so nothing of a chunk is
    still being sent once the owner's run moves on, whatever ended it."""

    def __init__(self, overlap: bool) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="share") if overlap else None
        self._pending: Future[bool] | None = None

    def then(self, action: Callable[[], bool]) -> None:
        if self._pool is None:
            action()
            return
        self.wait()
        self._pending = self._pool.submit(action)

    def wait(self) -> bool:
        """Wait for the one in flight (its error raised here); whether there was one."""
        pending, self._pending = self._pending, None
        if pending is None:
            return False
        pending.result()
        return True

    def __enter__(self) -> _Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _claim_own(run: _Run) -> ChunkClaim:
    claim = run.store.claim_chunk(run.worker_id, run.settings.lease_seconds, job_id=run.job.job_id)
    assert claim is not None  # the owner's claim always says how the phase stands
    return claim


def _write_claimed(
    run: _Run,
    claim: ChunkClaim,
    scenario: Any,
    ranges: list[tuple[int, int]],
    progress: Progress | None,
    parts: Path | None = None,
) -> bool:
    """Write the claimed chunk into `parts` (default: the job's parts folder, which the owner
    may create) and record it (fenced); whether it was recorded. ChunkLost is logged (another
    worker holds the chunk now, or the job left this run); CancelRequested is raised as
    Cancel."""
    summary = _write_part(run, claim, scenario, ranges, parts)
    return _share_and_record(run, claim, summary, ranges, progress, parts)


def _write_part(
    run: _Run,
    claim: ChunkClaim,
    scenario: Any,
    ranges: list[tuple[int, int]],
    parts: Path | None = None,
) -> dict[str, Any]:
    """Write the claimed chunk's part files into `parts` (default: the job's parts folder,
    which the owner may create), its claim extended meanwhile; its partial summary."""
    from patientgen.formats import bundle

    job, index = claim.job, claim.chunk
    assert index is not None
    log.info("job %s: claimed chunk %d (%s)", job.job_id, index, run.worker_id)
    folder = run.files.parts(job.job_id) if parts is None else parts
    with ChunkBeat(run.store, claim, run.worker_id, run.settings):
        return bundle.write_chunk(
            scenario,
            list(job.config["formats"]),
            folder,
            index,
            *ranges[index],
            whole=False,
            create=parts is None,
        )


def _share_and_record(
    run: _Run,
    claim: ChunkClaim,
    summary: dict[str, Any],
    ranges: list[tuple[int, int]],
    progress: Progress | None,
    parts: Path | None = None,
) -> bool:
    """Share the written chunk's parts (its claim extended meanwhile), then record it: see
    `_write_claimed`."""
    from patientgen.formats import bundle

    job, index = claim.job, claim.chunk
    assert index is not None
    start, stop_at = ranges[index]
    folder = run.files.parts(job.job_id) if parts is None else parts
    with ChunkBeat(run.store, claim, run.worker_id, run.settings):
        run.files.share(job.job_id, folder, bundle.chunk_files(job.config["formats"], index))
    try:
        if progress is None:
            current = run.store.record_claimed_chunk(claim, run.worker_id, summary, stop_at - start)
        else:
            with progress.lock:
                progress.generated_here += stop_at - start
            with progress.save_lock:  # the owner's snapshot goes with its record
                _, details = progress.snapshot()
                current = run.store.record_claimed_chunk(
                    claim, run.worker_id, summary, stop_at - start, details
                )
    except ChunkLost as exc:
        log.warning("%s; its chunk was not recorded", exc)
        return False
    except CancelRequested:
        with contextlib.suppress(StoreUnavailable):
            run.store.release_chunk(claim, run.worker_id)
        raise Cancel from None
    if progress is not None:
        progress.observe(current.progress_details)
        _report(run, progress)
    log.info(
        "job %s: chunk %d [%d, %d) written by %s", job.job_id, index, start, stop_at, run.worker_id
    )
    return True


def _join_and_complete(
    run: _Run,
    beat: Heartbeat,
    progress: Progress,
    scenario: Any,
    ranges: list[tuple[int, int]],
    summaries: list[dict[str, Any]],
) -> RunOutcome:
    """Join every chunk's parts into the final files and complete the job (fenced, once). The
    parts other workers wrote are gathered first; a recorded chunk whose parts are nowhere (the
    shared storage lost them) is written again, unless the join had finished already."""
    from patientgen.formats import bundle

    store, job, worker_id = run.store, run.job, run.worker_id
    formats = list(job.config["formats"])
    parts = run.files.parts(job.job_id)
    check_boundary(run, beat)
    if len(summaries) > 1:
        with progress.lock:
            progress.phase = "finalizing"
        with progress.save_lock:
            percent, details = progress.snapshot()
            store.heartbeat(
                job.job_id,
                worker_id,
                run.settings.lease_seconds,
                percent,
                details,
                keep_counts=progress.shared,
            )
    out = run.files.output(job)
    if len(summaries) > 1:  # the chunks other hosts wrote, and the care-chain result that
        # summary.json takes its statistics from (a process that took the job over at its join
        # has neither: the phase did not run here)
        chain = [bundle.CHAIN_FILE] if scenario.medical_plan is not None else []
        run.files.gather(
            job.job_id,
            [*chain, *(n for i in range(len(summaries)) for n in bundle.chunk_files(formats, i))],
        )
        gone = bundle.missing_chunks(parts, formats, range(len(summaries)))
        if gone and not bundle.is_finished(scenario, formats, out):
            _write_again(run, beat, scenario, ranges, gone)
    merged = bundle.merge_summaries(summaries)
    written = bundle.finalize(
        scenario, formats, parts, out, summaries, merged=merged, attempt=job.attempts
    )
    if out != run.files.folder(job.job_id):
        run.written = [f.name for f in written]
    else:
        joined = bundle.concatenations(formats, len(summaries)) if len(summaries) > 1 else {}
        run.files.publish(job.job_id, [f.name for f in written], joined)
    try:
        store.finish(
            job.job_id,
            worker_id,
            Action.COMPLETE,
            output_files=[f.as_dict() for f in bundle.outputs(written)],
            summary=merged,
            # the parts are garbage now; with --out the job's own folder held only them
            inside=lambda j: run.files.detach(
                j, Scope.PARTS if out == run.files.folder(j.job_id) else Scope.ALL
            ),
        )
    except CancelRequested:
        raise Cancel from None
    return RunOutcome.COMPLETED


def help_chunk(
    store: JobStore, settings: Settings, worker_id: str, stop: threading.Event | None = None
) -> bool:
    """Claim one chunk of another worker's running job and write and record it (see the module
    docstring); False when no job had a chunk free. The helper abandons the chunk (its claim
    released, only its own temporary files removed) when its job left the run it was claimed
    in, was asked to cancel, or the helper's worker is stopping; StoreUnavailable when it could
    not reach the database or the object storage (write_claimed_chunk)."""
    claim = store.claim_chunk(worker_id, settings.lease_seconds)
    if claim is None:
        return False
    write_claimed_chunk(store, settings, worker_id, claim, stop)
    return True


def write_claimed_chunk(
    store: JobStore,
    settings: Settings,
    worker_id: str,
    claim: ChunkClaim,
    stop: threading.Event | None = None,
) -> bool:
    """A helper writes and records the chunk it claimed; whether it was recorded (else it was
    abandoned, see help_chunk). StoreUnavailable when the database or the object storage could
    not be reached, the chunk given back first if the database answers."""
    from patientgen.formats import bundle
    from patientgen.scenario import Scenario

    job = claim.job
    files = job_files(settings)
    run = _Run(store, files, settings, worker_id, job, stop or threading.Event(), None)
    scenario = Scenario.model_validate(job.config["scenario"])
    ranges = bundle.chunk_ranges(
        scenario.total_patients, int(job.config.get("chunk_size") or settings.chunk_size)
    )
    needs = [bundle.CHAIN_FILE] if scenario.medical_plan is not None else []
    recorded = False
    try:
        if run.stop.is_set():
            raise Cancel
        with files.helping(job.job_id, needs) as parts:
            recorded = _write_claimed(run, claim, scenario, ranges, None, parts)
        if recorded and settings.chunk_delay:
            run.stop.wait(settings.chunk_delay)
    except (Cancel, FileNotFoundError) as exc:
        # asked to cancel or stop, or the parts folder went with the job's run
        log.info(
            "job %s: helper %s abandoned chunk %s (%r)", job.job_id, worker_id, claim.chunk, exc
        )
    except StoreUnavailable as exc:  # the caller pauses before it claims again
        log.warning(
            "job %s: store unavailable (%s) helping with chunk %s", job.job_id, exc, claim.chunk
        )
        raise
    except Exception:  # a helper's failure is not the job's
        log.exception("job %s: helper %s failed on chunk %s", job.job_id, worker_id, claim.chunk)
    finally:
        # a chunk not recorded goes back at once (if the database answers; else its claim
        # expires), for a worker that can write it; a claim no longer held is left alone
        if not recorded:
            with contextlib.suppress(StoreUnavailable):
                store.release_chunk(claim, worker_id)
    return recorded
