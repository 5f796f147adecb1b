"""Queue throughput of the PostgreSQL job store, through the store API.

For 20,000 empty jobs it measures:
- submit: jobs/s inserted one per call (`create`, one commit each) and in batches (`create_many`);
- claim-and-complete: jobs/s drained by 1 and by 4 worker processes, claiming in batches
  (`claim(limit=B)`) and completing in batches (`complete_many`), and one job per step
  (`claim` + `complete`, one commit each; on at most 5,000 jobs) for comparison.
Every drain checks that each job was completed exactly once (attempts == 1).
Each figure is the median of --repeat runs, each on a fresh database that is dropped afterwards.

    .venv/bin/python bench/queue_throughput.py [--url postgresql://postgres@127.0.0.1:5432]
        [--jobs 20000]

The URL names the server (PATIENTGEN_BENCH_PG_URL); the benchmark creates its own databases.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import uuid
from typing import Any

import psycopg

from patientgen.jobs import migrations
from patientgen.jobs.model import NewJob
from patientgen.jobs.sql_store import open_store

CONFIG = {"scenario": {"total_patients": 1}, "formats": ["ndjson"], "chunk_size": 1}


def new_jobs(n: int) -> list[NewJob]:
    return [
        NewJob(job_id=uuid.uuid4(), owner="bench", config=CONFIG, max_attempts=3) for _ in range(n)
    ]


class Database:
    """A fresh, migrated database on the server, dropped on exit."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.name = f"patientgen_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.url = f"{server}/{self.name}"

    def __enter__(self) -> str:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        migrations.upgrade(self.url)
        return self.url

    def __exit__(self, *exc: object) -> None:
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def fill(url: str, n: int) -> None:
    store = open_store(url, max_connections=1)
    try:
        jobs = new_jobs(n)
        for i in range(0, n, 1000):
            store.create_many(jobs[i : i + 1000])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE jobs")
    finally:
        store.close()


def bench_submit_single(server: str, n: int) -> float:
    with Database(server) as url:
        store = open_store(url, max_connections=1)
        jobs = new_jobs(n)
        t0 = time.perf_counter()
        for job in jobs:
            store.create(job)
        elapsed = time.perf_counter() - t0
        store.close()
    return n / elapsed


def bench_submit_batched(server: str, n: int, batch: int = 1000) -> float:
    with Database(server) as url:
        store = open_store(url, max_connections=1)
        jobs = new_jobs(n)
        t0 = time.perf_counter()
        for i in range(0, n, batch):
            store.create_many(jobs[i : i + batch])
        elapsed = time.perf_counter() - t0
        store.close()
    return n / elapsed


def _drain(url: str, batch: int, ready: Any, go: Any, done: Any) -> None:
    store = open_store(url, max_connections=1)
    worker = f"bench-{os.getpid()}"
    store.ping()
    ready.release()
    go.wait()
    n = 0
    while True:
        jobs = store.claim(worker, 30, limit=batch)
        if not jobs:
            break
        if batch == 1:
            store.complete(jobs[0].job_id, worker, [], None)
        else:
            store.complete_many(worker, [(j.job_id, [], None) for j in jobs])
        n += len(jobs)
    done.put(n)
    store.close()


def bench_drain(server: str, n: int, processes: int, batch: int) -> float:
    ctx = mp.get_context("spawn")
    with Database(server) as url:
        fill(url, n)
        ready, go, done = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        procs = [
            ctx.Process(target=_drain, args=(url, batch, ready, go, done)) for _ in range(processes)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.acquire()
        t0 = time.perf_counter()
        go.set()
        total = sum(done.get() for _ in procs)
        elapsed = time.perf_counter() - t0
        for p in procs:
            p.join()
        if total != n:
            raise SystemExit(f"drained {total} jobs, expected {n}")
        with psycopg.connect(url) as conn:
            (completed,) = conn.execute(  # type: ignore[misc]
                "SELECT count(*) FROM jobs WHERE status = 'completed' AND attempts = 1"
            ).fetchone()
        if completed != n:
            raise SystemExit(f"{completed} jobs completed exactly once, expected {n}")
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("PATIENTGEN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=100, help="claim/complete batch size")
    args = parser.parse_args()
    server, n = args.url.rstrip("/"), args.jobs

    def median(label: str, fn: Any, *fargs: Any) -> float:
        runs = [fn(*fargs) for _ in range(args.repeat)]
        value = statistics.median(runs)
        shown = ", ".join(f"{r:,.0f}" for r in runs)
        print(f"{label:<58} {value:>9,.0f} jobs/s   (runs: {shown})", flush=True)
        return value

    print(f"PostgreSQL job store, {n:,} empty jobs, median of {args.repeat} runs", flush=True)
    median(
        f"submit, one job per call (create) ({min(n, 5000):,})",
        bench_submit_single,
        server,
        min(n, 5000),
    )
    median("submit, batches of 1000 (create_many)", bench_submit_batched, server, n)
    few = min(n, 5000)  # the unbatched figures, for comparison, on fewer jobs to save time
    median(f"claim+complete, 1 process, one job per step ({few:,})", bench_drain, server, few, 1, 1)
    median(
        f"claim+complete, 4 processes, one job per step ({few:,})", bench_drain, server, few, 4, 1
    )
    median(
        f"claim+complete, 1 process, batches of {args.batch}", bench_drain, server, n, 1, args.batch
    )
    median(
        f"claim+complete, 4 processes, batches of {args.batch}",
        bench_drain,
        server,
        n,
        4,
        args.batch,
    )


if __name__ == "__main__":
    main()
