"""Load: many small jobs from many concurrent clients while workers run, on PostgreSQL.

50 clients (httpx async, one connection each) submit 10,000 small jobs (1 to 5 patients, NDJSON)
to a real `patientgen serve --workers 0` while a `patientgen worker --concurrency 4` runs them, and
follow their own jobs with `GET /jobs/{id}` (one request every --poll seconds each, round robin)
until every one has finished. Then it checks, in the
database itself, that every job completed exactly once (attempts == 1, one chunk record each, no
job missing or doubled) and prints:
- submit rate (jobs/s while submitting) and the latency of submits (p50/p99);
- the latency of `GET /jobs/{id}` under that load (p50/p99), while submitting and while draining;
- drain time (from the first submit until the last job completed) and the jobs/s it means;
- CPU per job (ms) of each part on the same machine: the clients (this process), the API, the
  workers and the PostgreSQL backends of the benchmark's database (read from /proc when every
  job has finished; Linux only). On a machine of C cores, jobs/s can never exceed
  C x 1000 / (the sum): it says which part to make cheaper.

With --queued the clients only submit (no GETs) and the workers start once every job is in:
it then also prints how fast the 4 workers drained the full queue, from their start (imports
included) to the last completion by the database's clock, and their CPU (and kernel CPU) and
PostgreSQL's per job meanwhile: the workers' throughput alone, without the clients and the API
sharing the cores.

    .venv/bin/python bench/load.py [--server postgresql://postgres@127.0.0.1:5432] [--jobs 10000]
        [--clients 50] [--workers 4] [--embedded | --queued] [--json]

The server URL names a PostgreSQL server; the benchmark makes a fresh database on it and drops it
at the end. A submit that fails with a network error or a 5xx is repeated with the same
Idempotency-Key (so a repeat can never make a second job). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

CLI = [sys.executable, "-c", "from patientgen.cli import main; main()"]
TERMINAL = {"completed", "failed", "cancelled"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Stats:
    submit_latency: list[float] = field(default_factory=list)
    get_latency_submitting: list[float] = field(default_factory=list)
    get_latency_draining: list[float] = field(default_factory=list)
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    submitting: bool = True


class Cluster:
    """A fresh database, `patientgen serve` and the workers; everything stopped on exit."""

    def __init__(
        self, server: str, workers: int, embedded: bool, tmp: Path, queued: bool = False
    ) -> None:
        self.server = server.rstrip("/")
        self.db = f"patientgen_load_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.url = f"{self.server}/{self.db}"
        self.workers = workers
        self.embedded = embedded
        self.queued = queued  # the workers start only when start_workers() is called
        self.tmp = tmp
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
        self.env.update(
            {
                "PATIENTGEN_DATA_DIR": str(tmp / "data"),
                "PATIENTGEN_DATABASE_URL": self.url,
                "PATIENTGEN_LOG_LEVEL": "warning",
                "PYTHONUNBUFFERED": "1",
            }
        )
        (tmp / "data").mkdir(parents=True, exist_ok=True)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def _spawn(self, name: str, *args: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.names.append(name)
        self.procs.append(
            subprocess.Popen(
                [*CLI, *args],
                env=self.env,
                cwd=self.tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def __enter__(self) -> Cluster:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db}"')
        try:
            made = subprocess.run(
                [*CLI, "keys", "create", "load"],
                env=self.env,
                cwd=self.tmp,
                capture_output=True,
                text=True,
                timeout=120,
            )
            if made.returncode != 0:
                raise SystemExit(f"cannot create an API key: {made.stderr.strip()}")
            self.key = made.stdout.strip().splitlines()[-1]
            embedded = str(self.workers if self.embedded else 0)
            self._spawn(
                "serve",
                *("serve", "--port", str(self.port), "--workers", embedded),
                *("--auth", "required", "--log-level", "warning"),
            )
            if not self.embedded and not self.queued:
                self.start_workers()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(p.poll() is not None for p in self.procs):
                    raise SystemExit(f"a process exited early; see the logs in {self.tmp}")
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200:
                        return self
                time.sleep(0.2)
            raise SystemExit("the service did not become ready")
        except BaseException:
            self.__exit__()
            raise

    def start_workers(self) -> None:
        concurrency = ("--concurrency", str(self.workers))
        self._spawn("worker", "worker", *concurrency, "--log-level", "warning")

    def __exit__(self, *exc: object) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')


async def submit(http: httpx.AsyncClient, stats: Stats, client: int, i: int) -> str:
    body = {
        "scenario": {
            "name": f"load-{client}-{i}",
            "seed": client * 1_000_000 + i,
            "total_patients": random.randint(1, 5),
            "duration_days": 3,
        },
        "formats": ["ndjson"],
    }
    key = f"load-{client}-{i}-{uuid.uuid4().hex[:8]}"
    for attempt in range(20):
        start = time.perf_counter()
        try:
            got = await http.post("/jobs", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:
            stats.retries += 1
            stats.errors.append(f"submit: {type(exc).__name__}")
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            continue
        stats.submit_latency.append(time.perf_counter() - start)
        if got.status_code in (200, 202):
            return got.json()["job_id"]
        if got.status_code >= 500 or got.status_code == 429:
            stats.retries += 1
            stats.errors.append(f"submit: {got.status_code}")
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
            continue
        raise SystemExit(f"submit refused: {got.status_code} {got.text[:300]}")
    raise SystemExit("a submit kept failing")


async def get(http: httpx.AsyncClient, stats: Stats, job_id: str) -> dict[str, Any] | None:
    start = time.perf_counter()
    try:
        got = await http.get(f"/jobs/{job_id}")
    except httpx.TransportError as exc:
        stats.errors.append(f"get: {type(exc).__name__}")
        return None
    elapsed = time.perf_counter() - start
    (stats.get_latency_submitting if stats.submitting else stats.get_latency_draining).append(
        elapsed
    )
    if got.status_code != 200:
        stats.errors.append(f"get: {got.status_code}")
        return None
    return got.json()


async def client_loop(
    api: str,
    key: str,
    stats: Stats,
    client: int,
    count: int,
    ids: list[str],
    deadline: float,
    poll: float,
    follow: bool = True,
) -> None:
    async with httpx.AsyncClient(
        base_url=api, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        mine: list[str] = []
        for i in range(count):
            job_id = await submit(http, stats, client, i)
            mine.append(job_id)
            ids.append(job_id)
            if follow:
                await get(http, stats, random.choice(mine))  # look at one of ours between submits
        if not follow:
            return
        # then follow them, one GET every `poll` seconds, round robin, until all have finished
        pending = collections.deque(mine)
        while pending and time.monotonic() < deadline:
            job_id = pending.popleft()
            job = await get(http, stats, job_id)
            if job is None or job["status"] not in TERMINAL:
                pending.append(job_id)
            await asyncio.sleep(poll)


async def run_clients(
    cluster: Cluster, jobs: int, clients: int, timeout: float, poll: float, follow: bool = True
) -> dict[str, Any]:
    stats = Stats()
    ids: list[str] = []
    per_client = [jobs // clients + (1 if c < jobs % clients else 0) for c in range(clients)]
    deadline = time.monotonic() + timeout
    began = time.perf_counter()
    tasks = [
        asyncio.create_task(
            client_loop(cluster.api, cluster.key, stats, c, n, ids, deadline, poll, follow)
        )
        for c, n in enumerate(per_client)
    ]

    async def watch_submits() -> float:
        while len(ids) < jobs and not all(t.done() for t in tasks):
            await asyncio.sleep(0.05)
        stats.submitting = False
        return time.perf_counter() - began

    submit_seconds = await watch_submits()
    await asyncio.gather(*tasks)
    return {"stats": stats, "ids": ids, "submit_seconds": submit_seconds}


def drain_queue(cluster: Cluster, timeout: float) -> dict[str, Any]:
    """--queued: start the workers on the full queue and wait, in the database, until it is empty.

    Nothing but the workers and their database sessions runs meanwhile (one count a 0.1 s), so
    the time and the CPU are the workers' alone: from their start (their imports included) to the
    last completion, read from the database's clock."""
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        before, kernel_before = cpu_seconds(cluster)
        (started,) = conn.execute("SELECT clock_timestamp()").fetchone()  # type: ignore[misc]
        cluster.start_workers()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (left,) = conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM jobs WHERE status <> ALL(%s)", (sorted(TERMINAL),)
            ).fetchone()
            if left == 0:
                break
            time.sleep(0.1)
        after, kernel_after = cpu_seconds(cluster)
        (last,) = conn.execute("SELECT max(completed_at) FROM jobs").fetchone()  # type: ignore[misc]
    return {
        "queue_drain_seconds": (last - started).total_seconds() if last else None,
        "queue_drain_cpu": {k: after[k] - before[k] for k in ("workers", "postgres")},
        "queue_drain_workers_kernel": kernel_after - kernel_before,
    }


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from the 3rd on (the name may hold " ")


def cpu_seconds(cluster: Cluster) -> tuple[dict[str, float], float]:
    """CPU time (user + system) so far of the API, the workers and the database's backends, and
    the part of the workers' spent in the kernel (system time)."""
    sessions = {str(p.pid): name for p, name in zip(cluster.procs, cluster.names, strict=True)}
    out = {"api": 0.0, "workers": 0.0, "postgres": 0.0}
    workers_kernel = 0.0
    with psycopg.connect(f"{cluster.server}/postgres", autocommit=True) as conn:
        backends = {
            str(pid)
            for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (cluster.db,)
            )
        }
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (fields := _stat(entry)) is None:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
        if entry in backends:
            out["postgres"] += seconds
        elif (name := sessions.get(fields[3])) is not None:  # the session: spawned with setsid
            out["api" if name == "serve" else "workers"] += seconds
            if name != "serve":
                workers_kernel += int(fields[12]) / _TICK
    return out, workers_kernel


def check(cluster: Cluster, ids: list[str], jobs: int) -> dict[str, Any]:
    """Correctness from the database itself."""
    with psycopg.connect(cluster.url) as conn:
        by_status: dict[str, int] = dict(
            conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        )
        attempts: dict[int, int] = dict(
            conn.execute("SELECT attempts, count(*) FROM jobs GROUP BY attempts").fetchall()
        )
        (total,) = conn.execute("SELECT count(*) FROM jobs").fetchone()  # type: ignore[misc]
        patients: dict[str, int] = dict(
            conn.execute(
                "SELECT job_id::text, (config->'scenario'->>'total_patients')::int FROM jobs"
            ).fetchall()
        )
        (first, last) = conn.execute(  # type: ignore[misc]
            "SELECT min(created_at), max(completed_at) FROM jobs"
        ).fetchone()
        # jobs completed by one statement share its now(): how many jobs a completion held
        (statements,) = conn.execute(  # type: ignore[misc]
            "SELECT count(DISTINCT completed_at) FROM jobs WHERE status = 'completed'"
        ).fetchone()
    files_ok = 0  # each job's NDJSON holds its patients exactly once
    for job_id in ids:
        path = cluster.tmp / "data" / "jobs" / job_id / "patients.ndjson"
        if path.is_file() and path.read_bytes().count(b"\n") == patients.get(job_id):
            files_ok += 1
    return {
        "jobs_submitted": len(ids),
        "distinct_ids": len(set(ids)),
        "jobs_in_database": total,
        "by_status": by_status,
        "by_attempts": {str(k): v for k, v in attempts.items()},
        "outputs_exact": files_ok,
        "drain_seconds": (last - first).total_seconds() if first and last else None,
        "jobs_per_completion": round(by_status.get("completed", 0) / statements, 1)
        if statements
        else None,
        "ok": (
            len(ids) == jobs
            and len(set(ids)) == jobs
            and total == jobs
            and by_status.get("completed") == jobs
            and attempts.get(1) == jobs
            and files_ok == jobs
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("PATIENTGEN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
        help="PostgreSQL server (a fresh database is made on it)",
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument(
        "--embedded", action="store_true", help="serve --workers N instead of a separate worker"
    )
    parser.add_argument("--timeout", type=float, default=1800, help="give up after (s)")
    parser.add_argument(
        "--poll", type=float, default=0.1, help="pause between a client's GETs once submitted (s)"
    )
    parser.add_argument(
        "--queued",
        action="store_true",
        help="submit every job first, then start the workers and time how they drain the queue",
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON line")
    args = parser.parse_args()
    if args.queued and args.embedded:
        parser.error("--queued starts a separate worker: it cannot be used with --embedded")

    with (
        tempfile.TemporaryDirectory(prefix="patientgen-load-") as tmp,
        Cluster(args.server, args.workers, args.embedded, Path(tmp), args.queued) as cluster,
    ):
        parts, kernel_before = cpu_seconds(cluster)
        before = {"clients": sum(os.times()[:2]), **parts}
        began = time.perf_counter()
        run = asyncio.run(
            run_clients(
                cluster, args.jobs, args.clients, args.timeout, args.poll, follow=not args.queued
            )
        )
        queue = drain_queue(cluster, args.timeout) if args.queued else {}
        wall = time.perf_counter() - began
        parts, kernel_after = cpu_seconds(cluster)
        after = {"clients": sum(os.times()[:2]), **parts}
        cpu = {part: after[part] - before[part] for part in after}
        result = check(cluster, run["ids"], args.jobs)
        result.update(queue)
    stats: Stats = run["stats"]
    gets = stats.get_latency_submitting + stats.get_latency_draining
    result.update(
        {
            "clients": args.clients,
            "workers": args.workers,
            "wall_seconds": round(wall, 2),
            "submit_seconds": round(run["submit_seconds"], 2),
            "submit_rate": round(args.jobs / run["submit_seconds"], 1),
            "submit_ms": _ms(stats.submit_latency),
            "get_ms": _ms(gets),
            "get_ms_while_submitting": _ms(stats.get_latency_submitting),
            "get_ms_while_draining": _ms(stats.get_latency_draining),
            "get_requests": len(gets),
            "retries": stats.retries,
            "errors": sorted(set(stats.errors)),
            "cpu_ms_per_job": {k: round(1000 * v / args.jobs, 2) for k, v in cpu.items()},
            "workers_kernel_ms_per_job": round(
                1000 * (kernel_after - kernel_before) / args.jobs, 2
            ),
            "cpus": os.cpu_count(),
        }
    )
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(
            f"{args.jobs:,} jobs (1-5 patients, NDJSON), {args.clients} clients, "
            f"{args.workers} worker processes, PostgreSQL"
        )
        print(
            f"  submit:  {result['submit_rate']:,.0f} jobs/s over {result['submit_seconds']} s"
            f"  p50 {result['submit_ms']['p50']} ms  p99 {result['submit_ms']['p99']} ms"
        )
        for label, key in (
            ("GET /jobs/{id}", "get_ms"),
            ("  while submitting", "get_ms_while_submitting"),
            ("  while draining", "get_ms_while_draining"),
        ):
            ms = result[key]
            print(f"  {label:<20} p50 {ms['p50']} ms  p99 {ms['p99']} ms  ({ms['n']:,} requests)")
        drain = result["drain_seconds"]
        if args.queued and result["queue_drain_seconds"]:
            queued = result["queue_drain_seconds"]
            spent = result["queue_drain_cpu"]
            print(
                f"  queue drained by the workers in {queued:.1f} s from their start "
                f"({args.jobs / queued:,.0f} jobs/s); CPU per job while draining: workers "
                f"{1000 * spent['workers'] / args.jobs:.2f} ms (in the kernel "
                f"{1000 * result['queue_drain_workers_kernel'] / args.jobs:.2f}), PostgreSQL "
                f"{1000 * spent['postgres'] / args.jobs:.2f} ms"
            )
        elif drain:
            print(
                f"  drain:   {drain:.1f} s from first submit to last completion "
                f"({args.jobs / drain:,.0f} jobs/s)"
            )
        per_job = result["cpu_ms_per_job"]
        print(
            f"  CPU per job: {sum(per_job.values()):.1f} ms "
            f"({', '.join(f'{k} {v}' for k, v in per_job.items())}; the workers' in the "
            f"kernel {result['workers_kernel_ms_per_job']}); {result['cpus']} CPUs: "
            f"at most {result['cpus'] * 1000 / sum(per_job.values()):,.0f} jobs/s"
        )
        print(f"  jobs completed per completing statement: {result['jobs_per_completion']}")
        print(
            f"  by status {result['by_status']}, by attempts {result['by_attempts']}, "
            f"outputs holding exactly their patients: {result['outputs_exact']:,}"
        )
        print(f"  retries {stats.retries}, errors {result['errors'] or 'none'}")
        print("  OK: every job completed exactly once" if result["ok"] else "  FAILED")
    return 0 if result["ok"] else 1


def _ms(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": round(statistics.median(values) * 1000, 1) if values else None,
        "p99": round(percentile(values, 0.99) * 1000, 1) if values else None,
    }


if __name__ == "__main__":
    sys.exit(main())
