"""Memory of the care-chain phase under a plan starved for capacity, where nearly every casualty
waits and so has a record (docs/care-chain.md, "Cost").

For each size, in a fresh subprocess each (so nothing is shared or cached between them):
- `phase`: the simulation phase alone (`chainphase.run_phase`): its CPU seconds, the records it
  made, the bytes of its checkpoint, and the process's peak RSS;
- `chunk`: what a worker writing a chunk holds: the checkpoint decoded (`chainphase.decode`),
  the memory it holds after (RSS above what it held before the decode), the peak RSS of the
  decode, and, decoded again under tracemalloc, the bytes a record takes (its entry in the
  records' dict included).

The plan is the tests' starved one (tests/care_chain_support.py: one team and a few beds a unit,
two ambulances a front) over the 2-day mass-casualty drill's fronts, for `--days` days.

    .venv/bin/python bench/chain_memory.py                 # 100,000 and 200,000 casualties
    .venv/bin/python bench/chain_memory.py --sizes 50000 --days 10
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from patientgen.scenario import Scenario

# the repository first, for the tests' plans (tests/care_chain_support.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _scenario(size: int, days: int) -> Scenario:
    from tests.care_chain_support import drill

    return drill("starved", total_patients=size, duration_days=days, name="memory", seed=3)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(mode: str, size: int, days: int, checkpoint: str) -> None:
    from patientgen.generator import chainphase

    scenario = _scenario(size, days)
    out: dict[str, float] = {}
    if mode == "phase":
        started = time.process_time()
        result = chainphase.run_phase(scenario)
        out["cpu_seconds"] = time.process_time() - started
        data = chainphase.encode(result)
        Path(checkpoint).write_bytes(data)
        out["records"] = len(result.records)
        out["checkpoint_mb"] = len(data) / 2**20
    else:
        import tracemalloc

        data = Path(checkpoint).read_bytes()
        start_rss = _rss_mb()
        result = chainphase.decode(data, scenario)
        out["held_mb"] = _rss_mb() - start_rss
        out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["records"] = len(result.records)
        del result  # decoded again, traced (tracemalloc's own bookkeeping would inflate RSS)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        result = chainphase.decode(data, scenario)
        out["bytes_per_record"] = (tracemalloc.get_traced_memory()[0] - before) / max(
            1, len(result.records)
        )
        tracemalloc.stop()
        print(json.dumps(out))
        return
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(mode: str, size: int, days: int, checkpoint: Path) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", mode, str(size), str(days), str(checkpoint)]
    done = subprocess.run(argv, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,200000", help="comma-separated casualties")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "SIZE", "DAYS", "CHECKPOINT"))
    args = parser.parse_args()
    if args.child:
        mode, size, days, checkpoint = args.child
        child(mode, int(size), int(days), checkpoint)
        return
    heads = ("casualties", "records", "phase CPU s", "phase peak MB", "checkpoint MB",
             "chunk holds MB", "B/record", "decode peak MB")  # fmt: skip
    widths = (10, 8, 11, 13, 13, 14, 8, 14)
    print(" ".join(f"{head:>{width}}" for head, width in zip(heads, widths, strict=True)))
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s.replace("_", "")) for s in args.sizes.split(",") if s):
            checkpoint = Path(tmp) / f"care-chain-{size}.json"
            phase = measure("phase", size, args.days, checkpoint)
            chunk = measure("chunk", size, args.days, checkpoint)
            print(
                f"{size:>10,} {int(phase['records']):>8,} {phase['cpu_seconds']:>11.1f} "
                f"{phase['peak_rss_mb']:>13.0f} {phase['checkpoint_mb']:>13.1f} "
                f"{chunk['held_mb']:>14.0f} {chunk['bytes_per_record']:>8.0f} "
                f"{chunk['peak_rss_mb']:>14.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
