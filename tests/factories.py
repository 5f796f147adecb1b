"""Small deterministic Patient factory for format tests (independent of the real generator)."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from patientgen.generator.patient import Condition, Event, Patient, Procedure, Visit, Vitals
from patientgen.scenario import Scenario

CONDITIONS = [
    ("283545005", "Gunshot wound", "thorax", "51185008", "Thoracic structure"),
    (
        "125605004",
        "Fracture of bone",
        "left_lower_limb",
        "32153003",
        "Structure of left lower limb",
    ),
    ("127295002", "Traumatic brain injury", "head", "69536005", "Head structure"),
    ("47505003", "Posttraumatic stress disorder", None, None, None),
]
PROCEDURES = [
    ("20655006", "Application of tourniquet"),
    ("26906007", "Application of pressure dressing"),
    ("116859006", "Transfusion of blood product"),
]
NAMES = ["Anna", "Jan", "Zoë", 'O"Neil, Jr', "Łukasz", "Kowalski", "Smith"]
OUTCOMES = ["KIA", "DOW", "RTD", "EVACUATED_R4"]


def _vitals(rng: random.Random, at) -> Vitals:
    return Vitals(
        taken_at=at,
        heart_rate=rng.randint(50, 150),
        respiratory_rate=rng.randint(8, 30),
        systolic_bp=rng.randint(70, 150),
        diastolic_bp=rng.randint(40, 90),
        spo2=rng.randint(85, 100),
        temperature_c=round(rng.uniform(35.0, 39.5), 1),
        gcs=rng.randint(3, 15),
        avpu=rng.choice("AVPU"),
        pain=rng.randint(0, 10),
    )


def make_patient(scenario: Scenario, i: int) -> Patient:
    rng = random.Random(f"{scenario.seed}:{i}")
    front = scenario.fronts[i % len(scenario.fronts)]
    nation = sorted(front.nationalities)[i % len(front.nationalities)]
    injured = scenario.start + timedelta(minutes=rng.randint(0, scenario.duration_days * 1440 - 1))
    category = rng.choice(["disease", "non_battle_injury", "battle_injury"])
    outcome = (
        OUTCOMES[i % 4] if category == "battle_injury" else rng.choice(["RTD", "EVACUATED_R4"])
    )
    conditions = [
        Condition(code, display, rng.choice(["mild", "moderate", "severe", "critical"]), region,
                  site_code, site, injured + timedelta(seconds=1))
        for code, display, region, site_code, site in rng.sample(CONDITIONS, rng.randint(1, 3))
    ]  # fmt: skip
    t = injured
    visits = [
        Visit("POI", "POI", t, t + timedelta(minutes=10), None, _vitals(rng, t),
              [Procedure(*PROCEDURES[0], t + timedelta(minutes=2))], "evacuated", None)
    ]  # fmt: skip
    timeline = [Event(t, "injured", "POI")]
    if outcome == "KIA":
        visits[0].departed_at = None
        visits[0].disposition = "died"
        end_at = t + timedelta(minutes=rng.randint(1, 60))
        end_facility = "POI"
    else:
        roles = ["R1", "R2"] if outcome in ("RTD", "DOW") else ["R1", "R2", "R3", "R4"]
        for role in roles:
            t += timedelta(minutes=rng.randint(20, 300))
            visit = Visit(
                facility=role,  # type: ignore[arg-type]
                facility_id=f"{role}-{front.name}-1" if role != "R4" else f"R4-{nation}",
                arrived_at=t,
                departed_at=t + timedelta(minutes=30),
                triage=rng.choice(["T1", "T2", "T3", "T4"]),
                vitals=_vitals(rng, t + timedelta(minutes=1)),
                procedures=[Procedure(*p, t + timedelta(minutes=5)) for p in PROCEDURES[1:]],
                transit_minutes=20.0,
            )
            visits.append(visit)
            timeline.append(Event(t, "arrived", role))
            t += timedelta(minutes=30)
        last = visits[-1]
        last.departed_at = None
        last.disposition = {"DOW": "died", "RTD": "returned_to_duty"}.get(outcome, "admitted")
        end_at = t + timedelta(minutes=1)
        end_facility = last.facility
    return Patient(
        index=i,
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        service_number=f"{nation}-{i:08d}",
        given_name=rng.choice(NAMES),
        family_name=rng.choice(NAMES),
        gender=rng.choice(["male", "female"]),
        birth_date=date(1980 + i % 20, 1 + i % 12, 1 + i % 28),
        blood_group=rng.choice(["O+", "A-", "AB+"]),
        nationality=nation,
        front=front.name,
        category=category,  # type: ignore[arg-type]
        warfare="conventional",
        mechanism=None if category == "disease" else rng.choice(["explosive", "gunshot", "fall"]),
        mechanism_code=None,
        injured_at=injured,
        mass_casualty=i % 7 == 0,
        event_id=f"MC-{i // 7}" if i % 7 == 0 else None,
        triage=rng.choice(["T1", "T2", "T3", "T4"]),
        conditions=conditions,
        visits=visits,
        timeline=timeline,
        outcome=outcome,  # type: ignore[arg-type]
        outcome_at=end_at,
        outcome_facility=end_facility,  # type: ignore[arg-type]
    )


def make_patients(scenario: Scenario, start: int, stop: int):
    for i in range(start, stop):
        yield make_patient(scenario, i)
