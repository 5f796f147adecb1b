"""One job's chunks on several worker processes (issue 13, item 1), on a real SQLite file and on
PostgreSQL: `patientgen worker` processes share one data folder; idle ones claim chunks of the
running job one at a time.

- The files of a 10,000-patient job (chunks of 500; NDJSON, CSV, FHIR) are byte-identical
  (sha256) to a clean in-process run with 1, 2 and 4 workers, every chunk is written exactly
  once, and with more than one worker more than one process writes chunks.
- kill -9 of a helper while it holds a chunk: its claim expires, that chunk alone is written
  again (by the owner or another helper), the job completes once with identical files and
  nothing left behind.
- kill -9 of the job's owner: the job is reaped and resumed by a helper, the chunks recorded by
  anyone are kept (those in flight in the dead owner's run are written again), identical files;
  the same when the owner dies while it joins the parts (every chunk recorded by it and helpers).
- A helper that writes after the job ended makes no folder and records nothing; with a medical
  plan, helpers need the owner's care-chain result and the files are identical too; a small job
  submitted while workers help with a long one runs at their next chunk boundary.
"""

from __future__ import annotations

import contextlib
import re
import signal
import sqlite3
from collections.abc import Callable, Iterator
from uuid import UUID

import pytest
from care_chain_support import drill

from patientgen.formats import bundle
from patientgen.jobs import migrations
from patientgen.jobs.files import JobFiles
from patientgen.jobs.model import Job, JobStatus
from patientgen.jobs.runner import write_claimed_chunk
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from tests.faults.support import install_audit, transitions
from tests.jobs.helpers import WorkerProcess, digests
from tests.support import wait_until

pytestmark = pytest.mark.slow

FORMATS = ["ndjson", "csv", "fhir"]
PATIENTS = 10_000
CHUNK = 500
CHUNKS = PATIENTS // CHUNK
SCENARIO = Scenario(name="chunk claims", total_patients=PATIENTS, seed=13)
#: Long enough that a busy 2-core machine never loses a live lease; recovery takes about this.
LEASE = 4.0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    """sha256 of every file of a clean run in this process (internal indexes included)."""
    out = tmp_path_factory.mktemp("reference")
    return {f.name: f.sha256 for f in bundle.write_all(SCENARIO, FORMATS, out, chunk_size=CHUNK)}


@pytest.fixture
def big(settings):
    """The test's settings with chunks of 500 and a lease a loaded machine keeps."""
    return settings.model_copy(update={"chunk_size": CHUNK, "lease_seconds": LEASE})


def _writes(text: str, job_id: UUID) -> list[int]:
    return [int(m) for m in re.findall(rf"job {job_id}: chunk (\d+) \[\d+, \d+\) written", text)]


def _claims(url: str, job_id: UUID) -> dict[int, str]:
    """The job's chunk claims as stored: chunk -> worker id."""
    if url.startswith("sqlite"):
        with sqlite3.connect(migrations.sqlite_path(url)) as conn:
            rows = conn.execute(
                "SELECT chunk, worker_id FROM chunk_claims WHERE job_id = ?", (str(job_id),)
            ).fetchall()
    else:
        import psycopg

        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT chunk, worker_id FROM chunk_claims WHERE job_id = %s::uuid", (job_id,)
            ).fetchall()
    return {int(chunk): str(worker) for chunk, worker in rows}


def _held_by(url: str, job_id: UUID, pid: int) -> int | None:
    """A chunk the worker process `pid` holds a claim on (its id is host-pid-start)."""
    return next((c for c, w in _claims(url, job_id).items() if f"-{pid}-" in w), None)


def _completed(service: JobService, job_id: UUID):
    job = service.get(job_id)
    assert job.status not in (JobStatus.FAILED, JobStatus.CANCELLED), job.error
    return job.status == JobStatus.COMPLETED and job


@contextlib.contextmanager
def _shared_run(
    service: JobService, settings, tmp_path, helpers: int
) -> Iterator[tuple[Job, WorkerProcess, list[WorkerProcess]]]:
    """The job submitted, its owner (a worker process) past its first recorded chunk, then
    `helpers` more worker processes; every one of them killed (-9) at the end."""
    job, _ = service.submit(SCENARIO, FORMATS, "alice")
    owner = WorkerProcess(settings, tmp_path / "owner.log")
    started: list[WorkerProcess] = []
    try:
        wait_until(lambda: len(service.chunks(job.job_id)) >= 1, timeout=60)
        assert f"-{owner.proc.pid}-" in str(service.get(job.job_id).lease_owner)
        started += [WorkerProcess(settings, tmp_path / f"h{i}.log") for i in range(helpers)]
        yield job, owner, started
    finally:
        for proc in (owner, *started):
            proc.kill_group()
            proc.wait()


def _assert_identical(service: JobService, job, reference: dict[str, str]) -> None:
    """The job's folder holds exactly a clean run's files (no parts folder, no temporary file
    of any worker), and each output file listed has the clean run's sha256."""
    folder = service.job_dir(job.job_id)
    assert digests(folder) == reference
    assert job.output_files
    for listed in job.output_files:
        assert reference[listed["name"]] == listed["sha256"]
    others = [p.name for p in folder.parent.iterdir() if p.name not in (".trash", folder.name)]
    assert others == []


def _run_to_completion(
    service: JobService, settings, tmp_path, submit: Callable[[], Job], workers: int
) -> tuple[Job, list[WorkerProcess]]:
    """`workers` worker processes, every one started before `submit()` makes the job (else on a
    loaded machine the first could write every chunk before the others were up), run the job
    until it is completed; then all killed (-9)."""
    procs = [WorkerProcess(settings, tmp_path / f"w{i}.log") for i in range(workers)]
    try:
        _wait_started(procs)
        job = submit()
        final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
    finally:
        for proc in procs:
            proc.kill_group()
            proc.wait()
    return final, procs


def _wait_started(procs: list[WorkerProcess]) -> None:
    """Wait until every worker process has logged its start."""
    try:
        wait_until(lambda: all(" started" in p.text() for p in procs), timeout=60, step=0.05)
    except AssertionError:  # say where each worker was (a CI run once saw one not start)
        states = [f"worker {i} (exit {p.proc.poll()}): {p.text()[-2000:]!r}" for i, p in
                  enumerate(procs)]  # fmt: skip
        raise AssertionError("workers not started in 60 s:\n" + "\n".join(states)) from None


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_output_identical_for_1_2_4_workers(big, tmp_path, reference, workers):
    with JobService.open(big) as service:
        final, procs = _run_to_completion(
            service, big, tmp_path, lambda: service.submit(SCENARIO, FORMATS, "alice")[0], workers
        )
        _assert_identical(service, final, reference)
        assert final.attempts == 1 and final.progress == 100
        writes = {i: _writes(proc.text(), final.job_id) for i, proc in enumerate(procs)}
        # every chunk written exactly once, whoever wrote it
        assert sorted(c for w in writes.values() for c in w) == list(range(CHUNKS))
        writers = [i for i, w in writes.items() if w]
        if workers > 1:  # the idle workers helped with the one job
            assert len(writers) > 1, writes
        assert final.progress_details["chunks_done"] == CHUNKS
        assert final.progress_details["patients_done"] == PATIENTS


def test_kill9_of_a_helper_holding_a_chunk(big, tmp_path, reference):
    slow = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(slow) as service:
        with _shared_run(service, slow, tmp_path, 1) as (job, owner, (helper,)):
            wait_until(lambda: _writes(helper.text(), job.job_id), timeout=60)

            def holding() -> tuple[int] | None:  # a chunk after the one(s) it recorded
                chunk = _held_by(slow.database_url, job.job_id, helper.proc.pid)
                text = helper.text()
                # its log says it writes the chunk (the claim commits before the line is written:
                # a kill between the two, on a loaded machine, left no line to check below)
                fresh = (
                    chunk is not None
                    and chunk not in _writes(text, job.job_id)
                    and f"claimed chunk {chunk} " in text
                )
                return (chunk,) if fresh else None

            (held,) = wait_until(holding, timeout=60)
            helper.kill_group()  # kill -9 while it writes chunk `held`
            helper.wait()
            # the claim is left behind, unrecorded: the owner takes it over once it expires
            assert held in {c for c, w in _claims(slow.database_url, job.job_id).items()}
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        by_helper = _writes(helper.text(), job.job_id)
        by_owner = _writes(owner.text(), job.job_id)
        assert by_helper and held not in by_helper
        # only the chunk the helper died in was written again: each chunk recorded once
        assert sorted(by_helper + by_owner) == list(range(CHUNKS))
        assert f"claimed chunk {held} " in helper.text()
        assert final.attempts == 1  # the owner never lost the job: it completed once
        _assert_identical(service, final, reference)


def test_kill9_of_the_owner(big, tmp_path, reference):
    slow = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(slow) as service:
        with _shared_run(service, slow, tmp_path, 2) as (job, owner, helpers):
            wait_until(lambda: any(_writes(h.text(), job.job_id) for h in helpers), timeout=60)
            owner.kill_group()  # kill -9 of the job's owner, its helpers at work
            owner.wait()
            before = {c.chunk for c in service.chunks(job.job_id)}
            marks = [len(h.text()) for h in helpers]  # what they wrote from now on
            assert 1 <= len(before) < CHUNKS
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        assert final.attempts == 2  # reaped once, resumed by a helper
        # the chunks recorded when the owner died were kept: none was written again
        again = [
            c
            for h, mark in zip(helpers, marks, strict=True)
            for c in _writes(h.text()[mark:], job.job_id)
        ]
        assert not before & set(again), (before, again)
        _assert_identical(service, final, reference)


def test_kill9_of_the_owner_while_it_joins(big, tmp_path, reference):
    """kill -9 of the job's owner in its join phase (every chunk recorded, by the owner and by
    helpers; the owner has recorded phase `finalizing`, the store's sign that it joins the
    parts, and its temporary files are there), helpers present: the job is reaped and resumed by
    a helper, which writes no chunk again and joins the same parts; the job is completed once,
    byte-identical, and no part folder or temporary file of the dead join is left."""
    slow = big.model_copy(update={"chunk_delay": 0.2})
    with JobService.open(slow) as service:
        install_audit(slow.database_url)
        with _shared_run(service, slow, tmp_path, 2) as (job, owner, helpers):

            def joining() -> Job | None:
                now = service.get(job.job_id)
                phase = now.progress_details.get("phase")
                return now if phase == "finalizing" and now.status == JobStatus.RUNNING else None

            at = wait_until(joining, timeout=120, step=0.005)
            folder = service.job_dir(job.job_id)
            # and the join has begun writing (its temporary files are in the job's folder)
            wait_until(lambda: any(".tmp-" in p.name for p in folder.iterdir()), step=0.002)
            owner.kill_group()  # kill -9 of the owner while it joins
            owner.wait()
            killed = service.get(job.job_id)
            left = sorted(p.name for p in folder.iterdir())
            print("left by the dead join:", left)
            assert any(".tmp-" in name for name in left)
            # it died in the join: the job still runs its first attempt, every chunk recorded
            assert killed.status == JobStatus.RUNNING and killed.attempts == 1, killed
            assert {c.chunk for c in service.chunks(job.job_id)} == set(range(CHUNKS))
            writers = {c.worker_id for c in service.chunks(job.job_id)}
            assert len(writers) > 1 and at.lease_owner in writers  # the owner's and helpers'
            marks = [len(h.text()) for h in helpers]
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
        assert final.attempts == 2  # reaped once, resumed by a helper
        again = [
            c
            for h, mark in zip(helpers, marks, strict=True)
            for c in _writes(h.text()[mark:], job.job_id)
        ]
        assert again == []  # every chunk was recorded: none was written again
        news = [new for _, new in transitions(slow.database_url)[str(job.job_id)]]
        assert news.count("completed") == 1, news
        _assert_identical(service, final, reference)


def test_a_late_helper_leaves_nothing_once_the_job_ended(service, store, settings):
    """A helper that claimed a chunk and writes it only after the job ended (cancelled, its
    folder removed in that write) fails on the missing parts folder: it creates nothing, records
    nothing, and gives its claim back."""
    job, _ = service.submit(Scenario(total_patients=15, seed=3), ["ndjson", "csv"], "alice")
    (job,) = store.claim("owner", 30)
    files = JobFiles(settings.data_dir)
    files.parts(job.job_id).mkdir(parents=True)
    store.open_chunks(job.job_id, "owner", 3)
    claim = store.claim_chunk("helper", 30)
    assert claim is not None and claim.chunk == 0
    service.cancel(job.job_id)
    store.mark_cancelled(job.job_id, "owner", inside=lambda j: files.detach(j))
    files.purge()
    assert not files.folder(job.job_id).exists()
    assert write_claimed_chunk(store, settings, "helper", claim) is False
    assert not files.folder(job.job_id).exists()  # no parts folder made again
    assert [p.name for p in files.root.iterdir() if any(p.iterdir())] == []
    assert store.chunks(job.job_id) == []


def test_a_helper_waits_for_the_flow_result(service, store, settings):
    """With a medical plan, a chunk needs the care-chain result the owner writes first: a
    helper never computes or writes it (FileNotFoundError), however early it comes."""
    scenario = drill("starved", total_patients=30, seed=4)
    job, _ = service.submit(scenario, ["ndjson"], "alice")
    parts = JobFiles(settings.data_dir).parts(job.job_id)
    parts.mkdir(parents=True)
    with pytest.raises(FileNotFoundError):
        bundle.write_chunk(scenario, ["ndjson"], parts, 1, 5, 10, create=False)
    assert list(parts.iterdir()) == []
    bundle.care_chain(scenario, parts)  # the owner's first phase
    bundle.write_chunk(scenario, ["ndjson"], parts, 1, 5, 10, create=False)
    assert (parts / bundle.CHAIN_FILE).is_file()


def test_a_job_with_a_medical_plan_on_two_workers(big, tmp_path):
    scenario = drill("starved", total_patients=3_000, name="chain claims", seed=8)
    written = bundle.write_all(scenario, FORMATS, tmp_path / "reference", chunk_size=CHUNK)
    reference = {f.name: f.sha256 for f in written}
    # each chunk takes at least 0.3 s: an idle worker looks for chunks to help with about once
    # a second, and six chunks of 500 are otherwise written in less
    paced = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(paced) as service:
        final, procs = _run_to_completion(
            service, paced, tmp_path, lambda: service.submit(scenario, FORMATS, "alice")[0], 2
        )
        writes = [_writes(proc.text(), final.job_id) for proc in procs]
        assert sorted(c for w in writes for c in w) == list(range(6))
        assert all(writes), writes  # both wrote chunks
        _assert_identical(service, final, reference)


def test_pending_jobs_come_before_helping(big, tmp_path):
    """Two workers on a long job: a small job submitted meanwhile is run at the next chunk
    boundary, long before the big job ends. Both workers are up before the long job is
    submitted: a fresh-clone run of 58aa27c timed out waiting for both to write, either because
    the first wrote every chunk before the second was up or because the second never started
    (two workers making a new data folder at once: tests/test_folders.py); a worker that does
    not start is now said (_wait_started)."""
    slow = big.model_copy(update={"chunk_delay": 0.5})
    with JobService.open(slow) as service:
        procs = [WorkerProcess(slow, tmp_path / f"w{i}.log") for i in range(2)]
        try:
            _wait_started(procs)
            huge, _ = service.submit(SCENARIO, FORMATS, "alice")
            wait_until(lambda: all(_writes(p.text(), huge.job_id) for p in procs), timeout=60)
            small, _ = service.submit(Scenario(total_patients=30, seed=1), ["ndjson"], "bob")
            wait_until(lambda: _completed(service, small.job_id), timeout=30)
            assert service.get(huge.job_id).status == JobStatus.RUNNING
            assert len(service.chunks(huge.job_id)) < CHUNKS - 2
        finally:
            for proc in procs:
                proc.kill_group()
                proc.wait()


def test_a_helper_paused_past_its_claim_wakes_after_the_job_completed(big, tmp_path, reference):
    """SIGSTOP of a helper while it writes a chunk, until its claim expired, the owner wrote
    that chunk and completed the job; SIGCONT: the helper records nothing, and its files (in
    the parts folder the completion removed) are nowhere: the job's folder is exactly a clean
    run's."""
    slow = big.model_copy(update={"chunk_delay": 0.2})
    with JobService.open(slow) as service:
        with _shared_run(service, slow, tmp_path, 1) as (job, owner, (helper,)):
            held = wait_until(
                lambda: (
                    (c := _held_by(slow.database_url, job.job_id, helper.proc.pid)) is not None
                    and (c,)
                ),
                timeout=60,
            )
            helper.signal(signal.SIGSTOP)
            final = wait_until(lambda: _completed(service, job.job_id), timeout=300, step=0.2)
            helper.signal(signal.SIGCONT)
            wait_until(
                lambda: (
                    f"abandoned chunk {held[0]} " in helper.text()
                    or f"no longer holds chunk {held[0]}" in helper.text()
                ),
                timeout=60,
            )
        assert held[0] in _writes(owner.text(), job.job_id)  # the owner took the chunk over
        assert held[0] not in _writes(helper.text(), job.job_id)
        assert service.get(job.job_id).version == final.version  # nothing written after
        _assert_identical(service, final, reference)


def test_cancel_while_helpers_hold_chunks(big, tmp_path):
    """A cancel while the owner and two helpers write chunks ends the job cancelled; the
    helpers' chunks in flight are not recorded, and once every worker stopped no file of the
    job is left anywhere in the data folder."""
    slow = big.model_copy(update={"chunk_delay": 0.3})
    with JobService.open(slow) as service:
        with _shared_run(service, slow, tmp_path, 2) as (job, owner, helpers):
            wait_until(lambda: all(_writes(h.text(), job.job_id) for h in helpers), timeout=60)
            service.cancel(job.job_id)
            final = wait_until(
                lambda: (j := service.get(job.job_id)).status == JobStatus.CANCELLED and j,
                timeout=60,
            )
            for proc in (owner, *helpers):  # graceful stops: each finishes what it writes
                proc.signal(signal.SIGTERM)
            assert all(proc.wait(60) == 0 for proc in (owner, *helpers))
        assert final.attempts == 1 and service.chunks(job.job_id) == []
        jobs = JobFiles(slow.data_dir).root
        left = [p for p in jobs.rglob("*") if p.is_file()]
        assert left == [] and not JobFiles(slow.data_dir).folder(job.job_id).exists()
