"""Assembling one patient from the scenario plan and the patient's own random stream.

Kept flat on purpose: this runs once per patient and is the generator's hot path (no pydantic, no
copies; shared tuples for codes and displays; cumulative weights looked up with bisect).

Every draw of a patient's stream is made here, once, by the stage functions. The stages the
care-chain phase needs (`_who`, `_hurt`, `_poi`, `_facilities`; `_first_aid` and `_path` make no
record anyway) also run without records: `records` False (or `timeline` None) makes them draw
exactly the same numbers in the same order and skip only what makes a record (names, dates,
conditions, events, procedures, visits). generator/skeleton_path.py calls them so, in
make_patient's order, and reads the numbers: the care-chain skeleton of a casualty is the one of
its patient by construction. Invariant: nothing under a `records` branch draws from the stream,
and nothing is drawn in one mode that is not drawn in the other.
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
    CLOSED_REDUCTION,
    COMPLETE_CORD_AIS,
    CRANIOTOMY,
    CT_SCAN,
    DEBRIDEMENT,
    EYE_SURGERY,
    GCS_SHOCK_1,
    HEMORRHAGE_CONTROL,
    INTUBATION,
    IV_FLUIDS,
    LAPAROTOMY,
    NEEDLE_DECOMPRESSION,
    OPEN_REDUCTION,
    OXYGEN,
    PAIN_RELIEF,
    PRESSURE_DRESSING,
    PSYCHIATRIC_EVALUATION,
    RESPIRATORY_FAILURE_AIS,
    SPINAL_IMMOBILISATION,
    SPLINT,
    SURGERY_SECONDS,
    SUTURE,
    TOURNIQUET,
    TRANSFUSION,
    TRIAGE,
    WOUND_CARE,
    WOUND_DRESSING,
    X_RAY,
)
from patientgen.generator.codes import BODY_SITES, CONDITIONS, MECHANISM_CODES
from patientgen.generator.coherence import (
    BRAIN_INJURIES,
    BURN_LETHAL_AIS,
    CLOSED_FRACTURE_CODE,
    CONCUSSION_REST,
    DEHYDRATION_CODE,
    DEPRESSION_CODE,
    HYPOTENSION_SBP,
    HYPOXAEMIA_SPO2,
    KIA_SURVIVABLE,
    LIMB_FRACTURES,
    LIMB_OR_PELVIS,
    MODERATE_TBI_GCS,
    OPEN_FRACTURE_CODE,
    PAIN_RELIEF_FROM,
    SECOND_LOOK,
    T4_MIN_POI_WAIT,
    TENSION_PNEUMOTHORAX_CODE,
    UPPER_LIMBS,
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
    EYE,
    FRACTURE,
    GI,
    HEAD,
    HEALS,
    INFECTION,
    MINOR_CUT,
    PENETRATING,
    PSYCH,
    RESPIRATORY,
    SPINE,
    VIRAL,
    WOUND,
)
from patientgen.generator.names import service_number, service_number_draws
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
LOWER_LIMB_SET = frozenset(inj.LOWER_LIMBS)
CRUSH_CODE = inj.CRUSH[0]
ABDOMEN_SET = frozenset(("abdomen", "pelvis"))
#: An injury open to the outside, whose bleeding a dressing can press on (coherence:
#: pressure_dressing_without_an_open_wound).
OPEN = WOUND | MINOR_CUT | PENETRATING
#: The bleeding to control (_Hurt.bleed): none; only inside the chest or abdomen (a surgeon's,
#: Role 2 on: coherence.role1_hemorrhage_control_inside_the_trunk); one Role 1 can reach too (a
#: limb's, an open wound's, the pelvis's).
NO_BLEED, INTERNAL, REACHABLE = 0, 1, 2
SHOCK = ("27942005", CONDITIONS["27942005"])
EXSANGUINATION = ("48149007", CONDITIONS["48149007"])
NO_SITE = (None, None)
SITES = {k: v for k, v in BODY_SITES.items()}
HOUR = 3600
DAY = 86400
#: The time of the vitals drawn without records (never read).
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
        "abdomen", "anxious", "bacterial", "bleed", "breathless", "chest", "chest_film",
        "conditions", "dies", "dressed", "dry", "failing", "fever", "flags", "fluids", "gcs0",
        "head_ais", "injuries", "kia", "lethal", "limb_bleed", "limb_fracture", "max_ais",
        "mechanism", "minor", "neurogenic", "open_globe", "pain0", "pressed", "reduce", "shock",
        "tension", "triage", "unseen_bleed", "wound",
    )  # fmt: skip
    abdomen: bool
    anxious: bool
    bacterial: bool  # an infection of bacteria: antibiotics (not a virus's: no antibiotics)
    bleed: int  # the bleeding to control: NO_BLEED, INTERNAL or REACHABLE
    breathless: bool  # a severe respiratory illness (pneumonia, AIS 3+): fast breathing, hypoxia
    chest: bool
    conditions: list[Condition]
    dies: bool
    # a dressing of wound at the point of injury: a dry one on a second or third degree burn, an
    # occlusive one (a chest seal) on an open wound of the chest
    dressed: bool
    dry: bool  # a severe dehydration: hypovolaemic where first seen, until its fluids
    fever: bool
    flags: int
    # needs intravenous fluids where first seen: a burn of 20 % or more, a severe dehydration, a
    # severe crush of a limb or the pelvis
    fluids: bool
    gcs0: int
    head_ais: int
    injuries: list[inj.Injury]
    kia: bool
    lethal: bool  # an injury (or illness) that can cause a death by itself
    limb_bleed: bool
    limb_fracture: bool
    max_ais: int
    mechanism: str | None
    minor: bool  # every condition heals within days (injuries' HEALS templates, AIS 2 at most)
    # a complete spinal cord injury (AIS 5): neurogenic shock until Role 3 (care.neurogenic)
    neurogenic: bool
    # a pneumonia of AIS 4: respiratory failure where first seen (care.respiratory_failure)
    failing: bool
    reduce: int  # REDUCE_OPEN | REDUCE_CLOSED: a severe fracture of a limb to reduce at Role 2
    open_globe: bool  # a severe penetrating injury of the eye: Role 3 scans and repairs it
    chest_film: bool  # a penetrating wound of the thorax, a haemo- or pneumothorax: X-rayed at R2
    pain0: int
    # an open wound to press on: a bleeding one outside the limbs, or one on a limb without a
    # tourniquet (not a burn, a contusion, a crush, a haemothorax: nothing to press on)
    pressed: bool
    shock: float
    tension: bool  # a tension pneumothorax: obstructive shock in the vitals until drained
    triage: TriageCategory  # from the injury score alone, before any vitals
    # a severe closed fracture of a leg (a femur's loses a litre or more into the thigh), a
    # bleeding no BLEED flag says: its shock (THIGH_BLEED), and blood, not fluids, for its
    # hypotension at Role 2 and 3 (ATLS)
    unseen_bleed: bool
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
    hurt = _hurt(plan, who, r)
    aid, poi_procs, done = _first_aid(who, hurt, r)
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
            triage, poi_vitals, procedures, last, done = _poi(
                who, hurt, r, aid, poi_procs, done, timeline
            )
        outcome, path, quick = _path(plan, who, hurt, triage, r)
        visits, outcome_at, outcome_facility, triage = _facilities(
            plan, who, hurt, r, triage, poi_vitals, procedures, last, path, quick, done,
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


def _who(plan: Plan, r: Callable[[], float], records: bool = True) -> _Who:
    """Who the casualty is, where and when. Without `records`, only what the chain of care
    depends on (category, origin, front, kind of fighting, nation, `base`): the draws of the sex,
    age, birth date, names, service number and blood group are made and not used."""
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
    nation = front.nations[bisect_right(front.nation_cum, r())]
    base = plan.start_ts + offset
    if not records:
        for _ in range(_WHO_DRAWS + service_number_draws(nation)):
            r()
        w.category, w.battle, w.is_disease, w.event = category, battle, category == "disease", event
        w.front, w.warfare, w.nation, w.base = front, warfare, nation, base
        return w
    injured_at = _fts(base, UTC)
    female = r() < plan.female_share[nation]
    age = 18 + int(38.0 * r() ** 2.2)
    birth = date.fromordinal(injured_at.toordinal() - int((age + 0.01 + 0.98 * r()) * 365.2425))
    first_m, first_f, last_m, last_f = plan.name_pools[nation]
    if female:
        w.given, w.family = first_f.pick(r()), last_f.pick(r())
    else:
        w.given, w.family = first_m.pick(r()), last_m.pick(r())
    w.service = service_number(nation, r, birth, w.family)
    w.blood = BLOOD_GROUPS[bisect_right(plan.blood_cum, r())]
    w.category, w.battle, w.is_disease, w.event = category, battle, category == "disease", event
    w.front, w.warfare, w.nation, w.base, w.injured_at = front, warfare, nation, base, injured_at
    w.female, w.birth = female, birth
    return w


#: The draws of `_who` after the nation's, besides the service number's: sex, age, birth date,
#: given name, family name, blood group.
_WHO_DRAWS = 6


def _hurt(plan: Plan, who: _Who, r: Callable[[], float], records: bool = True) -> _Hurt:
    """What happened to the casualty; without `records`, no conditions (an empty list)."""
    h = _Hurt()
    battle, is_disease = who.battle, who.is_disease
    injured_at = who.injured_at if records else NO_TIME
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
    head_ais = bleed_ais = max_ais = lethal_ais = 0
    limb_bleed = abdomen = limb_fracture = fluids = dry = bacterial = False
    grounded = unseen_bleed = False
    pressed = open_wound = dressed = False
    bleed = NO_BLEED
    minor = True
    tension = open_globe = chest_film = False
    reduce = 0
    conditions = []
    severity = inj.SEVERITY
    lethal = False
    for template, region, ais in injuries:
        f = template[4]
        flags |= f
        if ais > max_ais:
            max_ais = ais
        # coherence.lethal_ais, inline: the hot path
        if ais > lethal_ais and not (
            (template[0] == CLOSED_FRACTURE_CODE and region in UPPER_LIMBS)
            or (f & BURN and ais < BURN_LETHAL_AIS)
        ):
            lethal_ais = ais
        if f & HEAD and ais > head_ais:
            head_ais = ais
        # an open wound of the chest: sealed, not pressed; drained when severe
        open_chest = f & PENETRATING and region == "thorax"
        if f & BLEED:
            if ais > bleed_ais:
                bleed_ais = ais
            if region in LIMB_SET:
                if ais >= 3 or f & AMPUTATED:
                    limb_bleed = True
                    bleed = REACHABLE
            elif ais >= 2:
                if f & OPEN:
                    bleed = REACHABLE
                    if not open_chest:
                        pressed = True
                elif region == "pelvis":  # a pelvic binder
                    bleed = REACHABLE
                elif not bleed:
                    bleed = INTERNAL
        if f & WOUND:
            if f & BURN or open_chest:
                dressed = True
            else:
                open_wound = True
        if region in ABDOMEN_SET and f & (PENETRATING | BLEED) and ais >= 3:
            abdomen = True
        if open_chest:
            chest_film = True  # X-rayed at Role 2 (_todo)
            if ais >= 3:
                flags |= CHEST  # a severe penetrating chest wound: haemo- or pneumothorax, drained
        elif f & CHEST and region == "thorax":  # a haemothorax, a tension pneumothorax: filmed too
            chest_film = True
        if f & BURN and ais >= FLUIDS_BURN_AIS:
            fluids = True
        elif template[0] == DEHYDRATION_CODE and ais >= 3:
            fluids = dry = True
        elif template[0] == CRUSH_CODE and ais >= 3 and region in LIMB_OR_PELVIS:
            fluids = True  # its muscle: crush syndrome, unless fluids come first
        if f & INFECTION and not f & VIRAL:
            bacterial = True
        if ais > 2 or not f & HEALS:  # injuries.heals_within_days, inline: the hot path
            minor = False
        if template[0] == TENSION_PNEUMOTHORAX_CODE:
            tension = True
        if f & EYE and f & PENETRATING and ais >= 3:
            open_globe = True  # scanned and repaired by Role 3's eye surgeon (_todo)
        if f & FRACTURE and region in LIMB_SET:
            limb_fracture = True
            if inj.never_minimal(template, region):  # a broken leg, an open fracture
                grounded = True
            if ais >= 3:  # a severe one is reduced at Role 2 (_todo)
                if template[0] == OPEN_FRACTURE_CODE:
                    reduce |= REDUCE_OPEN
                elif template[0] == CLOSED_FRACTURE_CODE:
                    reduce |= REDUCE_CLOSED
                    if region in LOWER_LIMB_SET:
                        unseen_bleed = True
        if is_disease:
            lethal = lethal or can_kill_disease(template[0], ais)
        if records:
            site = SITES[region] if region is not None else NO_SITE
            conditions.append(
                Condition(
                    template[0], template[1], severity[ais], region, site[0], site[1], injured_at
                )
            )
    if not is_disease:  # the injuries that can cause a death (not a closed fracture of an arm)
        lethal = can_kill_injury(lethal_ais)
    # only a condition that can kill gives a chance of death (coherence: KIA, DOW, DIED)
    dies = r() < p_death and lethal
    kia = dies and battle and r() >= DOW_SHARE
    shock = 0.0
    if bleed_ais:
        shock = 0.28 * (bleed_ais - 2) + 0.012 * (iss - 9)
        shock = 0.0 if shock < 0.0 else 1.0 if shock > 1.0 else shock
    if unseen_bleed and shock < THIGH_BLEED:  # the blood lost into the thigh shows
        shock = THIGH_BLEED
    dow = dies and battle and not kia
    # Shock is coded for haemorrhage: those who die of bleeding wounds or burns are in shock from
    # the start; a disease or non-battle death is never coded as shock (coherence rules).
    coded = shock >= 0.5 and not (dies and not battle)
    if dow and flags & (BLEED | BURN):
        coded = True
        if shock < 0.5:
            shock = 0.5
    if coded and records:
        conditions.append(
            Condition(
                SHOCK[0],
                SHOCK[1],
                "critical" if shock >= CRITICAL_SHOCK or dow else "severe",
                None,
                None,
                None,
                injured_at,
            )
        )
    if kia and bleed_ais >= 4 and records:
        conditions.append(
            Condition(
                EXSANGUINATION[0], EXSANGUINATION[1], "critical", None, None, None, injured_at
            )
        )
    h.mechanism, h.triage, h.flags, h.head_ais, h.max_ais = (
        mechanism, plan.triage(score, grounded), flags, head_ais, max_ais,
    )  # fmt: skip
    h.limb_bleed, h.bleed, h.abdomen, h.limb_fracture, h.fluids = (
        limb_bleed, bleed, abdomen, limb_fracture, fluids,
    )  # fmt: skip
    h.conditions, h.shock, h.dies, h.kia, h.injuries, h.lethal = (
        conditions, shock, dies, kia, injuries, lethal,
    )  # fmt: skip
    h.chest, h.fever = bool(flags & CHEST), bool(flags & INFECTION)
    h.bacterial, h.dry, h.minor, h.tension, h.reduce = bacterial, dry, minor, tension, reduce
    h.unseen_bleed = unseen_bleed
    h.open_globe, h.chest_film = open_globe, chest_film
    h.neurogenic = bool(flags & SPINE) and any(
        t[4] & SPINE and ais >= COMPLETE_CORD_AIS for t, _, ais in injuries
    )
    h.breathless = bool(flags & RESPIRATORY) and max_ais >= 3
    h.failing = h.breathless and max_ais >= RESPIRATORY_FAILURE_AIS
    h.anxious, h.wound = bool(flags & PSYCH), bool(flags & WOUND)
    h.pressed, h.dressed = pressed or (open_wound and not limb_bleed), dressed
    h.gcs0 = care.base_gcs(head_ais, r)
    if is_disease:
        h.pain0 = 1 + int(r() * 3) + (3 if flags & GI else 0)
    else:
        h.pain0 = min(10, 2 + int(1.4 * max_ais + r() * 2))
    return h


def _first_aid(
    who: _Who, hurt: _Hurt, r: Callable[[], float]
) -> tuple[int, list[tuple[str, str]], int]:
    """Self and buddy aid within minutes of wounding: a tourniquet on a bleeding limb, a
    pressure dressing on an open wound, a dry dressing on a burn and a chest seal on an open
    chest (both a dressing of wound in the record), maybe a splint: (seconds, procedures, what
    is done of the `once` flags: SPLINTED)."""
    if who.is_disease:
        return 0, [], 0
    procs = []
    done = 0
    t = 60 + int(r() * 240)
    if hurt.limb_bleed:
        procs.append(TOURNIQUET)
    if hurt.pressed:
        procs.append(PRESSURE_DRESSING)
    if hurt.dressed:  # a dry, sterile one on a burn, a chest seal on an open chest (TCCC)
        procs.append(WOUND_DRESSING)
    if hurt.limb_fracture and r() < 0.5:
        procs.append(SPLINT)
        done = SPLINTED
    return t, procs, done


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
    procedures: list[Procedure] = []
    last = 0
    for proc in poi_procs:
        if t >= death:
            break
        _at_poi(procedures, timeline, proc, base + t)
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
        if triage == "T1" and hurt.tension:  # the medic decompresses the chest, if in time
            decompressed = _decompression(r, tri)
            if decompressed < death:
                _at_poi(procedures, timeline, NEEDLE_DECOMPRESSION, base + decompressed)
    died_at = _fts(base + death, UTC)
    timeline.append(Event(died_at, "died", "POI", None))
    visit = Visit("POI", who.front.poi_id, injured_at, None, triage, vit, procedures, "died", None)
    return triage, [visit], timeline, died_at


def _poi(
    who: _Who,
    hurt: _Hurt,
    r: Callable[[], float],
    t: int,
    poi_procs: list[tuple[str, str]],
    done: int,
    timeline: list[Event] | None,
) -> tuple[TriageCategory, Vitals, list[Procedure], int, int]:
    """Buddy aid, then the medic's vitals and triage, a needle decompression of a tension
    pneumothorax and a cervical collar on an injured spine (unless expectant), and pain relief
    for moderate or severe pain (TCCC, in the order of MARCH: respiration before pain; the
    spine's motion restricted before the casualty is moved): (triage, vitals, procedures,
    seconds of the medic's last act, `done` with DECOMPRESSED and RELIEVED when done). Without
    a timeline (no records): no procedures, and the vitals' time is NO_TIME."""
    base = who.base
    procedures: list[Procedure] = []
    last = -1
    for proc in poi_procs:
        if timeline is not None:
            _at_poi(procedures, timeline, proc, base + t)
        last = t
        t += 60 + int(r() * 180)
    tri = _medic(r, last if last >= 0 else t)
    at = _fts(base + tri, UTC) if timeline is not None else NO_TIME
    shock = hurt.shock
    if hurt.tension and shock < OBSTRUCTION:
        shock = OBSTRUCTION
    vit = care.vitals(r, at, shock, hurt.gcs0, hurt.chest, hurt.fever, hurt.anxious, hurt.pain0)
    if hurt.neurogenic:
        care.neurogenic(vit, shock)
    triage = triage_first(hurt.triage, vit, r)
    if timeline is not None:
        timeline.append(Event(at, "triaged", "POI", triage))
    medic_done = tri
    if hurt.tension and triage != "T4":
        medic_done = _decompression(r, tri)
        done |= DECOMPRESSED
        if timeline is not None:
            _at_poi(procedures, timeline, NEEDLE_DECOMPRESSION, base + medic_done)
    if hurt.flags & SPINE and triage != "T4":  # blunt trauma (falls, crashes): before moving
        medic_done = medic_done + 30 + int(r() * 120)
        if timeline is not None:
            _at_poi(procedures, timeline, SPINAL_IMMOBILISATION, base + medic_done)
    if vit.pain >= PAIN_RELIEF_FROM:
        medic_done = medic_done + 60 + int(r() * 180)
        done |= RELIEVED
        if timeline is not None:
            _at_poi(procedures, timeline, PAIN_RELIEF, base + medic_done)
    return triage, vit, procedures, medic_done, done


def _at_poi(
    procedures: list[Procedure], timeline: list[Event], proc: tuple[str, str], at: int
) -> None:
    """Procedure `proc` done at the point of injury at `at` (epoch seconds), and its event."""
    when = _fts(at, UTC)
    procedures.append(Procedure(proc[0], proc[1], when))
    timeline.append(Event(when, "treated", "POI", proc[1]))


def _decompression(r: Callable[[], float], triaged: int) -> int:
    """When the medic decompresses a tension pneumothorax: 30 s to 2 min after the triage
    (coherence.DECOMPRESSION_WITHIN)."""
    return triaged + 30 + int(r() * 90)


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
        # the expectant are given comfort care where they are first cared for, and die there:
        # no lift onwards while others can be saved (coherence's expectant_carried_on)
        while triage != "T4" and k < len(path) - 1 and u >= weights[k]:
            u -= weights[k]
            k += 1
        return outcome, path[: k + 1], False
    u = r()
    if triage == "T3":
        # Minimal casualties mostly recover in theatre: back to duty within 72 hours from Role 1
        # or Role 2's holding (which keeps no one longer), else after days at Role 3; a few go
        # home (Role 4). With only mild conditions (AIS 1), or only conditions that heal within
        # days (`minor`: a laceration, a contusion, a sprain, none worse than moderate): back
        # within 72 hours, and home only from stress (coherence rules held_at_role2_beyond_72h,
        # mild_admitted_to_role3, minor_admitted_to_role3, mild_sent_home). plan.quick_rtd
        # counts them in (plan.calibrate).
        q = plan.quick_rtd if battle else (0.75 if is_disease else 0.6)
        back_soon = hurt.max_ais <= 1 or hurt.minor  # mild, or heals within days
        home = 0.0
        if not (u < q or (back_soon and not hurt.anxious)):
            home = 0.15 if (hurt.max_ais >= 3 or hurt.anxious) else 0.04
        if home and r() < home:
            outcome = "EVACUATED_R4"
            path = ["R1", "R2", "R3", "R4"]
        elif u < q or back_soon:
            quick = True
            outcome = "RTD"
            # held at Role 2 for a day or two, or back from Role 1; the mild (AIS 1) are back
            # from Role 1, whose sick call and aid station treat them (Role 2 would hold them
            # for nothing: coherence rule mild_evacuated_for_nothing); the draw is made anyway
            held = r() >= 0.6
            path = ["R1", "R2"] if held and hurt.max_ais > 1 else ["R1"]
        else:
            outcome = "RTD"
            path = ["R1", "R2", "R3"]
    elif triage == "T2":
        v = r()
        if is_disease:  # admitted for days: at Role 3, as Role 2 holds 72 hours at most
            outcome = "RTD" if v < 0.8 else "EVACUATED_R4"
            path = ["R1", "R2", "R3"] if v < 0.8 else ["R1", "R2", "R3", "R4"]
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
    if hurt.minor and not quick:  # heals within days: back within 72 hours, Role 2 at most
        outcome, quick = "RTD", True
        path = path[: path.index("R2") + 1]
    if outcome != "RTD":
        return outcome, path, quick
    # a broken limb is X-rayed and immobilised at Role 2 at least
    if _heals_at_home(hurt):
        outcome, quick = "EVACUATED_R4", False
        path = ["R2", "R3", "R4"] if path[0] == "R2" else ["R1", "R2", "R3", "R4"]
    elif hurt.limb_fracture and path == ["R1"]:
        path = ["R1", "R2"]
    return outcome, path, quick


def _heals_at_home(hurt: _Hurt) -> bool:
    """Whether the casualty goes home (Role 4), never back to duty in theatre: an amputee, one
    operated on the abdomen (laparotomy at Role 2), with a severe brain injury (AIS 4+,
    craniotomy at Role 3) or a moderate one (a GCS of 12 or less in the vitals: weeks to
    months to recover), a critical injury or shock (AIS 5+, shock coded critical: weeks in
    intensive care), a major burn (AIS 3+: to a burn centre), an open fracture, or a severe
    closed fracture or crush of a limb or the pelvis (months to heal), a severe depressive
    disorder (months to be stable), a severe injury of the eye (to an eye surgeon: the sight),
    a spinal cord injury (a spinal surgeon, months of rehabilitation).
    One pass over the injuries, for a casualty who would otherwise return to duty."""
    if (
        hurt.flags & (AMPUTATED | SPINE)
        or hurt.abdomen
        or hurt.head_ais >= 4
        or hurt.max_ais >= 5
        or hurt.shock >= CRITICAL_SHOCK
        or (hurt.gcs0 < 15 and care.gcs_in_shock(hurt.gcs0, hurt.shock) <= MODERATE_TBI_GCS)
    ):
        return True
    for template, where, ais in hurt.injuries:
        code = template[0]
        if code == OPEN_FRACTURE_CODE or (
            ais >= 3
            and (
                template[4] & BURN
                or (code in LIMB_FRACTURES and where in LIMB_OR_PELVIS)
                or code == DEPRESSION_CODE
                or template[4] & EYE
            )
        ):
            return True
    return False


#: One facility's numbers, drawn without records: (unit id, transit, arrival, triage time, triage
#: there, (procedure, time) of each procedure after the triage, end of the stay), seconds from
#: the injury.
Stay = tuple[str, int, int, int, TriageCategory, list[tuple[tuple[str, str], int]], int]


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
    done: int,
    timeline: list[Event] | None,
    stays: list[Stay] | None = None,
) -> tuple[list[Visit], datetime, Facility, TriageCategory]:
    """Leaving the point of injury and each facility of the path: (visits, outcome time, outcome
    facility, first triage). Every facility of the theatre triages again on arrival.

    At each facility, in the stream's order: the transit there, the vitals and triage on arrival,
    what is done and when (`_todo`, `_treated`), and how long the stay lasts (`_stay_end`).

    Without a timeline (no records): no visit, event or procedure is made and the draws stop
    before Role 4 (the stream's last); each facility of the theatre appends its Stay to `stays`
    (then the outcome time returned is NO_TIME)."""
    base, is_disease = who.base, who.is_disease
    fts, utc = _fts, UTC  # locals: faster
    mk_vitals = care.vitals
    chest, fever, anxious, dies = hurt.chest, hurt.fever, hurt.anxious, hurt.dies
    pickup = _departure(who, triage, last, r)
    records = timeline is not None
    departed = fts(base + pickup, utc) if records else NO_TIME
    facility_ids = _units(plan, who, path, r)
    visits = []
    if timeline is not None:
        timeline.append(Event(departed, "departed", "POI", facility_ids[0]))
        poi_triage = None if is_disease else triage
        visits.append(
            Visit("POI", who.front.poi_id, who.injured_at, departed, poi_triage, poi_vitals,
                  procedures, "evacuated", None)
        )  # fmt: skip
    last = pickup
    speed = 1.0 if is_disease else SPEED[triage]
    once = done  # what is done once (CONTROLLED, ... flags), from the point of injury on
    s_now, gcs_now, pain_now = hurt.shock, hurt.gcs0, hurt.pain0
    if once & RELIEVED:  # the medic's analgesia works
        pain_now -= 2
    n = len(path)
    outcome_at = departed
    outcome_facility = path[0]
    current: TriageCategory = triage
    first_triage: TriageCategory = triage
    debrided = -DAY  # when the wounds were last debrided
    for k in range(n):
        fac = path[k]
        final = k == n - 1
        if fac == "R4":  # strategic aeromedical evacuation home; the record ends on arrival
            if timeline is None:
                break
            visit = _role4(
                plan, r, base, last, facility_ids[k], s_now, gcs_now, pain_now, anxious, timeline
            )
            visits.append(visit)
            outcome_at, outcome_facility = visit.arrived_at, "R4"
            break
        leg = "R2air" if (k == 0 and fac == "R2") else fac
        transit = int(exp(plan.log_delay[leg] + 0.45 * NORMAL[int(r() * 4096)]) * speed)
        if transit < 300:
            transit = 300
        elif k == 0 and is_disease and transit > DISEASE_MAX_WALK:  # sick call the same day
            transit = DISEASE_MAX_WALK
        arrive = last + transit
        # vitals and triage on arrival
        s_here = 0.8 if dies and final and s_now < 0.8 else s_now
        if k == 0 and hurt.dry and s_here < HYPOVOLAEMIA:  # before its fluids
            s_here = HYPOVOLAEMIA
        elif hurt.tension and not once & (CHEST_DRAINED | DECOMPRESSED) and s_here < OBSTRUCTION:
            s_here = OBSTRUCTION
        tri = arrive + 120 + int(r() * 300)
        vit = mk_vitals(
            r,
            fts(base + tri, utc) if records else NO_TIME,
            s_here,
            gcs_now,
            (chest and not once & CHEST_DRAINED) or hurt.breathless,
            fever and (k == 0 or hurt.max_ais >= 3),
            anxious,
            pain_now,
        )
        if hurt.neurogenic and fac != "R3":  # Role 3's intensive care keeps it up
            care.neurogenic(vit, s_here)
        if hurt.failing and k == 0:  # before its oxygen
            care.respiratory_failure(vit)
        if k == 0 and is_disease:  # sick call: the first triage of a disease casualty
            current = first_triage = triage_first(current, vit, r)
        else:  # a wound Role 2 or 3 debrides makes the minimal delayed; who will live, immediate
            current = retriage(current, vit, fac != "R1" and hurt.wound, not dies)
        todo: list[tuple[str, str]] = []
        once = _todo(todo, fac, k == 0, hurt, once, s_now, vit, current, r)
        second_look = 0
        if fac == "R3" and tri < debrided + LOOK_AGAIN and current != "T1" and DEBRIDEMENT in todo:
            # the wounds Role 2 debrided are looked at again 24 to 48 hours later, not on
            # arrival (unless immediate here: an unstable casualty is explored at once)
            todo.remove(DEBRIDEMENT)
            second_look = debrided + LOOK_AGAIN + int(r() * LOOK_AGAIN)
        treated: list[Any] = []  # Procedures; without records, (procedure, seconds)
        if timeline is not None:
            arrived_at = fts(base + arrive, utc)
            timeline.append(Event(arrived_at, "arrived", fac, facility_ids[k]))
            timeline.append(Event(vit.taken_at, "triaged", fac, current))
            if k == 0:  # the first facility's triage is a procedure of the record too
                treated.append(Procedure(TRIAGE[0], TRIAGE[1], vit.taken_at))
        last, debrided_here = _treated(
            treated, fac, vit.pain >= PAIN_RELIEF_FROM, todo, tri, r, base, timeline
        )
        if debrided_here >= 0:
            debrided = debrided_here
        # (head_ais and shock first: most casualties have no brain injury, and this runs for each)
        rest = (
            final
            and quick
            and (hurt.head_ais > 0 or hurt.shock > GCS_SHOCK_1)
            and _brain_injured(hurt)
        )
        end = _stay_end(fac, final, dies, quick, rest, speed, arrive, last, hurt.max_ais, r)
        if second_look and second_look < end - HOUR:  # else at Role 4, outside the record
            debrided = second_look
            _done(treated, fac, DEBRIDEMENT, second_look, base, timeline)
        if timeline is None:
            stays.append((facility_ids[k], transit, arrive, tri, current, treated, end))  # type: ignore[union-attr]
        else:
            end_at = fts(base + end, utc)
            transit_minutes = transit // 6 / 10
            if final:
                kind: Literal["died", "returned_to_duty"] = "died" if dies else "returned_to_duty"
                timeline.append(Event(end_at, kind, fac, None))
                visits.append(
                    Visit(fac, facility_ids[k], arrived_at, None, current, vit, treated, kind,
                          transit_minutes)
                )  # fmt: skip
                outcome_at, outcome_facility = end_at, fac
            else:
                onward = path[k + 1]
                timeline.append(
                    Event(end_at, "evacuated" if onward == "R4" else "departed", fac,
                          facility_ids[k + 1])
                )  # fmt: skip
                visits.append(
                    Visit(fac, facility_ids[k], arrived_at, end_at, current, vit, treated,
                          "evacuated", transit_minutes)
                )  # fmt: skip
        if final:
            break
        last = end
        # treatment works: less shock, less pain, a little better GCS further back
        s_now = s_now * (0.8 if fac == "R1" else 0.45)
        pain_now = pain_now - 2 if pain_now > 2 else pain_now
        if fac != "R1" and gcs_now < 15:
            gcs_now += 1
    return visits, outcome_at, outcome_facility, first_triage


# What is done once along the chain, whichever facility does it first (the flags of `once`).
# RELIEVED: pain relief at the point of injury (each facility relieves pain again, as needed);
# DECOMPRESSED: a tension pneumothorax decompressed at the point of injury (the obstruction is
# relieved; the chest is drained at the first facility); OXYGENATED: on oxygen (or intubated),
# which goes on through the evacuation.
CONTROLLED, INTUBATED, CHEST_DRAINED, SPLINTED, ANTIBIOTICS_GIVEN = 1, 2, 4, 8, 16
RELIEVED, DECOMPRESSED, OXYGENATED = 32, 64, 128
#: The severe fractures of a limb a casualty has (_Hurt.reduce).
REDUCE_OPEN, REDUCE_CLOSED = 1, 2


def _departure(who: _Who, triage: TriageCategory, last: int, r: Callable[[], float]) -> int:
    """When the casualty leaves the point of injury (seconds from the injury; a disease
    casualty: from the onset of illness, leaving the unit for Role 1 the same day)."""
    if not who.is_disease:
        pickup = last + int(
            exp(plan_log_pickup(triage, who.battle) + 0.5 * NORMAL[int(r() * 4096)])
        )
        if triage == "T4" and pickup < last + T4_WAIT:  # the expectant wait for the others
            pickup = last + T4_WAIT + int(r() * 1800)
    else:
        pickup = int(exp(LOG_ONSET + 0.8 * NORMAL[int(r() * 4096)]))
        if pickup > DISEASE_MAX_WAIT:
            pickup = DISEASE_MAX_WAIT - 6 * HOUR + int(r() * 6 * HOUR)
    return last + 60 if pickup <= last else pickup


def _units(plan: Plan, who: _Who, path: list[Facility], r: Callable[[], float]) -> list[str]:
    """The unit of each facility of the path: one of the front's units of that role (the
    nation's own Role 4)."""
    ids = who.front.units
    facility_ids = []
    for fac in path:
        if fac == "R4":
            facility_ids.append(plan.r4_ids[who.nation])
        else:
            units = ids[fac]
            facility_ids.append(units[int(r() * len(units))] if len(units) > 1 else units[0])
    return facility_ids


def _role4(
    plan: Plan,
    r: Callable[[], float],
    base: int,
    last: int,
    unit: str,
    shock: float,
    gcs: int,
    pain: int,
    anxious: bool,
    timeline: list[Event],
) -> Visit:
    """The strategic flight home and the arrival at Role 4, where the record ends."""
    typical = exp(plan.log_delay["R4"])
    flight = typical * exp(0.25 * NORMAL[int(r() * 4096)])
    transit = int(min(max(flight, 0.5 * typical), 2.0 * typical))
    arrived_at = _fts(base + last + transit, UTC)
    timeline.append(Event(arrived_at, "arrived", "R4", unit))
    vit = care.vitals(
        r,
        arrived_at,
        shock * 0.1,
        min(15, gcs + 1),
        False,
        False,
        anxious,
        max(0, pain - 2),
    )
    return Visit("R4", unit, arrived_at, None, None, vit, [], "admitted", transit // 6 / 10)


def _todo(
    todo: list[tuple[str, str]],
    fac: Facility,
    first: bool,
    hurt: _Hurt,
    once: int,
    shock: float,
    vit: Vitals,
    current: TriageCategory,
    r: Callable[[], float],
) -> int:
    """Fills `todo` with what is done at a facility of the theatre after the triage, in order,
    from the injuries, the vitals taken there, the shock and what is already done (`once`);
    returns `once` with what it adds."""
    flags = hurt.flags
    # Role 1 and 2 control a bleeding they can reach; Role 2 one inside the abdomen too, by its
    # laparotomy; a haemothorax is drained, an abdominal wall's bruise watched
    # (coherence's hemorrhage_control_without_a_bleeding_to_reach)
    if (
        fac in ("R1", "R2")
        and not once & CONTROLLED
        and (hurt.bleed == REACHABLE or (fac == "R2" and hurt.abdomen and hurt.bleed == INTERNAL))
    ):
        todo.append(HEMORRHAGE_CONTROL)
        once |= CONTROLLED
    if vit.gcs <= 8 and not once & INTUBATED and current != "T4":
        todo.append(INTUBATION)
        once |= INTUBATED | OXYGENATED
    chest = hurt.chest
    if chest and not once & CHEST_DRAINED and current != "T4":  # expectant: no pleural tube
        todo.append(CHEST_DRAIN)
        once |= CHEST_DRAINED
    # oxygen for the hurt chest, and for the hypoxaemic or breathless only (BTS: to a target
    # saturation, not for one already in it), where first seen; and wherever the casualty is
    # hypoxaemic without it (it goes on through the evacuation once started)
    if (first and (chest or hurt.breathless or vit.spo2 < HYPOXAEMIA_SPO2)) or (
        vit.spo2 < HYPOXAEMIA_SPO2 and not once & OXYGENATED
    ):
        todo.append(OXYGEN)
        once |= OXYGENATED
    # the circulation, before the antibiotics and splints (MARCH-PAWS), unless expectant:
    # fluids for a burn or dehydration where first seen, and at Role 1 for the hypotensive (it
    # has no blood); Role 2 and 3 give blood to a bleeding casualty in shock
    if current != "T4":
        if (hurt.fluids and first) or (fac == "R1" and vit.systolic_bp < HYPOTENSION_SBP):
            todo.append(IV_FLUIDS)
        if fac != "R1":
            if (shock >= 0.4 and fac == "R2") or shock >= 0.7:
                todo.append(TRANSFUSION)
            elif vit.systolic_bp < HYPOTENSION_SBP and not (hurt.fluids and first):
                # hypotensive beyond the shock carried from the place before (one who dies here
                # arrives in deeper shock): blood for a bleeding casualty, else fluids
                todo.append(TRANSFUSION if hurt.shock > 0.0 or hurt.unseen_bleed else IV_FLUIDS)
    if hurt.limb_fracture and not once & SPLINTED:
        todo.append(SPLINT)
        once |= SPLINTED
    # antibiotics for an infection of bacteria (not a virus's), and for every open combat wound
    # at the first facility (TCCC), unless the casualty is expectant there
    if (
        hurt.bacterial or (flags & PENETRATING and current != "T4")
    ) and not once & ANTIBIOTICS_GIVEN:
        todo.append(ANTIBIOTICS)
        once |= ANTIBIOTICS_GIVEN
    wound = hurt.wound
    # a mental disorder (an acute stress disorder, an anxiety, a depression) is assessed where it
    # is first seen: the medical officer's psychiatric interview and evaluation, after the body
    if first and hurt.anxious:
        todo.append(PSYCHIATRIC_EVALUATION)
    if fac == "R1":
        if flags & MINOR_CUT and current == "T3":
            todo.append(SUTURE)
        if wound and current == "T3":
            todo.append(WOUND_CARE)
        return once
    if current == "T4":  # expectant: comfort care, no blood, operation nor airway (coherence)
        return once
    if fac == "R2":
        if hurt.abdomen:
            todo.append(LAPAROTOMY)
        if flags & AMPUTATED:
            todo.append(AMPUTATION)
    else:  # Role 3 scans first and operates on what the scan shows (a craniotomy first)
        if hurt.head_ais >= 2 or flags & (FRACTURE | SPINE) or hurt.open_globe:
            todo.append(CT_SCAN)
        if hurt.head_ais >= 4 and r() < 0.5:
            todo.append(CRANIOTOMY)
        if hurt.open_globe:  # its eye surgeon (Role 2 has none: coherence)
            todo.append(EYE_SURGERY)
    # Role 1 has no imaging; Role 2 X-rays a fracture after the life-saving operations, before
    # the debridement, the chest of a pneumonia (a bacterial infection of the lungs: the
    # radiograph confirms it) and of a penetrating wound of the thorax (its air or blood)
    if fac == "R2" and (
        flags & FRACTURE or hurt.chest_film or (hurt.bacterial and flags & RESPIRATORY)
    ):
        todo.append(X_RAY)
    if wound:  # delayed since its triage here if it was minimal (coherence.retriage)
        todo.append(DEBRIDEMENT)
    # a severe fracture of a limb is reduced and held at Role 2, an open one at the end of its
    # debridement (damage control orthopaedics: it is fixed definitively at home)
    if fac == "R2" and hurt.reduce:
        if hurt.reduce & REDUCE_OPEN:
            todo.append(OPEN_REDUCTION)
        if hurt.reduce & REDUCE_CLOSED:
            todo.append(CLOSED_REDUCTION)
    return once


def _treated(
    treated: list[Any],
    fac: Facility,
    relieve: bool,
    todo: list[tuple[str, str]],
    tri: int,
    r: Callable[[], float],
    base: int,
    timeline: list[Event] | None,
) -> tuple[int, int]:
    """When each procedure is done, appended to `treated`: with a timeline, the Procedures and
    their events; without, the (procedure, seconds) of each. Pain relief, when `relieve` (pain
    of PAIN_RELIEF_FROM or more on arrival, at every place: the last dose has worn off; comfort
    care of the expectant too), within a minute of the triage at `tri`: it waits for no team;
    then `todo`, one after another from a few minutes after the triage: resuscitation, imaging
    and dressings 3 to 10 minutes apart (a trauma team works at once, the 1 of 10-1-2; a plain
    X-ray, a portable film, 1 to 3 minutes before the next), an operation for about its time on
    the table (0.75 to 1.25 times care.SURGERY_MINUTES), so the first operation starts within
    the hour of the triage (the 2 of 10-1-2). Returns the time of the last (the triage's when
    there is none) and of the debridement (-1 without one)."""
    last = tri
    debrided = -1
    if relieve:
        todo = [PAIN_RELIEF, *todo]
        t = tri + 15 + int(r() * 45)
    else:
        t = tri + 60 + int(r() * 240)
    for proc in todo:
        _done(treated, fac, proc, t, base, timeline)
        last = t
        if proc is DEBRIDEMENT:
            debrided = t
        if proc is PAIN_RELIEF:  # then the team's work, as without it
            t = tri + 60 + int(r() * 240)
        elif (operating := SURGERY_SECONDS.get(proc[0])) is not None:
            t += int(operating * (0.75 + 0.5 * r()))
        elif proc is X_RAY:  # a portable film in the resuscitation bay
            t += 60 + int(r() * 120)
        else:
            t += 180 + int(r() * 420)
    return last, debrided


def _done(
    treated: list[Any],
    fac: Facility,
    proc: tuple[str, str],
    t: int,
    base: int,
    timeline: list[Event] | None,
) -> None:
    """Procedure `proc` done at `t`, appended to `treated` (with a timeline, the Procedure and
    its event; without, the (procedure, seconds))."""
    if timeline is None:
        treated.append((proc, t))
    else:
        when = _fts(base + t, UTC)
        treated.append(Procedure(proc[0], proc[1], when))
        timeline.append(Event(when, "treated", fac, proc[1]))


def _brain_injured(hurt: _Hurt) -> bool:
    """A concussion or brain injury, or a GCS below 15 in the vitals (coherence's
    concussion_returned_within_24h)."""
    if care.gcs_in_shock(hurt.gcs0, hurt.shock) < 15:
        return True
    return any(template[0] in BRAIN_INJURIES for template, _, _ in hurt.injuries)


#: The rest after a concussion before the return to duty (seconds from the injury).
REST = int(CONCUSSION_REST.total_seconds())
#: The second look at a debrided wound comes 24 to 48 hours after the debridement (seconds).
LOOK_AGAIN = int(SECOND_LOOK.total_seconds())


def _stay_end(
    fac: Facility,
    final: bool,
    dies: bool,
    quick: bool,
    rest: bool,
    speed: float,
    arrive: int,
    last: int,
    max_ais: int,
    r: Callable[[], float],
) -> int:
    """When the stay at a facility ends (seconds from the injury): death at the last facility of
    one who dies, return to duty at the last of one who lives (within 72 hours for a quick
    return, from Role 1 or 2; else after days at Role 3, the only place that holds a casualty
    longer: 3 to 7 days for moderate conditions, so never a quick return, and 5 to 20 for severe
    ones), else departure after the facility's typical stay. A quick return after a brain
    injury (`rest`) comes 24 hours after the injury at the earliest."""
    if final and dies:
        return last + 600 + int(r() * DOW_SPAN[fac])
    if final:
        if quick:
            end = arrive + (
                2 * HOUR + int(r() * 22 * HOUR) if fac == "R1" else 12 * HOUR + int(r() * 48 * HOUR)
            )
            if rest and end < REST:  # the concussion's rest: 24.5 to 39 hours
                end = REST + (end - arrive) // 4
            if end > 71 * HOUR:
                end = max(71 * HOUR, last + 600)
        elif max_ais <= 2:
            end = arrive + 3 * DAY + int(r() * 4 * DAY)
        else:
            end = arrive + 5 * DAY + int(r() * 15 * DAY)
        if end <= last + 300:
            end = last + 300 + int(r() * 600)
        return end
    median: float = STAY[fac]
    if fac != "R3":
        median *= speed
    return last + 300 + int(median * exp(0.4 * NORMAL[int(r() * 4096)]))


#: The shock the vitals of a severe dehydration show where it is first seen, before its fluids
#: (a pulse of 97-110, a systolic pressure of 89-106 mmHg).
HYPOVOLAEMIA = 0.45
#: The shock the vitals of a tension pneumothorax show until decompressed or drained (obstructive
#: shock: a pulse of 101-113, a systolic pressure of 87-103 mmHg; lower with the shock of a
#: bleed).
OBSTRUCTION = 0.5
#: The shock of a severe closed fracture of a leg (`_Hurt.unseen_bleed`) where first seen: a
#: femur's loses 1 to 1.5 litres into the thigh (ATLS: a class II haemorrhage, the pulse above
#: 100, the pressure kept), here a pulse of 90-103 (more when anxious) and a systolic of 95-112
#: mmHg (coherence's leg_fracture_without_blood_loss).
THIGH_BLEED = 0.35
#: The shock coded critical (from that level on; below it, severe).
CRITICAL_SHOCK = 0.8
#: A burn from this AIS on (20 % of the body surface, AIS 2005) is given intravenous fluids at
#: the first facility (JTS burn care guideline: formal resuscitation from 20 %).
FLUIDS_BURN_AIS = 4
#: Longest time from the last treatment to death of a DOW casualty, by facility (seconds).
DOW_SPAN = {"R1": HOUR, "R2": 12 * HOUR, "R3": 5 * DAY}
#: Median stay before moving on (seconds): Role 1 stabilise and go, Role 2 surgery, Role 3 days.
STAY = {"R1": 45 * 60, "R2": 5 * HOUR, "R3": 3 * DAY}
LOG_ONSET = log(4 * HOUR)  # illness: median time from onset to leaving for Role 1
#: Illness: the longest wait at the unit before leaving for Role 1 (reached within 24 hours).
DISEASE_MAX_WAIT = 18 * HOUR
#: Illness: the longest way to Role 1 (the sick go to sick call; `poi_to_role1` is the casualty
#: evacuation's delay, which a scenario may set to days): with DISEASE_MAX_WAIT, within 24 hours.
DISEASE_MAX_WALK = 6 * HOUR
_LOG_PICKUP = {
    (True, "T1"): log(10 * 60), (True, "T4"): log(60 * 60), (True, "T2"): log(15 * 60),
    (True, "T3"): log(20 * 60), (False, "T1"): log(15 * 60), (False, "T4"): log(60 * 60),
    (False, "T2"): log(20 * 60), (False, "T3"): log(30 * 60),
}  # fmt: skip


def plan_log_pickup(triage: str, battle: bool) -> float:
    """Log of the median time at the point of injury before evacuation starts."""
    return _LOG_PICKUP[(battle, triage)]


def inj_mechanism_code(mechanism: str | None) -> str | None:
    """SNOMED event code of a mechanism where one fits (explosion, firearm, fall, vehicle)."""
    return MECHANISM_CODES.get(mechanism) if mechanism is not None else None
