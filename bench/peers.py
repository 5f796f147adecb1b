"""Our job store against its peers, procrastinate and pgqueuer, on the same PostgreSQL.

For each of the three, on a fresh database of the same server, it measures:
- enqueue: jobs/s inserted one per call (on --single jobs) and in batches of 1,000. One by one
  the queues take turns in slices of --slice jobs (each its own database and connection, all
  open at once), so that a drift of the machine's speed, which on a shared VM moves a single
  run by tens of percent within seconds, falls on every queue alike;
- process: jobs/s at which --processes worker processes drain --jobs empty jobs (every job run
  exactly once is checked), ours and pgqueuer claiming in batches of --batch;
- recovery: the time from a kill -9 of the worker process that runs a job until another, idle,
  worker runs that job again. Ours: real `patientgen worker` processes (lease 30 s by default).
  pgqueuer re-picks a job whose heartbeat is older than its `heartbeat_timeout` (30 s by default).
  procrastinate never runs such a job again by itself: the measure uses its documented recipe
  (`job_manager.get_stalled_jobs()` then `retry_job()`, here checked every second, default
  heartbeat threshold 30 s); without that extra code the job stays `doing` for ever.
and prints each figure with our ratio to each peer. With --rounds N the enqueue and process
measures run N times, the queues taking turns in alternating order (each round on fresh
databases), and the table gives each figure's median; each round's ratios are printed too, since
on a noisy machine one run of each can land either way. (Before the one-by-one enqueue took
turns in slices, each queue's 10,000 ran in one go, and the rounds' ratios to pgqueuer spread
from 0.75 to 1.16 on this VM; in slices of 250 they spread from 1.05 to 1.12.)

    make bench-peers     # or: bench/.venv-peers/bin/python bench/peers.py [options]
    .venv/bin/python bench/peers.py --only ours      # ours alone: no peer installed or needed

The peers are installed only into bench/.venv-peers (bench/peers-requirements.txt), never into
the project's environment; run with another interpreter, this script makes that environment
(python -m venv, pip install -e . -r bench/peers-requirements.txt) and runs itself there.
--lease S gives all three the same S seconds (our lease, pgqueuer's heartbeat timeout and
dequeue timeout, procrastinate's heartbeat threshold) instead of each one's default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = HERE / ".venv-peers"
REQUIREMENTS = HERE / "peers-requirements.txt"
#: What is measured, and the distribution each is installed as.
NAMES = {"ours": "patientgen", "procrastinate": "procrastinate", "pgqueuer": "pgqueuer"}


def ensure_environment(peers: set[str]) -> None:
    """Run in bench/.venv-peers, making it first when needed (with no peer, anywhere this
    project is installed)."""
    import importlib

    try:
        for module in ("patientgen", *sorted(peers)):
            importlib.import_module(module)
    except ImportError:
        pass
    else:
        return
    python = VENV / "bin" / "python"
    # sys.prefix, not the executable: every venv's python links to the same interpreter
    if Path(sys.prefix).resolve() == VENV.resolve():
        raise SystemExit(f"{VENV} lacks the peers; pip install -r {REQUIREMENTS} there")
    if not python.exists():
        print(f"making {VENV} (procrastinate, pgqueuer and this project)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "-e",
                str(REPO),
                "-r",
                str(REQUIREMENTS),
            ],
            check=True,
        )
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])


# -- databases ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(server: str, tag: str) -> Iterator[str]:
    import psycopg

    name = f"patientgen_peers_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def vacuum(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_processes(target: Callable[..., None], args: tuple[Any, ...], n: int) -> tuple[float, list]:
    """Start n processes, let them go at once, and return (seconds until all are done, results)."""
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, ready, go, out)) for _ in range(n)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    results = [out.get(timeout=3600) for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(timeout=60)
    return elapsed, results


# -- ours ---------------------------------------------------------------------------------------

OUR_CONFIG = {"scenario": {"total_patients": 1}, "formats": ["ndjson"], "chunk_size": 1}


def _new_jobs(n: int) -> list[Any]:
    from patientgen.jobs.model import NewJob

    return [
        NewJob(job_id=uuid.uuid4(), owner="bench", config=OUR_CONFIG, max_attempts=3)
        for _ in range(n)
    ]


@contextlib.contextmanager
def ours_single(url: str) -> Iterator[Callable[[int], float]]:
    """A function that enqueues k jobs one by one and returns the seconds it took."""
    from patientgen.jobs import migrations
    from patientgen.jobs.sql_store import open_store

    migrations.upgrade(url)
    store = open_store(url, max_connections=1)

    def enqueue(k: int) -> float:
        jobs = _new_jobs(k)
        return timed(lambda: [store.create(job) for job in jobs])

    try:
        yield enqueue
    finally:
        store.close()


def ours_batches(url: str, batched: int) -> float:
    from patientgen.jobs import migrations
    from patientgen.jobs.sql_store import open_store

    migrations.upgrade(url)
    store = open_store(url, max_connections=1)
    try:
        many = _new_jobs(batched)
        batch = timed(
            lambda: [store.create_many(many[i : i + 1000]) for i in range(0, batched, 1000)]
        )
    finally:
        store.close()
    return batched / batch


def _ours_drain(url: str, batch: int, ready: Any, go: Any, out: Any) -> None:
    from patientgen.jobs.sql_store import open_store

    store = open_store(url, max_connections=1)
    worker = f"peers-{os.getpid()}"
    store.ping()
    ready.release()
    go.wait()
    done = 0
    while jobs := store.claim(worker, 30, limit=batch):
        store.complete_many(worker, [(j.job_id, [], None) for j in jobs])
        done += len(jobs)
    store.close()
    out.put(done)


def ours_process(url: str, n: int, processes: int, batch: int) -> float:
    import psycopg

    from patientgen.jobs.sql_store import open_store

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs CASCADE")  # and every table that refers to it
    store = open_store(url, max_connections=1)
    jobs = _new_jobs(n)
    for i in range(0, n, 1000):
        store.create_many(jobs[i : i + 1000])
    store.close()
    vacuum(url)
    elapsed, done = run_processes(_ours_drain, (url, batch), processes)
    with psycopg.connect(url) as conn:
        (once,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM jobs WHERE status = 'completed' AND attempts = 1"
        ).fetchone()
    if sum(done) != n or once != n:
        raise SystemExit(f"ours: {sum(done)} drained, {once} completed once; expected {n}")
    return n / elapsed


# -- procrastinate ------------------------------------------------------------------------------


def procrastinate_app(url: str, marker: str | None = None) -> Any:
    import logging

    import procrastinate

    logging.getLogger("procrastinate").setLevel(logging.ERROR)  # "App in the main module"
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    @app.task(name="sleepy", queue="recovery")
    async def sleepy() -> None:
        if marker:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()} {time.time()}\n")
        await asyncio.sleep(3600)

    return app


@contextlib.contextmanager
def procrastinate_single(url: str) -> Iterator[Callable[[int], float]]:
    loop = asyncio.new_event_loop()
    app = procrastinate_app(url)
    opened = app.open_async()
    loop.run_until_complete(opened.__aenter__())

    async def defer(k: int) -> float:
        noop = app.tasks["noop"]
        start = time.perf_counter()
        for _ in range(k):
            await noop.defer_async()
        return time.perf_counter() - start

    try:
        loop.run_until_complete(app.schema_manager.apply_schema_async())
        yield lambda k: loop.run_until_complete(defer(k))
    finally:
        loop.run_until_complete(opened.__aexit__(None, None, None))
        loop.close()


def procrastinate_batches(url: str, batched: int) -> float:
    async def run() -> float:
        app = procrastinate_app(url)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            noop = app.tasks["noop"]
            start = time.perf_counter()
            for i in range(0, batched, 1000):
                await noop.batch_defer_async(*([{}] * min(1000, batched - i)))
            return batched / (time.perf_counter() - start)

    return asyncio.run(run())


def _procrastinate_drain(url: str, concurrency: int, ready: Any, go: Any, out: Any) -> None:
    async def run() -> None:
        app = procrastinate_app(url)
        async with app.open_async():
            ready.release()
            await asyncio.to_thread(go.wait)
            await app.run_worker_async(
                queues=["bench"],
                concurrency=concurrency,
                wait=False,
                install_signal_handlers=False,
            )

    asyncio.run(run())
    out.put(0)


def procrastinate_process(url: str, n: int, processes: int, concurrency: int) -> float:
    import psycopg

    async def fill() -> None:
        app = procrastinate_app(url)
        async with app.open_async():
            for i in range(0, n, 1000):
                await app.tasks["noop"].batch_defer_async(*([{}] * min(1000, n - i)))

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE procrastinate_jobs CASCADE")
    asyncio.run(fill())
    vacuum(url)
    elapsed, _ = run_processes(_procrastinate_drain, (url, concurrency), processes)
    with psycopg.connect(url) as conn:
        rows: dict[str, int] = dict(
            conn.execute(
                "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
            ).fetchall()
        )
        (events,) = conn.execute(  # type: ignore[misc]
            "SELECT count(*) FROM procrastinate_events WHERE type = 'started'"
        ).fetchone()
    if rows != {"succeeded": n} or events != n:
        raise SystemExit(f"procrastinate: {rows}, {events} starts; expected {n} succeeded once")
    return n / elapsed


# -- pgqueuer -----------------------------------------------------------------------------------


async def _pgqueuer_queries(url: str) -> Any:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    return Queries(AsyncpgDriver(await asyncpg.connect(url)))


@contextlib.contextmanager
def pgqueuer_single(url: str) -> Iterator[Callable[[int], float]]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, Queries

    loop = asyncio.new_event_loop()
    connection = loop.run_until_complete(asyncpg.connect(url))
    queries = Queries(AsyncpgDriver(connection))

    async def enqueue(k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            await queries.enqueue("noop", None)
        return time.perf_counter() - start

    try:
        loop.run_until_complete(queries.install())
        yield lambda k: loop.run_until_complete(enqueue(k))
    finally:
        loop.run_until_complete(connection.close())
        loop.close()


def pgqueuer_batches(url: str, batched: int) -> float:
    async def run() -> float:
        queries = await _pgqueuer_queries(url)
        await queries.install()
        start = time.perf_counter()
        for i in range(0, batched, 1000):
            k = min(1000, batched - i)
            await queries.enqueue(["noop"] * k, [None] * k, [0] * k)
        return batched / (time.perf_counter() - start)

    return asyncio.run(run())


def _pgqueuer_drain(url: str, batch: int, ready: Any, go: Any, out: Any) -> None:
    from pgqueuer import QueueManager
    from pgqueuer.types import QueueExecutionMode

    seen: list[int] = []

    async def run() -> None:
        qm = QueueManager(await _pgqueuer_queries(url))

        @qm.entrypoint("noop")
        async def noop(job: Any) -> None:
            seen.append(int(job.id))

        ready.release()
        await asyncio.to_thread(go.wait)
        await qm.run(batch_size=batch, mode=QueueExecutionMode.drain)

    asyncio.run(run())
    out.put(seen)


def pgqueuer_process(url: str, n: int, processes: int, batch: int) -> float:
    async def fill() -> None:
        queries = await _pgqueuer_queries(url)
        await queries.clear_queue()
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            await queries.enqueue(["noop"] * k, [None] * k, [0] * k)

    asyncio.run(fill())
    vacuum(url)
    elapsed, seen = run_processes(_pgqueuer_drain, (url, batch), processes)
    ids = [i for part in seen for i in part]
    if len(ids) != n or len(set(ids)) != n:
        raise SystemExit(f"pgqueuer: {len(ids)} runs of {len(set(ids))} jobs; expected {n} once")
    return n / elapsed


# -- recovery after kill -9 ---------------------------------------------------------------------


def _wait(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"not within {timeout} s")


def ours_recovery(url: str, lease: float | None, tmp: Path) -> float:
    """Two real `patientgen worker` processes; kill -9 of the one running the job."""
    import psycopg

    from patientgen.jobs.service import JobService
    from patientgen.settings import Settings

    env = {k: v for k, v in os.environ.items() if not k.startswith("PATIENTGEN_")}
    env.update(
        {
            "PATIENTGEN_DATABASE_URL": url,
            "PATIENTGEN_DATA_DIR": str(tmp / "data"),
            "PATIENTGEN_CHUNK_SIZE": "1",
            "PATIENTGEN_CHUNK_DELAY": "60",  # the job stays mid-run
            # the idle worker waits for the job itself, as the peers' do: helping with one of
            # its chunks would hold it for that chunk's 60 s before it could take the job over
            "PATIENTGEN_HELP_CHUNKS": "false",
        }
    )
    if lease is not None:
        env["PATIENTGEN_LEASE_SECONDS"] = str(lease)
    cli = [sys.executable, "-c", "from patientgen.cli import main; main()", "worker"]

    def worker(name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*cli, "--log-level", "warning"],
            env=env,
            stdout=(tmp / f"{name}.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    service = JobService.open(Settings(database_url=url, data_dir=tmp / "data", chunk_size=1))
    job, _ = service.submit({"total_patients": 20, "seed": 1}, ["ndjson"], "bench")
    service.close()
    first = worker("a")
    second = None
    try:

        def state() -> tuple[str, str | None, int]:
            with psycopg.connect(url) as conn:
                return conn.execute(  # type: ignore[return-value]
                    "SELECT status, lease_owner, attempts FROM jobs WHERE job_id = %s",
                    (job.job_id,),
                ).fetchone()

        _wait(lambda: state()[0] == "running", 60)
        owner = state()[1]
        second = worker("b")
        time.sleep(3)  # the second worker is up and idle
        os.killpg(first.pid, signal.SIGKILL)
        killed = time.monotonic()

        def claimed_again() -> bool:  # a claim counts an attempt; resuming may finish it at once
            status, lease_owner, attempts = state()
            return attempts >= 2 and status != "pending" and lease_owner != owner

        _wait(claimed_again, 600)
        return time.monotonic() - killed
    finally:
        for proc in (first, second):
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _procrastinate_worker(url: str, marker: str, recipe: bool, lease: float | None) -> None:
    app = procrastinate_app(url, marker)
    heartbeat = {} if lease is None else {"update_heartbeat_interval": max(1.0, lease / 3)}

    async def retry_stalled() -> None:  # the documented recipe, every second
        while True:
            kwargs = {} if lease is None else {"seconds_since_heartbeat": lease}
            for job in await app.job_manager.get_stalled_jobs(**kwargs):
                await app.job_manager.retry_job(job)
            await asyncio.sleep(1)

    async def run() -> None:
        async with app.open_async():
            if recipe:
                asyncio.get_running_loop().create_task(retry_stalled())
            await app.run_worker_async(
                queues=["recovery"],
                concurrency=1,
                install_signal_handlers=False,
                fetch_job_polling_interval=1.0,
                **heartbeat,
            )

    asyncio.run(run())


def procrastinate_recovery(url: str, lease: float | None, tmp: Path) -> float:
    marker = tmp / "procrastinate.runs"

    async def defer() -> None:
        app = procrastinate_app(url)
        async with app.open_async():
            await app.tasks["sleepy"].defer_async()

    return _peer_recovery(
        defer, lambda recipe: (_procrastinate_worker, (url, str(marker), recipe, lease)), marker
    )


def _pgqueuer_worker(url: str, marker: str, recipe: bool, lease: float | None) -> None:
    from pgqueuer import QueueManager

    async def run() -> None:
        qm = QueueManager(await _pgqueuer_queries(url))

        @qm.entrypoint("sleepy")
        async def sleepy(job: Any) -> None:
            with open(marker, "a") as f:
                f.write(f"{os.getpid()} {time.time()}\n")
            await asyncio.sleep(3600)

        kwargs = (
            {}
            if lease is None
            else {
                "heartbeat_timeout": timedelta(seconds=lease),
                "dequeue_timeout": timedelta(seconds=lease),
            }
        )
        await qm.run(batch_size=1, **kwargs)

    asyncio.run(run())


def pgqueuer_recovery(url: str, lease: float | None, tmp: Path) -> float:
    marker = tmp / "pgqueuer.runs"

    async def enqueue() -> None:
        queries = await _pgqueuer_queries(url)
        await queries.clear_queue()
        await queries.enqueue("sleepy", None)

    return _peer_recovery(
        enqueue, lambda recipe: (_pgqueuer_worker, (url, str(marker), recipe, lease)), marker
    )


def _peer_recovery(
    make_job: Callable[[], Any], worker: Callable[[bool], tuple[Any, tuple]], marker: Path
) -> float:
    """Worker A runs the job; B waits idle; kill -9 of A; time until B starts the job."""
    ctx = mp.get_context("spawn")

    def runs() -> list[str]:
        return marker.read_text().split("\n")[:-1] if marker.exists() else []

    asyncio.run(make_job())
    target, args = worker(False)
    first = ctx.Process(target=target, args=args)
    first.start()
    second = None
    try:
        _wait(lambda: len(runs()) == 1, 60)
        target, args = worker(True)
        second = ctx.Process(target=target, args=args)
        second.start()
        time.sleep(3)  # the second worker is up and idle
        first.kill()
        killed = time.monotonic()
        _wait(lambda: len(runs()) >= 2, 600)
        again = runs()[1].split()
        assert int(again[0]) == second.pid, runs()
        return time.monotonic() - killed
    finally:
        for proc in (first, second):
            if proc is not None and proc.is_alive():
                proc.kill()
                proc.join()


# -- main ---------------------------------------------------------------------------------------


class Peer(NamedTuple):
    """How one queue is measured."""

    single: Callable[[str], Any]  # url -> a context giving enqueue(k) -> seconds
    batches: Callable[[str, int], float]  # url, jobs -> jobs/s in batches of 1,000
    process: Callable[[str, int, int, int], float]  # url, jobs, processes, knob -> jobs/s
    recovery: Callable[[str, float | None, Path], float]  # url, lease, tmp -> seconds
    knob: int  # its claim batch, or its concurrency per process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server",
        default=os.environ.get("PATIENTGEN_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432"),
    )
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--single", type=int, default=2_000, help="jobs enqueued one per call")
    parser.add_argument(
        "--slice", type=int, default=250, help="one-by-one jobs per turn of each queue"
    )
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=100, help="claim batch (ours, pgqueuer)")
    parser.add_argument(
        "--concurrency", type=int, default=10, help="procrastinate jobs at once per process"
    )
    parser.add_argument("--lease", type=float, help="the same lease/heartbeat for all three (s)")
    parser.add_argument("--skip-recovery", action="store_true")
    parser.add_argument(
        "--only",
        default=",".join(NAMES),
        help="comma-separated: which of ours, procrastinate, pgqueuer to measure (default: all)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="enqueue and process measured this many times"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    server = args.server.rstrip("/")
    only = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(only) - set(NAMES))
    if unknown or not only:
        parser.error(f"--only: {', '.join(unknown) or 'nothing'} is not one of {', '.join(NAMES)}")
    ensure_environment({n for n in only if n != "ours"})

    from importlib.metadata import version

    print(
        f"{args.jobs:,} empty jobs, {args.processes} worker processes, PostgreSQL at {server}; "
        + ", ".join(f"{n} {version(NAMES[n])}" for n in only),
        flush=True,
    )
    runners = {
        "ours": Peer(ours_single, ours_batches, ours_process, ours_recovery, args.batch),
        "procrastinate": Peer(
            procrastinate_single,
            procrastinate_batches,
            procrastinate_process,
            procrastinate_recovery,
            args.concurrency,
        ),
        "pgqueuer": Peer(
            pgqueuer_single, pgqueuer_batches, pgqueuer_process, pgqueuer_recovery, args.batch
        ),
    }
    rounds: list[dict[str, dict[str, float]]] = []
    for turn in range(max(1, args.rounds)):
        order = only if turn % 2 == 0 else only[::-1]
        singles = enqueue_in_turns(
            server, {name: runners[name].single for name in order}, args.single, args.slice
        )
        measured: dict[str, dict[str, float]] = {}
        for name in order:
            peer = runners[name]
            with fresh_database(server, name) as url:
                batched = peer.batches(url, args.jobs)
                rate = peer.process(url, args.jobs, args.processes, peer.knob)
            single = singles[name]
            measured[name] = {"enqueue_single": single, "enqueue_batch": batched, "process": rate}
            print(
                f"  {name:<14} enqueue {single:>8,.0f}/s one by one, {batched:>8,.0f}/s in "
                f"batches;  process {rate:>8,.0f}/s",
                flush=True,
            )
        rounds.append(measured)
    figures = {
        name: {key: statistics.median(r[name][key] for r in rounds) for key in rounds[0][name]}
        for name in only
    }
    for name in only if not args.skip_recovery else ():
        recover = runners[name].recovery
        with fresh_database(server, name) as url, tempfile.TemporaryDirectory() as tmp:
            if name == "procrastinate":
                asyncio.run(_procrastinate_schema(url))
            elif name == "pgqueuer":
                asyncio.run(_pgqueuer_schema(url))
            figures[name]["recovery"] = recover(url, args.lease, Path(tmp))
            print(
                f"  {name:<14} a killed worker's job runs again after "
                f"{figures[name]['recovery']:.1f} s",
                flush=True,
            )

    peers = [p for p in NAMES if p != "ours" and p in figures]
    if "ours" in figures and peers:
        print_ratios(figures, peers, args.processes)
        if len(rounds) > 1:
            print_round_ratios(rounds, peers)
    if args.json:  # the last line, whatever was measured
        print(json.dumps(figures))
    return 0


def enqueue_in_turns(
    server: str, singles: dict[str, Callable[[str], Any]], n: int, size: int
) -> dict[str, float]:
    """Jobs/s of each queue enqueuing n jobs one by one, the queues taking turns in slices of
    `size` jobs (each on its own fresh database, all open at once; the order of the turns
    alternates from slice to slice), so that the machine's drift falls on all alike."""
    seconds = dict.fromkeys(singles, 0.0)
    with contextlib.ExitStack() as stack:
        enqueue = {
            name: stack.enter_context(single(stack.enter_context(fresh_database(server, name))))
            for name, single in singles.items()
        }
        names = list(singles)
        done = 0
        while done < n:
            k = min(size, n - done)
            for name in names if (done // size) % 2 == 0 else names[::-1]:
                seconds[name] += enqueue[name](k)
            done += k
    return {name: n / spent for name, spent in seconds.items()}


def print_round_ratios(rounds: list[dict[str, dict[str, float]]], peers: list[str]) -> None:
    """Our ratio to each peer within each round (the same machine state for both)."""
    for peer in peers:
        for key in ("enqueue_single", "enqueue_batch", "process"):
            ratios = [r["ours"][key] / r[peer][key] for r in rounds]
            listed = ", ".join(f"{x:.2f}" for x in ratios)
            middle = statistics.median(ratios)
            print(f"  ours/{peer} {key} per round: {listed} (median {middle:.2f})")


def print_ratios(figures: dict[str, dict[str, float]], peers: list[str], processes: int) -> None:
    """The table of our figures against each peer's, with our ratio to each."""
    print()
    header = f"{'':<26}{'ours':>10}" + "".join(f"{p:>15}{'ours/' + p[:5]:>12}" for p in peers)
    print(header)
    rows = [
        ("enqueue one by one (/s)", "enqueue_single", True),
        ("enqueue in batches (/s)", "enqueue_batch", True),
        (f"process, {processes} processes (/s)", "process", True),
        ("run again after kill -9 (s)", "recovery", False),
    ]
    for label, key, higher_better in rows:
        if key not in figures["ours"]:
            continue
        ours = figures["ours"][key]
        line = f"{label:<26}{ours:>10,.1f}"
        for peer in peers:
            theirs = figures[peer][key]
            ratio = ours / theirs if higher_better else theirs / ours
            line += f"{theirs:>15,.1f}{ratio:>11.2f}x"
        print(line)
    print(
        "(ratios: how many times faster we are; for recovery, how many times sooner; "
        "procrastinate's recovery needs its documented stalled-jobs recipe, without it: never)"
    )


async def _procrastinate_schema(url: str) -> None:
    app = procrastinate_app(url)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def _pgqueuer_schema(url: str) -> None:
    await (await _pgqueuer_queries(url)).install()


if __name__ == "__main__":
    sys.exit(main())
