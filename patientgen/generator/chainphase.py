"""The job's first phase when the scenario has a medical plan: the care-chain simulation over
the whole casualty stream, and its result as bytes (the part file that
formats/bundle/chain.py checkpoints).

`run_phase(scenario)` takes every casualty's skeleton (what flow.skeleton reads of the baseline
patient made with unlimited capacity) from generator/skeleton_path.py, which draws the patient's
own stream exactly as build.py does but makes no record, keeps them compactly
(generator/skeletons.py), runs the simulation (generator/chain.py) and returns a `FlowResult`:
per casualty with anything to say, its Record; and the statistics of the run for summary.json.

Invariants: the result, and its bytes, depend only on the scenario (seed included); `encode` /
`decode` round-trip exactly; a result decoded for another scenario is refused (its digest).
"""

from __future__ import annotations

import gc
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from patientgen.generator.chain import simulate
from patientgen.generator.flow import Record
from patientgen.generator.plan import plan_for
from patientgen.generator.skeleton_path import skeletons
from patientgen.scenario import Scenario

FORMAT = 1


@dataclass(frozen=True)
class FlowResult:
    digest: str  # of the scenario it was computed for
    records: dict[int, Record]
    statistics: dict[str, Any]


def scenario_digest(scenario: Scenario) -> str:
    return hashlib.sha256(scenario.canonical_json()).hexdigest()


def run_phase(scenario: Scenario) -> FlowResult:
    """Simulate the chain of care of the whole scenario (needs a medical plan)."""
    plan = plan_for(scenario)
    # The casualties in the chain and the records are many small objects, none part of a cycle:
    # the cyclic collector would only walk them again and again.
    enabled = gc.isenabled()
    gc.disable()
    try:
        sim = simulate(plan, skeletons(plan))
        return FlowResult(scenario_digest(scenario), sim.records(), sim.statistics())
    finally:
        if enabled:
            gc.enable()


def encode(result: FlowResult) -> bytes:
    return orjson.dumps(
        {
            "format": FORMAT,
            "scenario": result.digest,
            "records": [[i, *r.to_json()] for i, r in sorted(result.records.items())],
            "statistics": result.statistics,
        }
    )


def decode(data: bytes, scenario: Scenario) -> FlowResult:
    """The result in `data`; ValueError when it is not one of this scenario."""
    found = orjson.loads(data)
    digest = scenario_digest(scenario)
    if found.get("format") != FORMAT or found.get("scenario") != digest:
        raise ValueError("the care-chain result was computed for another scenario")
    records = {row[0]: Record.from_json(row[1:]) for row in found["records"]}
    return FlowResult(digest, records, found["statistics"])
