"""Shared fixtures: a real PostgreSQL for the suite, and stores/services on SQLite and PostgreSQL.

PostgreSQL: the server on 127.0.0.1:5432 (user postgres, trust) when it answers, or the one
PATIENTGEN_TEST_PG_URL names; otherwise a throwaway cluster started from the binaries under
/usr/lib/postgresql/*/bin on a free port in a temporary folder (as the postgres user when run as
root), stopped at the end. Every test session works in its own uniquely named databases and drops
them at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import free_port

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"


def _reachable(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{url}/postgres", connect_timeout=2):
            return True
    except psycopg.Error:
        return False


class PgCluster:
    """A throwaway PostgreSQL cluster in a temporary folder (fault tests restart it)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
        if not found:
            pytest.fail(
                "PostgreSQL is needed for the tests: no server answers on 127.0.0.1:5432 and no "
                "binaries under /usr/lib/postgresql/*/bin; install the Debian package postgresql "
                "(apt-get install postgresql) or set PATIENTGEN_TEST_PG_URL",
                pytrace=False,
            )
        self.bin = Path(found[-1]).parent
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="patientgen-pg-"))
        self.data = self.dir / "data"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c max_connections=200"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _version_key(path: str) -> float:
    try:
        return float(Path(path).parts[-3])
    except ValueError:
        return 0.0


@pytest.fixture(scope="session")
def pg_cluster_factory() -> Iterator[Callable[[], PgCluster]]:
    """Start extra throwaway clusters (e.g. for outage tests); all destroyed at the end."""
    clusters: list[PgCluster] = []

    def make() -> PgCluster:
        cluster = PgCluster()
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_server(pg_cluster_factory: Callable[[], PgCluster]) -> str:
    """Base URL (no database) of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("PATIENTGEN_TEST_PG_URL", DEFAULT_PG).rstrip("/")
    if url.count("/") > 2:  # a database was named: keep the server part
        url = url.rsplit("/", 1)[0]
    if _reachable(url):
        return url
    return pg_cluster_factory().url


@pytest.fixture(scope="session")
def pg_database_factory(pg_server: str) -> Iterator[Callable[[], str]]:
    """Create uniquely named databases (URLs returned); all dropped at the end of the session."""
    import psycopg

    created: list[str] = []

    def make() -> str:
        name = f"patientgen_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"{pg_server}/{name}"

    yield make
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        for name in created:
            with contextlib.suppress(psycopg.Error):
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url(pg_database_factory: Callable[[], str]) -> str:
    """One database for the session, migrated to head."""
    from patientgen.jobs import migrations

    url = pg_database_factory()
    migrations.upgrade(url)
    return url


def _truncate(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs, job_chunks, chunk_claims, chunk_phases, api_keys, scenarios")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty, migrated database: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'patientgen.db'}"
    url = request.getfixturevalue("pg_url")
    _truncate(url)
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path):
    from patientgen.settings import Settings

    return Settings(
        database_url=database_url,
        data_dir=tmp_path / "data",
        lease_seconds=2,
        chunk_size=5,
        poll_interval=0.05,
        max_attempts=3,
    )


@pytest.fixture
def service(settings):
    from patientgen.jobs.service import JobService

    svc = JobService.open(settings)
    yield svc
    svc.close()


@pytest.fixture
def store(service):
    return service.store
