"""Assembling one patient from the scenario plan and the patient's own random stream.

Kept flat on purpose: this runs once per patient and is the generator's hot path (no pydantic, no
copies; shared tuples for codes and displays; cumulative weights looked up with bisect).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, date, datetime
from math import exp, log
from random import Random

from patientgen.generator import care
from patientgen.generator import injuries as inj
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
    PRESSURE_DRESSING,
    REHABILITATION,
    SPLINT,
    SUTURE,
    TOURNIQUET,
    TRANSFUSION,
    TRIAGE,
    WOUND_CARE,
)
from patientgen.generator.codes import BODY_SITES, CONDITIONS, MECHANISM_CODES
from patientgen.generator.injuries import (
    AMPUTATION as AMPUTATED,
)
from patientgen.generator.injuries import (
    BLEED,
    BURN,
    CHEST,
    FRACTURE,
    GI,
    HEAD,
    INFECTION,
    MINOR_CUT,
    PENETRATING,
    PSYCH,
    RESPIRATORY,
    SPINE,
    WOUND,
)
from patientgen.generator.names import service_number
from patientgen.generator.patient import (
    Condition,
    Event,
    Facility,
    Outcome,
    Patient,
    Procedure,
    Visit,
)
from patientgen.generator.plan import (
    BLOOD_GROUPS,
    CATEGORIES,
    DOW_SHARE,
    SLOPE,
    Plan,
)
from patientgen.generator.rng import NORMAL, patient_seed, reseed

LIMB_SET = frozenset(inj.LIMBS)
ABDOMEN_SET = frozenset(("abdomen", "pelvis"))
SHOCK = ("27942005", CONDITIONS["27942005"])
EXSANGUINATION = ("48149007", CONDITIONS["48149007"])
NO_SITE = (None, None)
SITES = {k: v for k, v in BODY_SITES.items()}
HOUR = 3600
DAY = 86400

#: Intercept of the mortality curve of disease and non-battle injuries (independent of intensity).
DNBI_A = -6.0
# How quickly each triage category is moved on (multiplier of the median delays).
SPEED = {"T1": 0.7, "T4": 0.7, "T2": 1.0, "T3": 1.3}
# Where DOW casualties die, by facility (renormalised over the facilities they reach).
DEATH_WEIGHTS = {"R1": 0.15, "R2": 0.45, "R3": 0.40}

_fts = datetime.fromtimestamp


def make_patient(plan: Plan, index: int, rng: Random | None = None) -> Patient:
    """Patient `index` of the plan's scenario. `rng` (optional) is a Random to reuse: it is
    reseeded here, so the result never depends on what it was used for before."""
    uid, stream_seed = patient_seed(plan.seed, index)
    if rng is None:
        rng = Random(stream_seed)
    else:
        reseed(rng, stream_seed)
    r = rng.random
    fts, utc, Ev, Proc, Vis, Cond = _fts, UTC, Event, Procedure, Visit, Condition  # locals: faster
    mk_vitals = care.vitals

    # --- who, where, when ---------------------------------------------------------------------
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
    injured_at = fts(base, utc)

    female = r() < plan.female_share
    age = 18 + int(38.0 * r() ** 2.2)
    birth = date.fromordinal(injured_at.toordinal() - int((age + 0.01 + 0.98 * r()) * 365.2425))
    first_m, first_f, last_m, last_f = plan.name_pools[nation]
    if female:
        given, family = first_f.pick(r()), last_f.pick(r())
    else:
        given, family = first_m.pick(r()), last_m.pick(r())
    service = service_number(nation, r, birth, family)
    blood = BLOOD_GROUPS[bisect_right(plan.blood_cum, r())]

    # --- what happened ------------------------------------------------------------------------
    if battle:
        mechanism = inj.BATTLE_MECHANISMS[bisect_right(plan.mechanism_cum[warfare], r())]
        injuries = inj.battle_injuries(mechanism, r)
    elif is_disease:
        mechanism = None
        injuries = inj.disease(r)
    else:
        mechanism = plan.nbi_names[bisect_right(plan.nbi_cum, r())]
        injuries = inj.nbi_injuries(mechanism, r)
    iss = inj.iss(injuries)
    score = iss + r()
    triage = plan.triage(score)
    if battle:
        x = plan.death_a + SLOPE * score
        p_death = 1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))
    else:  # away from the fighting: a fixed curve, whatever the intensity; DNBI deaths are rare
        x = DNBI_A + SLOPE * score
        p_death = (1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))) * (0.15 if is_disease else 0.3)
    dies = r() < p_death
    kia = dies and battle and r() >= DOW_SHARE

    flags = 0
    head_ais = bleed_ais = max_ais = 0
    limb_bleed = other_bleed = abdomen = limb_fracture = False
    conditions = []
    severity = inj.SEVERITY
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
        site = SITES[region] if region is not None else NO_SITE
        conditions.append(
            Cond(template[0], template[1], severity[ais], region, site[0], site[1], injured_at)
        )
    shock = 0.0
    if bleed_ais:
        shock = 0.28 * (bleed_ais - 2) + 0.012 * (iss - 9)
        shock = 0.0 if shock < 0.0 else 1.0 if shock > 1.0 else shock
    dow = dies and not kia
    if shock >= 0.5 or dow:  # those who die of wounds deteriorate into shock before death
        conditions.append(
            Cond(
                SHOCK[0],
                SHOCK[1],
                "critical" if shock >= 0.8 or dow else "severe",
                None,
                None,
                None,
                injured_at,
            )
        )
    if kia and bleed_ais >= 4:
        conditions.append(
            Cond(EXSANGUINATION[0], EXSANGUINATION[1], "critical", None, None, None, injured_at)
        )
    chest = bool(flags & CHEST)
    fever = bool(flags & INFECTION)
    anxious = bool(flags & PSYCH)
    wound = bool(flags & WOUND)
    gcs0 = care.base_gcs(head_ais, r)
    if is_disease:
        pain0 = 1 + int(r() * 3) + (3 if flags & GI else 0)
    else:
        pain0 = min(10, 2 + int(1.4 * max_ais + r() * 2))

    # --- the story: seconds after injury, strictly increasing ----------------------------------
    timeline = [Ev(injured_at, "injured", "POI", mechanism or category)]
    visits: list[Visit] = []
    last = 0
    poi_procs = []
    splinted = False
    if not is_disease:
        t = 60 + int(r() * 240)  # self/buddy aid within minutes
        if limb_bleed:
            poi_procs.append(TOURNIQUET)
        if other_bleed or (wound and not limb_bleed):
            poi_procs.append(PRESSURE_DRESSING)
        if limb_fracture and r() < 0.5:
            poi_procs.append(SPLINT)
            splinted = True
    else:
        t = 0

    if kia:
        death = int(care.kia_minutes(r) * 60.0)
        procedures = []
        for proc in poi_procs:
            if t >= death:
                break
            when = fts(base + t, utc)
            procedures.append(Proc(proc[0], proc[1], when))
            timeline.append(Ev(when, "treated", "POI", proc[1]))
            last = t
            t += 60 + int(r() * 180)
        if death <= last:
            death = last + 30
        died_at = fts(base + death, utc)
        timeline.append(Ev(died_at, "died", "POI", None))
        visits.append(
            Vis("POI", front.poi_id, injured_at, None, None, None, procedures, "died", None)
        )
        return Patient(
            index,
            uid,
            service,
            given,
            family,
            "female" if female else "male",
            birth,
            blood,
            nation,
            front.name,
            category,
            warfare,
            mechanism,
            inj_mechanism_code(mechanism),
            injured_at,
            event is not None,
            event.event_id if event is not None else None,
            triage,
            conditions,
            visits,
            timeline,
            "KIA",
            died_at,
            "POI",
        )

    # --- path through the chain of care and its end ---------------------------------------------
    outcome: Outcome
    path: list[Facility]
    skip_r1 = False
    if dies:
        outcome = "DOW"
        if triage in ("T1", "T4") and not is_disease:
            skip_r1 = r() < (0.5 if battle else 0.25)
        path = ["R2", "R3"] if skip_r1 else ["R1", "R2", "R3"]
        weights = [DEATH_WEIGHTS[f] for f in path]
        u = r() * sum(weights)
        k = 0
        while k < len(path) - 1 and u >= weights[k]:
            u -= weights[k]
            k += 1
        path = path[: k + 1]
        quick = False
    else:
        u = r()
        quick = False
        if triage == "T3":
            q = plan.quick_rtd if battle else (0.75 if is_disease else 0.6)
            if u < q:
                quick = True
                outcome = "RTD"
                path = ["R1"] if r() < 0.6 else ["R1", "R2"]
            else:
                v = r()
                # minimal casualties mostly recover in theatre; a few go home (Role 4)
                home = 0.15 if (max_ais >= 3 or anxious) else 0.04
                outcome = "RTD" if v >= home else "EVACUATED_R4"
                path = (
                    ["R1", "R2", "R3", "R4"]
                    if v < home
                    else (["R1", "R2"] if v < 0.55 else ["R1", "R2", "R3"])
                )
        elif triage == "T2":
            v = r()
            if is_disease:
                outcome = "RTD" if v < 0.8 else "EVACUATED_R4"
                path = (
                    (["R1", "R2"] if v < 0.5 else ["R1", "R2", "R3"])
                    if v < 0.8
                    else (["R1", "R2", "R3", "R4"])
                )
            else:
                outcome = "RTD" if v < 0.35 else "EVACUATED_R4"
                path = ["R1", "R2", "R3"] if v < 0.35 else ["R1", "R2", "R3", "R4"]
        else:
            if not is_disease:
                skip_r1 = r() < (0.5 if battle else 0.25)
            v = r()
            outcome = "RTD" if v < 0.15 else "EVACUATED_R4"
            path = ["R1", "R2", "R3"] if v < 0.15 else ["R1", "R2", "R3", "R4"]
            if skip_r1:
                path = path[1:]

    # --- point of injury ------------------------------------------------------------------------
    poi_vitals = None
    procedures = []
    if not is_disease:
        poi_vitals = mk_vitals(r, fts(base + t, utc), shock, gcs0, chest, fever, anxious, pain0)
        for proc in poi_procs:
            when = fts(base + t, utc)
            procedures.append(Proc(proc[0], proc[1], when))
            timeline.append(Ev(when, "treated", "POI", proc[1]))
            last = t
            t += 60 + int(r() * 180)
        pickup = last + int(exp(plan_log_pickup(triage, battle) + 0.5 * NORMAL[int(r() * 4096)]))
    else:  # from the onset of illness to leaving the unit for Role 1
        pickup = int(exp(LOG_ONSET + 0.8 * NORMAL[int(r() * 4096)]))
    if pickup <= last:
        pickup = last + 60
    departed = fts(base + pickup, utc)
    first = path[0]
    ids = front.units
    facility_ids = []
    for fac in path:
        if fac == "R4":
            facility_ids.append(plan.r4_ids[nation])
        else:
            units = ids[fac]
            facility_ids.append(units[int(r() * len(units))] if len(units) > 1 else units[0])
    timeline.append(Ev(departed, "departed", "POI", facility_ids[0]))
    visits.append(
        Vis(
            "POI",
            front.poi_id,
            injured_at,
            departed,
            None,
            poi_vitals,
            procedures,
            "evacuated",
            None,
        )
    )
    last = pickup

    # --- facilities -----------------------------------------------------------------------------
    speed = 1.0 if is_disease else SPEED[triage]
    chest_done = intubated = controlled = antibiotics = False
    gcs_now = gcs0
    pain_now = pain0
    s_now = shock
    n = len(path)
    outcome_at = departed
    outcome_facility = first
    for k in range(n):
        fac = path[k]
        final = k == n - 1
        leg = "R2air" if (k == 0 and fac == "R2") else fac
        factor = 1.0 if fac == "R4" else speed
        transit = int(exp(plan.log_delay[leg] + 0.45 * NORMAL[int(r() * 4096)]) * factor)
        if transit < 300:
            transit = 300
        arrive = last + transit
        arrived_at = fts(base + arrive, utc)
        timeline.append(Ev(arrived_at, "arrived", fac, facility_ids[k]))
        if fac == "R4":  # definitive care at home: the outcome is the arrival
            procs = []
            t = arrive + DAY + int(r() * 2 * DAY)
            todo = []
            if flags & (AMPUTATED | FRACTURE | SPINE) or head_ais >= 3:
                todo.append(REHABILITATION)
            if wound or flags & BURN:
                todo.append(WOUND_CARE)
            vit = mk_vitals(
                r,
                fts(base + arrive + 1800, utc),
                s_now * 0.1,
                min(15, gcs_now + 1),
                False,
                False,
                anxious,
                max(0, pain_now - 2),
            )
            for proc in todo:
                when = fts(base + t, utc)
                procs.append(Proc(proc[0], proc[1], when))
                timeline.append(Ev(when, "treated", fac, proc[1]))
                t += DAY + int(r() * DAY)
            visits.append(
                Vis(
                    fac,
                    facility_ids[k],
                    arrived_at,
                    None,
                    triage,
                    vit,
                    procs,
                    "admitted",
                    transit // 6 / 10,
                )
            )
            outcome_at = arrived_at
            outcome_facility = "R4"
            break
        # vitals and triage on arrival
        dying_here = dies and final
        s_here = 0.8 if dying_here and s_now < 0.8 else s_now
        tri = arrive + 120 + int(r() * 300)
        vit = mk_vitals(
            r,
            fts(base + tri, utc),
            s_here,
            gcs_now,
            chest and not chest_done,
            fever and (k == 0 or max_ais >= 3),
            anxious,
            pain_now,
        )
        triaged_at = vit.taken_at
        timeline.append(Ev(triaged_at, "triaged", fac, triage))
        todo = []
        if k == 0:
            todo.append(TRIAGE)
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
            if flags & MINOR_CUT and triage == "T3":
                todo.append(SUTURE)
            if wound and triage == "T3":
                todo.append(WOUND_CARE)
        else:
            if (s_now >= 0.4 and fac == "R2") or s_now >= 0.7:
                todo.append(TRANSFUSION)
            if fac == "R2":
                if abdomen:
                    todo.append(LAPAROTOMY)
                if flags & AMPUTATED:
                    todo.append(AMPUTATION)
            if wound and (fac == "R2" or triage != "T3"):
                todo.append(DEBRIDEMENT)
            if fac == "R3":
                if head_ais >= 2 or flags & (FRACTURE | SPINE):  # imaging at Role 3
                    todo.append(CT_SCAN)
                if head_ais >= 4 and r() < 0.5:
                    todo.append(CRANIOTOMY)
        gap_lo, gap_span = (180, 420) if fac == "R1" else (1200, 4200)
        t = tri + 60 + int(r() * 240)
        procs = []
        last_proc = tri
        for proc in todo:
            if proc is TRIAGE:  # the triage itself: the "triaged" event of the timeline
                procs.append(Proc(proc[0], proc[1], triaged_at))
                continue
            when = fts(base + t, utc)
            procs.append(Proc(proc[0], proc[1], when))
            timeline.append(Ev(when, "treated", fac, proc[1]))
            last_proc = t
            t += gap_lo + int(r() * gap_span)
        last = last_proc
        # how long the stay lasts
        if final and outcome == "DOW":
            span = DOW_SPAN[fac]
            end = last + 600 + int(r() * span)
            end_at = fts(base + end, utc)
            timeline.append(Ev(end_at, "died", fac, None))
            visits.append(
                Vis(
                    fac,
                    facility_ids[k],
                    arrived_at,
                    None,
                    triage,
                    vit,
                    procs,
                    "died",
                    transit // 6 / 10,
                )
            )
            outcome_at, outcome_facility = end_at, fac
            break
        if final:  # returned to duty
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
            end_at = fts(base + end, utc)
            timeline.append(Ev(end_at, "returned_to_duty", fac, None))
            visits.append(
                Vis(
                    fac,
                    facility_ids[k],
                    arrived_at,
                    None,
                    triage,
                    vit,
                    procs,
                    "returned_to_duty",
                    transit // 6 / 10,
                )
            )
            outcome_at, outcome_facility = end_at, fac
            break
        median: float = STAY[fac]
        if fac != "R3":
            median *= speed
        end = last + 300 + int(median * exp(0.4 * NORMAL[int(r() * 4096)]))
        end_at = fts(base + end, utc)
        onward = path[k + 1]
        timeline.append(
            Ev(end_at, "evacuated" if onward == "R4" else "departed", fac, facility_ids[k + 1])
        )
        visits.append(
            Vis(
                fac,
                facility_ids[k],
                arrived_at,
                end_at,
                triage,
                vit,
                procs,
                "evacuated",
                transit // 6 / 10,
            )
        )
        last = end
        # treatment works: less shock, less pain, a little better GCS further back
        s_now = s_now * (0.8 if fac == "R1" else 0.45)
        pain_now = pain_now - 2 if pain_now > 2 else pain_now
        if fac != "R1" and gcs_now < 15:
            gcs_now += 1
    return Patient(
        index,
        uid,
        service,
        given,
        family,
        "female" if female else "male",
        birth,
        blood,
        nation,
        front.name,
        category,
        warfare,
        mechanism,
        inj_mechanism_code(mechanism),
        injured_at,
        event is not None,
        event.event_id if event is not None else None,
        triage,
        conditions,
        visits,
        timeline,
        outcome,
        outcome_at,
        outcome_facility,
    )


#: Longest time from the last treatment to death of a DOW casualty, by facility (seconds).
DOW_SPAN = {"R1": HOUR, "R2": 12 * HOUR, "R3": 5 * DAY}
#: Median stay before moving on (seconds): Role 1 stabilise and go, Role 2 surgery, Role 3 days.
STAY = {"R1": 45 * 60, "R2": 5 * HOUR, "R3": 3 * DAY}
LOG_ONSET = log(4 * HOUR)  # illness: median time from onset to leaving for Role 1
_LOG_PICKUP = {
    (True, "T1"): log(10 * 60), (True, "T4"): log(10 * 60), (True, "T2"): log(15 * 60),
    (True, "T3"): log(20 * 60), (False, "T1"): log(15 * 60), (False, "T4"): log(15 * 60),
    (False, "T2"): log(20 * 60), (False, "T3"): log(30 * 60),
}  # fmt: skip


def plan_log_pickup(triage: str, battle: bool) -> float:
    """Log of the median time at the point of injury before evacuation starts."""
    return _LOG_PICKUP[(battle, triage)]


def inj_mechanism_code(mechanism: str | None) -> str | None:
    """SNOMED event code of a mechanism where one fits (explosion, firearm, fall, vehicle)."""
    return MECHANISM_CODES.get(mechanism) if mechanism is not None else None
