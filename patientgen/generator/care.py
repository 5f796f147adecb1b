"""The chain of care: who goes where, what is done there, what the vitals are, how it ends.

NATO roles (AJP-4.10): point of injury (self/buddy aid, medic), Role 1 (triage, resuscitation,
stabilisation), Role 2 (damage-control resuscitation and surgery), Role 3 (specialist surgery, ICU,
imaging), Role 4 (definitive care and rehabilitation in the home nation). Minor cases return to duty
from Role 1 or 2; severe ones may skip Role 1 by air. Timings: 10-1-2 (first aid within 10 min,
medical care within 1 h, surgery within 2 h) and the scenario's evacuation delays (log-normal
around their medians). Death timing of the killed in action follows Webster et al. (BMJ Mil Health
167(2):84): 67.7% dead at 10 min, 91.4% at 60 min, 99.0% at 120 min.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from patientgen.generator.codes import PROCEDURES
from patientgen.generator.patient import Vitals

#: Alert, Voice, Pain, Unresponsive: the values of Vitals.avpu.
Avpu = Literal["A", "V", "P", "U"]

# --- procedures --------------------------------------------------------------------------------
TOURNIQUET = ("20655006", PROCEDURES["20655006"])
HEMORRHAGE_CONTROL = ("51241000", PROCEDURES["51241000"])
PRESSURE_DRESSING = ("26906007", PROCEDURES["26906007"])
CHEST_DRAIN = ("264957007", PROCEDURES["264957007"])
INTUBATION = ("112798008", PROCEDURES["112798008"])
TRANSFUSION = ("116859006", PROCEDURES["116859006"])
SPLINT = ("79321009", PROCEDURES["79321009"])
LAPAROTOMY = ("74770008", PROCEDURES["74770008"])
DEBRIDEMENT = ("36777000", PROCEDURES["36777000"])
TRIAGE = ("225390008", PROCEDURES["225390008"])
SUTURE = ("288086009", PROCEDURES["288086009"])
OXYGEN = ("57485005", PROCEDURES["57485005"])
ANTIBIOTICS = ("281789004", PROCEDURES["281789004"])
AMPUTATION = ("81723002", PROCEDURES["81723002"])
CRANIOTOMY = ("25353009", PROCEDURES["25353009"])
CT_SCAN = ("77477000", PROCEDURES["77477000"])
WOUND_CARE = ("225358003", PROCEDURES["225358003"])
REHABILITATION = ("52052004", PROCEDURES["52052004"])
IV_FLUIDS = ("281800008", PROCEDURES["281800008"])
PAIN_RELIEF = ("278414003", PROCEDURES["278414003"])
X_RAY = ("168537006", PROCEDURES["168537006"])
NEEDLE_DECOMPRESSION = ("1290622004", PROCEDURES["1290622004"])
SPINAL_IMMOBILISATION = ("398041008", PROCEDURES["398041008"])
WOUND_DRESSING = ("182531007", PROCEDURES["182531007"])
PSYCHIATRIC_EVALUATION = ("10197000", PROCEDURES["10197000"])
CLOSED_REDUCTION = ("122470005", PROCEDURES["122470005"])
OPEN_REDUCTION = ("122471009", PROCEDURES["122471009"])
EYE_SURGERY = ("373353005", PROCEDURES["373353005"])

#: Length of each surgical procedure on the operating table (minutes; docs/care-chain.md).
SURGERY_MINUTES: dict[str, int] = {
    LAPAROTOMY[0]: 120,
    AMPUTATION[0]: 90,
    CRANIOTOMY[0]: 150,
    DEBRIDEMENT[0]: 45,
    EYE_SURGERY[0]: 90,  # the primary repair of an open globe
}
#: The same in seconds.
SURGERY_SECONDS: dict[str, int] = {code: minutes * 60 for code, minutes in SURGERY_MINUTES.items()}

# buddy aid (tourniquet, pressure dressing, a dressing of wound: a dry one on a burn, a chest
# seal on an open chest; splint), and the medic's after the triage: a needle decompression of a
# tension pneumothorax, a cervical collar on an injured spine, analgesia
_POI = {
    TOURNIQUET[0], PRESSURE_DRESSING[0], WOUND_DRESSING[0], SPLINT[0], NEEDLE_DECOMPRESSION[0],
    SPINAL_IMMOBILISATION[0], PAIN_RELIEF[0],
}  # fmt: skip
_R1 = _POI | {
    TRIAGE[0], HEMORRHAGE_CONTROL[0], CHEST_DRAIN[0], INTUBATION[0], OXYGEN[0],
    ANTIBIOTICS[0], SUTURE[0], WOUND_CARE[0], IV_FLUIDS[0], PSYCHIATRIC_EVALUATION[0],
}  # fmt: skip
_R2 = _R1 | {
    TRANSFUSION[0], LAPAROTOMY[0], AMPUTATION[0], DEBRIDEMENT[0], X_RAY[0], CLOSED_REDUCTION[0],
    OPEN_REDUCTION[0],
}  # fmt: skip
_R3 = _R2 | {CRANIOTOMY[0], CT_SCAN[0], EYE_SURGERY[0]}
_R4 = {REHABILITATION[0], WOUND_CARE[0], DEBRIDEMENT[0], ANTIBIOTICS[0]}

#: What each place of the chain of care can do (SNOMED procedure codes).
ALLOWED_PROCEDURES: dict[str, frozenset[str]] = {
    "POI": frozenset(_POI),
    "R1": frozenset(_R1),
    "R2": frozenset(_R2),
    "R3": frozenset(_R3),
    "R4": frozenset(_R4),
}

# --- vitals ------------------------------------------------------------------------------------
#: Head injury AIS -> GCS range (no head injury / minor: 15; maximal: 3-5).
GCS_RANGE = ((15, 15), (15, 15), (14, 15), (12, 14), (9, 12), (6, 8), (3, 5))


def avpu(gcs: int) -> Avpu:
    """AVPU consistent with a GCS (A >= 14, V 10-13, P 6-9, U <= 5)."""
    if gcs >= 14:
        return "A"
    if gcs >= 10:
        return "V"
    if gcs >= 6:
        return "P"
    return "U"


def base_gcs(head_ais: int, random: Callable[[], float]) -> int:
    lo, hi = GCS_RANGE[min(head_ais, 6)]
    return lo + int(random() * (hi - lo + 1))


#: Shock lowers the GCS: by 2 above the first of these, by 1 above the second.
GCS_SHOCK_2, GCS_SHOCK_1 = 0.75, 0.55


def gcs_in_shock(gcs: int, shock: float) -> int:
    """The GCS the vitals show in this shock (as `vitals` computes it)."""
    gcs -= 2 if shock > GCS_SHOCK_2 else 1 if shock > GCS_SHOCK_1 else 0
    return 3 if gcs < 3 else gcs


def vitals(
    random: Callable[[], float],
    taken_at: datetime,
    shock: float,
    gcs: int,
    chest: bool,
    fever: bool,
    anxious: bool,
    pain: int,
) -> Vitals:
    """One set of vital signs, consistent with the casualty's state.

    Shock raises heart and breathing rate and lowers blood pressure, saturation and temperature;
    a chest injury raises breathing rate and lowers saturation; a head injury (and deep shock)
    lowers the GCS, and AVPU follows the GCS; fever raises temperature and heart rate.
    """
    hr = int(72 + 70 * shock + (12 if fever else 0) + (8 if anxious else 0) + random() * 13 - 6)
    sbp = int(124 - 58 * shock + random() * 17 - 8)
    dbp = int(sbp * 0.63 + random() * 9 - 4)
    rr = int(14 + 14 * shock + (6 if chest else 0) + (3 if fever else 0) + random() * 5 - 2)
    spo2 = int(98 - 10 * shock - (5 if chest else 0) + random() * 3 - 1)
    if spo2 > 100:
        spo2 = 100
    temp = int(368.0 + random() * 8.0 - 4.0 + (18.0 if fever else 0.0) - 13.0 * shock) / 10
    if shock > GCS_SHOCK_2:  # gcs_in_shock, inline: the hot path
        gcs -= 2
    elif shock > GCS_SHOCK_1:
        gcs -= 1
    if gcs < 3:
        gcs = 3
    responsiveness: Avpu
    if gcs >= 14:
        responsiveness = "A"
    elif gcs >= 10:
        responsiveness = "V"
    elif gcs >= 6:
        responsiveness = "P"
        pain = 0  # cannot report pain
    else:
        responsiveness = "U"
        pain = 0
    return Vitals(taken_at, hr, rr, sbp, dbp, spo2, temp, gcs, responsiveness, pain)


def failing(v: Vitals, taken_at: datetime) -> Vitals:
    """The vital signs of a casualty found failing while it waits, a few minutes before it dies
    of the wait: those of `vitals` in its deepest shock (1.0: decompensated, the haemorrhage of
    most deaths of wounds), from the signs `v` taken earlier, drawing nothing (the jitter of
    `v`'s values is kept, folded into the ranges, as `neurogenic` does). A pulse that never rose
    (the neurogenic shock of a cord injury) does not rise now; no sign is better than in `v`.
    Systolic 58-74 mmHg, pulse 136-148, breathing 26-30, saturation 87-89 %, temperature
    35.1-35.8 °C, the GCS 2 lower (AVPU from it, no pain reported below V)."""
    hr = v.heart_rate if v.heart_rate < 60 else max(v.heart_rate, 136 + v.heart_rate % 13)
    sbp = min(v.systolic_bp, 58 + v.systolic_bp % 17)
    dbp = min(v.diastolic_bp, sbp * 63 // 100 + v.diastolic_bp % 9 - 4)
    rr = max(v.respiratory_rate, 26 + v.respiratory_rate % 5)
    spo2 = min(v.spo2, 87 + v.spo2 % 3)
    temp = min(v.temperature_c, (351 + int(v.temperature_c * 10) % 8) / 10)
    gcs = gcs_in_shock(v.gcs, 1.0)
    responsiveness = avpu(gcs)
    pain = v.pain if responsiveness in ("A", "V") else 0
    return Vitals(taken_at, hr, rr, sbp, dbp, spo2, temp, gcs, responsiveness, pain)


#: The AIS of a complete spinal cord injury (an incomplete one is 4).
COMPLETE_CORD_AIS = 5


def neurogenic(v: Vitals, shock: float) -> None:
    """Bend vital signs into the neurogenic shock of a complete spinal cord injury (in place,
    drawing nothing: the values drawn are folded into the range, so the stream stays as it was):
    the sympathetic outflow below the injury is lost, so the pressure falls (systolic 70-87
    mmHg) and the pulse does not rise: bradycardia (44-59 a minute) with no bleeding, a pulse of
    95 at most with one (the injury blunts the tachycardia of a haemorrhagic shock). ATLS: the
    classic picture of neurogenic shock is hypotension without tachycardia."""
    if shock <= 0.0:
        v.heart_rate = 44 + v.heart_rate % 16
    elif v.heart_rate > 95:
        v.heart_rate = 95
    if v.systolic_bp >= 88:
        v.systolic_bp = 70 + v.systolic_bp % 18
        v.diastolic_bp = v.systolic_bp * 11 // 20 + v.diastolic_bp % 5


#: The AIS of a pneumonia in respiratory failure (a severe community-acquired pneumonia).
RESPIRATORY_FAILURE_AIS = 4


def respiratory_failure(v: Vitals) -> None:
    """Bend vital signs into the respiratory failure of a severe pneumonia where it is first
    seen, before its oxygen (in place, drawing nothing, as `neurogenic`): a breathing rate of
    30-38 a minute (IDSA/ATS: a rate of 30 or more is a criterion of severe community-acquired
    pneumonia; the triage sieve makes it immediate) and a saturation of 84-89 % on air."""
    v.respiratory_rate = 30 + v.respiratory_rate % 9
    if v.spo2 >= 90:
        v.spo2 = 84 + v.spo2 % 6


def kia_minutes(random: Callable[[], float]) -> float:
    """Minutes from wounding to death of a KIA casualty (Webster: 67.7% / 91.4% / 99% at
    10 / 60 / 120 min)."""
    u = random()
    v = random()
    if u < 0.677:
        return 1.0 + 9.0 * v
    if u < 0.914:
        return 10.0 + 50.0 * v
    if u < 0.99:
        return 60.0 + 60.0 * v
    return 120.0 + 120.0 * v
