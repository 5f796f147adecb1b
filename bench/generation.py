"""Benchmark: patients per second per output format, and peak memory, at several sizes.

Each measurement runs in a fresh subprocess (so imports, caches and memory never leak from one to
the next); the child times `formats.bundle.write_all` for one format, and the parent reads the
child's peak RSS from `os.wait4`'s resource usage. `generate` is the generator alone (patients
made and dropped), the baseline every format pays; `all` (not run by default) writes the four
formats in one pass, as a job with the default formats does. With a medical plan (issue 10:
the scenario's sized plan), `chain` writes NDJSON with the care-chain simulation on (the whole
job: the simulation phase, then the patients), and `phase` is the simulation phase alone (every
casualty's skeleton, drawn without making the patient, and the simulation). `patients/s` is
wall-clock throughput (what a user waits for, disk included); `per CPU s` divides by the
child's CPU time, which stays meaningful when other processes share the cores.

    python bench/generation.py                       # 10,000 and 100,000 patients
    python bench/generation.py --sizes 10000,100000,1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FORMATS = ("generate", "json", "ndjson", "csv", "fhir", "chain", "phase")


def child(fmt: str, size: int, out: str, chunk_size: int) -> None:
    from patientgen.formats import DEFAULT_FORMATS, bundle
    from patientgen.generator import generate
    from patientgen.generator.chainphase import run_phase
    from patientgen.generator.plan import plan_for
    from patientgen.scenario import Scenario

    scenario = Scenario(name="bench", seed=12345, total_patients=size)
    # warm up the per-process caches (name pools, code tables) outside the timing
    for _ in generate(scenario, 0, 1):
        pass
    if fmt in ("chain", "phase"):
        scenario = Scenario.model_validate(
            {**scenario.model_dump(mode="json"), "capacity": "sized"}
        )
        plan_for(scenario)  # the calibration of the plan, as for the others above
    started = time.perf_counter()
    cpu_started = time.process_time()
    if fmt == "phase":
        run_phase(scenario)
        written = 0
    elif fmt == "generate":
        for _ in generate(scenario, 0, size):
            pass
        written = 0
    else:
        # the default formats, as a job that names none (not the on-request ones: the cards are
        # refused above 20,000 patients; bench/exercise.py measures the exercise package)
        wanted = list(DEFAULT_FORMATS) if fmt == "all" else ["ndjson" if fmt == "chain" else fmt]
        files = bundle.write_all(scenario, wanted, Path(out), chunk_size=chunk_size)
        written = sum(f.bytes for f in files)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "bytes": written}))


def measure(fmt: str, size: int, chunk_size: int, tmp: Path) -> dict[str, float]:
    out = Path(tempfile.mkdtemp(prefix=f"bench-{fmt}-", dir=tmp))
    try:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", fmt, str(size), str(out), str(chunk_size)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"child {fmt} {size} failed with {process.returncode}")
        result = json.loads(output.strip().splitlines()[-1])
        result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated patient counts")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument(
        "--repeats", type=int, default=3, help="repeats (median) for sizes up to 10,000"
    )
    parser.add_argument("--chunk-size", type=int, default=10_000)
    parser.add_argument("--tmp", default=None, help="folder for the output (default: system tmp)")
    parser.add_argument("--child", nargs=4, metavar=("FORMAT", "SIZE", "OUT", "CHUNK"))
    args = parser.parse_args()
    if args.child:
        fmt, size, out, chunk = args.child
        child(fmt, int(size), out, int(chunk))
        return

    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    formats = [f for f in args.formats.split(",") if f]
    tmp = Path(args.tmp or tempfile.gettempdir())
    print(f"{'patients':>10} {'format':>9} {'patients/s':>11} {'per CPU s':>10} {'seconds':>8} "
          f"{'peak RSS MB':>11} {'output MB':>10}")  # fmt: skip
    for size in sizes:
        for fmt in formats:
            repeats = args.repeats if size <= 10_000 else 1
            runs = [measure(fmt, size, args.chunk_size, tmp) for _ in range(max(1, repeats))]
            seconds = statistics.median(r["seconds"] for r in runs)
            cpu = statistics.median(r["cpu_seconds"] for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            print(
                f"{size:>10,} {fmt:>9} {size / seconds:>11,.0f} {size / cpu:>10,.0f} "
                f"{seconds:>8.2f} {rss:>11.1f} {runs[0]['bytes'] / 1e6:>10.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
