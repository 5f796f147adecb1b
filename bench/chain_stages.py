"""Where the whole job with a medical plan spends a patient's time, stage by stage: CPU
microseconds a patient of the care-chain phase's skeleton pass and simulation, of making the
patients again in the chunks (the generator alone, then with the phase's result applied), and of
encoding them as NDJSON records (orjson only, as formats/bundle/encode.py calls it; the
attribute records, the summary and the writing are the rest of bench/generation.py's figure).
Each stage is timed alone, in one process, on bench/generation.py's scenario with the sized
plan; it also prints how many casualties the simulation moved (those with a record).

    .venv/bin/python bench/chain_stages.py                  # 100,000 patients
    .venv/bin/python bench/chain_stages.py --patients 20000
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

import orjson

from patientgen.formats import json as json_format
from patientgen.generator import GENERATOR_VERSION, generate
from patientgen.generator.chain import simulate
from patientgen.generator.chainphase import run_phase
from patientgen.generator.plan import plan_for
from patientgen.generator.skeleton_path import skeletons
from patientgen.scenario import Scenario


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    args = parser.parse_args()
    n = args.patients
    base = Scenario(name="bench", seed=12345, total_patients=n)
    scenario = Scenario.model_validate({**base.model_dump(mode="json"), "capacity": "sized"})
    plan = plan_for(scenario)
    for _ in generate(Scenario(name="bench", seed=12345, total_patients=10)):
        pass  # the per-process caches, outside the timing

    def timed(label: str, stage: Callable[[], Any]) -> Any:
        started = time.process_time()
        result = stage()
        print(f"  {label:<34} {(time.process_time() - started) / n * 1e6:6.1f} µs", flush=True)
        return result

    print(f"generator {GENERATOR_VERSION}, {n:,} patients, the sized plan; CPU a patient:")
    gc.disable()  # as run_phase does
    store = timed("phase: skeleton pass", lambda: skeletons(plan))
    sim = timed("phase: simulation", lambda: simulate(plan, store))
    gc.enable()
    flow = timed("phase: both (run_phase)", lambda: run_phase(scenario))
    timed("chunks: make them (no plan)", lambda: sum(1 for _ in generate(base, 0, n)))
    option = json_format.OPTIONS | orjson.OPT_APPEND_NEWLINE

    def made_and_encoded() -> int:
        return sum(len(orjson.dumps(p, option=option)) for p in generate(scenario, 0, n, flow))

    timed("chunks: with the result applied", lambda: sum(1 for _ in generate(scenario, 0, n, flow)))
    timed("chunks: applied and encoded", made_and_encoded)
    print(f"casualties with a record (moved by the simulation): {len(sim.records()):,}")


if __name__ == "__main__":
    main()
