"""The patient generator: pure and deterministic, (scenario, patient index) -> Patient.

Patient i depends only on (scenario, seed, i): its random stream and id come from blake2b over
(seed, i), every per-scenario table is computed once (plan.py), and nothing reads the clock, uuid4,
hash() or the global random state. Any range can therefore be generated alone, in any order, by any
process, and the results joined give exactly the whole population. With a medical plan, patient i
also depends on the care-chain simulation of the whole scenario (chainphase.py), itself a function
of (scenario, seed) alone: computed once per job, then read by every range.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from random import Random

from patientgen.generator.build import make_patient
from patientgen.generator.chainphase import FlowResult, run_phase, scenario_digest
from patientgen.generator.flow import apply, skeleton, unqueued
from patientgen.generator.patient import Patient
from patientgen.generator.plan import Plan, plan_for
from patientgen.scenario import Scenario

#: Bump when the output changes for the same input.
GENERATOR_VERSION = "1.44.0"

__all__ = ["GENERATOR_VERSION", "Patient", "generate"]


def generate(
    scenario: Scenario, start: int = 0, stop: int | None = None, flow: FlowResult | None = None
) -> Iterator[Patient]:
    """Patients start .. stop-1 of the scenario (stop defaults to total_patients).

    With a medical plan (scenario.capacity), each patient is the baseline moved by the result of
    the care-chain simulation of the whole scenario: `flow` (the job's first phase, read from its
    part file), else computed here once per process and scenario.

    Raises ValueError at once (not on first iteration) for a range outside [0, total_patients].
    """
    total = scenario.total_patients
    if stop is None:
        stop = total
    if isinstance(start, bool) or isinstance(stop, bool):
        raise ValueError("start and stop must be integers")
    if not (0 <= start <= stop <= total):
        raise ValueError(f"bad patient range [{start}, {stop}) for total_patients={total}")
    plan = plan_for(scenario)
    if scenario.medical_plan is not None:
        if flow is None:
            flow = flow_for(scenario)
        elif flow.digest != scenario_digest(scenario):
            raise ValueError("the care-chain result was computed for another scenario")
        return _iterate_chain(plan, start, stop, flow)
    return _iterate(plan, start, stop)


def flow_for(scenario: Scenario) -> FlowResult:
    """The care-chain result of a scenario, computed once per process (the last few kept)."""
    return _flow_for(scenario.canonical_json())


@lru_cache(maxsize=4)
def _flow_for(canonical: bytes) -> FlowResult:
    return run_phase(Scenario.model_validate_json(canonical))


def _iterate(plan: Plan, start: int, stop: int) -> Iterator[Patient]:
    make = make_patient
    rng = Random()  # private to this iterator, reseeded for every patient
    for index in range(start, stop):
        yield make(plan, index, rng)


def _iterate_chain(plan: Plan, start: int, stop: int, flow: FlowResult) -> Iterator[Patient]:
    make = make_patient
    records = flow.records
    rng = Random()
    for index in range(start, stop):
        p = make(plan, index, rng)
        rec = records.get(index)
        yield unqueued(p) if rec is None else apply(plan, p, skeleton(plan, p), rec)
