"""The patient generator: pure and deterministic, (scenario, patient index) -> Patient.

Patient i depends only on (scenario, seed, i): its random stream and id come from blake2b over
(seed, i), every per-scenario table is computed once (plan.py), and nothing reads the clock, uuid4,
hash() or the global random state. Any range can therefore be generated alone, in any order, by any
process, and the results joined give exactly the whole population.
"""

from __future__ import annotations

from collections.abc import Iterator
from random import Random

from patientgen.generator.build import make_patient
from patientgen.generator.patient import Patient
from patientgen.generator.plan import Plan, plan_for
from patientgen.scenario import Scenario

#: Bump when the output changes for the same input.
GENERATOR_VERSION = "1.2.0"

__all__ = ["GENERATOR_VERSION", "Patient", "generate"]


def generate(scenario: Scenario, start: int = 0, stop: int | None = None) -> Iterator[Patient]:
    """Patients start .. stop-1 of the scenario (stop defaults to total_patients).

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
    return _iterate(plan, start, stop)


def _iterate(plan: Plan, start: int, stop: int) -> Iterator[Patient]:
    make = make_patient
    rng = Random()  # private to this iterator, reseeded for every patient
    for index in range(start, stop):
        yield make(plan, index, rng)
