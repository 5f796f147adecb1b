"""Assembling one patient from the scenario plan and the patient's own random stream.

Kept flat on purpose: this runs once per patient and is the generator's hot path (no pydantic, no
copies; shared tuples for codes and displays; cumulative weights looked up with bisect).

Each stage that the care-chain phase also needs is split in two: a draw core that draws from the
stream and computes numbers only (`_where`, `_hurt`, `_medic_triage`, `_stays`; `_first_aid` and
`_path` make no record anyway), and the records made from its result (`_who`, `_conditions`,
`_poi`, `_facilities`), which draw nothing more except `_who`'s names, birth date, service number
and blood group (`WHO_DRAWS` plus the service number's draws). Invariant: every draw of a
patient's stream is made here, once; generator/skeleton_path.py calls the same cores in the same
order, so a casualty's skeleton is the one of its patient by construction.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, date, datetime
from math import exp, log
from random import Random
from typing import Any, Literal

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
    SPLINT,
    SUTURE,
    TOURNIQUET,
    TRANSFUSION,
    TRIAGE,
    WOUND_CARE,
)
from patientgen.generator.codes import BODY_SITES, CONDITIONS, MECHANISM_CODES
from patientgen.generator.coherence import (
    KIA_SURVIVABLE,
    T4_MIN_POI_WAIT,
    can_kill_disease,
    can_kill_injury,
    retriage,
    triage_first,
)
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
    Vitals,
)
from patientgen.generator.plan import (
    BLOOD_GROUPS,
    CATEGORIES,
    DOW_SHARE,
    SLOPE,
    FrontPlan,
    Plan,
)
from patientgen.generator.rng import NORMAL, patient_seed, reseed
from patientgen.generator.timing import MassCasualtyEvent
from patientgen.scenario import Category, Nation, TriageCategory

LIMB_SET = frozenset(inj.LIMBS)
ABDOMEN_SET = frozenset(("abdomen", "pelvis"))
SHOCK = ("27942005", CONDITIONS["27942005"])
EXSANGUINATION = ("48149007", CONDITIONS["48149007"])
NO_SITE = (None, None)
SITES = {k: v for k, v in BODY_SITES.items()}
HOUR = 3600
DAY = 86400
#: The time the draw cores (`_medic_triage`, `_stays`) give every set of vitals: they draw numbers,
#: and the caller that keeps the vitals as a record sets the time they were taken.
NO_TIME = datetime(2000, 1, 1, tzinfo=UTC)

#: Intercept of the mortality curve of disease and non-battle injuries (independent of intensity).
DNBI_A = -6.0
# How quickly each triage category is moved on (multiplier of the median delays): the expectant
# (T4) go after everyone else, never at the speed of the immediate (T1).
SPEED = {"T1": 0.7, "T2": 1.0, "T3": 1.3, "T4": 1.6}
#: The least time an expectant casualty waits at the point of injury after triage (seconds).
T4_WAIT = int(T4_MIN_POI_WAIT.total_seconds())
# Where DOW casualties die, by facility (renormalised over the facilities they reach).
DEATH_WEIGHTS = {"R1": 0.15, "R2": 0.45, "R3": 0.40}

_fts = datetime.fromtimestamp


class _Who:
    """Stage 1: who the casualty is, where and when (no medicine yet)."""

    __slots__ = (
        "base", "battle", "birth", "blood", "category", "event", "family", "female", "front",
        "given", "injured_at", "is_disease", "nation", "service", "warfare",
    )  # fmt: skip
    base: int  # seconds since the epoch of the injury
    battle: bool
    birth: date
    blood: str
    category: Category
    event: MassCasualtyEvent | None
    family: str
    female: bool
    front: FrontPlan
    given: str
    injured_at: datetime
    is_disease: bool
    nation: Nation
    service: str
    warfare: str


class _Hurt:
    """Stage 2: what happened to them: injuries or illness, conditions, severity, fate."""

    __slots__ = (
        "abdomen", "anxious", "bleed_ais", "chest", "conditions", "dies", "fever", "flags", "gcs0",
        "head_ais", "kia", "limb_bleed", "limb_fracture", "max_ais", "mechanism", "other_bleed",
        "pain0", "shock", "triage", "wound",
    )  # fmt: skip
    abdomen: bool
    anxious: bool
    bleed_ais: int
    chest: bool
    conditions: list[Condition]
    dies: bool
    fever: bool
    flags: int
    gcs0: int
    head_ais: int
    kia: bool
    limb_bleed: bool
    limb_fracture: bool
    max_ais: int
    mechanism: str | None
    other_bleed: bool
    pain0: int
    shock: float
    triage: TriageCategory  # from the injury score alone, before any vitals
    wound: bool


def make_patient(plan: Plan, index: int, rng: Random | None = None) -> Patient:
    """Patient `index` of the plan's scenario. `rng` (optional) is a Random to reuse: it is
    reseeded here, so the result never depends on what it was used for before.

    Made in stages, each drawing from the patient's one stream in a fixed order: who (`_who`),
    what happened (`_hurt`), then either death at the point of injury (`_killed`) or first aid and
    triage there (`_first_aid`, `_poi`), the path through the chain (`_path`) and each facility
    (`_facilities`). The clinical rules of generator.coherence hold by construction.
    """
    uid, stream_seed = patient_seed(plan.seed, index)
    if rng is None:
        rng = Random(stream_seed)
    else:
        reseed(rng, stream_seed)
    r = rng.random
    who = _who(plan, r)
    hurt, injuries = _hurt(plan, who, r)
    hurt.conditions = _conditions(who, hurt, injuries)
    aid, poi_procs, splinted = _first_aid(who, hurt, r)
    outcome: Outcome
    outcome_facility: Facility
    if hurt.kia:
        triage, visits, timeline, outcome_at = _killed(who, hurt, r, aid, poi_procs)
        outcome, outcome_facility = "KIA", "POI"
    else:
        timeline = [Event(who.injured_at, "injured", "POI", hurt.mechanism or who.category)]
        procedures: list[Procedure]
        if who.is_disease:
            triage, poi_vitals, procedures, last = hurt.triage, None, [], 0
        else:
            triage, poi_vitals, procedures, last = _poi(who, hurt, r, aid, poi_procs, timeline)
        outcome, path, quick = _path(plan, who, hurt, triage, r)
        visits, outcome_at, outcome_facility, triage = _facilities(
            plan, who, hurt, r, triage, poi_vitals, procedures, last, path, quick, splinted,
            timeline,
        )  # fmt: skip
    event = who.event
    return Patient(
        index,
        uid,
        who.service,
        who.given,
        who.family,
        "female" if who.female else "male",
        who.birth,
        who.blood,
        who.nation,
        who.front.name,
        who.category,
        who.warfare,
        hurt.mechanism,
        inj_mechanism_code(hurt.mechanism),
        who.injured_at,
        event is not None,
        event.event_id if event is not None else None,
        triage,
        hurt.conditions,
        visits,
        timeline,
        outcome,
        outcome_at,
        outcome_facility,
    )


def _where(plan: Plan, r: Callable[[], float]) -> _Who:
    """The draws of who the casualty is that the chain of care depends on: category, origin,
    front, kind of fighting, time and nation (the first of `_who`'s, and the skeleton path's)."""
    w = _Who()
    category = CATEGORIES[bisect_right(plan.category_cum, r())]
    battle = category == "battle_injury"
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
    w.category, w.battle, w.is_disease, w.event = category, battle, category == "disease", event
    w.front, w.warfare = front, warfare
    w.nation = front.nations[bisect_right(front.nation_cum, r())]
    w.base = plan.start_ts + offset
    return w


#: How many draws `_who` makes after `_where`'s, besides the service number's: sex, age, birth
#: date, given and family name, blood group.
WHO_DRAWS = 6


def _who(plan: Plan, r: Callable[[], float]) -> _Who:
    w = _where(plan, r)
    nation = w.nation
    injured_at = w.injured_at = _fts(w.base, UTC)
    female = w.female = r() < plan.female_share[nation]
    age = 18 + int(38.0 * r() ** 2.2)
    birth = date.fromordinal(injured_at.toordinal() - int((age + 0.01 + 0.98 * r()) * 365.2425))
    first_m, first_f, last_m, last_f = plan.name_pools[nation]
    if female:
        w.given, w.family = first_f.pick(r()), last_f.pick(r())
    else:
        w.given, w.family = first_m.pick(r()), last_m.pick(r())
    w.service = service_number(nation, r, birth, w.family)
    w.blood = BLOOD_GROUPS[bisect_right(plan.blood_cum, r())]
    w.birth = birth
    return w


def _hurt(plan: Plan, who: _Who, r: Callable[[], float]) -> tuple[_Hurt, list[inj.Injury]]:
    """The draws of what happened to the casualty: (everything but the conditions, the injuries
    or illness). `_conditions` makes the records; the skeleton path reads the injuries' regions."""
    h = _Hurt()
    battle, is_disease = who.battle, who.is_disease
    if battle:
        mechanism = inj.BATTLE_MECHANISMS[bisect_right(plan.mechanism_cum[who.warfare], r())]
        injuries = inj.battle_injuries(mechanism, r)
    elif is_disease:
        mechanism = None
        injuries = inj.disease(r)
    else:
        mechanism = plan.nbi_names[bisect_right(plan.nbi_cum, r())]
        injuries = inj.nbi_injuries(mechanism, r)
    iss = inj.iss(injuries)
    score = iss + r()
    if battle:
        x = plan.death_a + SLOPE * score
        p_death = 1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))
    else:  # away from the fighting: a fixed curve, whatever the intensity; DNBI deaths are rare
        x = DNBI_A + SLOPE * score
        p_death = (1.0 if x > 30.0 else 1.0 / (1.0 + exp(-x))) * (0.15 if is_disease else 0.3)
    flags = 0
    head_ais = bleed_ais = max_ais = 0
    limb_bleed = other_bleed = abdomen = limb_fracture = False
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
    if not is_disease:
        lethal = can_kill_injury(max_ais)
    # only a condition that can kill gives a chance of death (coherence: KIA, DOW, DIED)
    dies = r() < p_death and lethal
    kia = dies and battle and r() >= DOW_SHARE
    h.mechanism, h.triage, h.flags, h.head_ais, h.max_ais, h.bleed_ais = (
        mechanism, plan.triage(score), flags, head_ais, max_ais, bleed_ais,
    )  # fmt: skip
    h.limb_bleed, h.other_bleed, h.abdomen, h.limb_fracture = (
        limb_bleed, other_bleed, abdomen, limb_fracture,
    )  # fmt: skip
    h.dies, h.kia = dies, kia
    shock = 0.0
    if bleed_ais:
        shock = 0.28 * (bleed_ais - 2) + 0.012 * (iss - 9)
        shock = 0.0 if shock < 0.0 else 1.0 if shock > 1.0 else shock
    # those who die of wounds that bleed or burn are in shock from the start
    if dies and battle and not kia and flags & (BLEED | BURN) and shock < 0.5:
        shock = 0.5
    h.shock = shock
    h.chest, h.fever = bool(flags & CHEST), bool(flags & INFECTION)
    h.anxious, h.wound = bool(flags & PSYCH), bool(flags & WOUND)
    h.gcs0 = care.base_gcs(head_ais, r)
    if is_disease:
        h.pain0 = 1 + int(r() * 3) + (3 if flags & GI else 0)
    else:
        h.pain0 = min(10, 2 + int(1.4 * max_ais + r() * 2))
    return h, injuries


def _conditions(who: _Who, hurt: _Hurt, injuries: list[inj.Injury]) -> list[Condition]:
    """The conditions of `_hurt`'s draws (no draw): each injury or illness, then shock and
    exsanguination where they are coded."""
    at, severity, sites, no_site = who.injured_at, inj.SEVERITY, SITES, NO_SITE
    conditions = []
    for template, region, ais in injuries:
        site = sites[region] if region is not None else no_site
        conditions.append(
            Condition(template[0], template[1], severity[ais], region, site[0], site[1], at)
        )
    battle, dies, kia, shock = who.battle, hurt.dies, hurt.kia, hurt.shock
    dow = dies and battle and not kia
    # Shock is coded for haemorrhage: those who die of bleeding wounds or burns are in shock from
    # the start; a disease or non-battle death is never coded as shock (coherence rules).
    if (dow and hurt.flags & (BLEED | BURN)) or (shock >= 0.5 and not (dies and not battle)):
        conditions.append(
            Condition(
                SHOCK[0],
                SHOCK[1],
                "critical" if shock >= 0.8 or dow else "severe",
                None,
                None,
                None,
                at,
            )
        )
    if kia and hurt.bleed_ais >= 4:
        conditions.append(
            Condition(EXSANGUINATION[0], EXSANGUINATION[1], "critical", None, None, None, at)
        )
    return conditions


def _first_aid(
    who: _Who, hurt: _Hurt, r: Callable[[], float]
) -> tuple[int, list[tuple[str, str]], bool]:
    """Self and buddy aid within minutes of wounding: (seconds, procedures, splinted)."""
    if who.is_disease:
        return 0, [], False
    procs = []
    splinted = False
    t = 60 + int(r() * 240)
    if hurt.limb_bleed:
        procs.append(TOURNIQUET)
    if hurt.other_bleed or (hurt.wound and not hurt.limb_bleed):
        procs.append(PRESSURE_DRESSING)
    if hurt.limb_fracture and r() < 0.5:
        procs.append(SPLINT)
        splinted = True
    return t, procs, splinted


def _medic(r: Callable[[], float], after: int) -> int:
    """When the medic triages at the point of injury: 2 to 10 minutes after buddy aid."""
    return after + 120 + int(r() * 480)


def _killed(
    who: _Who, hurt: _Hurt, r: Callable[[], float], t: int, poi_procs: list[tuple[str, str]]
) -> tuple[TriageCategory | None, list[Visit], list[Event], datetime]:
    """A casualty killed in action: buddy aid until death; triaged only if alive when the medic
    comes (expectant, or immediate for an attempt that failed), never minimal."""
    base, injured_at = who.base, who.injured_at
    timeline = [Event(injured_at, "injured", "POI", hurt.mechanism or who.category)]
    death = int(care.kia_minutes(r) * 60.0)
    procedures = []
    last = 0
    for proc in poi_procs:
        if t >= death:
            break
        when = _fts(base + t, UTC)
        procedures.append(Procedure(proc[0], proc[1], when))
        timeline.append(Event(when, "treated", "POI", proc[1]))
        last = t
        t += 60 + int(r() * 180)
    if death <= last:
        death = last + 30
    tri = _medic(r, last if procedures else t)
    triage: TriageCategory | None = None
    vit = None
    if tri < death:
        # alive when the medic comes: expectant, unless the wounds were potentially survivable
        # (about 24% of deaths before reaching care, mostly haemorrhage: Eastridge 2012)
        triage = "T1" if hurt.triage != "T4" and r() < KIA_SURVIVABLE else "T4"
        at = _fts(base + tri, UTC)
        vit = care.vitals(
            r, at, max(hurt.shock, 0.8), hurt.gcs0, hurt.chest, False, False, hurt.pain0
        )
        timeline.append(Event(at, "triaged", "POI", triage))
    died_at = _fts(base + death, UTC)
    timeline.append(Event(died_at, "died", "POI", None))
    visit = Visit("POI", who.front.poi_id, injured_at, None, triage, vit, procedures, "died", None)
    return triage, [visit], timeline, died_at


def _medic_triage(
    hurt: _Hurt, r: Callable[[], float], t: int, poi_procs: list[tuple[str, str]]
) -> tuple[list[int], int, Vitals, TriageCategory]:
    """The draws of buddy aid and the medic at the point of injury, from `t` (seconds after the
    injury): (the time of each procedure, the triage time, vitals at NO_TIME, triage)."""
    times = []
    last = -1
    for _ in poi_procs:
        times.append(t)
        last = t
        t += 60 + int(r() * 180)
    tri = _medic(r, last if last >= 0 else t)
    vit = care.vitals(
        r, NO_TIME, hurt.shock, hurt.gcs0, hurt.chest, hurt.fever, hurt.anxious, hurt.pain0
    )
    return times, tri, vit, triage_first(hurt.triage, vit, r)


def _poi(
    who: _Who,
    hurt: _Hurt,
    r: Callable[[], float],
    t: int,
    poi_procs: list[tuple[str, str]],
    timeline: list[Event],
) -> tuple[TriageCategory, Vitals, list[Procedure], int]:
    """Buddy aid, then the medic's vitals and triage: (triage, vitals, procedures, seconds)."""
    base = who.base
    times, tri, vit, triage = _medic_triage(hurt, r, t, poi_procs)
    procedures = []
    for proc, seconds in zip(poi_procs, times, strict=True):
        when = _fts(base + seconds, UTC)
        procedures.append(Procedure(proc[0], proc[1], when))
        timeline.append(Event(when, "treated", "POI", proc[1]))
    at = vit.taken_at = _fts(base + tri, UTC)
    timeline.append(Event(at, "triaged", "POI", triage))
    return triage, vit, procedures, tri


def _path(
    plan: Plan, who: _Who, hurt: _Hurt, triage: str, r: Callable[[], float]
) -> tuple[Outcome, list[Facility], bool]:
    """Where the casualty goes and how it ends: (outcome, facilities, quick return to duty)."""
    battle, is_disease = who.battle, who.is_disease
    outcome: Outcome
    path: list[Facility]
    skip_r1 = False
    quick = False
    if hurt.dies:
        outcome = "DOW" if battle else "DIED"
        if triage == "T1" and not is_disease:  # flown past Role 1: immediate casualties only
            skip_r1 = r() < (0.5 if battle else 0.25)
        path = ["R2", "R3"] if skip_r1 else ["R1", "R2", "R3"]
        weights = [DEATH_WEIGHTS[f] for f in path]
        u = r() * sum(weights)
        k = 0
        while k < len(path) - 1 and u >= weights[k]:
            u -= weights[k]
            k += 1
        return outcome, path[: k + 1], False
    u = r()
    if triage == "T3":
        q = plan.quick_rtd if battle else (0.75 if is_disease else 0.6)
        if u < q:
            quick = True
            outcome = "RTD"
            path = ["R1"] if r() < 0.6 else ["R1", "R2"]
        else:
            v = r()
            # minimal casualties mostly recover in theatre; a few go home (Role 4)
            home = 0.15 if (hurt.max_ais >= 3 or hurt.anxious) else 0.04
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
        if not is_disease and triage == "T1":
            skip_r1 = r() < (0.5 if battle else 0.25)
        v = r()
        outcome = "RTD" if v < 0.15 else "EVACUATED_R4"
        path = ["R1", "R2", "R3"] if v < 0.15 else ["R1", "R2", "R3", "R4"]
        if skip_r1:
            path = path[1:]
    if outcome == "RTD" and hurt.flags & AMPUTATED:  # an amputee goes home, never back to duty
        outcome, quick = "EVACUATED_R4", False
        path = ["R2", "R3", "R4"] if path[0] == "R2" else ["R1", "R2", "R3", "R4"]
    return outcome, path, quick


#: One stay at a facility, as `_stays` draws it (seconds from the injury): (transit, arrival,
#: triage time, vitals, triage there, procedures after the triage, the time of each, end of the
#: stay: death, return to duty or departure). Role 4's: its arrival is its triage and its end.
Stay = tuple[int, int, int, Vitals, TriageCategory, list[tuple[str, str]], list[int], int]
_NOTHING: list[Any] = []  # Role 4's procedures and times (never appended to)


def _stays(
    plan: Plan,
    who: _Who,
    hurt: _Hurt,
    r: Callable[[], float],
    triage: TriageCategory,
    last: int,
    path: list[Facility],
    quick: bool,
    splinted: bool,
    home: bool,
) -> tuple[int, list[str], list[Stay]]:
    """The draws of leaving the point of injury and of each facility of the path, in the order of
    the stream, as numbers: (pickup, unit ids of the theatre's facilities, one Stay a facility).
    `last` is when the point of injury is done with the casualty. Every facility of the theatre
    triages again on arrival. `home` False stops before Role 4 (whose draws are the stream's last).

    The one place the chain of care is drawn: `_facilities` makes the records from it, and
    generator/skeleton_path.py the care-chain simulation's skeletons.
    """
    is_disease, dies = who.is_disease, hurt.dies
    mk_vitals, no_time = care.vitals, NO_TIME
    flags, head_ais, max_ais = hurt.flags, hurt.head_ais, hurt.max_ais
    chest, fever, anxious, wound = hurt.chest, hurt.fever, hurt.anxious, hurt.wound
    limb_bleed, other_bleed = hurt.limb_bleed, hurt.other_bleed
    limb_fracture, abdomen = hurt.limb_fracture, hurt.abdomen
    if not is_disease:
        pickup = last + int(exp(_LOG_PICKUP[(who.battle, triage)] + 0.5 * NORMAL[int(r() * 4096)]))
        if triage == "T4" and pickup < last + T4_WAIT:  # the expectant wait for the others
            pickup = last + T4_WAIT + int(r() * 1800)
    else:  # from the onset of illness to leaving the unit for Role 1: the same day
        pickup = int(exp(LOG_ONSET + 0.8 * NORMAL[int(r() * 4096)]))
        if pickup > DISEASE_MAX_WAIT:
            pickup = DISEASE_MAX_WAIT - 6 * HOUR + int(r() * 6 * HOUR)
    if pickup <= last:
        pickup = last + 60
    ids = who.front.units
    facility_ids = []
    for fac in path:
        if fac != "R4":
            units = ids[fac]
            facility_ids.append(units[int(r() * len(units))] if len(units) > 1 else units[0])
    last = pickup
    speed = 1.0 if is_disease else SPEED[triage]
    chest_done = intubated = controlled = antibiotics = False
    gcs_now = hurt.gcs0
    pain_now = hurt.pain0
    s_now = hurt.shock
    n = len(path)
    current = triage
    stays: list[Stay] = []
    for k in range(n):
        fac = path[k]
        final = k == n - 1
        if fac == "R4":  # strategic aeromedical evacuation home; the record ends on arrival
            if home:
                typical = exp(plan.log_delay["R4"])
                flight = typical * exp(0.25 * NORMAL[int(r() * 4096)])
                transit = int(min(max(flight, 0.5 * typical), 2.0 * typical))
                arrive = last + transit
                vit = mk_vitals(
                    r, no_time, s_now * 0.1, min(15, gcs_now + 1), False, False, anxious,
                    max(0, pain_now - 2),
                )  # fmt: skip
                stays.append((transit, arrive, arrive, vit, current, _NOTHING, _NOTHING, arrive))
            break
        leg = "R2air" if (k == 0 and fac == "R2") else fac
        transit = int(exp(plan.log_delay[leg] + 0.45 * NORMAL[int(r() * 4096)]) * speed)
        if transit < 300:
            transit = 300
        arrive = last + transit
        # vitals and triage on arrival
        s_here = 0.8 if dies and final and s_now < 0.8 else s_now
        tri = arrive + 120 + int(r() * 300)
        vit = mk_vitals(
            r,
            no_time,
            s_here,
            gcs_now,
            chest and not chest_done,
            fever and (k == 0 or max_ais >= 3),
            anxious,
            pain_now,
        )
        # sick call: the first triage of a disease casualty; else triage again on arrival
        current = triage_first(current, vit, r) if k == 0 and is_disease else retriage(current, vit)
        # what is done here after the triage, in order
        todo = []
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
                if head_ais >= 2 or flags & (FRACTURE | SPINE):  # imaging at Role 3
                    todo.append(CT_SCAN)
                if head_ais >= 4 and r() < 0.5:
                    todo.append(CRANIOTOMY)
        gap_lo, gap_span = (180, 420) if fac == "R1" else (1200, 4200)
        t = tri + 60 + int(r() * 240)
        times = []
        last = tri
        for _ in todo:
            times.append(t)
            last = t
            t += gap_lo + int(r() * gap_span)
        # how long the stay lasts
        if final and dies:
            end = last + 600 + int(r() * DOW_SPAN[fac])
        elif final:  # returned to duty
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
        stays.append((transit, arrive, tri, vit, current, todo, times, end))
        last = end
        # treatment works: less shock, less pain, a little better GCS further back
        s_now = s_now * (0.8 if fac == "R1" else 0.45)
        pain_now = pain_now - 2 if pain_now > 2 else pain_now
        if fac != "R1" and gcs_now < 15:
            gcs_now += 1
    return pickup, facility_ids, stays


def _facilities(
    plan: Plan,
    who: _Who,
    hurt: _Hurt,
    r: Callable[[], float],
    triage: TriageCategory,
    poi_vitals: Vitals | None,
    procedures: list[Procedure],
    last: int,
    path: list[Facility],
    quick: bool,
    splinted: bool,
    timeline: list[Event],
) -> tuple[list[Visit], datetime, Facility, TriageCategory]:
    """Leaving the point of injury and each facility of the path, as records (the draws are
    `_stays`'): (visits, outcome time, outcome facility, first triage)."""
    base, is_disease, front = who.base, who.is_disease, who.front
    fts, utc, Ev, Proc, Vis = _fts, UTC, Event, Procedure, Visit  # locals: faster
    pickup, facility_ids, stays = _stays(
        plan, who, hurt, r, triage, last, path, quick, splinted, True
    )
    if path[-1] == "R4":
        facility_ids.append(plan.r4_ids[who.nation])
    departed = fts(base + pickup, utc)
    timeline.append(Ev(departed, "departed", "POI", facility_ids[0]))
    poi_triage = None if is_disease else triage
    visits = [
        Vis(
            "POI",
            front.poi_id,
            who.injured_at,
            departed,
            poi_triage,
            poi_vitals,
            procedures,
            "evacuated",
            None,
        )
    ]
    dies = hurt.dies
    final = len(stays) - 1
    outcome_at = departed
    outcome_facility: Facility = path[0]
    first_triage = stays[0][4] if is_disease else triage  # a disease's first: at sick call
    for k, (transit, arrive, tri, vit, current, todo, times, end) in enumerate(stays):
        fac, unit = path[k], facility_ids[k]
        arrived_at = fts(base + arrive, utc)
        timeline.append(Ev(arrived_at, "arrived", fac, unit))
        if fac == "R4":
            vit.taken_at = arrived_at
            visits.append(
                Vis(fac, unit, arrived_at, None, None, vit, [], "admitted", transit // 6 / 10)
            )
            outcome_at, outcome_facility = arrived_at, fac
            break
        triaged_at = vit.taken_at = fts(base + tri, utc)
        timeline.append(Ev(triaged_at, "triaged", fac, current))
        # the triage first (at the first facility: the "triaged" event), then the rest in order
        procs = [Proc(TRIAGE[0], TRIAGE[1], triaged_at)] if k == 0 else []
        for proc, t in zip(todo, times, strict=True):
            when = fts(base + t, utc)
            procs.append(Proc(proc[0], proc[1], when))
            timeline.append(Ev(when, "treated", fac, proc[1]))
        transit_minutes = transit // 6 / 10
        end_at = fts(base + end, utc)
        if k == final:
            kind: Literal["died", "returned_to_duty"] = "died" if dies else "returned_to_duty"
            timeline.append(Ev(end_at, kind, fac, None))
            visits.append(
                Vis(fac, unit, arrived_at, None, current, vit, procs, kind, transit_minutes)
            )
            outcome_at, outcome_facility = end_at, fac
            break
        onward = path[k + 1]
        timeline.append(
            Ev(end_at, "evacuated" if onward == "R4" else "departed", fac, facility_ids[k + 1])
        )
        visits.append(
            Vis(fac, unit, arrived_at, end_at, current, vit, procs, "evacuated",
                transit_minutes)
        )  # fmt: skip
    return visits, outcome_at, outcome_facility, first_triage


#: Longest time from the last treatment to death of a DOW casualty, by facility (seconds).
DOW_SPAN = {"R1": HOUR, "R2": 12 * HOUR, "R3": 5 * DAY}
#: Median stay before moving on (seconds): Role 1 stabilise and go, Role 2 surgery, Role 3 days.
STAY = {"R1": 45 * 60, "R2": 5 * HOUR, "R3": 3 * DAY}
LOG_ONSET = log(4 * HOUR)  # illness: median time from onset to leaving for Role 1
#: Illness: the longest wait at the unit before leaving for Role 1 (reached within 24 hours).
DISEASE_MAX_WAIT = 18 * HOUR
_LOG_PICKUP = {
    (True, "T1"): log(10 * 60), (True, "T4"): log(60 * 60), (True, "T2"): log(15 * 60),
    (True, "T3"): log(20 * 60), (False, "T1"): log(15 * 60), (False, "T4"): log(60 * 60),
    (False, "T2"): log(20 * 60), (False, "T3"): log(30 * 60),
}  # fmt: skip


def inj_mechanism_code(mechanism: str | None) -> str | None:
    """SNOMED event code of a mechanism where one fits (explosion, firearm, fall, vehicle)."""
    return MECHANISM_CODES.get(mechanism) if mechanism is not None else None
