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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import free_port

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432"

#: The longest test files, in seconds of one process (from `--durations` of a whole run on a
#: 2-core machine, 2026-12-05, rounded; files of several fast tests not counted). `make test` runs
#: files whole in 3 processes (`--dist loadfile`), each taking the next file in collection
#: order; xdist would put the files with the fewest tests last (`--loadscope-reorder`, its
#: default; pytest_configure turns it off), and those are the long fault, load and fuzzing tests,
#: which left one process working alone at the end. Longest first, then the rest in their usual
#: order (short in-process tests before the browser tests, which are all here), balances best.
#: A file missing here only runs later; test_suite_order.py checks that every name exists.
SLOW_FILES: dict[str, int] = {
    "tests/jobs/test_object_storage.py": 154,
    "tests/jobs/test_chunk_claims.py": 105,
    "tests/faults/test_fault_kill9.py": 52,
    "tests/test_coherence.py": 46,
    "tests/jobs/test_worker.py": 44,
    "tests/hostile/test_schemathesis.py": 35,
    "tests/test_formats.py": 33,
    "tests/web/test_page.py": 32,
    "tests/test_push.py": 30,
    "tests/web/test_defects.py": 30,
    "tests/test_cli_generate.py": 27,
    "tests/faults/test_fault_db_outage.py": 27,
    "tests/faults/test_fault_pg_txn_stall.py": 26,
    "tests/api/test_api_jobs.py": 26,
    "tests/test_replay.py": 25,
    "tests/api/test_push_api.py": 23,
    "tests/jobs/test_hosts_netns.py": 22,
    "tests/faults/test_fault_pause.py": 21,
    "tests/web/test_replay.py": 21,
    "tests/web/test_casualties.py": 20,
    "tests/api/test_api_restart.py": 20,
    "tests/api/test_api_lifecycle.py": 19,
    "tests/test_care_chain.py": 18,
    "tests/jobs/test_pg_connections.py": 18,
    "tests/test_fhir_validator.py": 18,
    "tests/faults/test_fault_disk_full.py": 17,
    "tests/test_push_mllp.py": 16,
    "tests/jobs/test_db_restart.py": 16,
    "tests/hostile/test_load.py": 16,
    "tests/web/test_push_page.py": 15,
    "tests/web/test_care_chain_page.py": 14,
    "tests/test_exercise.py": 14,
    "tests/test_skeleton_path.py": 14,
    "tests/faults/test_fault_stalled_cancel.py": 14,
    "tests/test_hl7.py": 13,
    "tests/jobs/test_cli.py": 13,
}


def pytest_configure(config: pytest.Config) -> None:
    """Under xdist, files are handed out in collection order (see SLOW_FILES), not reordered by
    their number of tests. Set here rather than as --no-loadscope-reorder in pyproject.toml, which
    would break `pytest -p no:xdist`."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False
    if not hasattr(config, "workerinput"):  # once, in the controlling process
        _compile_package()


def _compile_package() -> None:
    """Write patientgen's bytecode (__pycache__, ignored by git) before any test runs. With
    PYTHONDONTWRITEBYTECODE set (as in some shells and CI images) no process writes it, and each
    of the suite's hundreds of `patientgen` subprocesses (serve, its workers, the CLI) compiled
    the package's sources again, ~0.1 s of CPU each; Python reads the files whatever the variable
    says, and compiles a module again when its source is newer."""
    import compileall

    compileall.compile_dir(Path(__file__).resolve().parents[1] / "patientgen", quiet=1)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of SLOW_FILES first, longest first; each file's tests stay together and in
    their order, and the other files keep theirs (the sort is stable)."""
    rank = {name: i for i, name in enumerate(sorted(SLOW_FILES, key=lambda n: -SLOW_FILES[n]))}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


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

    def drop(name: str) -> None:
        with (
            psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn,
            contextlib.suppress(psycopg.Error),
        ):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    yield make
    # each DROP DATABASE waits for a checkpoint of its own (0.5-4 s here under load); dropped
    # together, the waits share the checkpoints (12 databases: 10.4 s one by one, 2.0 s so)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(drop, created))


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
        conn.execute(
            "TRUNCATE jobs, job_chunks, chunk_claims, chunk_phases, api_keys, scenarios,"
            " service_facts, object_removals"
        )


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
