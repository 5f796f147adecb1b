"""Process faults (issue 6, item 2): kill -9 of workers and of the API at random (seeded)
moments while a batch of 200 jobs of varied sizes is submitted and run, on SQLite and on
PostgreSQL.

Topology: one `patientgen serve --workers 0` (the API) and two `patientgen worker` processes,
each restarted right after it is killed. The batch is mostly tiny jobs (1-12 patients) and a few
multi-chunk ones (60-160 patients in chunks of 20, slowed by PATIENTGEN_CHUNK_DELAY so kills land
inside them). Submits carry an Idempotency-Key and are retried while the API is down. Leases are
short (1.5 s) and attempts plentiful (50), so every killed job comes back.

At the end: exactly 200 jobs (one per key), each completed exactly once (an audit trigger on the
jobs table records every status change: one `-> completed` per job, never `-> failed`), every
output file byte-identical (sha256, recorded and on disk) to a clean run of the same scenario
(computed once per distinct scenario), no orphan files (no temporary file, no parts folder, no
folder of an unknown job); on SQLite `PRAGMA integrity_check` is ok. The faults must have hit:
at least one job was taken from a killed worker (`running -> pending`).
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from tests.faults.support import (
    Proc,
    assert_no_orphans,
    assert_output_identical,
    call,
    install_audit,
    make_env,
    migrate,
    query,
    serve,
    transitions,
    wait_healthy,
    worker,
)
from tests.support import free_port

N_JOBS = 200
SEED = 20261128
LEASE_SECONDS = 1.5
#: kills happen every 0.3-1.2 s (seeded) until all jobs are done or this many were made
MAX_KILLS = 30

FORMAT_SETS = [["ndjson"], ["csv"], ["json", "csv"], ["ndjson", "fhir"], ["json", "ndjson"]]


def _batch(rng: random.Random) -> list[dict]:
    """200 submit bodies drawn from a small pool of distinct scenarios (most tiny)."""
    tiny = [
        {
            "scenario": {
                "name": f"tiny-{i}",
                "seed": 100 + i,
                "total_patients": rng.randint(1, 12),
            },
            "formats": FORMAT_SETS[i % len(FORMAT_SETS)],
        }
        for i in range(10)
    ]
    large = [
        {
            "scenario": {"name": f"large-{i}", "seed": 200 + i, "total_patients": n},
            # the exercise files too: an inject list merged and cards rendered from many parts
            "formats": ["ndjson", "csv", "mel", "cards"],
        }
        for i, n in enumerate((60, 100, 160))
    ]
    bodies = []
    for i in range(N_JOBS):
        bodies.append(large[i // 20 % len(large)] if i % 20 == 5 else rng.choice(tiny))
    return bodies


class Chaos(threading.Thread):
    """kill -9 a random process of `procs` at random moments, and start it again."""

    def __init__(self, procs: list[Proc], seed: int, max_kills: int) -> None:
        super().__init__(name="chaos", daemon=True)
        self.procs = procs
        self.rng = random.Random(seed)
        self.max_kills = max_kills
        self.done = threading.Event()
        self.kills: list[tuple[float, str]] = []
        self.lock = threading.Lock()  # held while a process is down and being restarted

    def run(self) -> None:
        while len(self.kills) < self.max_kills and not self.done.wait(self.rng.uniform(0.3, 1.2)):
            victim = self.rng.choice(self.procs)
            with self.lock:
                victim.kill9()
                self.kills.append((time.monotonic(), victim.name))
                self.done.wait(self.rng.uniform(0.0, 0.3))
                victim.start()

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)


def _all_jobs(client: httpx.Client) -> list[dict]:
    items: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = call(client, "GET", "/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_workers_and_api_during_a_batch(store, request, tmp_path, refs):
    data = tmp_path / "data"
    if store == "sqlite":
        url = f"sqlite:///{data / 'patientgen.db'}"
    else:
        url = request.getfixturevalue("pg_database_factory")()
    migrate(data, url)
    install_audit(url)
    env = make_env(
        data,
        url,
        lease_seconds=LEASE_SECONDS,
        chunk_size=20,
        chunk_delay=0.05,
        max_attempts=50,
        db_timeout=2,
    )
    port = free_port()
    api = serve(env, port, tmp_path / "api.log").start()
    workers = [worker(env, tmp_path / f"worker-{i}.log", f"worker-{i}").start() for i in (1, 2)]
    procs = [api, *workers]
    rng = random.Random(SEED)
    bodies = _batch(rng)
    chaos = Chaos([api, *workers, *workers], SEED, MAX_KILLS)  # workers twice as likely
    started = time.monotonic()
    try:
        wait_healthy(port, api)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=10)
        chaos.start()
        ids: dict[str, str] = {}
        for i, body in enumerate(bodies):
            key = f"batch-{i}"
            response = call(client, "POST", "/jobs", json=body, headers={"Idempotency-Key": key})
            assert response.status_code in (200, 202), response.text
            ids[key] = response.json()["job_id"]
        assert len(set(ids.values())) == N_JOBS

        def finished() -> bool:
            counts = query(url, "SELECT status, count(*) FROM jobs GROUP BY status")
            return dict(counts).get("completed", 0) == N_JOBS

        deadline = time.monotonic() + 150
        while not finished():
            assert time.monotonic() < deadline, query(
                url, "SELECT status, count(*) FROM jobs GROUP BY status"
            )
            if not chaos.is_alive():  # kills are over: make sure every process runs again
                for proc in procs:
                    if not proc.alive():
                        proc.start()
            time.sleep(0.2)
        chaos.stop()
        elapsed = time.monotonic() - started
        with chaos.lock:
            for proc in procs:
                if not proc.alive():
                    proc.start()
        wait_healthy(port, api)

        jobs = _all_jobs(client)
        assert len(jobs) == N_JOBS  # none lost, none duplicated
        assert {j["job_id"] for j in jobs} == set(ids.values())
        for job in jobs:
            assert job["status"] == "completed", job
            assert_output_identical(job, data, refs)
        audit = transitions(url)
        for job in jobs:
            news = [new for _, new in audit[job["job_id"]]]
            assert news.count("completed") == 1 and news[-1] == "completed", audit[job["job_id"]]
            assert "failed" not in news, audit[job["job_id"]]
        assert_no_orphans(data, set(ids.values()))
        if store == "sqlite":
            assert query(url, "PRAGMA integrity_check") == [("ok",)]

        requeued = sum(
            1 for steps in audit.values() for step in steps if step == ("running", "pending")
        )
        retried = sum(1 for job in jobs if job["attempts"] > 1)
        killed = {name: sum(1 for _, n in chaos.kills if n == name) for _, name in chaos.kills}
        print(
            f"{store}: {N_JOBS} jobs in {elapsed:.1f} s under {len(chaos.kills)} kill -9"
            f" {killed}; {requeued} jobs taken back from a dead worker, {retried} with attempts > 1"
        )
        assert requeued >= 1  # the faults did hit running jobs
    finally:
        chaos.stop()
        for proc in procs:
            proc.kill9()
