"""One storage per database: the database records where its jobs' files live, and every process
that runs or serves jobs checks it at start (SQLite and PostgreSQL).

- A worker, `serve` and `generate` whose storage differs from the recorded one (no storage URL
  where a bucket is recorded, a bucket where local files are, another prefix) exit 2 with one
  line naming both and what to do, and change nothing: no job is claimed or submitted.
- The same storage starts fine (the endpoint is not compared: hosts may reach one bucket by
  different endpoints); the first process on a database records its own.
- Concurrent first recordings agree on one value.
- A worker that waits for the database (connections refused) checks once it answers.
- `db use-storage` refuses while a job is pending or running, and switches when none is;
  `db status` shows what is recorded.
- A database upgraded from before the record has none: the first process records its own.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from patientgen.jobs import migrations
from patientgen.jobs.files import STORAGE_FACT, ensure_same_storage, storage_name
from patientgen.jobs.model import JobStatus, StorageMismatch
from patientgen.jobs.sql_store import connect, open_store
from patientgen.scenario import Scenario
from patientgen.settings import Settings
from tests import s3_server
from tests.support import CLI, clean_env, free_port, stop_group, wait_until

SCENARIO = Scenario(total_patients=5, seed=3)
BUCKET_A = "s3://bucket-a/pg"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with s3_server.running(tmp_path_factory.mktemp("s3")) as server:
        yield server


def _env(settings: Settings, **values: str) -> dict[str, str]:
    """The environment of a `patientgen` process on the test's database, with `values`."""
    return clean_env(
        {
            "PATIENTGEN_DATABASE_URL": settings.database_url,
            "PATIENTGEN_DATA_DIR": str(settings.data_dir),
            "PATIENTGEN_LEASE_SECONDS": str(settings.lease_seconds),
            "PATIENTGEN_POLL_INTERVAL": str(settings.poll_interval),
            "PATIENTGEN_CHUNK_SIZE": str(settings.chunk_size),
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "COLUMNS": "200",
            **values,
        }
    )


def _s3_env(endpoint: str, storage_url: str) -> dict[str, str]:
    return {
        "PATIENTGEN_STORAGE_URL": storage_url,
        "PATIENTGEN_STORAGE_ENDPOINT": endpoint,
        "PATIENTGEN_STORAGE_REGION": s3_server.REGION,
        "PATIENTGEN_STORAGE_ACCESS_KEY": s3_server.ACCESS_KEY,
        "PATIENTGEN_STORAGE_SECRET_KEY": s3_server.SECRET_KEY,
    }


def _record(settings: Settings, storage_url: str = "") -> str:
    """Record the storage of a process with `storage_url` (empty: local), as its first start."""
    ours = settings.model_copy(update={"storage_url": storage_url})
    store = connect(settings)
    try:
        return ensure_same_storage(store, ours)
    finally:
        store.close()


def _recorded(service) -> str | None:
    return service.store.fact(STORAGE_FACT)


def _run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`patientgen ARGS` in its own process group, which is killed whole if it outlives
    `timeout` (a `serve` that started has worker processes of its own)."""
    proc = subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_group(proc, signal.SIGKILL)
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _the_mismatch_line(stderr: str, recorded: str, ours: str) -> str:
    (line,) = _error_lines(stderr)
    assert recorded in line and ours in line, line
    assert "patientgen db use-storage" in line, line
    return line


def _untouched(service, job_id: UUID) -> None:
    job = service.get(job_id)
    assert job.status == JobStatus.PENDING and job.attempts == 0 and job.lease_owner is None


# -- what is compared ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("", "local"),
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/", "s3://bucket"),
        ("s3://bucket/a/b", "s3://bucket/a/b"),
        ("s3://bucket/a/b/", "s3://bucket/a/b"),
    ],
)
def test_the_storage_name_is_the_url_normalised(tmp_path, url, name):
    assert storage_name(Settings(data_dir=tmp_path, storage_url=url)) == name


def test_the_endpoint_is_not_compared(settings):
    first = settings.model_copy(
        update={"storage_url": BUCKET_A + "/", "storage_endpoint": "http://one:9000"}
    )
    second = settings.model_copy(
        update={"storage_url": BUCKET_A, "storage_endpoint": "http://two:9000"}
    )
    store = connect(settings)
    try:
        assert ensure_same_storage(store, first) == BUCKET_A
        assert ensure_same_storage(store, second) == BUCKET_A
        with pytest.raises(StorageMismatch) as caught:
            ensure_same_storage(store, settings)  # no storage URL: local files
        assert caught.value.recorded == BUCKET_A and caught.value.ours == "local"
    finally:
        store.close()


def test_concurrent_first_recordings_agree(settings):
    n = 8
    barrier = threading.Barrier(n)
    results: list[str] = []
    lock = threading.Lock()

    def first_start(i: int) -> None:
        store = connect(settings)
        try:
            barrier.wait()
            got = store.record_fact("race", f"value-{i}")
            with lock:
                results.append(got)
        finally:
            store.close()

    threads = [threading.Thread(target=first_start, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == n and len(set(results)) == 1
    store = connect(settings)
    try:
        assert store.fact("race") == results[0]
    finally:
        store.close()


# -- processes that run or serve jobs --------------------------------------------------------------
@pytest.mark.parametrize(
    ("recorded", "ours"),
    [
        (BUCKET_A, ""),  # a bucket recorded, the process has no storage URL
        ("", BUCKET_A),  # local files recorded, the process has a bucket
        (BUCKET_A, "s3://bucket-a/other"),  # another prefix
    ],
)
def test_a_worker_with_another_storage_exits_2_and_claims_nothing(
    service, settings, recorded, ours
):
    _record(settings, recorded)
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    env = _env(settings, **(_s3_env("http://127.0.0.1:9", ours) if ours else {}))
    done = _run(env, "worker")
    assert done.returncode == 2, done.stderr
    recorded_name = recorded or "local"
    line = _the_mismatch_line(done.stderr, recorded_name, ours or "unset")
    assert "earlier jobs' files are not moved" in line
    _untouched(service, job.job_id)
    assert _recorded(service) == recorded_name


def test_serve_with_another_storage_exits_2_and_claims_nothing(service, settings):
    _record(settings, BUCKET_A)
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    env = _env(settings)
    done = _run(env, "serve", "--port", str(free_port()), "--workers", "1", "--auth", "off")
    assert done.returncode == 2, done.stderr
    _the_mismatch_line(done.stderr, BUCKET_A, "unset")
    _untouched(service, job.job_id)


def test_generate_with_another_storage_exits_2_and_submits_nothing(service, settings):
    _record(settings, BUCKET_A)
    env = _env(settings)
    done = _run(env, "generate", "--preset", "peacekeeping", "--patients", "5")
    assert done.returncode == 2, done.stderr
    _the_mismatch_line(done.stderr, BUCKET_A, "unset")
    assert sum(service.counts().values()) == 0


def test_reading_casualties_with_another_storage_names_the_mismatch(service, settings):
    """`jobs patients` on a database whose jobs keep their files in a bucket, from a process
    with local storage: the one line naming both storages, exit 2 (before: "its files are no
    longer stored", which sent the user looking for a deleted job)."""
    from patientgen.jobs.worker import Worker

    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    Worker(settings, max_jobs=1).run()  # on local storage, which it records
    assert service.get(job.job_id).status == JobStatus.COMPLETED
    service.store.replace_fact_when_idle(STORAGE_FACT, BUCKET_A)  # then switched
    done = _run(_env(settings), "jobs", "patients", str(job.job_id))
    assert done.returncode == 2, (done.stdout, done.stderr)
    _the_mismatch_line(done.stderr, BUCKET_A, "unset")
    assert done.stdout == ""


def test_the_first_worker_records_its_storage_and_the_same_storage_runs_jobs(
    service, settings, s3, tmp_path
):
    storage = f"s3://pg-{uuid4().hex[:20]}/pg"  # the worker makes the bucket
    assert _recorded(service) is None
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    env = _env(settings, **_s3_env(s3.endpoint, storage))
    proc = subprocess.Popen(
        [*CLI, "worker"], env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        wait_until(lambda: service.get(job.job_id).status == JobStatus.COMPLETED, timeout=60)
        assert _recorded(service) == storage
    finally:
        stop_group(proc)


def test_serve_with_the_recorded_storage_starts_and_runs_jobs(service, settings, tmp_path):
    import httpx

    _record(settings, "")
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--workers", "1", "--auth", "off"],
        env=_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=60)
        wait_until(lambda: service.get(job.job_id).status == JobStatus.COMPLETED, timeout=60)
    finally:
        stop_group(proc)
        log.close()
    assert _recorded(service) == "local"


# -- switching -----------------------------------------------------------------------------------
def test_use_storage_refuses_while_a_job_is_active_and_switches_when_none_is(service, settings):
    _record(settings, BUCKET_A)
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    env = _env(settings)  # this process: local files

    refused = _run(env, "db", "use-storage")
    assert refused.returncode == 2, refused.stderr
    (line,) = _error_lines(refused.stderr)
    assert "pending or running" in line, line
    assert _recorded(service) == BUCKET_A

    status = _run(env, "db", "status")
    assert status.returncode == 0, status.stderr
    assert f"storage: {BUCKET_A}" in status.stdout

    service.cancel(job.job_id)  # no job pending or running now
    switched = _run(env, "db", "use-storage")
    assert switched.returncode == 0, switched.stderr
    assert BUCKET_A in switched.stdout and "local" in switched.stdout
    assert "stay" in switched.stdout  # completed jobs' files stay where they were
    assert _recorded(service) == "local"

    status = _run(env, "db", "status")
    assert "storage: local" in status.stdout


def test_db_status_says_when_nothing_is_recorded(service, settings):
    status = _run(_env(settings), "db", "status")
    assert status.returncode == 0, status.stderr
    assert "storage: none recorded" in status.stdout


# -- upgraded databases --------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_url(request, tmp_path: Path) -> str:
    """A database at the revision before the storage was recorded."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")()
    migrations.upgrade(url, "0005")
    return url


def test_an_upgraded_database_has_nothing_recorded_until_the_first_process(old_url, tmp_path):
    migrations.upgrade(old_url)
    store = open_store(old_url)
    try:
        assert store.fact(STORAGE_FACT) is None
        ours = Settings(database_url=old_url, data_dir=tmp_path, storage_url=BUCKET_A)
        assert ensure_same_storage(store, ours) == BUCKET_A
        assert store.fact(STORAGE_FACT) == BUCKET_A
    finally:
        store.close()


def test_a_worker_that_waits_for_the_database_checks_the_storage_once_it_answers(
    service, settings, monkeypatch
):
    """The database refuses the first two connections (as while it restarts): the worker waits,
    then meets the recorded bucket and stops before it claims anything."""
    from patientgen.jobs import worker as worker_module
    from patientgen.jobs.model import StoreUnavailable

    _record(settings, BUCKET_A)
    job, _ = service.submit(SCENARIO, ["ndjson"], "local")
    real_connect = worker_module.connect
    refusals = [StoreUnavailable("refused"), StoreUnavailable("refused")]

    def connect_after_two_refusals(*args, **kwargs):
        if refusals:
            raise refusals.pop()
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(worker_module, "connect", connect_after_two_refusals)
    with pytest.raises(StorageMismatch):
        worker_module.Worker(settings, max_jobs=1).run()
    assert refusals == []
    _untouched(service, job.job_id)
