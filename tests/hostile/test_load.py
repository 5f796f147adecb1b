"""Load, small: 300 small jobs from 20 concurrent clients to a real `patientgen serve` on a fresh
PostgreSQL database while a 4-process `patientgen worker` runs them (bench/load.py, which runs
10,000 jobs from 50 clients by default). Correctness only: every job completed exactly once
(attempts == 1), none missing or doubled, each output holding exactly its patients; no request
failed. No wall-clock limit is asserted; the figures are printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

LOAD = Path(__file__).resolve().parents[2] / "bench" / "load.py"


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["while-running", "queued"])
def test_300_jobs_from_20_clients_complete_exactly_once(pg_server: str, mode: str) -> None:
    """With --queued every job is submitted before the workers start, and the drain of the full
    queue is timed from their start: the same checks hold, and the drain figures are there."""
    args = ["--server", pg_server, "--jobs", "300", "--clients", "20", "--workers", "4"]
    if mode == "queued":
        args.append("--queued")
    run = subprocess.run(
        [sys.executable, str(LOAD), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode in (0, 1), run.stderr[-5000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(json.dumps(result, indent=1))
    assert result["jobs_submitted"] == result["distinct_ids"] == result["jobs_in_database"] == 300
    assert result["by_status"] == {"completed": 300}
    assert result["by_attempts"] == {"1": 300}
    assert result["outputs_exact"] == 300
    assert result["errors"] == [] and result["retries"] == 0
    assert result["ok"]
    if mode == "queued":
        assert result["queue_drain_seconds"] > 0
        assert set(result["queue_drain_cpu"]) == {"workers", "postgres"}
        assert 0 <= result["queue_drain_workers_kernel"] <= result["queue_drain_cpu"]["workers"]
    parts = result["cpu_ms_per_job"]  # parts of one whole: the workers' kernel time is apart
    assert set(parts) == {"clients", "api", "workers", "postgres"}
    assert 0 <= result["workers_kernel_ms_per_job"] <= parts["workers"]


PEERS = LOAD.parent / "peers.py"


@pytest.mark.postgres
def test_the_peers_benchmark_measures_ours_alone(pg_server: str) -> None:
    """bench/peers.py --only ours runs without the peers installed: each figure is there (the
    bench itself exits non-zero unless every job ran exactly once and the killed worker's job
    ran again in the other worker). No figure is compared with a limit."""
    run = subprocess.run(
        [sys.executable, str(PEERS), "--server", pg_server, "--only", "ours", "--jobs", "300",
         "--single", "50", "--processes", "2", "--lease", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    print(run.stdout)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert list(figures) == ["ours"]
    ours = figures["ours"]
    assert set(ours) == {"enqueue_single", "enqueue_batch", "process", "recovery"}
    assert all(value > 0 for value in ours.values())
    # after a kill -9 the job waits for its lease to run out: never sooner than that
    assert ours["recovery"] >= 1.0

    wrong = subprocess.run(
        [sys.executable, str(PEERS), "--only", "ours,celery"], capture_output=True, text=True
    )
    assert wrong.returncode == 2
    assert "--only: celery is not one of ours, procrastinate, pgqueuer" in wrong.stderr
