"""Jobs' files in S3-compatible object storage (issue 13, item 2), on a real SQLite file and on
PostgreSQL, with a real S3 server (tests/s3_server.py) and real worker processes.

"Hosts" here are data folders: each worker process has its own, as a worker on another machine
would, and they share only the database and the bucket.

- Two hosts write one job's chunks (the second helps): every object of the job is
  byte-identical to a clean in-process run on the local disk, no part object, unfinished upload
  or scratch folder is left, and each host wrote chunks.
- kill -9 of the helper while it holds a chunk: the job completes once, identical.
- The object store unreachable mid-job (its connections cut and refused for a while): the job
  is not failed for it; it completes once, identical.
- The object store restarted mid-job (its gateway killed -9, its objects kept): the chunks
  host B recorded before it, only in the bucket, are joined without being written again; the
  job completes once, identical.
- A helper that cannot reach the store gives its chunk back at once and pauses; the owner
  writes every chunk, identical.
- serve and a worker started while the object store refuses every connection wait for it, as
  for the database: /readyz 503 naming the storage, a submit accepted, the job handed back, then
  completed once, identical, when the store answers.
- A third host that ran nothing serves the job over HTTP: downloads streamed from the bucket
  (ranges, HEAD, 416), the ZIP and the patient pages from a copy it fetches once; a presigned
  URL downloads the same bytes.
- What a crash leaves (the objects of a job that is gone, the parts and unfinished uploads of a
  completed one) is removed by the sweep, under the job's row lock; a deleted job takes its
  objects with it, and a completed job's final files are never swept.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import socket
import subprocess
import time
import uuid
import zipfile
from pathlib import Path
from uuid import UUID

import httpx
import orjson
import pytest

from patientgen.formats import bundle, casualties
from patientgen.jobs.files import ObjectFiles, job_files
from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from tests import s3_server
from tests.jobs.helpers import SCRIPT, WorkerProcess, env_for
from tests.support import free_port, stop_group, wait_until

pytestmark = pytest.mark.slow

FORMATS = ["ndjson", "csv", "fhir"]
PATIENTS = 3_000
CHUNK = 250
SCENARIO = Scenario(name="object storage", total_patients=PATIENTS, seed=21)
#: The same with a medical plan: a job whose first phase is the care-chain simulation.
CHAIN_SCENARIO = Scenario.model_validate({**SCENARIO.model_dump(mode="json"), "capacity": "sized"})
LEASE = 4.0
#: Seconds a worker waits after each chunk where a second host must start while the job runs
#: (a worker process takes a second or two to start on a loaded machine; the owner alone would
#: otherwise write all the chunks first).
PACE = 0.3


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server.running(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, str]:
    """sha256 of every file of a clean in-process run on the local disk."""
    out = tmp_path_factory.mktemp("reference")
    return {f.name: f.sha256 for f in bundle.write_all(SCENARIO, FORMATS, out, chunk_size=CHUNK)}


@pytest.fixture
def bucket() -> str:
    return f"pg-{uuid.uuid4().hex[:20]}"


@pytest.fixture(scope="module")
def chain_reference(tmp_path_factory) -> dict[str, str]:
    """As `reference`, for CHAIN_SCENARIO."""
    out = tmp_path_factory.mktemp("chain-reference")
    files = bundle.write_all(CHAIN_SCENARIO, FORMATS, out, chunk_size=CHUNK)
    return {f.name: f.sha256 for f in files}


@pytest.fixture
def shared(settings, s3, bucket, tmp_path):
    """Settings of host A on the test's database and bucket (chunks of 250, a 4 s lease)."""
    return settings.model_copy(
        update={
            "chunk_size": CHUNK,
            "lease_seconds": LEASE,
            "data_dir": tmp_path / "host-a",
            **s3_server.storage_env(s3.endpoint, bucket),
        }
    )


def _host(settings, tmp_path: Path, name: str, **update):
    return settings.model_copy(update={"data_dir": tmp_path / name, **update})


def _storage_env(settings) -> dict[str, str]:
    """The environment of a process using the settings' object storage."""
    env = {
        f"PATIENTGEN_{k.upper()}": str(getattr(settings, k))
        for k in ("storage_url", "storage_endpoint", "storage_region", "storage_access_key")
    }
    env["PATIENTGEN_STORAGE_SECRET_KEY"] = s3_server.SECRET_KEY
    return env


def _worker(settings, log: Path) -> WorkerProcess:
    return WorkerProcess(settings, log, environ=_storage_env(settings))


def _job_objects(settings, job_id: UUID) -> dict[str, str]:
    """sha256 of each object of the job, by name under the job's prefix."""
    prefix = f"pg/jobs/{job_id}/"
    bucket = settings.storage_url.removeprefix("s3://").split("/")[0]
    found = s3_server.objects(settings.storage_endpoint, bucket, prefix)
    return {k[len(prefix) :]: hashlib.sha256(v).hexdigest() for k, v in found.items()}


def _bucket_of(settings) -> str:
    return settings.storage_url.removeprefix("s3://").split("/")[0]


def _completed(service: JobService, job_id: UUID):
    job = service.get(job_id)
    assert job.status not in (JobStatus.FAILED, JobStatus.CANCELLED), job.error
    return job.status == JobStatus.COMPLETED and job


def _finished(service: JobService, settings, job_id: UUID):
    """The job once completed and its parts removed from the bucket (right after the
    completion's commit, by the worker that completed it)."""
    final = wait_until(lambda: _completed(service, job_id), timeout=240, step=0.2)
    parts = f"pg/jobs/{job_id}/.parts/"
    wait_until(lambda: not s3_server.keys(settings.storage_endpoint, _bucket_of(settings), parts))
    return final


def _files_in(folder: Path) -> list[str]:
    """The files of a host's copy, without its read mark."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".read")


def _aged(folder: Path, seconds: float) -> None:
    """Make the copy look last written and read `seconds` ago."""
    for path in (folder, *folder.iterdir()):
        os.utime(path, (time.time() - seconds, time.time() - seconds))


def _fetched(files: ObjectFiles, job, names=None) -> Path:
    """A host's copy of the job's files, fetched and then let go (held by no reader)."""
    with files.reading(job, names) as folder:
        return folder


def _overlapped(log: str, job_id: UUID) -> bool:
    """Whether the owner claimed (and began writing) a chunk while the one before was still
    being sent to the bucket, not yet recorded: its sending overlaps the next chunk's writing."""
    lines = log.splitlines()

    def first(text: str) -> int:
        return next((i for i, line in enumerate(lines) if text in line), len(lines))

    return any(
        first(f"job {job_id}: claimed chunk {k + 1} ") < first(f"job {job_id}: chunk {k} [")
        for k in range(PATIENTS // CHUNK - 1)
    )


def _writers(logs: list[WorkerProcess], job_id: UUID) -> list[set[int]]:
    pattern = rf"job {job_id}: chunk (\d+) \[\d+, \d+\) written"
    return [{int(m) for m in re.findall(pattern, w.text())} for w in logs]


def _assert_clean(settings, job, reference: dict[str, str], *hosts: Path) -> None:
    """The bucket holds exactly the clean run's files for the job (no part, no unfinished
    upload), the job lists the same sha256, and no host kept a parts or scratch folder."""
    assert _job_objects(settings, job.job_id) == reference
    assert s3_server.uploads(settings.storage_endpoint, _bucket_of(settings)) == []
    for listed in job.output_files:
        assert reference[listed["name"]] == listed["sha256"]
    for host in hosts:
        jobs = host / "jobs"
        assert not (jobs / str(job.job_id) / ".parts").exists()
        assert not any((jobs / ".scratch").glob("*")), list((jobs / ".scratch").glob("*"))


@contextlib.contextmanager
def _two_hosts(
    service: JobService, shared, tmp_path: Path, scenario: Scenario = SCENARIO, **host_b_update
):
    """The job of `scenario` submitted, host A's worker (its owner) past its first recorded
    chunk, then host B's worker (its settings `shared` with `host_b_update`), up to its first
    claim; both killed (-9) at the end. Yields the job, both workers and host B's settings."""
    host_b = _host(shared, tmp_path, "host-b", **host_b_update)
    job, _ = service.submit(scenario, FORMATS, "alice")
    owner = _worker(shared, tmp_path / "a.log")
    helper = None
    try:
        wait_until(lambda: len(service.chunks(job.job_id)) >= 1, timeout=60)
        helper = _worker(host_b, tmp_path / "b.log")
        # the owner paused from the helper's start to its first claim (at most 2 s, half the
        # lease): on a loaded machine the owner wrote every chunk before the helper was up
        wait_until(lambda: " started" in helper.text(), timeout=60, step=0.05)
        owner.signal(signal.SIGSTOP)
        try:
            with contextlib.suppress(AssertionError):
                wait_until(lambda: "claimed chunk" in helper.text(), timeout=2, step=0.05)
        finally:
            owner.signal(signal.SIGCONT)
        yield job, owner, helper, host_b
    finally:
        for proc in (owner, helper):
            if proc is not None:
                proc.kill_group()
                proc.wait()


def test_two_hosts_write_one_job_identically(shared, tmp_path, reference):
    paced = shared.model_copy(update={"chunk_delay": PACE})
    with JobService.open(shared) as service:
        with _two_hosts(service, paced, tmp_path) as (job, owner, helper, host_b):
            final = _finished(service, shared, job.job_id)
        _assert_clean(shared, final, reference, shared.data_dir, host_b.data_dir)
        a, b = _writers([owner, helper], job.job_id)
        assert a and b, (a, b)  # both hosts wrote chunks
        assert a | b == set(range(PATIENTS // CHUNK)) and not a & b
        assert final.attempts == 1
        # host B has no copy of the final files: it only helped
        assert not (host_b.data_dir / "jobs" / str(job.job_id)).exists()


def test_kill9_of_a_helper_holding_a_chunk(shared, tmp_path, reference):
    from tests.jobs.test_chunk_claims import _held_by

    paced = shared.model_copy(update={"chunk_delay": PACE})
    with JobService.open(shared) as service:
        with _two_hosts(service, paced, tmp_path) as (job, owner, helper, host_b):
            scratch = host_b.data_dir / "jobs" / ".scratch"

            def caught_writing() -> int | None:
                """The helper stopped (SIGSTOP) while it holds a claim, its scratch folder made,
                and has not recorded the chunk: the claim is still there once it is stopped. A
                helper that recorded it between the two looks (its chunk is small: on a loaded
                machine the kill came after the record, once) goes on, and is caught at a later
                chunk."""
                held = _held_by(shared.database_url, job.job_id, helper.proc.pid)
                if held is None or not any(scratch.glob("*")):
                    return None
                os.killpg(helper.proc.pid, signal.SIGSTOP)
                if _held_by(shared.database_url, job.job_id, helper.proc.pid) == held:
                    return held
                os.killpg(helper.proc.pid, signal.SIGCONT)
                return None

            held = wait_until(caught_writing, timeout=60)
            helper.kill_group()  # -9 while it holds chunk `held`, unrecorded
            final = _finished(service, shared, job.job_id)
        _assert_clean(shared, final, reference, shared.data_dir)
        assert held in _writers([owner], job.job_id)[0]  # written again, by the owner
        assert final.attempts == 1
        # the dead helper's scratch folder is its host's to sweep: the next sweep there does
        assert any(scratch.glob("*"))
        ObjectFiles(host_b.data_dir, service.files.objects, host_b).sweep(service.store)  # type: ignore[attr-defined]
        assert not any(scratch.glob("*"))


def test_kill9_of_the_owner_while_it_joins(shared, tmp_path, chain_reference):
    """kill -9 of host A's owner in its join (every chunk recorded, phase `finalizing`) of a job
    with a medical plan, and of host B's helper: a fresh worker on host B takes the job over
    after the lease, gathers every part and the care-chain result from the bucket, writes no
    chunk again and does not simulate the chain again (the join reads the simulation's
    statistics for summary.json: before, a process that had not run the phase computed it
    again there), joins and completes the job once, identical, with no part or unfinished
    upload left."""
    with JobService.open(shared) as service:
        with _two_hosts(service, shared, tmp_path, CHAIN_SCENARIO) as (job, owner, helper, b):

            def joining():
                now = service.get(job.job_id)
                phase = now.progress_details.get("phase")
                return now if phase == "finalizing" and now.status == JobStatus.RUNNING else None

            wait_until(joining, timeout=120, step=0.005)
            for proc in (owner, helper):
                proc.kill_group()
                proc.wait()
            killed = service.get(job.job_id)
            assert killed.status == JobStatus.RUNNING and killed.attempts == 1, killed
            assert "care-chain phase computed" in owner.text()  # the log names a computation
            fresh = _worker(b, tmp_path / "c.log")
            try:
                final = _finished(service, shared, job.job_id)
            finally:
                fresh.kill_group()
                fresh.wait()
        _assert_clean(shared, final, chain_reference)
        assert final.attempts == 2  # reaped once, resumed on host B
        assert _writers_since(fresh, 0, job.job_id) == []  # no chunk written again
        assert "care-chain phase computed" not in fresh.text(), fresh.text()


def _writers_since(worker: WorkerProcess, mark: int, job_id: UUID) -> list[int]:
    pattern = rf"job {job_id}: chunk (\d+) \[\d+, \d+\) written"
    return [int(m) for m in re.findall(pattern, worker.text()[mark:])]


def test_parts_the_store_lost_are_written_again(shared, tmp_path, reference):
    """A chunk recorded by the helper whose part objects then vanish from the bucket (a store
    that lost them, a lifecycle rule): the owner finds them nowhere at the join, writes that
    chunk again and completes the job, identical (before, the job failed on the missing part)."""
    bucket = _bucket_of(shared)
    client = s3_server.client_for(shared.storage_endpoint)
    # half a second after each chunk: the parts go well before the owner's join
    slow = shared.model_copy(update={"chunk_delay": 0.5})
    with JobService.open(slow) as service:
        with _two_hosts(service, slow, tmp_path) as (job, owner, helper, _):
            chunk = min(wait_until(lambda: _writers([helper], job.job_id)[0], timeout=60))
            parts = f"pg/jobs/{job.job_id}/.parts/{chunk:06d}."
            lost = s3_server.keys(shared.storage_endpoint, bucket, parts)
            assert lost
            gone = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in lost]}
            )
            assert not gone.get("Errors"), gone
            # the premise: the owner has not begun joining (it gathers the parts then)
            now = service.get(job.job_id)
            assert now.progress_details.get("phase") != "finalizing", now.progress_details
            final = _finished(service, shared, job.job_id)
        _assert_clean(shared, final, reference, shared.data_dir)
        again = rf"job {job.job_id}: chunk {chunk} \[\d+, \d+\) written again"
        assert re.search(again, owner.text())


def test_object_store_unreachable_mid_job(shared, s3, tmp_path, reference):
    gate = s3_server.Gate(s3.port)
    through_gate = shared.model_copy(update={"storage_endpoint": gate.endpoint})
    try:
        with JobService.open(shared) as service:
            job, _ = service.submit(SCENARIO, FORMATS, "alice")
            worker = _worker(through_gate, tmp_path / "w.log")
            try:
                wait_until(lambda: len(service.chunks(job.job_id)) >= 2, timeout=60)
                gate.close()
                wait_until(lambda: "unavailable" in worker.text(), timeout=60, step=0.2)
                gate.open()
                final = _finished(service, shared, job.job_id)
            finally:
                worker.kill_group()
                worker.wait()
            _assert_clean(shared, final, reference, shared.data_dir)
            assert final.error is None
    finally:
        gate.stop()


def test_object_store_restarted_mid_job(shared, s3, tmp_path, reference):
    """The object store itself restarted mid-job: its gateway killed -9 and started again 3 s
    later, with chunks still to write. The chunks host B recorded before the restart exist
    only in the bucket (host A never had their parts), so the owner's join reads them after
    the restart: none is written again (a store that lost them would make the owner write
    them again, test_parts_the_store_lost_are_written_again), and the job completes once,
    identical, nothing left."""
    paced = shared.model_copy(update={"chunk_delay": PACE})
    with JobService.open(shared) as service:
        with _two_hosts(service, paced, tmp_path) as (job, owner, helper, host_b):
            by_b = wait_until(lambda: _writers([owner, helper], job.job_id)[1], timeout=60)
            assert service.get(job.job_id).status == JobStatus.RUNNING
            s3.restart(down=3.0)
            # nothing can be recorded while the store is down: work was left for after it
            assert len(service.chunks(job.job_id)) < PATIENTS // CHUNK
            final = _finished(service, shared, job.job_id)
        # while the store was down each host handed the job back and the other took it up, so
        # the host that did not complete it keeps its working parts until its next sweep
        for host in (shared, host_b):
            job_files(host).sweep(service.store)
        _assert_clean(shared, final, reference, shared.data_dir, host_b.data_dir)
        assert final.error is None
        logs = owner.text() + helper.text()
        again = {int(c) for c in re.findall(r"chunk (\d+) \[\d+, \d+\) written again", logs)}
        assert not again & by_b, (again, by_b)


def test_a_helper_that_cannot_reach_the_store_gives_its_chunks_back(
    shared, s3, tmp_path, reference
):
    """A helper whose own link to the object store is down (the owner's is up) gives back each
    chunk it claimed as soon as it cannot send it, and pauses before it claims another, instead
    of taking every free chunk in turn and holding each until its claim expires. The owner
    writes them all; the job completes once, identical."""
    from tests.jobs.test_chunk_claims import _held_by

    gate = s3_server.Gate(s3.port)
    gate.close()
    paced = shared.model_copy(update={"chunk_delay": PACE})
    failed = "store unavailable"
    try:
        with JobService.open(shared) as service:
            cut_off = _two_hosts(service, paced, tmp_path, storage_endpoint=gate.endpoint)
            with cut_off as (job, owner, helper, _):
                wait_until(lambda: failed in helper.text(), timeout=60, step=0.05)
                # its claim given back, seen while its worker pauses (0.5 s) before the next
                # claim: before, it was held until the lease ran out (4 s) while the helper
                # claimed the next chunk at once
                url, pid = shared.database_url, helper.proc.pid
                wait_until(lambda: _held_by(url, job.job_id, pid) is None, timeout=0.9)
                final = _finished(service, shared, job.job_id)
            _assert_clean(shared, final, reference, shared.data_dir)
            a, b = _writers([owner, helper], job.job_id)
            assert a == set(range(PATIENTS // CHUNK)) and not b, (a, b)
    finally:
        gate.stop()


def test_serve_and_workers_start_while_the_object_store_is_down(shared, s3, tmp_path, reference):
    """A host started while its object storage is down waits for it, as for the database: serve
    answers (/readyz 503 naming the storage, submits accepted), a worker claims and hands the
    job back without failing it, and once the store answers the job completes, identical."""
    gate = s3_server.Gate(s3.port)
    gate.close()
    through_gate = shared.model_copy(update={"storage_endpoint": gate.endpoint})
    try:
        with (
            _serving(through_gate, tmp_path / "serve.log") as api,
            httpx.Client(timeout=30) as http,
        ):
            ready = http.get(api.removesuffix("/api/v1") + "/readyz")
            assert ready.status_code == 503, ready.text
            assert ready.headers["content-type"] == "application/problem+json"
            assert "object storage" in ready.json()["detail"]
            body = {"scenario": SCENARIO.model_dump(mode="json"), "formats": FORMATS}
            sent = http.post(f"{api}/jobs", json=body)
            assert sent.status_code == 202, sent.text
            job_id = UUID(sent.json()["job_id"])
            worker = _worker(through_gate, tmp_path / "w.log")
            try:
                # the job was claimed, and left to the next claim when its parts could not go
                left = f"job {job_id}: store unavailable"
                wait_until(lambda: left in worker.text(), timeout=60, step=0.2)
                assert worker.proc.poll() is None, worker.text()
                # and it pauses before it claims again (0.5 s, doubling), not at once: over 4 s,
                # at most 5 tries (29 without the pause, a few ms apart)
                tried = worker.text().count(left)
                time.sleep(4)
                assert worker.text().count(left) - tried <= 4, worker.text()
                assert http.get(f"{api}/jobs/{job_id}").json()["status"] in ("pending", "running")
                gate.open()
                wait_until(
                    lambda: http.get(api.removesuffix("/api/v1") + "/readyz").status_code == 200
                )
                with JobService.open(shared) as service:
                    final = _finished(service, shared, job_id)
            finally:
                worker.kill_group()
                worker.wait()
        _assert_clean(shared, final, reference, shared.data_dir)
        assert final.error is None
    finally:
        gate.stop()


def test_another_host_serves_the_job(shared, tmp_path, reference):
    with JobService.open(shared) as service:
        job, _ = service.submit(SCENARIO, FORMATS, "local")  # the caller of --auth off
        with _worker(shared, tmp_path / "a.log") as owner:
            final = _finished(service, shared, job.job_id)
            assert _overlapped(owner.text(), job.job_id)
        host_c = _host(shared, tmp_path, "host-c")
        with _serving(host_c, tmp_path / "serve-c.log") as api:
            base = f"{api}/jobs/{job.job_id}"
            with httpx.Client(timeout=60) as http:
                _check_downloads(http, base, final, reference)
                # the patient pages fetch the casualty index alone, once, and read the records
                # from the bucket by ranged reads: in file order, sorted, by id
                lines = shared.data_dir / "jobs" / str(job.job_id) / "patients.ndjson"
                records = [orjson.loads(x) for x in lines.read_bytes().splitlines()]
                page = http.get(f"{base}/patients", params={"limit": 3, "offset": 10})
                assert page.status_code == 200, page.text
                assert page.json()["items"] == records[10:13]
                copy = host_c.data_dir / "jobs" / str(job.job_id)
                assert _files_in(copy) == sorted(casualties.INDEX_FILES)
                last = http.get(f"{base}/patients", params={"limit": 5, "offset": PATIENTS - 2})
                assert last.json()["items"] == records[-2:]
                newest = http.get(f"{base}/patients", params={"sort": "-index", "limit": 4})
                assert newest.json()["items"] == records[::-1][:4]
                one = records[1234]["id"]
                found = http.get(f"{base}/patients/{one}")
                assert found.status_code == 200 and found.json() == records[1234]
                assert _files_in(copy) == sorted(casualties.INDEX_FILES)
                # the ZIP reads a whole copy (the manifest last)
                archive = http.get(f"{base}/archive")
                assert archive.status_code == 200
                with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
                    for name in z.namelist():
                        assert hashlib.sha256(z.read(name)).hexdigest() == reference[name]
                assert (copy / "manifest.json").is_file()
        # host D, with PATIENTGEN_STORAGE_PRESIGN_SECONDS: a download is redirected (307) to a
        # presigned URL, which gives the same bytes without credentials
        host_d = _host(shared, tmp_path, "host-d")
        presign = {"PATIENTGEN_STORAGE_PRESIGN_SECONDS": "60"}
        with _serving(host_d, tmp_path / "serve-d.log", presign) as api:
            sent = httpx.get(f"{api}/jobs/{job.job_id}/files/patients.csv", timeout=30)
            assert sent.status_code == 307, sent.text
            url = sent.headers["location"]
            assert url.startswith(shared.storage_endpoint) and "Signature" in url
            body = httpx.get(url, timeout=30).content
            assert hashlib.sha256(body).hexdigest() == reference["patients.csv"]
            # the whole summary, which the web page reads, is never redirected: served here
            summary = httpx.get(f"{api}/jobs/{job.job_id}/summary", timeout=30)
            assert summary.status_code == 200, summary.text
            assert hashlib.sha256(summary.content).hexdigest() == reference["summary.json"]
            assert "content-disposition" not in summary.headers
        assert not (host_d.data_dir / "jobs" / str(job.job_id)).exists()  # nothing fetched


def test_a_download_holds_the_copy_until_its_response_ends(shared, tmp_path, reference):
    """A download served from a host's copy keeps that copy held (its shared lock) until the
    last byte is sent, not only while the route runs: a sweep meanwhile leaves the copy, however
    long it has been idle, and once the response has ended the sweep removes it."""
    with JobService.open(shared) as service:
        job, _ = service.submit(SCENARIO, FORMATS, "local")
        with _worker(shared, tmp_path / "a.log"):
            final = _finished(service, shared, job.job_id)
        big = max(final.output_files, key=lambda f: f["bytes"])
        assert big["bytes"] > 8 << 20  # more than the two sockets buffer: the server waits
        host_c = _host(shared, tmp_path, "host-c")
        copy = host_c.data_dir / "jobs" / str(job.job_id)
        sweeper = ObjectFiles(host_c.data_dir, service.files.objects, host_c)  # type: ignore[attr-defined]
        idle = host_c.storage_cache_seconds + 1

        def swept() -> bool:
            if copy.exists():
                _aged(copy, idle)
                sweeper.sweep_copies(service.store)
            return not copy.exists()

        with _serving(host_c, tmp_path / "serve-c.log") as api:
            base = f"{api}/jobs/{job.job_id}"
            whole = httpx.get(f"{base}/archive", timeout=60)  # makes a whole copy on host C
            assert whole.status_code == 200 and (copy / big["name"]).is_file()
            with _slow_get(f"{base}/files/{big['name']}") as (first, rest):
                assert first.startswith(b"HTTP/1.1 200"), first[:200]
                _aged(copy, idle)
                assert sweeper.sweep_copies(service.store) == 0
                assert (copy / big["name"]).is_file()
                body = rest()
            assert hashlib.sha256(body).hexdigest() == reference[big["name"]]
            wait_until(swept, timeout=10, step=0.1)  # let go with the response's end


@contextlib.contextmanager
def _slow_get(url: str):
    """A GET whose reader pauses: yields the first bytes of the response and a function that
    reads the rest and returns the body. The client's receive buffer is small, so while it
    pauses the server waits on the socket with its response unfinished."""
    target = httpx.URL(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect((target.host, target.port))
    request = (
        f"GET {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}:{target.port}\r\n"
        "Connection: close\r\n\r\n"
    )
    sock.sendall(request.encode())
    first = sock.recv(4096)

    def rest() -> bytes:
        data = bytearray(first)
        while chunk := sock.recv(1 << 16):
            data += chunk
        return bytes(data).partition(b"\r\n\r\n")[2]  # a Content-Length body, not chunked

    try:
        yield first, rest
    finally:
        sock.close()


@contextlib.contextmanager
def _serving(settings, log: Path, extra: dict[str, str] | None = None):
    """`patientgen serve --workers 0 --auth off` on the settings' data folder and storage; yields
    its API's base URL."""
    port = free_port()
    env = {**env_for(settings), **_storage_env(settings), **(extra or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(SCRIPT), "serve", "--port", str(port), "--workers", "0", "--auth", "off"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30)
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        stop_group(proc)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _check_downloads(http: httpx.Client, base: str, job, reference: dict[str, str]) -> None:
    """Every output downloaded whole from host C (which has no copy) matches; a range, HEAD and
    an unsatisfiable range answer as from the local disk."""
    for listed in job.output_files:
        got = http.get(f"{base}/files/{listed['name']}")
        assert got.status_code == 200, got.text
        assert hashlib.sha256(got.content).hexdigest() == reference[listed["name"]]
        assert got.headers["etag"] == f'"{listed["sha256"]}"'
    whole = http.get(f"{base}/files/patients.ndjson").content
    part = http.get(f"{base}/files/patients.ndjson", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole)}"
    tail = http.get(f"{base}/files/patients.ndjson", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == whole[-10:]
    head = http.head(f"{base}/files/patients.ndjson")
    assert head.status_code == 200 and head.headers["content-length"] == str(len(whole))
    outside = http.get(f"{base}/files/patients.ndjson", headers={"Range": f"bytes={len(whole)}-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == f"bytes */{len(whole)}"


@pytest.mark.parametrize("read", [1000, 1])
def test_sweep_removes_what_a_crash_left(settings, s3, bucket, tmp_path, monkeypatch, read):
    """What processes that died after a commit left in the bucket is removed, a completed job's
    final files kept. The listed jobs' statuses are read in one statement per files.SWEEP_READ
    jobs (here also 1, so the two jobs listed fall in two reads), not one read per job."""
    from patientgen.jobs import files as job_files_module

    monkeypatch.setattr(job_files_module, "SWEEP_READ", read)
    shared = settings.model_copy(
        update={"data_dir": tmp_path / "a", **s3_server.storage_env(s3.endpoint, bucket)}
    )
    client = s3_server.client_for(s3.endpoint)
    small = Scenario(name="swept", total_patients=12, seed=2)
    with JobService.open(shared) as service:
        files = service.files
        assert isinstance(files, ObjectFiles)
        kept, _ = service.submit(small, ["ndjson"], "alice")
        gone, _ = service.submit(small, ["ndjson"], "alice")
        from patientgen.jobs.worker import Worker

        Worker(shared, max_jobs=2).run()
        assert service.get(kept.job_id).status == JobStatus.COMPLETED
        finals = _job_objects(shared, kept.job_id)
        assert "patients.ndjson" in finals and "manifest.json" in finals
        # a delete takes the job's objects with it
        service.delete(gone.job_id)
        assert _job_objects(shared, gone.job_id) == {}
        # leftovers of processes that died after a commit: a part and an unfinished upload of
        # the completed job, objects of a job that no longer exists
        orphan = uuid.uuid4()
        client.put_object(Bucket=bucket, Key=f"pg/jobs/{kept.job_id}/.parts/000000.x", Body=b"x")
        client.create_multipart_upload(Bucket=bucket, Key=f"pg/jobs/{kept.job_id}/big.ndjson")
        client.put_object(Bucket=bucket, Key=f"pg/jobs/{orphan}/patients.ndjson", Body=b"y")
        client.put_object(Bucket=bucket, Key=f"pg/jobs/{orphan}/.parts/000001.y", Body=b"y")
        reads: list[int] = []  # how many jobs each read of statuses asked for
        statuses = service.store.statuses

        def counted(job_ids):
            reads.append(len(job_ids))
            return statuses(job_ids)

        monkeypatch.setattr(service.store, "statuses", counted)
        assert files.sweep(service.store) == 4
        assert reads == ([2] if read > 1 else [1, 1])
        assert _job_objects(shared, kept.job_id) == finals  # its final files stay
        assert _job_objects(shared, orphan) == {}
        assert s3_server.uploads(s3.endpoint, bucket) == []
        assert files.sweep(service.store) == 0


def test_the_bucket_is_swept_by_one_process_per_interval(shared, s3, bucket, tmp_path):
    """Every worker sweeps every SWEEP_INTERVAL, but listing the whole bucket once per listing
    interval is enough: a worker's sweep lists it only when no process on the database did
    within that interval (its own host's folders are swept every time); an explicit sweep lists
    it now (before, every worker on every host listed every object of the bucket each minute)."""
    shared = shared.model_copy(update={"storage_listing_interval": 0.2})
    client = s3_server.client_for(s3.endpoint)
    host_b = _host(shared, tmp_path, "host-b")
    with JobService.open(shared) as service:
        here = service.files
        there = ObjectFiles(host_b.data_dir, here.objects, host_b)  # type: ignore[attr-defined]
        here.ready()  # the bucket made

        def leftover() -> str:
            key = f"pg/jobs/{uuid.uuid4()}/patients.ndjson"  # of a job that does not exist
            client.put_object(Bucket=bucket, Key=key, Body=b"y")
            return key

        def listed(key: str) -> bool:
            return key in s3_server.keys(s3.endpoint, bucket, key)

        first = leftover()
        assert here.sweep(service.store, turn=60) == 1 and not listed(first)
        second = leftover()
        assert there.sweep(service.store, turn=60) == 0 and listed(second)  # not its turn
        assert here.sweep(service.store, turn=60) == 0 and listed(second)
        time.sleep(0.3)
        assert there.sweep(service.store, turn=0.2) == 1 and not listed(second)
        third = leftover()
        assert here.sweep(service.store) == 1 and not listed(third)  # explicit: now


def test_a_crash_before_the_purge_is_swept_from_the_write_s_record(
    settings, s3, bucket, tmp_path, monkeypatch
):
    """A process that dies between a write's commit and its purge leaves the job's objects; the
    write recorded the job in its own transaction, and the next periodic sweep of any process
    removes them from that record, without listing the bucket: that happens only every
    storage_listing_interval (before, every sweep interval listed every object of every job, so
    a leftover no write recorded went at once too)."""
    from patientgen.jobs import files as job_files_module
    from patientgen.jobs.worker import Worker

    monkeypatch.setattr(job_files_module, "REMOVAL_GRACE", 0.0)
    shared = settings.model_copy(
        update={"data_dir": tmp_path / "a", **s3_server.storage_env(s3.endpoint, bucket)}
    )
    client = s3_server.client_for(s3.endpoint)
    with JobService.open(shared) as service:
        files = service.files
        store = service.store
        job, _ = service.submit(Scenario(name="recorded", total_patients=12, seed=3), ["ndjson"])
        Worker(shared, max_jobs=1).run()
        assert service.get(job.job_id).status == JobStatus.COMPLETED
        finals = _job_objects(shared, job.job_id)
        assert "manifest.json" in finals
        files.sweep(store)  # explicit: the bucket listed now, the listing's turn taken
        assert store.removals_due(0.0, 10) == []

        store.delete(job.job_id, inside=files.detach)  # ... and the process dies: no purge
        assert _job_objects(shared, job.job_id) == finals
        assert [j for j, _ in store.removals_due(0.0, 10)] == [job.job_id]
        unrecorded = f"pg/jobs/{uuid.uuid4()}/patients.ndjson"  # of a job no write recorded
        client.put_object(Bucket=bucket, Key=unrecorded, Body=b"y")

        assert files.sweep(store, turn=0.01) >= len(finals)
        assert _job_objects(shared, job.job_id) == {}
        assert store.removals_due(0.0, 10) == []
        assert unrecorded in s3_server.keys(s3.endpoint, bucket, unrecorded)  # not listed

        assert files.sweep(store) == 1  # the listing finds it
        assert unrecorded not in s3_server.keys(s3.endpoint, bucket, unrecorded)


def test_copies_are_kept_while_read_then_removed(settings, s3, bucket, tmp_path):
    """A host's folder of a completed job (the owner's working copy, a reader's fetched files)
    is a cache of the bucket: kept while read, removed by the sweep once unread for
    storage_cache_seconds (before, the owner's copy was kept forever, and a reader's partial
    copy removed at the next sweep however recently it was read)."""
    host_a = settings.model_copy(
        update={
            "data_dir": tmp_path / "a",
            "storage_cache_seconds": 600,
            **s3_server.storage_env(s3.endpoint, bucket),
        }
    )
    host_c = _host(host_a, tmp_path, "c")
    small = Scenario(name="cached", total_patients=12, seed=3)
    with JobService.open(host_a) as service:
        job, _ = service.submit(small, ["ndjson"], "alice")
        from patientgen.jobs.worker import Worker

        Worker(host_a, max_jobs=1).run()
        job = service.get(job.job_id)
        assert job.status == JobStatus.COMPLETED
        owner = service.files
        reader = ObjectFiles(host_c.data_dir, owner.objects, host_c)  # type: ignore[attr-defined]
        copy = _fetched(reader, job, casualties.INDEX_FILES)
        mine = owner.folder(job.job_id)
        assert mine.is_dir() and copy.is_dir()
        # read a moment ago: both kept
        owner.sweep(service.store)
        reader.sweep(service.store)
        assert mine.is_dir() and _files_in(copy) == sorted(casualties.INDEX_FILES)
        # unread for longer than the setting: both removed (the bucket keeps the files)
        for folder in (mine, copy):
            _aged(folder, 601)
        owner.sweep(service.store)
        reader.sweep(service.store)
        assert not mine.exists() and not copy.exists()
        assert "patients.ndjson" in _job_objects(host_a, job.job_id)
        # read again: fetched again
        again = _fetched(reader, job, casualties.INDEX_FILES)
        assert _files_in(again) == sorted(casualties.INDEX_FILES)


def test_a_copy_being_fetched_or_read_is_never_swept(settings, s3, bucket, tmp_path, monkeypatch):
    """The sweep of a host's copies runs in another thread or process than the reader, so it
    can meet a copy mid-fetch (some files, no manifest or read mark yet: it looked like a dead
    owner's working folder) or a copy read after being idle for the whole setting. Neither is
    removed under the reader (before, the API's sweep moved a page's copy away mid-fetch and
    the page answered 404 "The job's files are no longer stored.")."""
    host_a = settings.model_copy(
        update={
            "data_dir": tmp_path / "a",
            "storage_cache_seconds": 600,
            **s3_server.storage_env(s3.endpoint, bucket),
        }
    )
    host_c = _host(host_a, tmp_path, "c")
    with JobService.open(host_a) as service:
        job, _ = service.submit(Scenario(name="in use", total_patients=12, seed=4), ["ndjson"])
        from patientgen.jobs.worker import Worker

        Worker(host_a, max_jobs=1).run()
        job = service.get(job.job_id)
        objects = service.files.objects  # type: ignore[attr-defined]
        reader = ObjectFiles(host_c.data_dir, objects, host_c)
        download, swept = objects.download, []

        def sweep_after_the_first_file(key: str, path: Path, size: int | None = None) -> bool:
            got = download(key, path, size)
            if not swept and path.parent == reader.folder(job.job_id):
                swept.append(reader.sweep_copies(service.store))
            return got

        monkeypatch.setattr(objects, "download", sweep_after_the_first_file)
        with reader.reading(job, casualties.INDEX_FILES) as copy:
            assert swept == [0] and _files_in(copy) == sorted(casualties.INDEX_FILES)
            monkeypatch.undo()
            # idle for longer than the setting, but read now: kept while the reader holds it
            _aged(copy, 601)
            assert reader.sweep_copies(service.store) == 0
            assert _files_in(copy) == sorted(casualties.INDEX_FILES)
            assert casualties.open_index(copy) is not None
        _aged(copy, 601)
        assert reader.sweep_copies(service.store) == 2  # moved to the trash, trash emptied
        assert not copy.exists()


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_copies_beyond_the_byte_bound_are_removed_least_recently_read_first(
    settings, s3, bucket, tmp_path
):
    """A host that reads many big jobs within storage_cache_seconds must not fill its disk:
    once its copies of completed jobs take more than storage_cache_bytes, the sweep removes the
    least recently read ones until they fit, never one a reader holds (it still counts: it is on
    the disk), and never a working folder of a job that is not completed (not a copy, and not
    counted). Under the bound, nothing goes (before, only the time bound removed copies)."""
    host_a = settings.model_copy(
        update={
            "data_dir": tmp_path / "a",
            "storage_cache_seconds": 600,
            **s3_server.storage_env(s3.endpoint, bucket),
        }
    )
    small = Scenario(name="bounded", total_patients=12, seed=6)
    with JobService.open(host_a) as service:
        ids = [service.submit(small, ["ndjson"], "alice")[0].job_id for _ in range(3)]
        from patientgen.jobs.worker import Worker

        Worker(host_a, max_jobs=3).run()
        oldest, _, newest = jobs = [service.get(job_id) for job_id in ids]
        assert all(job.status == JobStatus.COMPLETED for job in jobs)
        objects = service.files.objects  # type: ignore[attr-defined]

        def reader_host(bound: int) -> ObjectFiles:
            host_c = _host(host_a, tmp_path, "c", storage_cache_bytes=bound)
            return ObjectFiles(host_c.data_dir, objects, host_c)

        copies = {job.job_id: _fetched(reader_host(0), job) for job in jobs}
        sizes = [_bytes(folder) for folder in copies.values()]
        two, one = 2 * max(sizes) + min(sizes) // 2, max(sizes) + min(sizes) // 2

        def age() -> None:  # read within the last 600 s, in the order of `jobs`
            for seconds, job in zip((300, 200, 100), jobs, strict=True):
                if copies[job.job_id].is_dir():
                    _aged(copies[job.job_id], seconds)

        def kept() -> list[bool]:
            return [copies[job.job_id].is_dir() for job in jobs]

        # three copies within a bound of three: nothing removed
        age()
        assert reader_host(sum(sizes)).sweep_copies(service.store) == 0
        assert kept() == [True, True, True]
        # a bound of two: the least recently read one that no reader holds goes (the oldest is
        # held, so the middle one), moved to the trash and the trash emptied
        reader = reader_host(two)
        with reader.reading(oldest) as held:
            age()
            assert reader.sweep_copies(service.store) == 2
            assert kept() == [True, False, True]
            assert _files_in(held) == _files_in(copies[newest.job_id])
            assert reader.sweep_copies(service.store) == 0  # two fit
        # a bound of one, and a pending job's working folder far bigger than it on this host:
        # the working folder is neither counted nor removed; the older copy goes
        pending, _ = service.submit(small, ["ndjson"], "alice")
        working = reader.folder(pending.job_id)
        working.mkdir(parents=True)
        (working / "big.part").write_bytes(b"x" * (10 * sum(sizes)))
        age()
        assert reader_host(one).sweep_copies(service.store) == 2
        assert kept() == [False, False, True]
        assert (working / "big.part").is_file()
        assert reader_host(one).sweep_copies(service.store) == 0


def test_the_api_sweeps_its_copies(settings, s3, bucket, tmp_path):
    """serve with no worker on its host still removes its idle copies (a host that only reads
    would otherwise keep a copy of every job ever read), and fetches a job again when asked."""
    host_a = settings.model_copy(
        update={"data_dir": tmp_path / "a", **s3_server.storage_env(s3.endpoint, bucket)}
    )
    with JobService.open(host_a) as service:
        job, _ = service.submit(Scenario(name="api copies", total_patients=12, seed=5), ["ndjson"])
        from patientgen.jobs.worker import Worker

        Worker(host_a, max_jobs=1).run()
        assert service.get(job.job_id).status == JobStatus.COMPLETED
    host_c = _host(host_a, tmp_path, "c")
    quick = {"PATIENTGEN_STORAGE_CACHE_SECONDS": "1", "PATIENTGEN_SWEEP_INTERVAL": "0.5"}
    copy = host_c.data_dir / "jobs" / str(job.job_id)
    with _serving(host_c, tmp_path / "serve.log", quick) as api:
        for _ in range(2):  # fetched, swept once idle, fetched again
            page = httpx.get(f"{api}/jobs/{job.job_id}/patients", params={"limit": 2}, timeout=30)
            assert page.status_code == 200 and len(page.json()["items"]) == 2, page.text
            assert copy.is_dir()
            wait_until(lambda: not copy.exists(), timeout=30, step=0.2)


def test_a_storage_url_that_is_not_s3_is_refused_in_words(tmp_path):
    from pydantic import ValidationError

    from patientgen.settings import Settings

    for bad in ("http://bucket/prefix", "s3://", "s3://bucket/p?x=1", "bucket"):
        with pytest.raises(ValidationError, match="must be s3://bucket or s3://bucket/prefix"):
            Settings(data_dir=tmp_path, storage_url=bad)
    assert Settings(data_dir=tmp_path, storage_url="s3://b-1/a/b/").storage_url == "s3://b-1/a/b/"


def test_ranged_reads_of_nearby_records_share_a_get(s3, bucket, tmp_path, monkeypatch):
    """A page's records are read from the bucket by ranged GETs; records close together in the
    file (a filtered page in file order) share one GET, records far apart (a sorted page over a
    big file) get one each, a GET never grows past its cap, and every record comes back exact,
    in the order asked (before, one GET per record whatever their places)."""
    import random

    from patientgen.jobs.files import _ObjectRecords
    from patientgen.jobs.objects import ObjectStore

    store = ObjectStore(
        f"s3://{bucket}/r",
        endpoint=s3.endpoint,
        region=s3_server.REGION,
        access_key=s3_server.ACCESS_KEY,
        secret_key=s3_server.SECRET_KEY,
    )
    rng = random.Random(5)
    body = rng.randbytes(40 << 20)
    (tmp_path / "blob").write_bytes(body)
    store.upload(tmp_path / "blob", "r/blob")
    gets: list[tuple[int, int]] = []
    read = store.read

    def counted(key: str, offset: int, length: int) -> bytes:
        gets.append((offset, length))
        return read(key, offset, length)

    monkeypatch.setattr(store, "read", counted)
    records = _ObjectRecords(store, "r/blob", len(body))  # patients.ndjson in the bucket
    near = [(1000 + 700 * i, 650) for i in range(50)]  # 50 records within 35 KB
    far = [(i * (1 << 20), 600) for i in range(30, 0, -1)]  # 30 records 1 MiB apart, backwards
    dense = [((20 << 20) + 1000 * i, 1000) for i in range(12_000)]  # 12 MB of records
    for spans, most in ((near, 1), (far, 30), (dense, 12)):
        gets.clear()
        mixed = spans[::2] + spans[1::2]  # any order asked is the order given back
        got = records.read(mixed)
        assert got == [body[o : o + n] for o, n in mixed]
        assert len(gets) <= most, len(gets)
        assert max(n for _, n in gets) <= (1 << 20)
    assert records.read([]) == []


def test_an_unreachable_store_is_unavailable_not_an_error(tmp_path):
    """Refused connections become StorageUnavailable (a StoreUnavailable: the job is left for a
    later claim), after the client's own retries."""
    from patientgen.jobs.model import StoreUnavailable
    from patientgen.jobs.objects import ObjectStore, StorageUnavailable

    closed = f"http://127.0.0.1:{free_port()}"
    store = ObjectStore(
        "s3://nowhere/p",
        endpoint=closed,
        region=s3_server.REGION,
        access_key=s3_server.ACCESS_KEY,
        secret_key=s3_server.SECRET_KEY,
    )
    (tmp_path / "f").write_bytes(b"x")
    for action in (
        lambda: store.upload(tmp_path / "f", "p/f"),
        lambda: store.download("p/f", tmp_path / "g"),
        lambda: list(store.keys("p/")),
    ):
        with pytest.raises(StorageUnavailable) as caught:
            action()
        assert isinstance(caught.value, StoreUnavailable)
    assert not (tmp_path / "g").exists() and list(tmp_path.iterdir()) == [tmp_path / "f"]


def test_big_parts_are_composed_in_the_bucket(settings, s3, bucket, tmp_path):
    """A final file that is its chunks' parts end to end, every part but the last at least
    5 MiB, is composed from the shared parts by the server (a multipart upload of copies: its
    ETag ends in -<parts>); smaller ones are sent; every object equals a clean local run."""
    scenario = Scenario(name="composed", total_patients=7_000, seed=8)
    shared = settings.model_copy(
        update={
            "chunk_size": 3_000,
            "data_dir": tmp_path / "a",
            **s3_server.storage_env(s3.endpoint, bucket),
        }
    )
    reference = {
        f.name: f.sha256
        for f in bundle.write_all(scenario, ["fhir", "ndjson"], tmp_path / "ref", chunk_size=3_000)
    }
    with JobService.open(shared) as service:
        job, _ = service.submit(scenario, ["fhir", "ndjson"], "alice")
        from patientgen.jobs.worker import Worker

        Worker(shared, max_jobs=1).run()
        assert service.get(job.job_id).status == JobStatus.COMPLETED
    assert _job_objects(shared, job.job_id) == reference
    client = s3_server.client_for(s3.endpoint)
    etags = {
        name: client.head_object(Bucket=bucket, Key=f"pg/jobs/{job.job_id}/{name}")["ETag"]
        for name in reference
    }
    composed = {name for name, etag in etags.items() if etag.strip('"').endswith("-3")}
    assert "fhir/Observation.ndjson" in composed, etags
    assert "patients.ndjson.idx" not in composed and "manifest.json" not in composed


def test_completion_aborts_what_a_dead_join_left_unfinished(settings, s3, bucket, tmp_path):
    """An unfinished multipart upload under the job (a dead owner's composition or send of a
    final file) is aborted right after the completion's commit, with the parts, not only at a
    later sweep."""
    shared = settings.model_copy(
        update={"data_dir": tmp_path / "a", **s3_server.storage_env(s3.endpoint, bucket)}
    )
    with JobService.open(shared) as service:
        job, _ = service.submit(Scenario(name="upload", total_patients=12, seed=4), ["ndjson"], "a")
        client = s3_server.client_for(s3.endpoint)
        client.create_bucket(Bucket=bucket)  # no process has used it yet
        client.create_multipart_upload(Bucket=bucket, Key=f"pg/jobs/{job.job_id}/patients.ndjson")
        from patientgen.jobs.worker import Worker

        Worker(shared, max_jobs=1).run()
        assert service.get(job.job_id).status == JobStatus.COMPLETED
        assert s3_server.uploads(s3.endpoint, bucket) == []
        assert not s3_server.keys(s3.endpoint, bucket, f"pg/jobs/{job.job_id}/.parts/")
