"""The skeletons of a job without making its patients: the care-chain phase's cheap path.

`skeletons(plan)` gives, in a SkeletonStore (generator/skeletons.py), exactly
`flow.skeleton(plan, build.make_patient(plan, i))` for every casualty i who reaches care, without
building any record: no names, dates, conditions, events or procedures, only the numbers the
skeleton is made of.

Invariant: every draw is build.py's own. `add` calls build's stage functions in
build.make_patient's order without records (`_who`, `_hurt`, `_first_aid`, `_poi`, `_path`,
`_facilities`: see build.py's docstring), which draw exactly what they draw for a patient and
stop before Role 4 (the stream's last draws); a killed in action casualty stops after its
injuries: it never reaches care. Nothing here draws. What flow.skeleton reads of a patient is
computed here from the stages' numbers; tests/test_skeleton_path.py compares the two on every
casualty of several scenarios, and the whole job's files with reference digests.
"""

from __future__ import annotations

from random import Random

from patientgen.generator import injuries as inj
from patientgen.generator.build import (
    Stay,
    _facilities,
    _first_aid,
    _hurt,
    _path,
    _poi,
    _who,
)
from patientgen.generator.care import SURGERY_SECONDS
from patientgen.generator.flow import AIR, GROUND, RANK, team_seconds
from patientgen.generator.plan import Plan
from patientgen.generator.rng import reseed, stream_seed
from patientgen.generator.skeletons import SkeletonStore


def skeletons(plan: Plan) -> SkeletonStore:
    """The skeleton of every casualty of the plan's scenario who reaches care, in index order."""
    units: list[str] = []
    for front in plan.fronts:
        for role in ("R1", "R2", "R3"):
            units.extend(front.units[role])
    store = SkeletonStore(plan.start_ts, units, [e.event_id for e in plan.events])
    rng = Random()
    for index in range(plan.scenario.total_patients):
        add(plan, index, rng, store)
    return store


def add(plan: Plan, index: int, rng: Random, store: SkeletonStore) -> None:
    """Add casualty `index`'s skeleton to `store` (nothing for one who never reaches care)."""
    reseed(rng, stream_seed(plan.seed, index))
    r = rng.random
    who = _who(plan, r, False)
    hurt = _hurt(plan, who, r, False)
    if hurt.kia:
        return  # killed in action: never reaches care
    is_disease = who.is_disease
    t, poi_procs, once = _first_aid(who, hurt, r)
    if is_disease:
        triage, last = hurt.triage, 0
    else:
        triage, _, _, last, once = _poi(who, hurt, r, t, poi_procs, once, None)
    _, path, quick = _path(plan, who, hurt, triage, r)
    stays: list[Stay] = []
    _facilities(plan, who, hurt, r, triage, None, [], last, path, quick, once, None, stays)
    # flow.skeleton's stages, in epoch seconds
    base = who.base
    n = len(path)
    previous = None if is_disease else triage  # the triage of the place left
    for k, (unit, transit, arrive, tri, current, done, end) in enumerate(stays):
        fac = path[k]
        surgery_at = None
        surgery_s = 0
        worked = tri  # the last procedure before the first operation (flow.skeleton)
        for proc, t in done:
            seconds = SURGERY_SECONDS.get(proc[0])
            if seconds is not None:
                if surgery_at is None:
                    surgery_at = t
                surgery_s += seconds
            elif surgery_at is None:
                worked = t
        before = previous or current
        if (k == 0 and is_disease) or before == "T3":  # flow._lift
            lift = None
        elif k == 0:
            lift = AIR if fac == "R2" else GROUND
        else:
            lift = AIR if (fac == "R3" and before == "T1") else GROUND
        treat = team_seconds(tri, worked, surgery_at)
        store.add_stage(
            fac, unit, base + arrive - transit, transit, tri - arrive, RANK[current],
            lift, RANK[before], None if surgery_at is None else base + surgery_at, surgery_s,
            treat, fac != "R1" and current == "T1", base + end, k == n - 1,
        )  # fmt: skip
        previous = current
    if stays:
        severity = 0  # 2 critical, 1 severe, of the injuries with a region
        for _, region, ais in hurt.injuries:
            if region is not None:
                level = _LEVEL[inj.SEVERITY[ais]]
                if level > severity:
                    severity = level
        event = who.event
        store.end(
            index,
            plan.front_index[who.front.name],
            event.event_id if event is not None else None,
            who.battle and hurt.lethal,
            severity,
        )


_LEVEL = {"critical": 2, "severe": 1, "moderate": 0, "mild": 0}
