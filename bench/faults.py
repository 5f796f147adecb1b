"""Recovery times under process faults, measured with real `patientgen worker` processes.

For each store (SQLite; PostgreSQL when a server answers) and each lease:
- kill -9: a worker runs a multi-chunk job and is killed with SIGKILL while a second worker waits
  idle; measured: seconds from the kill until the second worker holds the job (its lease had to
  expire first: recovery = what was left of the lease + the reaper's detection + a claim), and
  until the job completed. The output is checked byte-identical to a clean run.
- SIGTERM: the same with a graceful stop; the job is handed over at the next chunk boundary
  without waiting for the lease.
And: kill -9 of `patientgen serve --workers 0`, then the seconds until a new one answers /readyz.
Each figure is the median (and max) of --repeat runs.

    .venv/bin/python bench/faults.py [--leases 2,5,10] [--repeat 3] [--pg postgresql://...]

The PostgreSQL URL names a server (default PATIENTGEN_BENCH_PG_URL or 127.0.0.1:5432); the
benchmark creates its own databases and drops them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

PATIENTGEN = str(Path(sys.executable).with_name("patientgen"))
PATIENTS = 1500
CHUNK = 50
CHUNK_DELAY = 0.2
FORMATS = ["ndjson"]


def _env(data: Path, url: str, lease: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        PATIENTGEN_DATA_DIR=str(data),
        PATIENTGEN_DATABASE_URL=url,
        PATIENTGEN_LEASE_SECONDS=str(lease),
        PATIENTGEN_CHUNK_SIZE=str(CHUNK),
        PATIENTGEN_CHUNK_DELAY=str(CHUNK_DELAY),
    )
    return env


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [PATIENTGEN, *args],
            env=env,
            cwd=env["PATIENTGEN_DATA_DIR"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _end(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _wait(predicate: Any, timeout: float, step: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError("condition not met")


def _reference(folder: Path) -> str:
    from patientgen.formats.bundle import write_all
    from patientgen.scenario import Scenario

    files = write_all(Scenario(name="bench", seed=5, total_patients=PATIENTS), FORMATS, folder)
    return next(f.sha256 for f in files if f.name == "patients.ndjson")


def _database(kind: str, pg: str | None, folder: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}", None
    import psycopg

    assert pg is not None
    name = f"bench_faults_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(f"{pg}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{pg}/{name}", drop


def one_run(kind: str, pg: str | None, lease: float, sig: int, reference: str) -> dict[str, float]:
    from patientgen.jobs.service import JobService
    from patientgen.scenario import Scenario
    from patientgen.settings import Settings

    folder = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    data = folder / "data"
    data.mkdir()
    url, drop = _database(kind, pg, folder)
    env = _env(data, url, lease)
    settings = Settings(data_dir=data, database_url=url, lease_seconds=lease, chunk_size=CHUNK)
    service = JobService.open(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        scenario = Scenario(name="bench", seed=5, total_patients=PATIENTS)
        job, _ = service.submit(scenario, FORMATS)
        first = _spawn(["worker"], env, folder / "a.log")
        procs.append(first)
        _wait(lambda: len(service.chunks(job.job_id)) >= 3, 60)
        owner = service.get(job.job_id).lease_owner
        second = _spawn(["worker"], env, folder / "b.log")
        procs.append(second)
        time.sleep(2.0)  # the second worker is up and idle
        assert service.get(job.job_id).lease_owner == owner
        killed = time.monotonic()
        os.kill(first.pid, sig)
        if sig == signal.SIGKILL:
            first.wait(10)
        taken = _wait(
            lambda: (o := service.get(job.job_id).lease_owner) not in (None, owner) and o, 120
        )
        took_over = time.monotonic() - killed
        done = _wait(lambda: service.get(job.job_id).status.value == "completed", 300, 0.05)
        completed = time.monotonic() - killed
        assert done and taken
        final = service.get(job.job_id)
        digest = next(f["sha256"] for f in final.output_files if f["name"] == "patients.ndjson")
        on_disk = hashlib.sha256(
            (data / "jobs" / str(job.job_id) / "patients.ndjson").read_bytes()
        ).hexdigest()
        assert digest == reference == on_disk, "output differs from a clean run"
        return {"took_over": took_over, "completed": completed}
    except BaseException:
        for log in sorted(folder.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        raise
    finally:
        for proc in procs:
            _end(proc)
        service.close()
        if drop is not None:
            drop()
        shutil.rmtree(folder, ignore_errors=True)


def api_restart(repeat: int) -> list[float]:
    """kill -9 of `serve --workers 0`, then a new one started: seconds until /readyz is 200."""
    folder = Path(tempfile.mkdtemp(prefix="bench-faults-api-"))
    data = folder / "data"
    data.mkdir()
    env = _env(data, f"sqlite:///{data / 'patientgen.db'}", 30)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["serve", "--workers", "0", "--port", str(port), "--log-level", "warning"]

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    times = []
    proc = _spawn(args, env, folder / "serve.log")
    try:
        _wait(ready, 60, 0.02)
        for _ in range(repeat):
            killed = time.monotonic()
            _end(proc)
            proc = _spawn(args, env, folder / "serve.log")
            _wait(ready, 60, 0.02)
            times.append(time.monotonic() - killed)
    finally:
        _end(proc)
        shutil.rmtree(folder, ignore_errors=True)
    return times


def _pg_server(url: str | None) -> str | None:
    import psycopg

    url = (
        url or os.environ.get("PATIENTGEN_BENCH_PG_URL") or "postgresql://postgres@127.0.0.1:5432"
    ).rstrip("/")
    try:
        with psycopg.connect(f"{url}/postgres", connect_timeout=2):
            return url
    except psycopg.Error:
        return None


def _fmt(values: list[float]) -> str:
    return f"median {statistics.median(values):5.2f} s, max {max(values):5.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leases", default="2,5,10", help="lease seconds to measure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default=None, help="PostgreSQL server URL (no database)")
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    leases = [float(x) for x in args.leases.split(",")]
    pg = _pg_server(args.pg)
    stores = [s for s in args.stores.split(",") if s == "sqlite" or pg is not None]
    with tempfile.TemporaryDirectory() as tmp:
        reference = _reference(Path(tmp) / "ref")
    print(
        f"job: {PATIENTS} patients, chunks of {CHUNK}, {CHUNK_DELAY} s pause per chunk;"
        f" {args.repeat} runs per figure; {os.cpu_count()} CPUs"
    )
    for store in stores:
        for lease in leases:
            runs = [
                one_run(store, pg, lease, signal.SIGKILL, reference) for _ in range(args.repeat)
            ]
            print(
                f"{store:8} lease {lease:4.1f} s  kill -9 -> other worker holds the job:"
                f" {_fmt([r['took_over'] for r in runs])}"
            )
        runs = [
            one_run(store, pg, leases[-1], signal.SIGTERM, reference) for _ in range(args.repeat)
        ]
        print(
            f"{store:8} lease {leases[-1]:4.1f} s  SIGTERM -> other worker holds the job:"
            f" {_fmt([r['took_over'] for r in runs])}"
        )
    print(f"API      kill -9 -> new serve answers /readyz: {_fmt(api_restart(args.repeat))}")


if __name__ == "__main__":
    main()
