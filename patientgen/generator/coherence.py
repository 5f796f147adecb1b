"""Clinical coherence: the rules a clinician checks on a casualty record, in one place.

Two uses of the same definitions:

- **while a patient is made** (generator/build.py): the data and small functions here decide what
  may happen (`can_kill`, `DNBI_CAN_KILL`, `retriage`, `derange`, `T4_MIN_POI_WAIT`, ...), so every
  record is coherent by construction and nothing is patched afterwards;
- **over finished records** (tests, audits): `RULES` maps each rule's name to a predicate that is
  True when a record breaks it; `violations(p)` lists the rules one patient breaks and
  `count_violations(patients)` counts them per rule. The predicates read only the Patient record,
  never the generator's internals, so they check any record, whoever made it.

Definitions (see docs/clinical-coherence.md for the sources):

- `outcome_at` is the end of the theatre record: the death (KIA at the point of injury, DOW or
  DIED at a facility), the return to duty, or, for EVACUATED_R4, the **arrival at the Role 4
  hospital** in the home nation. Definitive care after that arrival is outside the record: the
  Role 4 visit holds the arrival and the handover vitals taken on arrival, nothing later.
- The first triage is the one at the point of injury (by the medic, after buddy aid), and
  `Patient.triage` is that first category. A KIA who dies before the medic reaches them was never
  triaged and has `triage = None`. A disease casualty has no point of injury: their first triage
  is at Role 1. Each facility of the theatre (Role 1, 2, 3) triages again on arrival, from the
  injuries and the vitals taken there; Role 4 does not (the record ends on arrival).
- Vitals are "all normal" when every sign is inside `NORMAL` (adult resting ranges).
- An injury "can kill" when its severity is severe or critical (AIS 3 or more); a disease can kill
  only when it is in `DNBI_CAN_KILL` and severe or critical. Shock and exsanguination are
  consequences, never causes on their own; psychiatric conditions never kill in this model.
- DOW (died of wounds) is a battle outcome; a disease or non-battle casualty who dies after
  reaching care is DIED.

Invariants: the predicates are pure, cheap (one pass over a record) and never raise on a record
the generator makes; `RULES` keys are stable names (tests and docs use them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from patientgen.generator import care
from patientgen.generator import injuries as inj
from patientgen.generator.patient import Condition, Patient, Visit, Vitals, taken
from patientgen.scenario import TriageCategory

# --- data -----------------------------------------------------------------------------------------
#: Adult resting ranges (inclusive) of the signs the generator records: outside any of them, the
#: vitals are not "all normal".
NORMAL: dict[str, tuple[float, float]] = {
    "heart_rate": (60, 100),
    "respiratory_rate": (12, 20),
    "systolic_bp": (90, 139),
    "spo2": (95, 100),
    "temperature_c": (36.0, 37.9),
    "gcs": (15, 15),
}
#: Shock is incompatible with a systolic pressure at or above this and a pulse below SHOCK_HR.
SHOCK_SBP = 110
SHOCK_HR = 90
#: A minimal (T3) casualty is never hypotensive nor confused (SBP and GCS at least these).
T3_MIN_SBP = 90
T3_MIN_GCS = 13
#: Lowest AIS (severity "severe") of an injury that can kill.
LETHAL_AIS = 3
LETHAL_SEVERITIES = frozenset(("severe", "critical"))
#: Diseases that can kill when severe: pneumonia, dehydration (heat illness in field conditions).
DNBI_CAN_KILL = frozenset(("233604007", "34095006"))
PSYCHIATRIC = frozenset(("47505003", "67195008", "35489007", "197480006"))
SHOCK_CODE = "27942005"
AMPUTATION_CODE = "262595009"
PTSD_CODE = "47505003"
#: An expectant (T4) casualty waits at the point of injury at least this long after being triaged:
#: those with a chance go first (T4 is moved after T1, T2 and T3).
T4_MIN_POI_WAIT = timedelta(minutes=30)
#: A disease casualty reaches Role 1 within this time of the onset (sick call the same day).
DISEASE_MAX_TO_R1 = timedelta(hours=24)
#: The longest plausible strategic aeromedical leg from Role 3 to Role 4 (flight and transfers).
R4_LEG_MAX = timedelta(hours=24)
#: Share of deaths before reaching care that were potentially survivable (Eastridge et al., J Trauma
#: Acute Care Surg 2012: about 24%, mostly haemorrhage). A KIA alive at the medic's triage is
#: immediate (T1) with this chance, unless the injury score makes them expectant; else expectant.
KIA_SURVIVABLE = 0.24
#: Nations without armed forces: they supply no casualties (Iceland has a coast guard only).
NO_ARMED_FORCES = frozenset(("ISL",))
DEATHS = frozenset(("KIA", "DOW", "DIED"))
THEATRE = ("R1", "R2", "R3")
#: The severities of AIS 3 and more.
SEVERE = frozenset({"severe", "critical"})


# --- functions the generator uses -------------------------------------------------------------
def all_normal(v: Vitals) -> bool:
    """True when every recorded sign is inside its NORMAL range."""
    return (
        60 <= v.heart_rate <= 100
        and 12 <= v.respiratory_rate <= 20
        and 90 <= v.systolic_bp <= 139
        and v.spo2 >= 95
        and 36.0 <= v.temperature_c <= 37.9
        and v.gcs == 15
    )


def retriage(
    previous: TriageCategory, v: Vitals, to_operate: bool = False, will_live: bool = False
) -> TriageCategory:
    """The triage category on arrival somewhere, from the previous one and the vitals taken there.

    A casualty who is hypotensive (SBP < 90) or confused (GCS < 13) is immediate (T1) unless
    expectant; an immediate casualty whose vitals are all normal again (after resuscitation and
    surgery) is delayed (T2); a minimal casualty with a wound the facility will operate on
    (`to_operate`: a debridement at Role 2 or 3) is delayed (`minimal_operated`); a casualty
    judged expectant who reaches a facility alive and will live (`will_live`: the generator's
    outcome) is re-assessed there and immediate (`expectant_carried_on`). Everyone else keeps
    their category.
    """
    if previous in ("T2", "T3") and (v.systolic_bp < T3_MIN_SBP or v.gcs < T3_MIN_GCS):
        return "T1"
    if previous == "T1" and all_normal(v):
        return "T2"
    if previous == "T3" and to_operate:
        return "T2"
    if previous == "T4" and will_live:
        return "T1"
    return previous


def derange(v: Vitals, random: Callable[[], float]) -> None:
    """Give the first vitals of an immediate (T1) casualty the tachycardia of pain and injury when
    every sign happened to fall inside the normal ranges (in place)."""
    v.heart_rate = 101 + int(random() * 25)


def triage_first(base: TriageCategory, v: Vitals, random: Callable[[], float]) -> TriageCategory:
    """The first triage of a casualty (point of injury, or Role 1 for disease), from the category
    of their injuries and the first vitals: an immediate casualty's vitals are never all normal
    (`derange`), an unstable one is never minimal. Otherwise the category of the injuries stands
    (the mix a scenario asks for is the mix of first triages)."""
    if base == "T1" and all_normal(v):
        derange(v, random)
    elif base == "T3" and (v.systolic_bp < T3_MIN_SBP or v.gcs < T3_MIN_GCS):
        return "T1"
    return base


def can_kill_injury(max_ais: int) -> bool:
    return max_ais >= LETHAL_AIS


def lethal_ais(injuries: Iterable[inj.Injury]) -> int:
    """The worst AIS among the injuries that can cause a death by themselves (0 when none): not
    a closed fracture of an arm (`cannot_kill_alone`), not a burn short of critical
    (`BURN_LETHAL_AIS`). build._hurt computes the same inline (the hot path)."""
    worst = 0
    for template, region, ais in injuries:
        if ais > worst and not (
            cannot_kill_alone(template[0], region)
            or (template[4] & inj.BURN and ais < BURN_LETHAL_AIS)
        ):
            worst = ais
    return worst


def can_kill_disease(code: str, ais: int) -> bool:
    return code in DNBI_CAN_KILL and ais >= LETHAL_AIS


# --- the checker -------------------------------------------------------------------------------
def _times(p: Patient) -> Iterable[datetime]:
    for e in p.timeline:
        yield e.at
    for v in p.visits:
        yield v.arrived_at
        if v.departed_at is not None:
            yield v.departed_at
        if v.vitals is not None:
            yield v.vitals.taken_at
        for proc in v.procedures:
            yield proc.performed_at


def nothing_after_outcome(p: Patient) -> bool:
    end = p.outcome_at
    return any(t > end for t in _times(p))


def poi_vitals_after_departure(p: Patient) -> bool:
    poi = p.visits[0]
    v = poi.vitals
    return v is not None and poi.departed_at is not None and v.taken_at > poi.departed_at


def _poi_triage_event(p: Patient) -> datetime | None:
    for e in p.timeline:
        if e.kind == "triaged" and e.facility == "POI":
            return e.at
    return None


def triage_missing(p: Patient) -> bool:
    """Injured casualties are triaged at the point of injury (unless dead first), everyone at each
    theatre facility they reach, with a "triaged" event there."""
    triaged = {e.facility for e in p.timeline if e.kind == "triaged"}
    for v in p.visits[1:]:
        if v.facility in THEATRE and (v.triage is None or v.facility not in triaged):
            return True
    if p.category != "disease" and p.outcome != "KIA":
        return p.visits[0].triage is None or "POI" not in triaged
    return False


def triage_not_received(p: Patient) -> bool:
    """`Patient.triage` is the first triage given: None when none was (a KIA dead before the medic
    came), else the category of the first "triaged" event."""
    first = next((e.detail for e in p.timeline if e.kind == "triaged"), None)
    return p.triage != first


def _triaged_vitals(p: Patient) -> Iterable[tuple[str, Vitals]]:
    for v in p.visits:
        if v.triage is not None and v.vitals is not None:
            yield v.triage, v.vitals


def t1_all_normal_vitals(p: Patient) -> bool:
    return any(t == "T1" and all_normal(v) for t, v in _triaged_vitals(p))


def t3_unstable_vitals(p: Patient) -> bool:
    return any(
        t == "T3" and (v.systolic_bp < T3_MIN_SBP or v.gcs < T3_MIN_GCS)
        for t, v in _triaged_vitals(p)
    )


def shock_with_normal_circulation(p: Patient) -> bool:
    """A Shock condition, and the first vitals taken at or after its onset show SBP >= 110 and
    HR < 90."""
    for c in p.conditions:
        if c.code == SHOCK_CODE:
            first = None
            for v in p.visits:
                if v.vitals is not None and v.vitals.taken_at >= c.onset:
                    first = v.vitals
                    break
            return _circulation_normal(first)
    return False


def _circulation_normal(vit: Vitals | None) -> bool:
    """Vitals that exclude shock: a systolic pressure of SHOCK_SBP or more and a pulse below
    SHOCK_HR (False without vitals)."""
    return vit is not None and vit.systolic_bp >= SHOCK_SBP and vit.heart_rate < SHOCK_HR


def _first_vitals(p: Patient, places: tuple[str, ...] = ("POI", *THEATRE)) -> Vitals | None:
    """The first vitals taken at one of `places` (where first seen: the point of injury, else
    the first theatre facility), None when none were."""
    return next((v.vitals for v in p.visits if v.facility in places and v.vitals), None)


def _has(p: Patient, code: str) -> bool:
    """Whether condition `code` is among the patient's."""
    return any(c.code == code for c in p.conditions)


def _has_severe(p: Patient, code: str) -> bool:
    """Whether condition `code` is among the patient's, severe or critical."""
    return any(c.code == code and c.severity in SEVERE for c in p.conditions)


def injury_can_kill(c: Condition) -> bool:
    """Whether a condition is an injury that can cause a death by itself: of a body region (so
    not shock nor exsanguination, consequences of one), severe or critical, neither a closed
    fracture of an arm nor a burn short of critical (as `lethal_ais` decides on the injuries;
    flow.skeleton asks it of who may die waiting)."""
    return (
        c.region is not None
        and c.severity in LETHAL_SEVERITIES
        and not cannot_kill_alone(c.code, c.region)
        and not burn_cannot_kill(c.code, c.severity)
    )


def _can_kill(p: Patient) -> bool:
    """Whether a condition of the patient can cause a death by itself: an injury that can
    (`injury_can_kill`: not a closed fracture of an arm, not a burn short of critical), or a
    severe illness that can (DNBI_CAN_KILL)."""
    return any(
        injury_can_kill(c) or (c.code in DNBI_CAN_KILL and c.severity in LETHAL_SEVERITIES)
        for c in p.conditions
    )


def kia_cannot_kill(p: Patient) -> bool:
    return p.outcome == "KIA" and not _can_kill(p)


def kia_triaged_t3(p: Patient) -> bool:
    return p.outcome == "KIA" and p.triage == "T3"


def dow_cannot_kill(p: Patient) -> bool:
    return p.outcome == "DOW" and not _can_kill(p)


def duplicate_condition(p: Patient) -> bool:
    seen = {(c.code, c.region) for c in p.conditions}
    return len(seen) != len(p.conditions)


def amputation_returned_to_duty(p: Patient) -> bool:
    return p.outcome == "RTD" and _has(p, AMPUTATION_CODE)


def dnbi_death_without_cause(p: Patient) -> bool:
    return p.category != "battle_injury" and p.outcome in DEATHS and not _can_kill(p)


def dnbi_death_coded_shock(p: Patient) -> bool:
    return p.category != "battle_injury" and p.outcome in DEATHS and _has(p, SHOCK_CODE)


def dnbi_death_as_wounds(p: Patient) -> bool:
    """Died of wounds (DOW) and killed in action (KIA) are battle outcomes."""
    return p.category != "battle_injury" and p.outcome in ("DOW", "KIA")


def disease_late_to_role1(p: Patient) -> bool:
    if p.category != "disease" or len(p.visits) < 2:
        return False
    return p.visits[1].arrived_at - p.injured_at > DISEASE_MAX_TO_R1


def t4_moved_at_t1_speed(p: Patient) -> bool:
    """An expectant casualty leaves the point of injury no sooner than T4_MIN_POI_WAIT after the
    triage there, and is never flown past Role 1."""
    poi = p.visits[0]
    triage = poi.triage if poi.triage is not None else p.triage
    if triage != "T4" or poi.departed_at is None or p.category == "disease":
        return False
    at = _poi_triage_event(p) or p.injured_at
    if poi.departed_at - at < T4_MIN_POI_WAIT:
        return True
    return len(p.visits) > 1 and p.visits[1].facility != "R1"


def ptsd_at_point_of_injury(p: Patient) -> bool:
    """PTSD needs symptoms for more than a month after the trauma: never on the day of it."""
    return any(
        c.code == PTSD_CODE and c.onset - p.injured_at < timedelta(days=30) for c in p.conditions
    )


def nation_without_armed_forces(p: Patient) -> bool:
    return p.nationality in NO_ARMED_FORCES


def r4_leg_implausible(p: Patient) -> bool:
    """The Role 3 -> Role 4 leg (strategic aeromedical evacuation) lasts at most R4_LEG_MAX."""
    visits = p.visits
    last = visits[-1]
    if last.facility != "R4" or len(visits) < 2:
        return False
    before = visits[-2].departed_at
    return before is None or last.arrived_at - before > R4_LEG_MAX


#: Operations after which nobody returns to duty in theatre: the recovery outlasts any theatre's
#: holding policy (exploratory laparotomy, craniotomy; amputation has its own rule).
MAJOR_SURGERY = frozenset((care.LAPAROTOMY[0], care.CRANIOTOMY[0]))


def major_surgery_returned_to_duty(p: Patient) -> bool:
    """A casualty operated on the abdomen or the skull is evacuated home, never returned to duty
    in theatre."""
    return p.outcome == "RTD" and any(
        pr.code in MAJOR_SURGERY for v in p.visits for pr in v.procedures
    )


#: A broken limb bone (SNOMED CT): open fracture, closed fracture, crush injury.
OPEN_FRACTURE_CODE = inj.OPEN_FRACTURE[0]
LIMB_FRACTURES = frozenset((OPEN_FRACTURE_CODE, inj.CLOSED_FRACTURE[0], inj.CRUSH[0]))


def open_fracture_returned_to_duty(p: Patient) -> bool:
    """An open fracture (surgical debridement, antibiotics, fixation, months to heal) is
    evacuated home, never returned to duty in theatre."""
    return p.outcome == "RTD" and _has(p, OPEN_FRACTURE_CODE)


def limb_fracture_returned_from_role1(p: Patient) -> bool:
    """A broken limb is X-rayed and immobilised at Role 2 at least: Role 1 has no imaging and
    does not return it to duty."""
    return (
        p.outcome == "RTD"
        and p.outcome_facility == "R1"
        and any(
            c.code in LIMB_FRACTURES and c.region is not None and c.region.endswith("_limb")
            for c in p.conditions
        )
    )


def severe_fracture_returned_to_duty(p: Patient) -> bool:
    """A severe fracture (AIS 3+) of a limb or the pelvis, closed or crushed (a femoral shaft, a
    comminuted tibia, a pelvic ring: fixation, then months before the bone bears weight) is
    evacuated home, never returned to duty in theatre, as an open fracture is."""
    return p.outcome == "RTD" and any(
        c.code in LIMB_FRACTURES
        and c.severity in SEVERE
        and c.region is not None
        and (c.region.endswith("_limb") or c.region == "pelvis")
        for c in p.conditions
    )


#: Open (penetrating) combat wounds: open wound, foreign body (fragment), bullet wound, gunshot
#: wound, open fracture (the injuries' PENETRATING templates).
OPEN_COMBAT_WOUNDS = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.PENETRATING)


def _treated_in_theatre(p: Patient) -> list[Visit]:
    """The casualty's Role 1-3 visits, when the first of them treated it: empty when it never
    reached one, or died at the first before any treatment (waiting for a team, under a
    medical plan)."""
    theatre = [v for v in p.visits if v.facility in THEATRE]
    if theatre and _dead_before_treatment(theatre[0]):
        return []
    return theatre


def _dead_before_treatment(v: Visit) -> bool:
    """Whether the casualty died at visit `v` before any treatment there (its triage aside)."""
    return v.disposition == "died" and all(pr.code == care.TRIAGE[0] for pr in v.procedures)


def _cared_for_at(p: Patient, facility: str) -> Visit | None:
    """The casualty's first visit to `facility` when that facility gave it its care there: None
    when it never got there, or was expectant there, or died there (before the care a rule asks
    of it, under a plan's waits)."""
    v = next((v for v in p.visits if v.facility == facility), None)
    if v is None or v.triage == "T4" or v.disposition == "died":
        return None
    return v


def _done_at(v: Visit | None, procedure: tuple[str, str]) -> bool:
    """Whether visit `v` (None: a facility not reached) records `procedure`; True for None, so
    a rule on a visit not made holds."""
    return v is None or any(pr.code == procedure[0] for pr in v.procedures)


def _given(visits: Iterable[Visit], procedure: tuple[str, str]) -> bool:
    return any(pr.code == procedure[0] for v in visits for pr in v.procedures)


def _withheld_unless_expectant(p: Patient, procedure: tuple[str, str]) -> bool:
    """Whether a casualty treated in theatre, and not expectant at the first facility, went
    without `procedure` at every theatre facility."""
    theatre = _treated_in_theatre(p)
    return bool(theatre) and theatre[0].triage != "T4" and not _given(theatre, procedure)


def open_wound_without_antibiotics(p: Patient) -> bool:
    """An open combat wound is given antibiotics at the first facility (TCCC: antibiotics for
    all open combat wounds; JTS: within 3 hours), unless the casualty is expectant there or dies
    there before any treatment (waiting for a team, under a medical plan)."""
    wounded = any(c.code in OPEN_COMBAT_WOUNDS for c in p.conditions)
    return wounded and _withheld_unless_expectant(p, care.ANTIBIOTICS)


def penetrating_chest_without_drain(p: Patient) -> bool:
    """A severe or critical penetrating wound of the chest (a gunshot, bullet, fragment or open
    wound of AIS 3 or more: the lung is hurt, and blood or air fills the pleura) is drained
    (tube thoracostomy, ATLS; Role 1 and on), unless the casualty dies at the first facility
    before any treatment or is expectant there (comfort care: `t4_given_intensive_care`)."""
    if not any(
        c.region == "thorax" and c.code in OPEN_COMBAT_WOUNDS and c.severity in SEVERE
        for c in p.conditions
    ):
        return False
    return _withheld_unless_expectant(p, care.CHEST_DRAIN)


#: Burns of partial or full thickness (second and third degree): the injuries' BURN | WOUND
#: templates.
DEEP_BURNS = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.BURN and t[4] & inj.WOUND)


def major_burn_returned_to_duty(p: Patient) -> bool:
    """A major burn (second or third degree of AIS 3 or more: 10 % of the body surface or more,
    AIS 2005) goes to a burn centre, at Role 4 (the American Burn Association's referral
    criteria: partial thickness over 10 %, any full thickness), never back to duty in theatre."""
    return p.outcome == "RTD" and any(
        c.code in DEEP_BURNS and c.severity in SEVERE for c in p.conditions
    )


#: Severe dehydration (heat and field conditions, AIS 3).
DEHYDRATION_CODE = inj.DEHYDRATION[0]


def fluid_loss_without_fluids(p: Patient) -> bool:
    """A critical burn (AIS 5+: 30 % of the body surface or more; formal resuscitation from 20 %,
    JTS burn care guideline) or a severe dehydration (WHO plan C) is given intravenous fluids at
    a theatre facility, unless the casualty is expectant at the first or dies there before any
    treatment."""
    lost = any(
        (c.code in DEEP_BURNS and c.severity == "critical")
        or (c.code == DEHYDRATION_CODE and c.severity in SEVERE)
        for c in p.conditions
    )
    return lost and _withheld_unless_expectant(p, care.IV_FLUIDS)


#: The limbs and the pelvis: where a crushed muscle mass makes a crush syndrome, where a severe
#: fracture takes months to heal (build._heals_at_home).
LIMB_OR_PELVIS = frozenset((*inj.LIMBS, "pelvis"))


def severe_crush_without_fluids(p: Patient) -> bool:
    """A severe crush of a limb or the pelvis (AIS 3+) is given intravenous fluids where first
    seen, against the crush syndrome (the myoglobin and potassium of the crushed muscle: Sever
    and Vanholder, the International Society of Nephrology's recommendations for crush victims,
    Nephrol Dial Transplant 2012: fluids as early as possible), unless the casualty is expectant
    at the first facility or dies there before any treatment."""
    crushed = any(
        c.code == inj.CRUSH[0] and c.severity in SEVERE and c.region in LIMB_OR_PELVIS
        for c in p.conditions
    )
    if not crushed:
        return False
    theatre = _treated_in_theatre(p)
    return bool(theatre) and theatre[0].triage != "T4" and not _given(theatre[:1], care.IV_FLUIDS)


def severe_limb_fracture_not_reduced(p: Patient) -> bool:
    """A severe (AIS 3+) fracture of a limb taken to Role 2 is reduced there (damage control
    orthopaedics: reduced and held, an open one at the end of its debridement, fixed for good at
    home), unless the casualty is expectant there or dies there: a reduction of an open
    fracture for an open one, of a closed fracture for a closed one."""
    kinds = {
        c.code
        for c in p.conditions
        if c.code in (OPEN_FRACTURE_CODE, CLOSED_FRACTURE_CODE)
        and c.severity in SEVERE
        and c.region in inj.LIMBS
    }
    if not kinds:
        return False
    r2 = _cared_for_at(p, "R2")
    return (OPEN_FRACTURE_CODE in kinds and not _done_at(r2, care.OPEN_REDUCTION)) or (
        CLOSED_FRACTURE_CODE in kinds and not _done_at(r2, care.CLOSED_REDUCTION)
    )


def critical_returned_to_duty(p: Patient) -> bool:
    """A casualty with a critical condition (AIS 5 or 6: survival uncertain; weeks in
    intensive care) is evacuated home, never returned to duty in theatre."""
    return p.outcome == "RTD" and any(c.severity == "critical" for c in p.conditions)


#: What an expectant (T4) casualty is not given where they are triaged T4: blood, an operation,
#: an airway, a chest drain (intubation, exploratory laparotomy, amputation, debridement,
#: craniotomy, a pleural tube since 1.36.0).
INTENSIVE_CARE = frozenset(
    p[0]
    for p in (care.TRANSFUSION, care.INTUBATION, care.LAPAROTOMY, care.AMPUTATION,
              care.DEBRIDEMENT, care.CRANIOTOMY, care.CHEST_DRAIN)
)  # fmt: skip


def t4_given_intensive_care(p: Patient) -> bool:
    """A facility that triages a casualty expectant (T4) gives comfort care: given blood or an
    operation there, the casualty would not be expectant."""
    return any(
        v.triage == "T4" and any(pr.code in INTENSIVE_CARE for pr in v.procedures)
        for v in p.visits
        if v.facility != "POI"
    )


def _only_mild(p: Patient) -> bool:
    return bool(p.conditions) and all(c.severity == "mild" for c in p.conditions)


def mild_admitted_to_role3(p: Patient) -> bool:
    """A casualty with only mild conditions (AIS 1) who returns to duty is never admitted to
    the theatre hospital (Role 3) (since 1.32.0 it returns from Role 1:
    `mild_evacuated_for_nothing`)."""
    return p.outcome == "RTD" and _only_mild(p) and any(v.facility == "R3" for v in p.visits)


def mild_evacuated_for_nothing(p: Patient) -> bool:
    """A casualty with only mild conditions (AIS 1: a cold, a mild gastroenteritis, a sprain, a
    bruise, a laceration, low back pain, a first degree burn, a mild stress reaction) who
    returns to duty does so from Role 1, where the sick call and the aid station treat it: it
    is not evacuated to Role 2 and held there for days with nothing done past Role 1 (a mild
    illness is given its rest in quarters, a stress reaction is treated forward, close to its
    unit: proximity, immediacy, expectancy, simplicity)."""
    return (
        p.outcome == "RTD"
        and _only_mild(p)
        and p.outcome_facility in ("R2", "R3")
        and not any(v.procedures for v in p.visits if v.facility in ("R2", "R3"))
    )


#: A condition that heals within days when at most moderate (the HEALS templates: a
#: laceration, a contusion, a sprain, low back pain, a first degree burn; an upper respiratory
#: infection, influenza, a gastroenteritis, a cellulitis, a urinary tract infection, a
#: dehydration).
HEALING = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.HEALS)


def minor_admitted_to_role3(p: Patient) -> bool:
    """A casualty whose every condition heals within days (`HEALING`, none worse than
    moderate) who returns to duty is treated at Role 1 or held at Role 2 (its holding: up to 72
    hours), never admitted to the theatre hospital (Role 3) for days: the evacuation policy
    keeps Role 3's beds for who needs a hospital (AJP-4.10)."""
    return (
        p.outcome == "RTD"
        and bool(p.conditions)
        and all(c.code in HEALING and c.severity in ("mild", "moderate") for c in p.conditions)
        and any(v.facility == "R3" for v in p.visits)
    )


def mild_sent_home(p: Patient) -> bool:
    """A casualty with only mild conditions is not evacuated home (Role 4), unless the condition
    is a psychiatric one (mental health evacuations are)."""
    return (
        p.outcome == "EVACUATED_R4"
        and _only_mild(p)
        and not any(c.code in PSYCHIATRIC for c in p.conditions)
    )


#: Role 2 holds only casualties who can return to duty within 72 hours of arriving (US Army
#: FM 63-20, the forward support medical company: "patient holding for up to 40 patients able
#: to return to duty within 72 hours"); a longer stay is the theatre hospital's (Role 3).
ROLE2_HOLDING = timedelta(hours=72)


def _held_at_the_end(p: Patient, facility: str) -> timedelta:
    """How long a casualty who returns to duty from `facility` was held there: from arriving to
    the return, the time spent waiting there (for a team, a table, a bed: a plan short of them)
    aside; zero for any other casualty."""
    last = p.visits[-1]
    if p.outcome != "RTD" or p.outcome_facility != facility or last.facility != facility:
        return timedelta(0)
    waited = sum(w.minutes for w in getattr(last, "waits", ()) if w.kind != "evacuation")
    return p.outcome_at - last.arrived_at - timedelta(minutes=waited)


def held_at_role2_beyond_72h(p: Patient) -> bool:
    """A casualty who returns to duty from Role 2 does so within 72 hours of arriving there
    (waits aside)."""
    return _held_at_the_end(p, "R2") > ROLE2_HOLDING


#: The longest a casualty whose conditions are at most moderate (AIS 2) is held at Role 3
#: before returning to duty: a pneumonia, a concussion, a simple fracture is admitted for days,
#: not weeks.
MODERATE_HOLDING = timedelta(days=7)


def moderate_held_beyond_a_week(p: Patient) -> bool:
    """A casualty with at most moderate conditions who returns to duty from Role 3 does so
    within a week of arriving there (waits aside)."""
    return not any(c.severity in SEVERE for c in p.conditions) and (
        _held_at_the_end(p, "R3") > MODERATE_HOLDING
    )


#: Pneumonia (the respiratory illness that reaches AIS 3).
PNEUMONIA_CODE = inj.PNEUMONIA[0]


def severe_pneumonia_breathing_normally(p: Patient) -> bool:
    """A severe pneumonia is breathless where it is first seen: a breathing rate above 20 or a
    saturation below 95 %, never both normal (NEWS2 scores a rate from 21 breaths a minute and
    a saturation below 96 %; the criteria of a severe pneumonia, CURB-65's, start at 30)."""
    if not _has_severe(p, PNEUMONIA_CODE):
        return False
    first = _first_vitals(p, THEATRE)
    return first is not None and first.respiratory_rate <= 20 and first.spo2 >= 95


#: Pain of this score or more (0-10 numeric rating scale) is moderate or severe: TCCC treats it
#: from the point of injury (its analgesia options: the combat wound medication pack, oral
#: transmucosal fentanyl, ketamine).
PAIN_RELIEF_FROM = 4


def pain_without_relief(p: Patient) -> bool:
    """A casualty who reports moderate or severe pain (4 of 10 or more) where vitals are taken is
    given pain relief there: by the medic at the point of injury (one who leaves it alive), on
    arrival at each theatre facility (the dose of the place before has worn off; an expectant
    casualty's comfort care is pain relief too), unless the casualty dies there before any
    treatment (waiting for a team, under a medical plan)."""
    for v in p.visits:
        vit = v.vitals
        if vit is None or vit.pain < PAIN_RELIEF_FROM or v.facility == "R4":
            continue
        if v.disposition == "died" and (v.facility == "POI" or _dead_before_treatment(v)):
            continue  # killed in action, or dead waiting for treatment
        if not any(pr.code == care.PAIN_RELIEF[0] for pr in v.procedures):
            return True
    return False


#: Systolic pressure below this is hypotension (ATLS: class III haemorrhage, the trigger of
#: damage-control resuscitation).
HYPOTENSION_SBP = 90
#: What resuscitates at Role 2 and 3: blood (haemorrhage), intravenous fluids (burns, dehydration).
RESUSCITATION = frozenset((care.TRANSFUSION[0], care.IV_FLUIDS[0]))


def hypotension_without_resuscitation(p: Patient) -> bool:
    """A casualty hypotensive on arrival at Role 2 or 3 (systolic below 90 mmHg), and not
    expectant there, is given blood or intravenous fluids there, unless dead there before any
    treatment (waiting for a team, under a medical plan)."""
    return _hypotension_unresuscitated(p, ("R2", "R3"))


def role1_hypotension_without_fluids(p: Patient) -> bool:
    """The same at Role 1, which resuscitates with intravenous fluids (TCCC: a casualty in
    shock is given fluids to a palpable radial pulse, a systolic of about 80-90 mmHg; this
    model's Role 1 has no blood)."""
    return _hypotension_unresuscitated(p, ("R1",))


def _hypotension_unresuscitated(p: Patient, places: tuple[str, ...]) -> bool:
    for v in p.visits:
        vit = v.vitals
        if v.facility not in places or vit is None or vit.systolic_bp >= HYPOTENSION_SBP:
            continue
        if v.triage == "T4" or _dead_before_treatment(v):
            continue
        if not any(pr.code in RESUSCITATION for pr in v.procedures):
            return True
    return False


#: Infections of bacteria: the injuries' INFECTION templates but the VIRAL ones (pneumonia,
#: cellulitis, a urinary tract infection; not an upper respiratory infection nor influenza).
BACTERIAL_INFECTIONS = frozenset(
    t[0] for t in inj.TEMPLATES if t[4] & inj.INFECTION and not t[4] & inj.VIRAL
)


def antibiotics_for_a_viral_infection(p: Patient) -> bool:
    """Antibiotics are given for a bacterial infection or an open combat wound, never for a
    viral infection alone (an upper respiratory infection, influenza: NICE CG69, no antibiotic
    for a respiratory tract infection that is not a pneumonia)."""
    if not _given(p.visits, care.ANTIBIOTICS):
        return False
    codes = {c.code for c in p.conditions}
    return not (codes & BACTERIAL_INFECTIONS or codes & OPEN_COMBAT_WOUNDS)


def oxygen_without_hypoxaemia(p: Patient) -> bool:
    """A sick casualty (disease) is given oxygen only where its saturation or breathing rate is
    outside the normal range on arrival (below 95 %, above 20 a minute): oxygen is given to
    reach a target saturation (the British Thoracic Society's guideline: 94-98 %), not to one
    already in it."""
    if p.category != "disease":
        return False
    return any(
        v.vitals is not None
        and v.vitals.spo2 >= NORMAL["spo2"][0]
        and v.vitals.respiratory_rate <= NORMAL["respiratory_rate"][1]
        and any(pr.code == care.OXYGEN[0] for pr in v.procedures)
        for v in p.visits
    )


def severe_dehydration_with_normal_circulation(p: Patient) -> bool:
    """A severe dehydration (WHO: severe, plan C) is hypovolaemic where it is first seen: never a
    pulse below 90 with a systolic pressure of 110 mmHg or more (the normal circulation
    shock_with_normal_circulation reads)."""
    return _has_severe(p, DEHYDRATION_CODE) and _circulation_normal(_first_vitals(p, THEATRE))


#: Fractures (the injuries' FRACTURE templates: closed, open, crushed, of the spine), and what
#: images them.
FRACTURES = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.FRACTURE)
IMAGING = frozenset((care.X_RAY[0], care.CT_SCAN[0]))


def fracture_not_imaged(p: Patient) -> bool:
    """A fracture is imaged at Role 2, the first facility with imaging (a plain X-ray; Role 1 has
    none), before the casualty leaves it: unless expectant there or dead there."""
    if not any(c.code in FRACTURES for c in p.conditions):
        return False
    for v in p.visits:
        if v.facility == "R2":
            if v.triage == "T4" or v.disposition == "died":
                return False
            return not any(pr.code in IMAGING for pr in v.procedures)
    return False


#: Conditions that heal within days when at most moderate (the injuries' HEALS templates).
HEALS_IN_THEATRE = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.HEALS)


def minor_condition_sent_home(p: Patient) -> bool:
    """A casualty whose conditions all heal within days (a cut, a bruise, a sprain, a cold,
    gastroenteritis, a moderate dehydration...: the injuries' HEALS templates, at most moderate) is
    treated in theatre and returns to duty, never evacuated home: the theatre evacuation policy
    holds every casualty who can return to duty within it (AJP-4.10)."""
    return p.outcome == "EVACUATED_R4" and all(
        c.code in HEALS_IN_THEATRE and c.severity not in SEVERE for c in p.conditions
    )


#: The longest from the triage at Role 2 or 3 to the first operation of a casualty immediate
#: (T1) there, waits for a team or a table aside: damage-control resuscitation and surgery
#: start at once (10-1-2: surgery within 2 hours of wounding).
T1_TO_THE_TABLE = timedelta(hours=1)
SURGICAL = frozenset(care.SURGERY_MINUTES)


def t1_operated_late(p: Patient) -> bool:
    """A casualty immediate (T1) where it is operated on, at Role 2 or 3, is on the table within
    an hour of that facility's triage, waits for a team or a table (a plan short of them)
    aside."""
    for v in p.visits:
        if v.facility not in ("R2", "R3") or v.triage != "T1" or v.vitals is None:
            continue
        first = next((pr.performed_at for pr in v.procedures if pr.code in SURGICAL), None)
        if first is None:
            continue
        waited = sum(
            w.minutes for w in getattr(v, "waits", ()) if w.kind in ("treatment", "surgery")
        )
        if first - v.vitals.taken_at - timedelta(minutes=waited) > T1_TO_THE_TABLE:
            return True
    return False


#: Tension pneumothorax (obstructive shock until the chest is drained).
TENSION_PNEUMOTHORAX_CODE = inj.TENSION_PNEUMOTHORAX[0]


def tension_pneumothorax_with_normal_circulation(p: Patient) -> bool:
    """A tension pneumothorax is obstructive shock until the chest is drained: where it is first
    seen, never a pulse below 90 with a systolic pressure of 110 mmHg or more (the normal
    circulation shock_with_normal_circulation reads; ATLS: tachycardia and hypotension)."""
    return _has(p, TENSION_PNEUMOTHORAX_CODE) and _circulation_normal(_first_vitals(p))


#: How soon after the triage at the point of injury the medic decompresses a tension pneumothorax.
DECOMPRESSION_WITHIN = timedelta(minutes=2)


def _poi(p: Patient) -> Visit | None:
    """The point of injury's visit (none in a record that starts elsewhere)."""
    return p.visits[0] if p.visits and p.visits[0].facility == "POI" else None


def _triaged_at_poi(p: Patient) -> Visit | None:
    """The point of injury's visit when the medic triaged the casualty there, not expectant."""
    poi = _poi(p)
    if poi is None or poi.triage in (None, "T4") or poi.vitals is None:
        return None
    return poi


def _done_after_triage(poi: Visit, procedure: tuple[str, str], within: timedelta) -> bool:
    """Whether `procedure` was done at the point of injury within `within` of the triage."""
    triaged = poi.vitals.taken_at  # type: ignore[union-attr]
    return any(
        pr.code == procedure[0] and timedelta(0) <= pr.performed_at - triaged <= within
        for pr in poi.procedures
    )


def _dressed_at_poi(p: Patient) -> bool:
    """Whether a dressing of wound was applied at the point of injury."""
    poi = _poi(p)
    return poi is not None and any(pr.code == care.WOUND_DRESSING[0] for pr in poi.procedures)


def tension_pneumothorax_not_decompressed(p: Patient) -> bool:
    """A tension pneumothorax found by the medic at the point of injury is decompressed there,
    within two minutes of the triage, with a needle (TCCC, tactical field care: the medic treats
    a suspected tension pneumothorax by needle decompression, before the casualty moves; the
    chest drain follows at the first facility), unless the casualty is expectant or dies before
    the medic could have done it."""
    poi = _triaged_at_poi(p) if _has(p, TENSION_PNEUMOTHORAX_CODE) else None
    if poi is None or (
        poi.disposition == "died" and p.outcome_at - poi.vitals.taken_at <= DECOMPRESSION_WITHIN  # type: ignore[union-attr]
    ):
        return False
    return not _done_after_triage(poi, care.NEEDLE_DECOMPRESSION, DECOMPRESSION_WITHIN)


def role3_operated_before_ct(p: Patient) -> bool:
    """Role 3 scans on arrival, after the resuscitation, and operates on what the scan shows: a
    craniotomy is decided on the CT (Brain Trauma Foundation: the surgical management of a
    brain injury follows its CT findings), a second look at a wound after it. No operation
    there before the CT of a casualty scanned there."""
    return _done_before(p, "R3", SURGICAL, care.CT_SCAN)


def _done_before(p: Patient, facility: str, done: frozenset[str], first: tuple[str, str]) -> bool:
    """Whether, at `facility`, a procedure of `done` came before `first`, which was done there
    (nothing is said of a visit without `first`)."""
    for v in p.visits:
        if v.facility != facility:
            continue
        at = next((pr.performed_at for pr in v.procedures if pr.code == first[0]), None)
        if at is not None and any(pr.code in done and pr.performed_at < at for pr in v.procedures):
            return True
    return False


#: A concussion and a traumatic brain injury (SNOMED CT).
BRAIN_INJURIES = frozenset((inj.CONCUSSION[0], inj.TBI[0]))
#: The least time from a concussion to the return to duty (DoD Instruction 6490.11, the
#: management of concussion in the deployed setting: a mandatory 24-hour recovery period).
CONCUSSION_REST = timedelta(hours=24)


def _brain_injured(p: Patient) -> bool:
    """A concussion or brain injury among the conditions, or a GCS below 15 in any vitals."""
    return any(c.code in BRAIN_INJURIES for c in p.conditions) or any(
        v.vitals is not None and v.vitals.gcs < 15 for v in p.visits
    )


def concussion_returned_within_24h(p: Patient) -> bool:
    """A casualty with a brain injury (a concussion or worse, or a GCS below 15 where vitals
    were taken) rests 24 hours before returning to duty (DoD Instruction 6490.11)."""
    return (
        p.outcome == "RTD" and p.outcome_at - p.injured_at < CONCUSSION_REST and _brain_injured(p)
    )


#: A GCS of this or less is a moderate (9-12) or severe (3-8) brain injury.
MODERATE_TBI_GCS = 12


def moderate_brain_injury_returned_to_duty(p: Patient) -> bool:
    """A moderate or severe brain injury (a GCS of 12 or less where vitals were taken) is
    evacuated home: its recovery takes weeks to months, beyond the theatre's evacuation policy
    (a concussion, GCS 13-15, returns to duty after its rest)."""
    return p.outcome == "RTD" and any(
        v.vitals is not None and v.vitals.gcs <= MODERATE_TBI_GCS for v in p.visits
    )


#: A depressive disorder (SNOMED CT).
DEPRESSION_CODE = inj.DEPRESSION[0]


def severe_depression_returned_to_duty(p: Patient) -> bool:
    """A severe depressive disorder is evacuated home, never returned to duty in theatre: its
    treatment takes weeks before it works and months to be stable, and the deployment health
    standards (DoD Instruction 6490.07) keep a service member under treatment for a
    psychiatric disorder from deployment until it is stable; mood and anxiety disorders were
    the commonest diagnoses of the psychiatric aeromedical evacuations out of Iraq and
    Afghanistan (a tenth of all evacuations), of whom fewer than 5 % returned to theatre. An
    acute stress reaction, by contrast, is treated forward and returns to duty (BICEPS)."""
    return p.outcome == "RTD" and _has_severe(p, DEPRESSION_CODE)


#: The arms (a closed fracture there is never the cause of a death alone).
UPPER_LIMBS = frozenset(("left_upper_limb", "right_upper_limb"))
#: A closed fracture of a bone (SNOMED CT).
CLOSED_FRACTURE_CODE = inj.CLOSED_FRACTURE[0]


def cannot_kill_alone(code: str, region: str | None) -> bool:
    """Whether an injury cannot cause a death by itself, whatever its severity: a closed
    fracture of an arm (a humerus at worst: no major vessel torn, no organ; disabling, not
    lethal). A death needs an injury that can (of the head, neck, trunk or spine, a critical
    burn, a bleeding wound, a crush or a leg's fracture)."""
    return code == CLOSED_FRACTURE_CODE and region in UPPER_LIMBS


#: Pressure on the eye: a pressure dressing, hemorrhage control.
PRESSURE = frozenset((care.PRESSURE_DRESSING[0], care.HEMORRHAGE_CONTROL[0]))


def eye_injury_not_shielded_and_shipped(p: Patient) -> bool:
    """An injury of the eye alone is shielded and shipped (TCCC and the Joint Trauma System's
    eye trauma guideline: a rigid eye shield, never a pressure patch; the UK's clinical
    guidelines for operations: do not put pressure on the eye, do not pad it; to an eye
    surgeon within 12-24 hours): no pressure dressing nor hemorrhage control, and no operation
    before Role 3 (Role 2 has no eye surgeon)."""
    regions = {c.region for c in p.conditions if c.region is not None}
    if regions != {"eye"}:
        return False
    for v in p.visits:
        for pr in v.procedures:
            if pr.code in PRESSURE or (pr.code in SURGICAL and v.facility != "R3"):
                return True
    return False


def severe_eye_injury_returned_to_duty(p: Patient) -> bool:
    """A severe injury of the eye (an open globe, a penetrating fragment) threatens the sight:
    evacuated to an eye surgeon and home (Role 4), never returned to duty in theatre."""
    return p.outcome == "RTD" and any(
        c.region == "eye" and c.severity in SEVERE for c in p.conditions
    )


#: A penetrating injury of the eye: a fragment, a gunshot wound (an open globe when severe).
PENETRATING_EYE = frozenset(t[0] for t in (inj.FRAGMENT_EYE, inj.GSW_EYE))


def open_globe_not_repaired(p: Patient) -> bool:
    """A severe penetrating injury of the eye (an open globe) taken to Role 3 is scanned and
    repaired there by its eye surgeon (the Joint Trauma System's eye trauma guideline: a CT of
    the orbits for a foreign body, and the primary repair of the globe within 24 hours), unless
    the casualty is expectant there or dies there."""
    if not any(
        c.region == "eye" and c.code in PENETRATING_EYE and c.severity in SEVERE
        for c in p.conditions
    ):
        return False
    r3 = _cared_for_at(p, "R3")
    return not (_done_at(r3, care.EYE_SURGERY) and _done_at(r3, care.CT_SCAN))


#: A fracture of the vertebral column with a spinal cord injury (SNOMED CT).
SPINAL_CORD_CODE = inj.SPINAL_CORD[0]


def spinal_cord_injury_returned_to_duty(p: Patient) -> bool:
    """A spinal cord injury is evacuated home, never returned to duty in theatre: even an
    incomplete one leaves a deficit that takes months of rehabilitation, and the spine is
    stabilised by a spinal surgeon (the Joint Trauma System's spine injury guideline: evacuated
    out of theatre for definitive care)."""
    return p.outcome == "RTD" and _has(p, SPINAL_CORD_CODE)


#: How soon after the triage at the point of injury the medic restricts the motion of an
#: injured spine.
IMMOBILISATION_WITHIN = timedelta(minutes=5)


def spinal_injury_not_immobilised(p: Patient) -> bool:
    """A spinal cord injury of blunt trauma (a fall, a vehicle crash: the only ones this model
    makes) is immobilised at the point of injury, with a cervical collar, before the casualty is
    moved (TCCC, tactical field care: spinal motion restriction for blunt trauma with a
    suspected spine injury; ATLS: protect the whole spine, the cervical spine first, until an
    injury is excluded), within five minutes of the medic's triage, unless expectant."""
    poi = _triaged_at_poi(p) if _has(p, SPINAL_CORD_CODE) else None
    return poi is not None and not _done_after_triage(
        poi, care.SPINAL_IMMOBILISATION, IMMOBILISATION_WITHIN
    )


def pneumonia_not_imaged(p: Patient) -> bool:
    """A pneumonia is confirmed by a chest radiograph (the IDSA/ATS guideline on
    community-acquired pneumonia: a demonstrable infiltrate by chest radiograph): one taken
    to Role 2, the first facility with imaging (Role 1 has none), is X-rayed there, unless
    expectant there or dying there."""
    return _has(p, PNEUMONIA_CODE) and not _done_at(_cared_for_at(p, "R2"), care.X_RAY)


#: The mental disorders of the model (an acute stress disorder, an anxiety, a depression).
MENTAL_DISORDERS = frozenset(t[0] for t in inj.TEMPLATES if t[4] & inj.PSYCH)


def mental_disorder_not_assessed(p: Patient) -> bool:
    """A mental disorder (an acute stress disorder, an anxiety disorder, a depressive disorder)
    is assessed where it is first seen (the first facility: the sick call at Role 1), with a
    psychiatric interview and evaluation: the medical officer's, before any decision to keep
    the soldier forward, to hold or to evacuate (combat and operational stress control: the
    reaction is assessed, then rest, reassurance and the expectation of a return)."""
    if not any(c.code in MENTAL_DISORDERS for c in p.conditions):
        return False
    first = next((v for v in p.visits if v.facility in THEATRE), None)
    return first is not None and not any(
        pr.code == care.PSYCHIATRIC_EVALUATION[0] for pr in first.procedures
    )


def disease_immediate_with_stable_signs(p: Patient) -> bool:
    """A disease casualty is immediate (T1) at its first triage only with the signs of a threat
    to life there, as the triage sieve reads them: a breathing rate of 30 or more, a pulse above
    120, a systolic pressure below 90 mmHg, a saturation below 90 % or a GCS below 13. Its score
    alone (a severe pneumonia's) does not make it immediate."""
    if p.category != "disease" or p.triage != "T1":
        return False
    first = _first_vitals(p, THEATRE)
    return first is not None and not _threatened(first)


def died_waiting_without_deterioration(p: Patient) -> bool:
    """A casualty who dies while waiting (a plan's record: `died_waiting`) was seen failing
    before it died: the last vital signs of its record show a threat to life as the triage
    sieve reads them (`_threatened`). Before generator 1.35.0 the last signs were those taken on
    arrival, and in 177 of the starved drill's 264 deaths while waiting they were stable (a
    systolic of 100 or more, a pulse under 100, a GCS of 15): a delayed casualty triaged with
    113/69 and a pulse of 96 died 35 minutes later with nothing in the record between."""
    if not getattr(p, "died_waiting", False):
        return False
    last = None
    for v in p.visits:
        for signs in taken(v):
            last = signs
    return last is None or not _threatened(last)


def _threatened(v: Vitals) -> bool:
    """The signs of a threat to life of the triage sieve: a breathing rate of 30 or more, a
    pulse above 120, a systolic pressure below 90 mmHg, a saturation below 90 % or a GCS below
    13."""
    return (
        v.respiratory_rate >= 30
        or v.heart_rate > 120
        or v.systolic_bp < 90
        or v.spo2 < 90
        or v.gcs < 13
    )


def _broken_thigh(p: Patient) -> bool:
    """Whether the casualty has a severe closed fracture of a leg (a femur's: a litre or more
    lost into the thigh, unseen; build._Hurt.unseen_bleed)."""
    return any(
        c.code == CLOSED_FRACTURE_CODE and c.region in inj.LOWER_LIMBS and c.severity in SEVERE
        for c in p.conditions
    )


def leg_fracture_without_blood_loss(p: Patient) -> bool:
    """A casualty with a severe closed fracture of a leg (a femur's: 1 to 1.5 litres lost into
    the thigh, unseen; ATLS: a class II haemorrhage, a pulse above 100) shows the blood lost
    where first seen: not a systolic of SHOCK_SBP or more with a pulse below SHOCK_HR (the
    circulation of no shock, as `shock_with_normal_circulation` reads it). Before generator
    1.42.0 its first vitals were a resting soldier's (a pulse of 67-77 and a systolic of 118-131
    at p10-p90, 210 of 20,000 casualties of high-intensity defence with such a fracture
    alone)."""
    if not _broken_thigh(p):
        return False
    return p.outcome != "KIA" and _circulation_normal(_first_vitals(p))


def hypotensive_leg_fracture_without_blood(p: Patient) -> bool:
    """A casualty with a severe closed fracture of a leg (a femur's: a litre or more lost into
    the thigh, unseen) hypotensive on arrival at Role 2 or 3 (a systolic below 90 mmHg) is given
    blood there or before, not fluids alone (ATLS: a haemorrhagic shock is treated with blood),
    unless expectant there or dead there before any treatment. Before generator 1.38.0 a closed
    fracture carried no bleeding, and such a casualty dying at Role 2 was given fluids."""
    if not _broken_thigh(p):
        return False
    given = False
    for v in p.visits:
        given = given or _given((v,), care.TRANSFUSION)
        signs = v.vitals
        if (
            v.facility in ("R2", "R3")
            and signs is not None
            and signs.systolic_bp < 90
            and v.triage != "T4"
            and not _dead_before_treatment(v)
            and not given
        ):
            return True
    return False


#: (code, region) of the conditions whose casualty is never minimal (injuries.never_minimal).
NEVER_MINIMAL = frozenset(
    (t[0], region) for t in inj.TEMPLATES for region in inj.LIMBS if inj.never_minimal(t, region)
)


def fracture_triaged_minimal(p: Patient) -> bool:
    """A casualty with a fracture of a leg, or an open fracture of any limb, is never triaged
    minimal (T3): the triage sieve's minimal are the walking wounded, and a broken leg does not
    walk; an open fracture needs its operation, the debridement within 24 hours (the Joint
    Trauma System's guideline on open fractures), which is what the delayed (T2) category is
    for. Before generator 1.37.0 the injury score alone made 461 of 20,000 casualties of
    high-intensity defence minimal with a moderate open or closed fracture of a leg."""
    return any((c.code, c.region) in NEVER_MINIMAL for c in p.conditions) and any(
        v.triage == "T3" for v in p.visits
    )


#: A debrided wound is looked at again, and debrided again where it needs it, 24 to 48 hours
#: later, not sooner (the Joint Trauma System's guideline on the initial management of war
#: wounds: serial debridement every 24 to 48 hours until the wound is clean).
SECOND_LOOK = timedelta(hours=24)


def redebrided_within_a_day(p: Patient) -> bool:
    """A wound debrided in theatre is not debrided again within 24 hours (`SECOND_LOOK`),
    unless the casualty is immediate (T1) where it is: an unstable casualty is explored at once.
    Before generator 1.40.0 Role 3 debrided on arrival the wounds Role 2 had debrided 6 to 15
    hours before (4,231 of 20,000 casualties of high-intensity defence)."""
    before: datetime | None = None
    for v in p.visits:
        if v.facility == "R4":
            break
        for x in v.procedures:
            if x.code == care.DEBRIDEMENT[0]:
                soon = before is not None and x.performed_at - before < SECOND_LOOK
                if soon and v.triage != "T1":
                    return True
                before = x.performed_at
    return False


def expectant_carried_on(p: Patient) -> bool:
    """A casualty expectant (T4) at a facility of the theatre is not carried on to the next one:
    the expectant, whose injuries are so severe that treatment would consume resources needed
    elsewhere, are given comfort care where they are (pain relief) and die there, and the lifts
    go to the casualties who can be saved. Before generator 1.41.0, 9 of the 10 expectant
    casualties of 20,000 of high-intensity defence who reached care were carried on to Role 2
    and 3 with nothing done but pain relief, one with a critical head wound and a GCS of 3 for
    two and a half days, and died there."""
    return any(
        v.triage == "T4" and v.facility in THEATRE and v.departed_at is not None for v in p.visits
    )


def minimal_operated(p: Patient) -> bool:
    """A casualty is not operated on (a procedure that takes an operating table:
    care.SURGERY_SECONDS) where it is triaged minimal (T3). NATO's minimal have a minor injury,
    "managed by minimally trained staff" (domain.md); one whose wound needs an operation that can
    wait is what the delayed (T2) category is for, and the triage sort of the facility that
    operates says so (`retriage`). Before generator 1.39.0 a walking wounded with a moderate
    fragment, gunshot or open wound stayed minimal at Role 2 through its debridement under
    anaesthesia: 1,339 of 20,000 casualties of high-intensity defence."""
    return any(
        v.triage == "T3" and any(x.code in care.SURGERY_SECONDS for x in v.procedures)
        for v in p.visits
    )


def penetrating_chest_not_imaged(p: Patient) -> bool:
    """A penetrating wound of the thorax (an open wound, a fragment, a gunshot or bullet wound)
    taken to Role 2 is X-rayed there, the first facility with imaging (ATLS: a chest radiograph
    in the primary survey of chest trauma, for the pneumothorax or haemothorax it may hide),
    unless the casualty is expectant there or dies there."""
    wounded = any(c.region == "thorax" and c.code in OPEN_COMBAT_WOUNDS for c in p.conditions)
    return wounded and not _done_at(_cared_for_at(p, "R2"), care.X_RAY)


#: The injuries inside the chest that a chest radiograph shows (SNOMED CT): a haemothorax, a
#: tension pneumothorax.
INSIDE_THE_CHEST = frozenset((inj.HEMOTHORAX[0], TENSION_PNEUMOTHORAX_CODE))


def haemothorax_or_pneumothorax_not_imaged(p: Patient) -> bool:
    """A haemothorax or a tension pneumothorax taken to Role 2 is X-rayed there, as a
    penetrating wound of the chest is (`penetrating_chest_not_imaged`; ATLS: the chest
    radiograph of the primary survey shows the blood and the air, and where the drain lies),
    unless the casualty is expectant there or dies there. Before generator 1.44.0 only a
    penetrating wound was filmed: 79 of the 93 casualties of 20,000 of high-intensity defence
    with a haemothorax or a tension pneumothorax who reached Role 2 were drained and sent on
    without a film."""
    inside = any(c.region == "thorax" and c.code in INSIDE_THE_CHEST for c in p.conditions)
    return inside and not _done_at(_cared_for_at(p, "R2"), care.X_RAY)


#: MEDEVAC precedence by the triage of the place left: the longest wait for a ground ambulance
#: (Urgent 2 h, Priority 4 h, Routine 24 h) before a vehicle of the unit's own takes the
#: casualty (CASEVAC; generator/chain.py's `WINDOW` is this table, by rank).
PRECEDENCE_WINDOW = {
    "T1": timedelta(hours=2), "T2": timedelta(hours=4), "T3": timedelta(hours=24),
    "T4": timedelta(hours=24),
}  # fmt: skip


def ground_lift_beyond_precedence_window(p: Patient) -> bool:
    """Under a medical plan, a casualty waits for a ground ambulance no longer than its
    request's precedence window (by the triage of the place it leaves; NATO and US MEDEVAC
    precedence: Urgent within 2 hours, Priority within 4, Routine within 24): past it, the unit
    takes it in a vehicle of its own (CASEVAC), and the wait ends there, recorded as ended by
    a vehicle of opportunity."""
    return _lift_beyond_window(p, "ground ambulance")


def air_lift_beyond_precedence_window(p: Patient) -> bool:
    """Under a medical plan, a casualty waits for a helicopter no longer than its request's
    precedence window either (as `ground_lift_beyond_precedence_window`): past it, nobody
    leaves an immediate casualty at the point of injury or at Role 2 for hours more waiting for
    the next flight; the unit sends it by road, and the wait ends there, recorded as ended by
    a vehicle of opportunity."""
    return _lift_beyond_window(p, "helicopter")


def _lift_beyond_window(p: Patient, waited_for: str) -> bool:
    for v in p.visits:
        window = PRECEDENCE_WINDOW[v.triage or "T3"]
        for w in getattr(v, "waits", ()):
            if (
                w.kind == "evacuation"
                and w.waited_for == waited_for
                and timedelta(minutes=w.minutes) > window
            ):
                return True
    return False


#: Neurogenic shock where first seen: a systolic pressure below this, a pulse below the next.
NEUROGENIC_MAX_SBP, NEUROGENIC_MAX_HR = 90, 100


def complete_cord_injury_without_neurogenic_shock(p: Patient) -> bool:
    """A complete spinal cord injury (critical: AIS 5) shows the neurogenic shock where it is
    first seen, not killed in action: hypotension (a systolic pressure below 90 mmHg) without
    tachycardia (a pulse below 100), the sympathetic tone below the injury being lost (ATLS).
    Before generator 1.22.0 the cord injury changed no vital sign, and an immediate casualty
    whose signs happened to be normal was given the tachycardia of pain and injury."""
    if p.outcome == "KIA" or not any(
        c.code == SPINAL_CORD_CODE and c.severity == "critical" for c in p.conditions
    ):
        return False
    first = _first_vitals(p)
    return first is not None and not (
        first.systolic_bp < NEUROGENIC_MAX_SBP and first.heart_rate < NEUROGENIC_MAX_HR
    )


def role2_debrided_before_xray(p: Patient) -> bool:
    """Role 2 X-rays a fracture before it debrides the wound (ATLS: imaging in the
    resuscitation, before an operation that is not life-saving; the Joint Trauma System's
    open fracture guideline: the fracture is imaged, then debrided and stabilised): a
    laparotomy or an amputation for a bleeding casualty may come first, a debridement not."""
    return _done_before(p, "R2", DEBRIDED, care.X_RAY)


#: A debridement (the operation `role2_debrided_before_xray` asks to come after the X-ray).
DEBRIDED = frozenset((care.DEBRIDEMENT[0],))


#: Circulation: blood, intravenous fluids.
CIRCULATION = frozenset((care.TRANSFUSION[0], care.IV_FLUIDS[0]))
#: What follows the circulation in MARCH-PAWS: antibiotics, the splint.
AFTER_CIRCULATION = frozenset((care.ANTIBIOTICS[0], care.SPLINT[0]))


def circulation_after_splint_or_antibiotics(p: Patient) -> bool:
    """At a facility, the circulation is restored before the antibiotics and the splints (TCCC's
    MARCH-PAWS: massive haemorrhage, airway, respiration, circulation, then the pain,
    antibiotics, wounds and splints; damage-control resuscitation gives blood on arrival): no
    transfusion nor intravenous fluids after a splint or antibiotics given at the same
    facility."""
    for v in p.visits:
        if v.facility == "POI":
            continue
        given = [pr.performed_at for pr in v.procedures if pr.code in AFTER_CIRCULATION]
        if given and any(
            pr.code in CIRCULATION and pr.performed_at > min(given) for pr in v.procedures
        ):
            return True
    return False


#: An open wound, something to press on: a wound, a fragment, a gunshot or bullet wound, a
#: laceration, an open fracture, an amputation (outside the eye: see the eye's rules).
OPEN_WOUNDS = frozenset(
    t[0]
    for t in inj.TEMPLATES
    if t[4] & (inj.WOUND | inj.MINOR_CUT | inj.PENETRATING | inj.AMPUTATION) and not t[4] & inj.BURN
)


def pressure_dressing_without_an_open_wound(p: Patient) -> bool:
    """A pressure dressing stops the bleeding of an open wound by pressing on it (TCCC): none
    for a casualty without one, such as a burn (covered with a dry dressing instead), a
    contusion, a crush or a haemothorax (a bleeding inside the trunk no dressing can reach)."""
    if not any(pr.code == care.PRESSURE_DRESSING[0] for v in p.visits for pr in v.procedures):
        return False
    return not _has_an_open_wound(p)


def _has_an_open_wound(p: Patient) -> bool:
    """Whether the patient has an open wound (OPEN_WOUNDS) outside the eye."""
    return any(c.code in OPEN_WOUNDS and c.region != "eye" for c in p.conditions)


def burn_not_dressed(p: Patient) -> bool:
    """A second or third degree burn is covered at the point of injury with a dry, sterile
    dressing (TCCC, tactical field care: burns), unless killed in action (buddy aid may not have
    come in time)."""
    if p.outcome == "KIA" or p.category == "disease":
        return False
    return any(c.code in DEEP_BURNS and c.region != "eye" for c in p.conditions) and not (
        _dressed_at_poi(p)
    )


def role1_hemorrhage_control_inside_the_trunk(p: Patient) -> bool:
    """Role 1 controls a bleeding it can reach: a limb's (a tourniquet converted, a wound
    packed), an open wound's, a pelvis's (a pelvic binder). A bleeding inside the chest or the
    abdomen is non-compressible: no hemorrhage control there before a surgeon (Role 2: the
    laparotomy, the chest drain), only resuscitation and a fast evacuation (TCCC; the Joint
    Trauma System's damage control resuscitation guideline)."""
    if not any(
        v.facility == "R1" and any(pr.code == care.HEMORRHAGE_CONTROL[0] for pr in v.procedures)
        for v in p.visits
    ):
        return False
    return not _bleeding_to_reach(p)


def _bleeding_to_reach(p: Patient) -> bool:
    """Whether the casualty has a bleeding a hemorrhage control reaches: an open wound outside
    the eye (a limb's, packed or under its tourniquet) or an injury of the pelvis (a binder)."""
    return _has_an_open_wound(p) or any(c.region == "pelvis" for c in p.conditions)


def hemorrhage_control_without_a_bleeding_to_reach(p: Patient) -> bool:
    """Role 2 controls a bleeding it can reach, as Role 1 does (a limb's, an open wound's, a
    pelvis's), or one inside the abdomen by its laparotomy: not a bleeding inside the chest (a
    haemothorax is drained, and opened only when the drain keeps bleeding) nor the bruise of an
    abdominal wall that no one operates on. Before generator 1.43.0 Role 2 recorded a hemorrhage
    control for every bleeding injury, 54 of 20,000 casualties of high-intensity defence with
    no open wound, pelvic injury or laparotomy (a severe haemothorax, a moderate contusion of
    the abdomen). A casualty who died there waiting for the table never had its laparotomy."""
    waited_to_death = getattr(p, "died_waiting", False)
    for v in p.visits:
        if v.facility == "R2" and not (waited_to_death and v.disposition == "died"):
            codes = {pr.code for pr in v.procedures}
            if care.HEMORRHAGE_CONTROL[0] in codes and care.LAPAROTOMY[0] not in codes:
                return not _bleeding_to_reach(p)
    return False


#: A burn of the skin: first, second or third degree (SNOMED CT).
BURNS = frozenset((inj.BURN_1[0], inj.BURN_2[0], inj.BURN_3[0]))
#: A burn kills by itself only from this AIS on: critical, 30 % of the body surface or more.
BURN_LETHAL_AIS = 5


def burn_cannot_kill(code: str, severity: str) -> bool:
    """Whether an injury is a burn that cannot cause a death in theatre by itself: any but a
    critical one (AIS 5-6, BURN_LETHAL_AIS). A young adult survives a burn of 10-29 % of the
    body (the Baux score, age plus the percentage burned, of 50 or less: a few percent at
    most), and those who do not die weeks later, of sepsis and organ failure, long after the
    theatre; a burn kills at the point of injury or within days only when critical (with the
    inhalation injury of a vehicle fire)."""
    return code in BURNS and severity != "critical"


def open_chest_wound_not_sealed(p: Patient) -> bool:
    """An open wound of the chest (penetrating) is sealed at the point of injury, not pressed
    (TCCC, tactical field care: treat every open or sucking chest wound by applying a vented or
    non-vented chest seal at once), unless killed in action: the record has no code of its own
    for the seal and shows it as a dressing of wound (SNOMED CT 182531007), an occlusive one."""
    if p.outcome == "KIA":
        return False
    return any(
        c.region == "thorax" and c.code in OPEN_COMBAT_WOUNDS for c in p.conditions
    ) and not _dressed_at_poi(p)


#: A saturation below this is hypoxaemia that needs oxygen at once (the British Thoracic
#: Society's guideline: a target of 94-98 %; TCCC: oxygen for a saturation below 90 %).
HYPOXAEMIA_SPO2 = 92
#: What gives a casualty oxygen: oxygen therapy, an endotracheal tube (ventilated with it).
OXYGENATING = frozenset((care.OXYGEN[0], care.INTUBATION[0]))


def hypoxaemia_without_oxygen(p: Patient) -> bool:
    """A casualty found hypoxaemic at a facility of the theatre (a saturation below 92 %) is
    given oxygen there, unless it has had it already on the way (oxygen, once started, goes on
    through the evacuation; an intubated casualty is ventilated with it), is expectant there or
    died there before any treatment (waiting for a team, under a plan short of them)."""
    given = False
    for v in p.visits:
        if v.facility not in THEATRE or v.vitals is None:
            continue
        given = given or any(pr.code in OXYGENATING for pr in v.procedures)
        if (
            v.vitals.spo2 < HYPOXAEMIA_SPO2
            and not given
            and v.triage != "T4"
            and not _dead_before_treatment(v)
        ):
            return True
    return False


def minimal_queued_for_a_team_or_ambulance(p: Patient) -> bool:
    """A minimal (T3) casualty is walking wounded, treated on an ambulatory basis by minimally
    trained staff (flow.MINIMAL has the sources): it leaves a place where it was triaged
    minimal on foot or by a vehicle of opportunity, never waiting for an ambulance or a
    helicopter, and is seen, ambulatory, by the medics of the minimal area, never waiting for a
    treatment team or a holding bed. A plan's record lists what each visit waited
    for, 0 minutes included."""
    for v in p.visits:
        if v.triage == "T3":
            for w in getattr(v, "waits", ()):
                if w.kind == "evacuation" or w.kind == "treatment":
                    return True
    return False


Rule = Callable[[Patient], bool]

#: Every rule, by name: predicate(patient) is True when the record breaks the rule.
RULES: dict[str, Rule] = {
    "nothing_after_outcome": nothing_after_outcome,
    "poi_vitals_after_departure": poi_vitals_after_departure,
    "triage_missing": triage_missing,
    "triage_not_received": triage_not_received,
    "t1_all_normal_vitals": t1_all_normal_vitals,
    "t3_unstable_vitals": t3_unstable_vitals,
    "shock_with_normal_circulation": shock_with_normal_circulation,
    "kia_cannot_kill": kia_cannot_kill,
    "kia_triaged_t3": kia_triaged_t3,
    "dow_cannot_kill": dow_cannot_kill,
    "duplicate_condition": duplicate_condition,
    "amputation_returned_to_duty": amputation_returned_to_duty,
    "dnbi_death_without_cause": dnbi_death_without_cause,
    "dnbi_death_coded_shock": dnbi_death_coded_shock,
    "dnbi_death_as_wounds": dnbi_death_as_wounds,
    "disease_late_to_role1": disease_late_to_role1,
    "t4_moved_at_t1_speed": t4_moved_at_t1_speed,
    "ptsd_at_point_of_injury": ptsd_at_point_of_injury,
    "nation_without_armed_forces": nation_without_armed_forces,
    "r4_leg_implausible": r4_leg_implausible,
    "major_surgery_returned_to_duty": major_surgery_returned_to_duty,
    "open_fracture_returned_to_duty": open_fracture_returned_to_duty,
    "limb_fracture_returned_from_role1": limb_fracture_returned_from_role1,
    "t4_given_intensive_care": t4_given_intensive_care,
    "open_wound_without_antibiotics": open_wound_without_antibiotics,
    "mild_admitted_to_role3": mild_admitted_to_role3,
    "mild_sent_home": mild_sent_home,
    "held_at_role2_beyond_72h": held_at_role2_beyond_72h,
    "penetrating_chest_without_drain": penetrating_chest_without_drain,
    "critical_returned_to_duty": critical_returned_to_duty,
    "major_burn_returned_to_duty": major_burn_returned_to_duty,
    "fluid_loss_without_fluids": fluid_loss_without_fluids,
    "severe_fracture_returned_to_duty": severe_fracture_returned_to_duty,
    "moderate_held_beyond_a_week": moderate_held_beyond_a_week,
    "severe_pneumonia_breathing_normally": severe_pneumonia_breathing_normally,
    "pain_without_relief": pain_without_relief,
    "hypotension_without_resuscitation": hypotension_without_resuscitation,
    "antibiotics_for_a_viral_infection": antibiotics_for_a_viral_infection,
    "oxygen_without_hypoxaemia": oxygen_without_hypoxaemia,
    "severe_dehydration_with_normal_circulation": severe_dehydration_with_normal_circulation,
    "fracture_not_imaged": fracture_not_imaged,
    "minor_condition_sent_home": minor_condition_sent_home,
    "t1_operated_late": t1_operated_late,
    "tension_pneumothorax_with_normal_circulation": tension_pneumothorax_with_normal_circulation,
    "tension_pneumothorax_not_decompressed": tension_pneumothorax_not_decompressed,
    "role3_operated_before_ct": role3_operated_before_ct,
    "concussion_returned_within_24h": concussion_returned_within_24h,
    "moderate_brain_injury_returned_to_duty": moderate_brain_injury_returned_to_duty,
    "role1_hypotension_without_fluids": role1_hypotension_without_fluids,
    "severe_depression_returned_to_duty": severe_depression_returned_to_duty,
    "eye_injury_not_shielded_and_shipped": eye_injury_not_shielded_and_shipped,
    "severe_eye_injury_returned_to_duty": severe_eye_injury_returned_to_duty,
    "spinal_cord_injury_returned_to_duty": spinal_cord_injury_returned_to_duty,
    "spinal_injury_not_immobilised": spinal_injury_not_immobilised,
    "role2_debrided_before_xray": role2_debrided_before_xray,
    "circulation_after_splint_or_antibiotics": circulation_after_splint_or_antibiotics,
    "pressure_dressing_without_an_open_wound": pressure_dressing_without_an_open_wound,
    "burn_not_dressed": burn_not_dressed,
    "role1_hemorrhage_control_inside_the_trunk": role1_hemorrhage_control_inside_the_trunk,
    "minor_admitted_to_role3": minor_admitted_to_role3,
    "open_chest_wound_not_sealed": open_chest_wound_not_sealed,
    "hypoxaemia_without_oxygen": hypoxaemia_without_oxygen,
    "minimal_queued_for_a_team_or_ambulance": minimal_queued_for_a_team_or_ambulance,
    "complete_cord_injury_without_neurogenic_shock": complete_cord_injury_without_neurogenic_shock,
    "pneumonia_not_imaged": pneumonia_not_imaged,
    "mental_disorder_not_assessed": mental_disorder_not_assessed,
    "disease_immediate_with_stable_signs": disease_immediate_with_stable_signs,
    "severe_crush_without_fluids": severe_crush_without_fluids,
    "severe_limb_fracture_not_reduced": severe_limb_fracture_not_reduced,
    "open_globe_not_repaired": open_globe_not_repaired,
    "penetrating_chest_not_imaged": penetrating_chest_not_imaged,
    "ground_lift_beyond_precedence_window": ground_lift_beyond_precedence_window,
    "air_lift_beyond_precedence_window": air_lift_beyond_precedence_window,
    "mild_evacuated_for_nothing": mild_evacuated_for_nothing,
    "died_waiting_without_deterioration": died_waiting_without_deterioration,
    "fracture_triaged_minimal": fracture_triaged_minimal,
    "minimal_operated": minimal_operated,
    "expectant_carried_on": expectant_carried_on,
    "leg_fracture_without_blood_loss": leg_fracture_without_blood_loss,
    "redebrided_within_a_day": redebrided_within_a_day,
    "hemorrhage_control_without_a_bleeding_to_reach": (
        hemorrhage_control_without_a_bleeding_to_reach
    ),
    "haemothorax_or_pneumothorax_not_imaged": haemothorax_or_pneumothorax_not_imaged,
    "hypotensive_leg_fracture_without_blood": hypotensive_leg_fracture_without_blood,
}


def violations(p: Patient) -> list[str]:
    """Names of the rules this record breaks (empty when coherent)."""
    return [name for name, broken in RULES.items() if broken(p)]


def count_violations(patients: Iterable[Patient]) -> dict[str, int]:
    """Number of records breaking each rule (every rule present, zero when none)."""
    counts = dict.fromkeys(RULES, 0)
    items = list(RULES.items())
    for p in patients:
        for name, broken in items:
            if broken(p):
                counts[name] += 1
    return counts


__all__ = ["RULES", "count_violations", "violations"]
