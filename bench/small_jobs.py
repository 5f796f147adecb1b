"""Benchmark: the file work of one small job, write_chunk + finalize + merge_summaries.

A job of 1 or 5 patients (one chunk), as bench/load.py submits them: every job a scenario of its
own (its own seed and name), its parts folder inside its own job folder, its files in that job
folder. Each job is timed alone; the figures are medians (and 90th percentiles) over many jobs,
after a few warm-up jobs (imports, name pools, calibration: paid once per worker process).

What it measures is the formats layer only (no store, no runner): the per-job file cost a worker
pays on top of claiming and completing the job. `fsync` is the time spent waiting in fsync (files
and folders; it depends on the disk and on whatever else writes to it), `rest` everything else
(CPU and the other system calls): on a shared machine compare `rest` and the fsync count first.

    python bench/small_jobs.py                       # 200 jobs per case, in a temporary folder
    python bench/small_jobs.py --jobs 500 --dir /var/tmp/bench
    python bench/small_jobs.py --profile ndjson      # cProfile of 1-patient ndjson jobs
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ndjson", ("ndjson",)),
    ("all", ("json", "ndjson", "csv", "fhir")),
)
SIZES = (1, 5)
_fsync = os.fsync
FSYNCS = [0]
FSYNC_SECONDS = [0.0]


def _counting_fsync(fd: Any) -> None:  # os.fsync's: a descriptor or what has fileno()
    FSYNCS[0] += 1
    started = time.perf_counter()
    try:
        _fsync(fd)
    finally:
        FSYNC_SECONDS[0] += time.perf_counter() - started


os.fsync = _counting_fsync  # count the fsyncs of a job (files and folders): they dominate


def scenario_of(n: int, patients: int) -> Any:
    from patientgen.scenario import Scenario

    return Scenario.model_validate(
        {
            "name": f"small-{n}",
            "seed": 1_000_000 + n,
            "total_patients": patients,
            "duration_days": 3,
        }
    )


def one_job(data: Path, n: int, patients: int, formats: tuple[str, ...]) -> dict[str, float]:
    """Run one job's file work; seconds of each step."""
    from patientgen.formats import bundle

    scenario = scenario_of(n, patients)
    job = data / "jobs" / f"job-{n:07d}"
    parts = job / ".parts"
    FSYNC_SECONDS[0] = 0.0
    t0 = time.perf_counter()
    summaries = [
        bundle.write_chunk(scenario, formats, parts, i, start, stop)
        for i, (start, stop) in enumerate(bundle.chunk_ranges(patients, 1000))
    ]
    t1 = time.perf_counter()
    bundle.finalize(scenario, formats, parts, job, summaries)
    t2 = time.perf_counter()
    bundle.merge_summaries(summaries)
    t3 = time.perf_counter()
    return {
        "write_chunk": t1 - t0,
        "finalize": t2 - t1,
        "merge": t3 - t2,
        "total": t3 - t0,
        "fsync": FSYNC_SECONDS[0],
        "rest": t3 - t0 - FSYNC_SECONDS[0],
    }


def run_case(data: Path, jobs: int, patients: int, formats: tuple[str, ...], base: int) -> None:
    for n in range(base, base + 5):  # warm-up
        one_job(data, n, patients, formats)
    times: dict[str, list[float]] = {}
    FSYNCS[0] = 0
    for n in range(base + 5, base + 5 + jobs):
        for step, seconds in one_job(data, n, patients, formats).items():
            times.setdefault(step, []).append(seconds)
    fsyncs = FSYNCS[0] / jobs
    total = sorted(times["total"])
    p90 = total[int(0.9 * (len(total) - 1))]
    steps = "  ".join(
        f"{step} {1000 * statistics.median(times[step]):5.2f}"
        for step in ("write_chunk", "finalize", "merge", "fsync", "rest")
    )
    median = statistics.median(total)
    print(
        f"{'+'.join(formats):20s} {patients} patient(s)  median {1000 * median:6.2f} ms"
        f"  p90 {1000 * p90:6.2f} ms  ({steps} ms)"
        f"  {fsyncs:4.1f} fsyncs/job  ~{1 / median:5.0f} jobs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="timed jobs per case")
    parser.add_argument("--dir", type=Path, default=None, help="folder for the job folders")
    parser.add_argument("--profile", choices=[name for name, _ in CASES], default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="small-jobs-", dir=args.dir))
    try:
        if args.profile:
            formats = dict(CASES)[args.profile]
            for n in range(5):
                one_job(root, n, 1, formats)
            profiler = cProfile.Profile()
            profiler.enable()
            for n in range(5, 5 + args.jobs):
                one_job(root, n, 1, formats)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return
        base = 0
        for _, formats in CASES:
            for patients in SIZES:
                run_case(root, args.jobs, patients, formats, base)
                base += args.jobs + 10
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
