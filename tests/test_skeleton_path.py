"""The care-chain phase's cheap path (generator/skeleton_path.py) and its compact store
(generator/skeletons.py) change no byte: every skeleton is the one flow.skeleton reads from the
baseline patient build.make_patient makes, the simulation over them gives the same result, and a
job whose phase was computed from the baseline patients writes the same files.
"""

from __future__ import annotations

from random import Random

import pytest
from care_chain_support import drill, with_capacity
from formats_support import digests, run

from patientgen.formats import FORMATS, bundle
from patientgen.formats.bundle import chain as bundle_chain
from patientgen.generator import chainphase
from patientgen.generator.build import make_patient
from patientgen.generator.chain import simulate
from patientgen.generator.flow import Skeleton, skeleton
from patientgen.generator.plan import Plan, plan_for
from patientgen.generator.skeleton_path import skeletons
from patientgen.generator.skeletons import SkeletonStore
from patientgen.scenario import PRESETS, Scenario

N = 1500
SMALL = {"total_patients": 2500}


def _baseline(plan: Plan) -> list[Skeleton]:
    """The skeletons the slow way: every patient made, then read."""
    rng = Random()
    n = plan.scenario.total_patients
    found = (skeleton(plan, make_patient(plan, i, rng)) for i in range(n))
    return [sk for sk in found if sk is not None]


def _slow_phase(scenario: Scenario) -> bytes:
    """The phase's file, computed from the baseline patients."""
    plan = plan_for(scenario)
    sim = simulate(plan, _baseline(plan))
    digest = chainphase.scenario_digest(scenario)
    return chainphase.encode(chainphase.FlowResult(digest, sim.records(), sim.statistics()))


@pytest.mark.parametrize("size", ["sized", "starved"])
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_skeleton_is_the_one_of_the_baseline_patient(preset, size) -> None:
    scenario = with_capacity(PRESETS[preset].scenario, size, total_patients=N, seed=N + len(preset))
    plan = plan_for(scenario)
    slow = _baseline(plan)
    fast = skeletons(plan)
    assert len(fast) == len(slow) > N // 2
    assert list(fast) == slow
    # killed in action never reach care: the cheap path leaves out the same casualties
    assert len(slow) < N


def test_the_store_gives_back_what_was_added_and_orders_arrivals() -> None:
    plan = plan_for(drill("starved", total_patients=N))
    slow = _baseline(plan)
    store = SkeletonStore(plan.start_ts, [], [])  # units and origins numbered as they come
    for sk in slow:
        store.add(sk)
    assert [store.get(k) for k in range(len(store))] == slow
    expected = sorted((sk.stages[0].ready, k) for k, sk in enumerate(slow))
    assert list(store.arrivals()) == expected
    assert any(sk.origin.startswith("#") for sk in slow)
    assert any(not sk.origin.startswith("#") for sk in slow)  # mass-casualty events
    # compact: a casualty in well under the kilobyte of its Python objects
    assert store.nbytes() < 100 * len(store)


@pytest.mark.parametrize(
    ("scenario", "starved"),
    [
        (drill("starved", total_patients=2500), True),
        (with_capacity(PRESETS["urban-assault"].scenario, "sized", total_patients=2500), False),
        (with_capacity(PRESETS["high-intensity-defence"].scenario, "starved", **SMALL), True),
    ],
    ids=["drill starved", "urban sized", "high-intensity starved"],
)
def test_the_phase_is_the_one_of_the_baseline_patients(scenario, starved) -> None:
    result = chainphase.run_phase(scenario)
    assert chainphase.encode(result) == _slow_phase(scenario)
    if starved:  # casualties waited, died waiting: the comparison covers records
        assert any(r.death is not None for r in result.records.values())


@pytest.mark.parametrize("chunk", [400, 1000])
def test_a_job_writes_the_files_of_a_phase_made_from_the_baseline_patients(tmp_path, chunk) -> None:
    """The phase computed by a job (the cheap path) and the phase computed from the patients
    themselves, given to a job as its checkpoint, give the same files, chunked either way."""
    scenario = drill("starved", total_patients=2000, seed=77)
    formats = [f for f in FORMATS if f != "cards"]
    bundle_chain._chains.clear()
    run(scenario, formats, tmp_path / "fast", bundle.chunk_ranges(2000, chunk))
    slow_parts = tmp_path / "slow.parts"
    slow_parts.mkdir()
    (slow_parts / bundle.CHAIN_FILE).write_bytes(_slow_phase(scenario))
    bundle_chain._chains.clear()
    run(scenario, formats, tmp_path / "slow", bundle.chunk_ranges(2000, 2000))
    assert digests(tmp_path / "fast") == digests(tmp_path / "slow")
    assert (tmp_path / "fast.parts" / bundle.CHAIN_FILE).read_bytes() == (
        slow_parts / bundle.CHAIN_FILE
    ).read_bytes()
