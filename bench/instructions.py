"""Benchmark: instructions per patient of the generator's hot paths, counted by callgrind.

On a shared machine the wall-clock and even the CPU seconds of the same run drift by tens of
percent within minutes, so a change of a few percent on the hot path cannot be seen in them.
The number of instructions a deterministic run executes does not drift. Each figure here is
two runs of this script's child under `valgrind --tool=callgrind`: once with the set-up alone
(imports, the scenario, its plan, what the stage reads) and once with the set-up and the
stage over N patients. The difference divided by N is printed.

Instructions are not time: cache misses and the CPU's SHA extensions are not in them (a heap
whose entries are scattered in memory costs more time than its instructions say; the sha256 of
the final files costs less). Use them to compare two versions of the code, then confirm the
time with bench/generation.py in alternating runs.

Stages (the default scenario with the sized medical plan, seed 12345):
- make: `build.make_patient` of N patients;
- skeleton: the care-chain phase's skeleton of N casualties (`skeleton_path.add`);
- simulate: the care-chain simulation of the skeletons of N casualties;
- fhir: `fhir.encode` of N patients made beforehand;
- job: the whole job with the simulation, NDJSON, chunks of 5,000 (`bundle.write_all`).

    python bench/instructions.py                        # every stage
    python bench/instructions.py --stages make,job --patients 2000
    PYTHONPATH=/path/to/other/checkout python bench/instructions.py   # another version

Needs valgrind (Debian: apt-get install valgrind); about 50 times slower than a plain run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

STAGES = ("make", "skeleton", "simulate", "fhir", "job")
#: Patients per stage by default: enough that the per-patient figure is stable.
DEFAULT_PATIENTS = {"make": 5000, "skeleton": 5000, "simulate": 20000, "fhir": 3000, "job": 20000}
_TOTAL = re.compile(r"refs:\s*([\d,]+)")


def child(stage: str, n: int, total: int) -> None:
    from random import Random

    from patientgen.formats import bundle, fhir
    from patientgen.generator import generate
    from patientgen.generator.build import make_patient
    from patientgen.generator.chain import simulate
    from patientgen.generator.plan import plan_for
    from patientgen.generator.skeleton_path import add, skeletons
    from patientgen.generator.skeletons import SkeletonStore
    from patientgen.scenario import Scenario

    base = Scenario(name="bench", seed=12345, total_patients=total)
    scenario = Scenario.model_validate({**base.model_dump(mode="json"), "capacity": "sized"})
    plan = plan_for(scenario)
    for _ in generate(base, 0, 1):  # the per-process caches (name pools, code tables)
        pass
    rng = Random()
    if stage == "make":
        for index in range(n):
            make_patient(plan, index, rng)
    elif stage == "skeleton":
        store = SkeletonStore(plan.start_ts, [], [e.event_id for e in plan.events])
        for index in range(n):
            add(plan, index, rng, store)
    elif stage == "simulate":
        store = skeletons(plan)  # set-up: the skeletons of every casualty
        if n:
            simulate(plan, store)
    elif stage == "fhir":
        patients = list(generate(base, 0, total))  # set-up: the patients to encode
        job = fhir.scope(base)
        for p in patients[:n]:
            fhir.encode(p, job)
    elif stage == "job" and n:
        out = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
        try:
            bundle.write_all(scenario, ["ndjson"], out, chunk_size=5000)
        finally:
            shutil.rmtree(out)


def instructions(stage: str, n: int, total: int) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--child", stage, str(n), str(total)],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    found = _TOTAL.search(run.stderr)
    if found is None:
        raise SystemExit(f"no instruction count in callgrind's output:\n{run.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated")
    parser.add_argument("--patients", type=int, help="N for every stage (default: per stage)")
    parser.add_argument("--child", nargs=3, metavar=("STAGE", "N", "TOTAL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        stage, n, total = args.child
        child(stage, int(n), int(total))
        return 0
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        parser.error(
            f"--stages: {', '.join(unknown) or 'nothing'} is not one of {', '.join(STAGES)}"
        )
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    import patientgen

    print(f"patientgen from {Path(patientgen.__file__).parent}; instructions per patient")
    print(f"{'stage':<10}{'patients':>10}{'set-up':>16}{'per patient':>14}")
    for stage in stages:
        n = args.patients or DEFAULT_PATIENTS[stage]
        setup = instructions(stage, 0, n)
        with_stage = instructions(stage, n, n)
        print(f"{stage:<10}{n:>10,}{setup:>16,}{(with_stage - setup) // n:>14,}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
