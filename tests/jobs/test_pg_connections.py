"""PostgreSQL connections of idle workers, and `serve` against a server with no connection free
(finding 12 of the hostile review: each idle worker held about 3 connections, and a `serve`
started while the server was at its connection limit exited 1 instead of waiting as workers do).
"""

from __future__ import annotations

import time
import uuid

import httpx
import psycopg
import pytest

from tests.jobs.helpers import WorkerProcess
from tests.support import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _connections(server: str, database: str) -> int:
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_an_idle_worker_holds_at_most_two_connections(pg_server, pg_database_factory, tmp_path):
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    url = pg_database_factory()
    database = url.rsplit("/", 1)[1]
    settings = Settings(database_url=url, data_dir=tmp_path / "data", poll_interval=0.05)
    JobService.open(settings).close()  # migrated, as `patientgen worker` would
    with WorkerProcess(settings, tmp_path / "worker.log", "--concurrency", "2") as workers:
        wait_until(lambda: workers.text().count(" started") >= 2, timeout=30)
        time.sleep(3)  # idle: a few rounds of polling and reaping
        held = [_connections(pg_server, database) for _ in range(10) if not time.sleep(0.2)]
    # one listener and one pooled connection per worker process, nothing for the parent; and the
    # two workers are really connected (each listens for work)
    assert min(held) >= 2 and max(held) <= 2 * 2, held


def test_serve_waits_for_a_connection_instead_of_exiting(pg_server, pg_database_factory, tmp_path):
    from tests.api.conftest import make_service
    from tests.support import running

    role = f"patientgen_full_{uuid.uuid4().hex[:8]}"
    url = pg_database_factory()
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
        admin.execute(f'ALTER DATABASE "{database}" OWNER TO "{role}"')
    role_url = url.replace("://", f"://{role}@", 1) if "@" not in url else None
    if role_url is None:  # a server URL with a user already: swap it
        scheme, rest = url.split("://", 1)
        role_url = f"{scheme}://{role}@{rest.split('@', 1)[1]}"
    try:
        holder = psycopg.connect(role_url, autocommit=True)  # the role's only connection
        svc = make_service(tmp_path, role_url, workers=0, auth="off")
        svc.start_timeout = 4
        with running(svc):
            with pytest.raises(RuntimeError, match="did not start"):
                svc.start()  # serve does not answer while it cannot connect ...
            assert svc.proc is not None and svc.proc.poll() is None, svc.log.read_text()[-2000:]
            # it tried and was refused (on a busy machine its start alone may outlast the above)
            wait_until(lambda: "unavailable" in svc.log.read_text(), timeout=60, step=0.2)
            assert svc.proc.poll() is None, svc.log.read_text()[-2000:]
            holder.close()
            with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as admin:
                admin.execute(f'ALTER ROLE "{role}" CONNECTION LIMIT -1')

            # ... and comes up by itself once a connection is free
            def healthy() -> bool:
                assert svc.proc is not None and svc.proc.poll() is None, svc.log.read_text()
                try:
                    return httpx.get(svc.health_url, timeout=1).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(healthy, timeout=60, step=0.3)
    finally:
        with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def test_every_connection_bounds_a_transaction_left_idle(pg_database_factory, tmp_path):
    """Each connection the product opens (the store's pool, its listener, the migrations) has
    `idle_in_transaction_session_timeout` from the settings (10 s by default); a transaction
    left idle past it is ended by the server, and the store says so (StoreUnavailable, the one
    error table) and goes on with a new connection."""
    from sqlalchemy import text

    from patientgen.jobs import migrations
    from patientgen.jobs.model import StoreUnavailable
    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    url = pg_database_factory()
    assert Settings(database_url=url).db_idle_in_transaction_timeout == 10
    settings = Settings(
        database_url=url, data_dir=tmp_path / "data", db_idle_in_transaction_timeout=1
    )
    show = "SHOW idle_in_transaction_session_timeout"
    with migrations._locked_connection(url, 1) as conn:
        assert conn.execute(text(show)).scalar() == "1s"
    with JobService.open(settings) as service:
        dialect = service.store.dialect
        with dialect.pool.connection() as conn:
            assert conn.execute(show).fetchone() == ("1s",)
        listening = dialect.listen(0.1, lambda: frozenset({"patientgen_job"}))
        next(listening)  # subscribed: its connection is open
        assert dialect._listen_conn is not None
        assert dialect._listen_conn.execute(show).fetchone() == ("1s",)
        listening.close()

        job, _ = service.submit(_tiny(), ["ndjson"], "alice")
        ended = pytest.raises(StoreUnavailable, match="idle_in_transaction_session_timeout, 1 s")
        with ended, dialect.transaction(write=True) as t:
            t.one("lock_job", job_id=str(job.job_id))
            time.sleep(1.5)  # idle in the transaction, the row locked
            t.one("get_job", job_id=str(job.job_id))
        # the row is free again, and the store works on with a new connection
        assert service.store.request_cancel(job.job_id).status.value == "cancelled"


def _tiny():
    from patientgen.scenario import Scenario

    return Scenario(total_patients=3, seed=1)


def test_readiness_does_not_read_the_jobs_table(pg_database_factory, tmp_path):
    """`/readyz` (JobService.ready) asks whether the database answers, not how many jobs it holds:
    it counted every job by status, a parallel scan of the whole table on each probe of a
    database of a million jobs. Here another session holds the jobs table locked (as a long
    migration would): readiness still answers."""
    import threading

    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    url = pg_database_factory()
    settings = Settings(database_url=url, data_dir=tmp_path / "data")
    with JobService.open(settings) as service, psycopg.connect(url) as holder:
        holder.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        answered: list[dict] = []
        probe = threading.Thread(target=lambda: answered.append(service.ready()), daemon=True)
        probe.start()
        probe.join(timeout=3)
        in_time = list(answered)
        holder.rollback()  # let a blocked probe finish before the service closes
        probe.join(timeout=5)
    assert in_time and in_time[0]["database"] == "ok", "readiness waited for the jobs table"
