"""The skeletons of a job without making its patients: the care-chain phase's cheap path.

`skeletons(plan)` gives, in a SkeletonStore (generator/skeletons.py), exactly
`flow.skeleton(plan, build.make_patient(plan, i))` for every casualty i who reaches care, without
building any record: no names, dates, conditions, events or procedures, only the numbers the
skeleton is made of. To get the same numbers it draws from each patient's stream exactly what
build.make_patient draws, in the same order, up to the last facility of the theatre (a killed in
action casualty stops after its injuries: it never reaches care).

Invariant: this module follows build.py draw for draw. Any change to what build.py draws, or to
what flow.skeleton reads, must be made here too; tests/test_skeleton_path.py compares the two on
every casualty of several scenarios, and the whole job's files with reference digests.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from math import exp, log
from random import Random

from patientgen.generator import injuries as inj
from patientgen.generator.build import (
    ABDOMEN_SET,
    DAY,
    DISEASE_MAX_WAIT,
    DNBI_A,
    DOW_SPAN,
    HOUR,
    LIMB_SET,
    LOG_ONSET,
    SPEED,
    STAY,
    T4_WAIT,
    _first_aid,
    _Hurt,
    _path,
    _Who,
    plan_log_pickup,
)
from patientgen.generator.care import (
    AMPUTATION,
    ANTIBIOTICS,
    CHEST_DRAIN,
    CRANIOTOMY,
    CT_SCAN,
    DEBRIDEMENT,
    HEMORRHAGE_CONTROL,
    INTUBATION,
    LAPAROTOMY,
    OXYGEN,
    SPLINT,
    SUTURE,
    TRANSFUSION,
    WOUND_CARE,
    base_gcs,
    vitals,
)
from patientgen.generator.coherence import can_kill_disease, can_kill_injury, retriage, triage_first
from patientgen.generator.flow import AIR, GROUND, RANK, SURGERY_MINUTES, TREAT_MAX, TREAT_MIN
from patientgen.generator.injuries import (
    AMPUTATION as AMPUTATED,
)
from patientgen.generator.injuries import (
    BLEED,
    BURN,
    CHEST,
    FRACTURE,
    HEAD,
    INFECTION,
    MINOR_CUT,
    PENETRATING,
    PSYCH,
    RESPIRATORY,
    SPINE,
    WOUND,
)
from patientgen.generator.names import service_number_draws
from patientgen.generator.plan import CATEGORIES, DOW_SHARE, SLOPE, Plan
from patientgen.generator.rng import NORMAL, reseed, stream_seed
from patientgen.generator.skeletons import SkeletonStore

_AT = datetime(2000, 1, 1, tzinfo=UTC)  # the vitals' time: never read here
#: Seconds on the operating table of each procedure, by the procedure tuple (None: not surgical).
_TABLE = {proc: SURGERY_MINUTES[proc[0]] * 60 for proc in (LAPAROTOMY, AMPUTATION, CRANIOTOMY,
                                                            DEBRIDEMENT)}  # fmt: skip


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
    # --- build._who: who, where, when (the names, the birth date and the service number only
    # move the stream)
    who = _Who()
    category = CATEGORIES[bisect_right(plan.category_cum, r())]
    battle = category == "battle_injury"
    is_disease = category == "disease"
    event = None
    if battle and plan.mc_prob > 0.0 and r() < plan.mc_prob:
        event = plan.events[bisect_right(plan.mc_cum, r())]
        front = plan.fronts[event.front]
        warfare = event.warfare
        offset = event.offset + min(2700, int(60.0 - 480.0 * log(1.0 - r())))
        if offset > plan.end_offset:
            offset = plan.end_offset
    else:
        front = plan.fronts[bisect_right(plan.front_cum, r())]
        warfare = plan.warfare_names[bisect_right(plan.warfare_cum, r())]
        offset = plan.times.offset(r, battle, warfare if battle else category)
    nation = front.nations[bisect_right(front.nation_cum, r())]
    base = plan.start_ts + offset
    r()  # female
    r()  # age
    r()  # birth date
    r()  # given name
    r()  # family name
    for _ in range(service_number_draws(nation)):
        r()
    r()  # blood group
    who.battle, who.is_disease = battle, is_disease
    # --- build._hurt: injuries, severity, fate
    hurt = _Hurt()
    if battle:
        mechanism = inj.BATTLE_MECHANISMS[bisect_right(plan.mechanism_cum[warfare], r())]
        injuries = inj.battle_injuries(mechanism, r)
    elif is_disease:
        injuries = inj.disease(r)
    else:
        mechanism = plan.nbi_names[bisect_right(plan.nbi_cum, r())]
        injuries = inj.nbi_injuries(mechanism, r)
    iss = inj.iss(injuries)
    score = iss + r()
    if battle:
        x = plan.death_a + SLOPE * score
        p_death = 1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))
    else:
        x = DNBI_A + SLOPE * score
        p_death = (1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))) * (0.15 if is_disease else 0.3)
    flags = 0
    head_ais = bleed_ais = max_ais = 0
    limb_bleed = other_bleed = abdomen = limb_fracture = False
    severity = 0  # flow.skeleton: 2 critical, 1 severe, of the injuries with a region
    lethal = False
    for template, region, ais in injuries:
        f = template[4]
        flags |= f
        if ais > max_ais:
            max_ais = ais
        if f & HEAD and ais > head_ais:
            head_ais = ais
        if f & BLEED:
            if ais > bleed_ais:
                bleed_ais = ais
            if region in LIMB_SET:
                if ais >= 3 or f & AMPUTATED:
                    limb_bleed = True
            elif ais >= 2:
                other_bleed = True
        if region in ABDOMEN_SET and f & (PENETRATING | BLEED) and ais >= 3:
            abdomen = True
        if f & FRACTURE and region in LIMB_SET:
            limb_fracture = True
        if is_disease:
            lethal = lethal or can_kill_disease(template[0], ais)
        if region is not None:
            level = _LEVEL[inj.SEVERITY[ais]]
            if level > severity:
                severity = level
    if not is_disease:
        lethal = can_kill_injury(max_ais)
    dies = r() < p_death and lethal
    if dies and battle and r() >= DOW_SHARE:
        return  # killed in action: never reaches care
    shock = 0.0
    if bleed_ais:
        shock = 0.28 * (bleed_ais - 2) + 0.012 * (iss - 9)
        shock = 0.0 if shock < 0.0 else 1.0 if shock > 1.0 else shock
    if dies and battle and flags & (BLEED | BURN) and shock < 0.5:
        shock = 0.5
    triage0 = plan.triage(score)
    chest, fever = bool(flags & CHEST), bool(flags & INFECTION)
    anxious, wound = bool(flags & PSYCH), bool(flags & WOUND)
    gcs0 = base_gcs(head_ais, r)
    if is_disease:
        r()  # pain
        pain0 = 0
    else:
        pain0 = min(10, 2 + int(1.4 * max_ais + r() * 2))
    hurt.limb_bleed, hurt.other_bleed, hurt.wound, hurt.limb_fracture = (
        limb_bleed, other_bleed, wound, limb_fracture,
    )  # fmt: skip
    hurt.dies, hurt.max_ais, hurt.anxious, hurt.flags = dies, max_ais, anxious, flags
    # --- build._first_aid and build._poi
    t, poi_procs, splinted = _first_aid(who, hurt, r)
    if is_disease:
        triage, last = triage0, 0
    else:
        last = -1
        for _ in poi_procs:
            last = t
            t += 60 + int(r() * 180)
        tri = (last if last >= 0 else t) + 120 + int(r() * 480)
        vit = vitals(r, _AT, shock, gcs0, chest, fever, anxious, pain0)
        triage = triage_first(triage0, vit, r)
        last = tri
    _, path, quick = _path(plan, who, hurt, triage, r)
    # --- build._facilities, up to the last facility of the theatre
    if not is_disease:
        pickup = last + int(exp(plan_log_pickup(triage, battle) + 0.5 * NORMAL[int(r() * 4096)]))
        if triage == "T4" and pickup < last + T4_WAIT:
            pickup = last + T4_WAIT + int(r() * 1800)
    else:
        pickup = int(exp(LOG_ONSET + 0.8 * NORMAL[int(r() * 4096)]))
        if pickup > DISEASE_MAX_WAIT:
            pickup = DISEASE_MAX_WAIT - 6 * HOUR + int(r() * 6 * HOUR)
    if pickup <= last:
        pickup = last + 60
    ids = front.units
    facility_ids: list[str] = []
    for fac in path:
        if fac != "R4":
            units = ids[fac]
            facility_ids.append(units[int(r() * len(units))] if len(units) > 1 else units[0])
    last = pickup
    speed = 1.0 if is_disease else SPEED[triage]
    chest_done = intubated = controlled = antibiotics = False
    gcs_now = gcs0
    pain_now = pain0
    s_now = shock
    n = len(path)
    current = triage
    previous = None if is_disease else triage  # the triage of the place left
    added = False
    for k in range(n):
        fac = path[k]
        if fac == "R4":
            break
        final = k == n - 1
        leg = "R2air" if (k == 0 and fac == "R2") else fac
        transit = int(exp(plan.log_delay[leg] + 0.45 * NORMAL[int(r() * 4096)]) * speed)
        if transit < 300:
            transit = 300
        arrive = last + transit
        s_here = 0.8 if dies and final and s_now < 0.8 else s_now
        tri = arrive + 120 + int(r() * 300)
        vit = vitals(
            r,
            _AT,
            s_here,
            gcs_now,
            chest and not chest_done,
            fever and (k == 0 or max_ais >= 3),
            anxious,
            pain_now,
        )
        # sick call: the first triage of a disease casualty; else triage again on arrival
        current = triage_first(current, vit, r) if k == 0 and is_disease else retriage(current, vit)
        todo = []  # the procedures after the triage itself (which is at `tri`)
        if fac in ("R1", "R2") and not controlled and (limb_bleed or other_bleed):
            todo.append(HEMORRHAGE_CONTROL)
            controlled = True
        if vit.gcs <= 8 and not intubated:
            todo.append(INTUBATION)
            intubated = True
        if chest and not chest_done:
            todo.append(CHEST_DRAIN)
            chest_done = True
        if (chest or vit.spo2 < 92 or (flags & RESPIRATORY and max_ais >= 2)) and k == 0:
            todo.append(OXYGEN)
        if limb_fracture and not splinted:
            todo.append(SPLINT)
            splinted = True
        if fever and not antibiotics:
            todo.append(ANTIBIOTICS)
            antibiotics = True
        if fac == "R1":
            if flags & MINOR_CUT and current == "T3":
                todo.append(SUTURE)
            if wound and current == "T3":
                todo.append(WOUND_CARE)
        else:
            if (s_now >= 0.4 and fac == "R2") or s_now >= 0.7:
                todo.append(TRANSFUSION)
            if fac == "R2":
                if abdomen:
                    todo.append(LAPAROTOMY)
                if flags & AMPUTATED:
                    todo.append(AMPUTATION)
            if wound and (fac == "R2" or current != "T3"):
                todo.append(DEBRIDEMENT)
            if fac == "R3":
                if head_ais >= 2 or flags & (FRACTURE | SPINE):
                    todo.append(CT_SCAN)
                if head_ais >= 4 and r() < 0.5:
                    todo.append(CRANIOTOMY)
        gap_lo, gap_span = (180, 420) if fac == "R1" else (1200, 4200)
        t = tri + 60 + int(r() * 240)
        last_proc = tri
        surgery_at = None
        surgery_s = 0
        for proc in todo:
            seconds = _TABLE.get(proc)
            if seconds is not None:
                if surgery_at is None:
                    surgery_at = t
                surgery_s += seconds
            last_proc = t
            t += gap_lo + int(r() * gap_span)
        last = last_proc
        if final and dies:
            end = last + 600 + int(r() * DOW_SPAN[fac])
        elif final:
            if quick:
                end = arrive + (
                    2 * HOUR + int(r() * 22 * HOUR)
                    if fac == "R1"
                    else 12 * HOUR + int(r() * 48 * HOUR)
                )
                if end > 71 * HOUR:
                    end = max(71 * HOUR, last + 600)
            else:
                end = arrive + (
                    4 * DAY + int(r() * 6 * DAY) if fac == "R2" else 5 * DAY + int(r() * 15 * DAY)
                )
            if end <= last + 300:
                end = last + 300 + int(r() * 600)
        else:
            median: float = STAY[fac]
            if fac != "R3":
                median *= speed
            end = last + 300 + int(median * exp(0.4 * NORMAL[int(r() * 4096)]))
        # flow.skeleton's stage, in epoch seconds
        before = previous or current
        if k == 0:
            lift = None if is_disease else (AIR if fac == "R2" else GROUND)
        else:
            lift = AIR if (fac == "R3" and before == "T1") else GROUND
        until = surgery_at if surgery_at is not None else last_proc + 600
        treat = min(max(until - tri, TREAT_MIN), TREAT_MAX)
        if surgery_at is not None and tri + treat > surgery_at:
            treat = max(surgery_at - tri, 60)
        store.add_stage(
            fac, facility_ids[k], base + arrive - transit, transit, tri - arrive, RANK[current],
            lift, RANK[before], None if surgery_at is None else base + surgery_at, surgery_s,
            treat, fac != "R1" and current == "T1", base + end, final,
        )  # fmt: skip
        added = True
        if final:
            break
        last = end
        s_now = s_now * (0.8 if fac == "R1" else 0.45)
        pain_now = pain_now - 2 if pain_now > 2 else pain_now
        if fac != "R1" and gcs_now < 15:
            gcs_now += 1
        previous = current
    if added:
        store.end(
            index,
            plan.front_index[front.name],
            event.event_id if event is not None else None,
            battle and severity >= 1,
            severity,
        )


_LEVEL = {"critical": 2, "severe": 1, "moderate": 0, "mild": 0}
