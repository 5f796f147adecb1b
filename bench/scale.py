"""One big job on 1, 2 and 4 worker processes sharing one data folder (chunk claims, issue 13).

For each worker count: a fresh data folder and database, that many `patientgen worker`
processes started and idle, then one NDJSON job submitted; measured: seconds from the submit
until the job is completed (its chunks claimed by every idle worker, joined once by its owner).
Printed: wall time, ratio to 1 worker, the CPUs this process may use, and whether the output's
sha256 is the same for every worker count (it must be).

    .venv/bin/python bench/scale.py [--patients 1000000] [--chunk 10000] [--workers 1,2,4]
                                    [--pg postgresql://postgres@127.0.0.1:5432/postgres]

Without --pg the store is a SQLite file in the data folder; with it, the benchmark creates a
database of its own on that server and drops it. On a machine of C cores, N workers cannot beat
about max(1/N, 1/C) of one worker's time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from patientgen.jobs.model import JobStatus
from patientgen.jobs.service import JobService
from patientgen.scenario import Scenario
from patientgen.settings import Settings

PATIENTGEN = str(Path(sys.executable).with_name("patientgen"))


def _env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        PATIENTGEN_DATA_DIR=str(settings.data_dir),
        PATIENTGEN_DATABASE_URL=settings.database_url,
        PATIENTGEN_CHUNK_SIZE=str(settings.chunk_size),
        PATIENTGEN_LEASE_SECONDS=str(settings.lease_seconds),
    )
    return env


@contextlib.contextmanager
def _database(pg: str | None, data: Path) -> Iterator[str]:
    """A fresh database URL: a SQLite file in `data`, or a new database on the `pg` server."""
    if pg is None:
        yield f"sqlite:///{data / 'patientgen.db'}"
        return
    import psycopg

    name = f"patientgen_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(pg, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_once(
    patients: int, chunk: int, workers: int, pg: str | None
) -> tuple[float, float, dict[str, str], list[int]]:
    """Seconds from submit to completion with `workers` processes, and of those the last ones,
    from the owner's "finalizing" (every chunk recorded) to completion (the join, one worker's);
    the job's output files; how many chunks each process wrote."""
    data = Path(tempfile.mkdtemp(prefix="scale-", dir="/var/tmp"))
    try:
        with _database(pg, data) as url:
            settings = Settings(data_dir=data, database_url=url, chunk_size=chunk)
            with JobService.open(settings) as service:
                procs = [
                    subprocess.Popen(
                        [PATIENTGEN, "worker"],
                        env=_env(settings),
                        stdout=subprocess.DEVNULL,
                        stderr=(data / f"worker-{i}.log").open("wb"),
                        start_new_session=True,
                    )
                    for i in range(workers)
                ]
                try:
                    time.sleep(3.0)  # every worker started and idle (Python start-up)
                    scenario = Scenario(name="scale", total_patients=patients, seed=2026)
                    job, _ = service.submit(scenario, ["ndjson"], "bench")
                    started = time.perf_counter()
                    version = None
                    joining: float | None = None
                    while True:
                        current = service.wait_for_update(job.job_id, version, 5.0)
                        if current is not None:
                            version = current.version
                            phase = current.progress_details.get("phase")
                            if joining is None and phase in ("finalizing", "completed"):
                                joining = time.perf_counter()
                            if current.status == JobStatus.COMPLETED:
                                break
                            if current.is_terminal:
                                raise RuntimeError(f"job ended {current.status}: {current.error}")
                    ended = time.perf_counter()
                    elapsed = ended - started
                    join = ended - (joining if joining is not None else ended)
                finally:
                    for proc in procs:
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
                    for proc in procs:
                        proc.wait(60)
                files = {f["name"]: f["sha256"] for f in current.output_files}
        logs = [(data / f"worker-{i}.log").read_text() for i in range(workers)]
        return (
            elapsed,
            join,
            files,
            [len(re.findall(r": chunk \d+ \[\d+, \d+\) written", t)) for t in logs],
        )
    finally:
        shutil.rmtree(data, ignore_errors=True)


def _pressure() -> str:
    """The kernel's CPU pressure (PSI): how much of the time some task waited for a CPU."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return "CPU pressure unknown"
    return f"CPU pressure: {line}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--pg", default=None, help="a PostgreSQL server URL (default: SQLite)")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    store = "PostgreSQL" if args.pg else "SQLite"
    print(
        f"{args.patients:,} patients, NDJSON, chunks of {args.chunk:,}, {store};"
        f" CPUs: {cpus} (os.cpu_count {os.cpu_count()}), load average"
        f" {os.getloadavg()[0]:.2f} at start; {_pressure()}"
    )
    print(f"{'workers':>8} {'wall s':>9} {'ratio to 1':>11} {'join s':>7}  chunks by each worker")
    first: float | None = None
    outputs = []
    for n in counts:
        elapsed, join, files, chunks = run_once(args.patients, args.chunk, n, args.pg)
        outputs.append(files)
        first = first if first is not None else elapsed
        print(f"{n:>8} {elapsed:>9.2f} {elapsed / first:>11.3f} {join:>7.2f}  {chunks}", flush=True)
    same = all(o == outputs[0] for o in outputs)
    print(f"output sha256 identical for every worker count: {same}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}; {_pressure()}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
