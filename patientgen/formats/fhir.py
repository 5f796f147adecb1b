"""FHIR R4: bulk NDJSON (format "fhir": one file per resource type, one resource per line) and
transaction bundles (format "fhir-bundle": one Bundle per casualty, one per line).

Per patient: a Patient, one Encounter per facility visited (the point of injury is not a
facility; a casualty killed there gets one field Encounter), a Condition per injury or illness
(coded severity; the injury mechanism in condition-dueTo), Observations for the vital signs
(each claiming its R4 vital-signs profile), GCS, AVPU, pain and triage category taken at each
place, and a Procedure per intervention. The facilities themselves (Organization + Location) are
written once when the parts are joined, and inside every bundle that needs them.

Invariants:
- Ids are unique per job and stable: the Patient's is a UUID keyed by the digest of the job's
  whole scenario, seed included (scope, patient_fhir_id), the others derive from it
  (`<patient>-e1`, `-c1`, `-o1`, `-p1` ...) or from the facility id (`org-…`, `loc-…`), so every
  reference resolves inside the output and the same scenario and seed give the same bytes.
- Codes and displays come only from generator.codes.
- A bundle holds exactly the bulk resources of its casualty (ids left out, references rewritten
  to its entries' urn:uuid fullUrls) and never more than MAX_BUNDLE_ENTRIES entries.

Resources are built as plain dicts (observations from byte templates) and serialised with
orjson: fast, and the key order is the insertion order below, so the bytes are stable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import orjson

from patientgen.generator import codes
from patientgen.generator.patient import DEATH_OUTCOMES, Patient, Visit, Vitals
from patientgen.scenario import Scenario

DIRECTORY = "fhir"
PATIENT_TYPES: tuple[str, ...] = ("Patient", "Encounter", "Condition", "Observation", "Procedure")
FACILITY_TYPES: tuple[str, ...] = ("Organization", "Location")
RESOURCE_TYPES: tuple[str, ...] = PATIENT_TYPES + FACILITY_TYPES
FILES: dict[str, str] = {t: f"{DIRECTORY}/{t}.ndjson" for t in RESOURCE_TYPES}

OPTIONS = orjson.OPT_UTC_Z
NL = b"\n"

SNOMED_SYSTEM = codes.SNOMED_SYSTEM
LOINC_SYSTEM = codes.LOINC_SYSTEM
UCUM_SYSTEM = "http://unitsofmeasure.org"

# FHIR's own terminology (structure, not clinical content; not part of the project's code table).
_OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
_DISCHARGE = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
_COND_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
_COND_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_COND_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
_ORG_TYPE = "http://terminology.hl7.org/CodeSystem/organization-type"

#: Identifier system of the facilities (Organization and Location): the generator's facility id.
FACILITY_SYSTEM = "urn:patientgen:facility"

ROLE_NAMES = {
    "R1": "Role 1 medical treatment facility",
    "R2": "Role 2 medical treatment facility",
    "R3": "Role 3 field hospital",
    "R4": "Role 4 definitive care hospital",
}


def _category(code: str, display: str) -> list[dict]:
    return [{"coding": [{"system": _OBS_CATEGORY, "code": code, "display": display}]}]


def _loinc(code: str) -> dict:
    display = codes.LOINC[code]
    return {"coding": [{"system": LOINC_SYSTEM, "code": code, "display": display}]}


def _snomed(code: str) -> dict:
    display = codes.SNOMED[code]
    return {"coding": [{"system": SNOMED_SYSTEM, "code": code, "display": display}]}


VITAL_SIGNS = _category("vital-signs", "Vital Signs")
SURVEY = _category("survey", "Survey")
CODE_HR = _loinc("8867-4")
CODE_RR = _loinc("9279-1")
# R4's oxygen-saturation profile requires 2708-6; 59408-5 (by pulse oximetry) says how.
CODE_SPO2 = {"coding": _loinc("2708-6")["coding"] + _loinc("59408-5")["coding"]}
CODE_TEMP = _loinc("8310-5")
CODE_BP = _loinc("85354-9")
CODE_SYS = _loinc("8480-6")
CODE_DIA = _loinc("8462-4")
CODE_GCS = _loinc("9269-2")
CODE_AVPU = _loinc("67775-7")
CODE_PAIN = _loinc("72514-3")  # as US Core: 0-10 numeric rating
CODE_TRIAGE = _loinc("11283-9")  # an assessment (the SNOMED "Triage" concept is a procedure)
TRIAGE_VALUES = {
    key: {"coding": [{"system": codes.TRIAGE_SYSTEM, "code": key, "display": display}]}
    for key, display in codes.TRIAGE.items()
}
AVPU_VALUES = {
    key: {"coding": [{"system": codes.AVPU_SYSTEM, "code": key, "display": display}]}
    for key, display in codes.AVPU.items()
}

_CLASS_EMERGENCY = {"system": _ACT_CODE, "code": "EMER", "display": "emergency"}
_CLASS_INPATIENT = {"system": _ACT_CODE, "code": "IMP", "display": "inpatient encounter"}
_CLASS_FIELD = {"system": _ACT_CODE, "code": "FLD", "display": "field"}
ENCOUNTER_CLASS = {"R1": _CLASS_EMERGENCY, "R2": _CLASS_EMERGENCY}
DISCHARGE = {
    "evacuated": {
        "coding": [
            {"system": _DISCHARGE, "code": "other-hcf", "display": "Other healthcare facility"}
        ]
    },
    "returned_to_duty": {
        "coding": [{"system": _DISCHARGE, "code": "oth", "display": "Other"}],
        "text": "Returned to duty",
    },
    "died": {"coding": [{"system": _DISCHARGE, "code": "exp", "display": "Expired"}]},
}
CLINICAL_ACTIVE = {"coding": [{"system": _COND_CLINICAL, "code": "active", "display": "Active"}]}
VERIFICATION_CONFIRMED = {
    "coding": [{"system": _COND_VERIFICATION, "code": "confirmed", "display": "Confirmed"}]
}
ENCOUNTER_DIAGNOSIS = [
    {
        "coding": [
            {
                "system": _COND_CATEGORY,
                "code": "encounter-diagnosis",
                "display": "Encounter Diagnosis",
            }
        ]
    }
]
SEVERITY = {
    name: {"coding": [{"system": SNOMED_SYSTEM, "code": code, "display": display}], "text": name}
    for name, (code, display) in codes.SEVERITIES.items()
}
#: Identifier system of the FHIR Patient's own id (unique per job, see patient_fhir_id), so a
#: server that assigns its own ids (transaction bundles) still finds the casualty.
PATIENT_ID_SYSTEM = "urn:patientgen:patient"
#: R4 core extension: what caused the condition (here the injury's mechanism).
DUE_TO = "http://hl7.org/fhir/StructureDefinition/condition-dueTo"
#: Extensions of a scenario with a medical plan (issue 10): on each Encounter, one WAITING_TIME
#: per wait longer than zero there (kind: evacuation, treatment, surgery or bed; what was waited
#: for; how long), and on the Encounter where a casualty died, DEATH_DELAY: the wait that
#: contributed to the death (and whether it died in it). Absent without a plan.
WAITING_TIME = "urn:patientgen:extension:waiting-time"
DEATH_DELAY = "urn:patientgen:extension:death-delay"
#: R4 vital-signs profiles (observation-vitalsigns), claimed by the observations they govern.
_PROFILE = "http://hl7.org/fhir/StructureDefinition/"
PROFILES = {
    "heart_rate": _PROFILE + "heartrate",
    "respiratory_rate": _PROFILE + "resprate",
    "spo2": _PROFILE + "oxygensat",
    "temperature": _PROFILE + "bodytemp",
    "blood_pressure": _PROFILE + "bp",
}
ORG_TYPE = [{"coding": [{"system": _ORG_TYPE, "code": "prov", "display": "Healthcare Provider"}]}]


def _esc(data: bytes) -> bytes:
    """Constant JSON bytes made safe to use inside a %-format template."""
    return data.replace(b"%", b"%%")


def _ts(value: datetime) -> bytes:
    """A datetime exactly as orjson writes it with OPT_UTC_Z (RFC 3339, `Z` for UTC)."""
    text = value.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text.encode()


# Observations are the bulk of the FHIR output (about 9 per place with vitals), so they are
# written from pre-encoded byte templates instead of dicts: the constant parts (codes, displays,
# categories, units) are encoded once here with orjson; only the id, the subject, the encounter,
# the time and the values are filled in (%-formatting). tests/test_fhir.py validates the result
# with the R4B models.
_ENCOUNTER_REF = b',"encounter":{"reference":"%s"}'
_VALUE = b"%s"  # where a value goes in a template


def _obs_template(category: list, code: dict, value: bytes, profile: str | None = None) -> bytes:
    """Template with placeholders (patient id, n, subject, encounter, time, *value's)."""
    meta = b"" if profile is None else b',"meta":' + _esc(orjson.dumps({"profile": [profile]}))
    return (
        b'{"resourceType":"Observation","id":"%s-o%d"'
        + meta
        + b',"status":"final","category":'
        + _esc(orjson.dumps(category))
        + b',"code":'
        + _esc(orjson.dumps(code))
        + b',"subject":%s%s,"effectiveDateTime":"%s",'
        + value
        + b"}\n"
    )


def _quantity(unit: str, ucum: str) -> bytes:
    """A valueQuantity template fragment (one placeholder: the value)."""
    tail = orjson.dumps({"unit": unit, "system": UCUM_SYSTEM, "code": ucum})
    return b'"valueQuantity":{"value":' + _VALUE + b"," + _esc(tail[1:])


def _component(code: dict, unit: str, ucum: str) -> bytes:
    return b'{"code":' + _esc(orjson.dumps(code)) + b"," + _quantity(unit, ucum) + b"}"


def _obs_args(context: tuple[bytes, bytes, bytes, bytes], n: int, value: bytes) -> tuple:
    pid, subject, encounter, at = context
    return (pid, n, subject, encounter, at, value)


#: The eight observations of one set of vital signs, in order: heart rate, respiratory rate,
#: SpO2, temperature, GCS, AVPU, pain, blood pressure (systolic and diastolic components).
_OBS_VITALS = b"".join(
    (
        _obs_template(
            VITAL_SIGNS, CODE_HR, _quantity("beats/minute", "/min"), PROFILES["heart_rate"]
        ),
        _obs_template(
            VITAL_SIGNS, CODE_RR, _quantity("breaths/minute", "/min"), PROFILES["respiratory_rate"]
        ),
        _obs_template(VITAL_SIGNS, CODE_SPO2, _quantity("%", "%"), PROFILES["spo2"]),
        _obs_template(VITAL_SIGNS, CODE_TEMP, _quantity("Cel", "Cel"), PROFILES["temperature"]),
        _obs_template(SURVEY, CODE_GCS, b'"valueInteger":' + _VALUE),
        _obs_template(SURVEY, CODE_AVPU, b'"valueCodeableConcept":' + _VALUE),
        _obs_template(SURVEY, CODE_PAIN, b'"valueInteger":' + _VALUE),
        _obs_template(
            VITAL_SIGNS,
            CODE_BP,
            b'"component":['
            + _component(CODE_SYS, "mmHg", "mm[Hg]")
            + b","
            + _component(CODE_DIA, "mmHg", "mm[Hg]")
            + b"]",
            PROFILES["blood_pressure"],
        ),
    )
)
_OBS_TRIAGE = _obs_template(SURVEY, CODE_TRIAGE, b'"valueCodeableConcept":' + _VALUE)
AVPU_BYTES = {key: orjson.dumps(value) for key, value in AVPU_VALUES.items()}
TRIAGE_BYTES = {key: orjson.dumps(value) for key, value in TRIAGE_VALUES.items()}
_PROCEDURE = (
    b'{"resourceType":"Procedure","id":"%s-p%d","status":"completed","code":%s,"subject":%s%s,'
    b'"performedDateTime":"%s"%s}\n'
)
_LOCATION_REF = b',"location":%s'


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NOT_ID = re.compile(r"[^A-Za-z0-9\-.]")


@lru_cache(maxsize=4096)
def facility_key(facility_id: str) -> str:
    """A FHIR id fragment for a facility id; ids that are not valid FHIR ids get a hash suffix."""
    if _FHIR_ID.fullmatch(facility_id) and len(facility_id) <= 56:
        return facility_id
    digest = hashlib.sha256(facility_id.encode("utf-8")).hexdigest()[:10]
    return f"{_NOT_ID.sub('-', facility_id)[:45]}-{digest}"


@lru_cache(maxsize=4096)
def organization_ref(facility_id: str) -> dict:
    return {"reference": f"Organization/org-{facility_key(facility_id)}"}


@lru_cache(maxsize=4096)
def location_ref(facility_id: str) -> dict:
    return {"reference": f"Location/loc-{facility_key(facility_id)}"}


def scope(scenario: Scenario) -> bytes:
    """The key of a job's FHIR ids: a digest of its whole scenario, seed included.

    The generator's patient ids depend on (seed, index) only, so two jobs with the same seed would
    share them; FHIR ids are made unique per scenario (patient_fhir_id) so that loading two jobs
    into one server overwrites nothing, and stay the same for the same scenario and seed.
    """
    canonical = orjson.dumps(scenario.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16, person=b"patientgen-fhir").digest()


def patient_fhir_id(job: bytes, patient_id: str) -> str:
    """The FHIR id of a patient of the job whose scope() is `job`: a version-4-shaped UUID."""
    return _uuid(job, patient_id.encode())


def _uuid(job: bytes, name: bytes) -> str:
    """A version-4-shaped UUID from blake2b keyed by `job` over `name`: the string
    uuid.UUID(bytes=digest, version=4) gives, formatted here because that costs a third of a
    bundle's time."""
    d = bytearray(hashlib.blake2b(name, digest_size=16, key=job).digest())
    d[6] = (d[6] & 0x0F) | 0x40  # version 4
    d[8] = (d[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = d.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode(p: Patient, job: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes]:
    """NDJSON lines of one patient: (Patient, Encounter, Condition, Observation, Procedure).

    `job` is the job's scope(scenario): every id derives from it and the patient's id. Each
    place the casualty was (the point of injury and each facility) gives, in order: its
    Encounter (`_field_encounter`, `_encounter`), its Observations (`_observations`) and its
    Procedures (`_procedures`); the Conditions refer to the first Encounter (`_conditions`).
    """
    dumps = orjson.dumps
    opt = OPTIONS
    pid = patient_fhir_id(job, p.id)
    subject = {"reference": f"Patient/{pid}"}
    pid_b = dumps(pid)[1:-1]
    subject_b = dumps(subject)
    encounters: list[bytes] = []
    observations: list[bytes] = []
    procedures: list[bytes] = []
    visits = p.visits
    first_ref: dict | None = None
    previous_facility: str | None = None
    n_obs = n_proc = n_enc = 0
    for i, visit in enumerate(visits):
        enc_ref: dict | None = None
        loc_ref: dict | None = None
        at_facility = visit.facility != "POI"
        if at_facility or visit.disposition == "died":
            n_enc += 1
            enc_id = f"{pid}-e{n_enc}"
            enc_ref = {"reference": f"Encounter/{enc_id}"}
            if at_facility:
                fid = visit.facility_id
                loc_ref = location_ref(fid)
                encounter = _encounter(p, i, enc_id, subject, first_ref, previous_facility, loc_ref)
                previous_facility = fid
            else:  # killed at the point of injury: the care given there is a field encounter
                encounter = _field_encounter(p, i, enc_id, subject, first_ref)
            if first_ref is None:
                first_ref = enc_ref
            encounters.append(dumps(encounter, option=opt))
        if visit.vitals is not None or visit.triage is not None:
            n_obs = _observations(observations, visit, n_obs, pid_b, subject_b, enc_ref)
        if visit.procedures:
            n_proc = _procedures(procedures, visit, n_proc, pid_b, subject_b, enc_ref, loc_ref)
    return (
        _patient(p, pid),
        _lines(encounters),
        _lines(_conditions(p, pid, subject, first_ref)),
        b"".join(observations),
        b"".join(procedures),
    )


def _patient(p: Patient, pid: str) -> bytes:
    """The Patient line: the service number and our own id, name, gender, birth, death."""
    patient: dict = {
        "resourceType": "Patient",
        "id": pid,
        "identifier": [
            {
                "use": "official",
                "system": codes.service_number_system(p.nationality),
                "value": p.service_number,
            },
            {"use": "secondary", "system": PATIENT_ID_SYSTEM, "value": pid},
        ],
        "name": [{"use": "official", "family": p.family_name, "given": [p.given_name]}],
        "gender": p.gender,
        "birthDate": p.birth_date,
    }
    if p.outcome in DEATH_OUTCOMES:  # killed in action, died of wounds, died of disease/injury
        patient["deceasedDateTime"] = p.outcome_at
    return orjson.dumps(patient, option=OPTIONS) + NL


def _field_encounter(
    p: Patient, i: int, enc_id: str, subject: dict, first_ref: dict | None
) -> dict:
    """The field Encounter of a casualty who died at the point of injury (visit i)."""
    visit = p.visits[i]
    field: dict = {
        "resourceType": "Encounter",
        "id": enc_id,
        "status": "finished",
        "class": _CLASS_FIELD,
        "subject": subject,
        "period": {"start": visit.arrived_at, "end": p.outcome_at},
    }
    if first_ref is not None:
        field["partOf"] = first_ref
    field["hospitalization"] = {"dischargeDisposition": DISCHARGE["died"]}
    waited = _waits(visit, i, len(p.visits) - 1, p)
    if waited:
        field["extension"] = waited
    return field


def _encounter(
    p: Patient,
    i: int,
    enc_id: str,
    subject: dict,
    first_ref: dict | None,
    previous_facility: str | None,
    loc_ref: dict,
) -> dict:
    """The Encounter of visit i at a facility: its period (open while the casualty is still
    there), where it came from and went, its disposition, place, unit and waits."""
    visits = p.visits
    visit = visits[i]
    last = len(visits) - 1
    fid = visit.facility_id
    disposition = visit.disposition
    end = visit.departed_at
    if end is None and disposition != "admitted":
        end = p.outcome_at
    encounter: dict = {
        "resourceType": "Encounter",
        "id": enc_id,
        "status": "in-progress" if end is None else "finished",
        "class": ENCOUNTER_CLASS.get(visit.facility, _CLASS_INPATIENT),
        "subject": subject,
        "period": {"start": visit.arrived_at}
        if end is None
        else {"start": visit.arrived_at, "end": end},
    }
    if first_ref is not None:
        encounter["partOf"] = first_ref
    hospitalization: dict = {}
    if previous_facility is not None:
        hospitalization["origin"] = location_ref(previous_facility)
    if disposition == "evacuated" and i < last:
        nxt = visits[i + 1]
        if nxt.facility != "POI":
            hospitalization["destination"] = location_ref(nxt.facility_id)
    discharge = DISCHARGE.get(disposition)
    if discharge is not None:
        hospitalization["dischargeDisposition"] = discharge
    if hospitalization:
        encounter["hospitalization"] = hospitalization
    encounter["location"] = [
        {"location": loc_ref, "status": "completed" if end is not None else "active"}
    ]
    encounter["serviceProvider"] = organization_ref(fid)
    waited = _waits(visit, i, last, p)
    if waited:
        encounter["extension"] = waited
    return encounter


def _observations(
    out: list[bytes],
    visit: Visit,
    n_obs: int,
    pid_b: bytes,
    subject_b: bytes,
    enc_ref: dict | None,
) -> int:
    """Appends to `out` the Observations taken at one place (the vital signs, GCS, AVPU and pain
    as eight, then the triage category, then the signs of a casualty found failing there before
    it died waiting, as eight more); returns the number of the last."""
    v = visit.vitals
    encounter_b = (_ENCOUNTER_REF % enc_ref["reference"].encode()) if enc_ref is not None else b""
    context = (
        pid_b,
        subject_b,
        encounter_b,
        _ts(v.taken_at if v is not None else visit.arrived_at),
    )
    if v is not None:
        n_obs = _vital_signs(out, v, n_obs, context)
    if visit.triage is not None:
        n_obs += 1
        out.append(_OBS_TRIAGE % _obs_args(context, n_obs, TRIAGE_BYTES[visit.triage]))
    failing: Vitals | None = getattr(visit, "deterioration", None)
    if failing is not None:
        n_obs = _vital_signs(out, failing, n_obs, (*context[:3], _ts(failing.taken_at)))
    return n_obs


def _vital_signs(
    out: list[bytes], v: Vitals, n_obs: int, context: tuple[bytes, bytes, bytes, bytes]
) -> int:
    """Appends to `out` the eight Observations of one set of vital signs; returns the number of
    the last."""
    dumps = orjson.dumps
    n_obs += 8
    out.append(
        _OBS_VITALS
        % (
            *_obs_args(context, n_obs - 7, dumps(v.heart_rate)),
            *_obs_args(context, n_obs - 6, dumps(v.respiratory_rate)),
            *_obs_args(context, n_obs - 5, dumps(v.spo2)),
            *_obs_args(context, n_obs - 4, dumps(v.temperature_c)),
            *_obs_args(context, n_obs - 3, dumps(v.gcs)),
            *_obs_args(context, n_obs - 2, AVPU_BYTES[v.avpu]),
            *_obs_args(context, n_obs - 1, dumps(v.pain)),
            *_obs_args(context, n_obs, dumps(v.systolic_bp)),
            dumps(v.diastolic_bp),
        )
    )
    return n_obs


def _procedures(
    out: list[bytes],
    visit: Visit,
    n_proc: int,
    pid_b: bytes,
    subject_b: bytes,
    enc_ref: dict | None,
    loc_ref: dict | None,
) -> int:
    """Appends to `out` a Procedure per intervention at one place; returns the number of the
    last."""
    encounter_b = (_ENCOUNTER_REF % enc_ref["reference"].encode()) if enc_ref is not None else b""
    location_b = (_LOCATION_REF % orjson.dumps(loc_ref)) if loc_ref is not None else b""
    for proc in visit.procedures:
        n_proc += 1
        out.append(
            _PROCEDURE
            % (
                pid_b,
                n_proc,
                _snomed_bytes(proc.code),
                subject_b,
                encounter_b,
                _ts(proc.performed_at),
                location_b,
            )
        )
    return n_proc


def _conditions(p: Patient, pid: str, subject: dict, first_ref: dict | None) -> list[bytes]:
    """A Condition per injury or illness (and shock), due to the mechanism of injury, diagnosed
    at the first Encounter."""
    dumps = orjson.dumps
    conditions: list[bytes] = []
    due_to = _due_to(p.mechanism, p.mechanism_code)
    for k, c in enumerate(p.conditions, 1):
        condition: dict = {"resourceType": "Condition", "id": f"{pid}-c{k}"}
        if due_to is not None:  # the patient was injured: every condition follows from it
            condition["extension"] = due_to
        condition |= {
            "clinicalStatus": CLINICAL_ACTIVE,
            "verificationStatus": VERIFICATION_CONFIRMED,
            "category": ENCOUNTER_DIAGNOSIS,
            "severity": SEVERITY[c.severity],
            "code": _snomed_cc(c.code),
        }
        if c.body_site_code is not None:
            condition["bodySite"] = [_snomed_cc(c.body_site_code)]
        condition["subject"] = subject
        if first_ref is not None:
            condition["encounter"] = first_ref
        condition["onsetDateTime"] = c.onset
        conditions.append(dumps(condition, option=OPTIONS))
    return conditions


def _wait_extension(url: str, w: Any, died: bool | None = None) -> dict:
    parts: list[dict] = [
        {"url": "kind", "valueCode": w.kind},
        {"url": "waitedFor", "valueString": w.waited_for},
        {
            "url": "duration",
            "valueDuration": {
                "value": w.minutes,
                "unit": "min",
                "system": UCUM_SYSTEM,
                "code": "min",
            },
        },
    ]
    if died is not None:
        parts.append({"url": "diedWaiting", "valueBoolean": died})
    return {"url": url, "extension": parts}


def _waits(visit: Any, i: int, last: int, p: Patient) -> list[dict]:
    """The waiting-time extensions of one visit's Encounter (empty without a medical plan)."""
    out = [_wait_extension(WAITING_TIME, w) for w in getattr(visit, "waits", ()) if w.minutes > 0]
    delay = getattr(p, "delay", None)
    if i == last and delay is not None and p.outcome in DEATH_OUTCOMES:
        out.append(_wait_extension(DEATH_DELAY, delay, bool(getattr(p, "died_waiting", False))))
    return out


@lru_cache(maxsize=256)
def _due_to_cached(mechanism: str, code: str | None) -> list[dict]:
    concept: dict = {}
    if code is not None:
        concept["coding"] = _snomed(code)["coding"]
    concept["text"] = mechanism
    return [{"url": DUE_TO, "valueCodeableConcept": concept}]


def _due_to(mechanism: str | None, code: str | None) -> list[dict] | None:
    """The condition-dueTo extension naming an injury's mechanism (its SNOMED CT event where
    one fits, always its name as text); None for an illness."""
    return None if mechanism is None else _due_to_cached(mechanism, code)


def _lines(items: list[bytes]) -> bytes:
    if not items:
        return b""
    items.append(b"")
    return NL.join(items)


@lru_cache(maxsize=4096)
def _snomed_cc(code: str) -> dict:
    """A SNOMED CT CodeableConcept; the display comes from the code table (KeyError if absent)."""
    return _snomed(code)


@lru_cache(maxsize=4096)
def _snomed_bytes(code: str) -> bytes:
    """The SNOMED CT CodeableConcept as JSON bytes, for the byte templates."""
    return orjson.dumps(_snomed(code))


@lru_cache(maxsize=4096)
def facility_lines(facility_id: str, role: str) -> tuple[bytes, bytes]:
    """The (Organization, Location) JSON of one facility, without newline."""
    key = facility_key(facility_id)
    name = f"{ROLE_NAMES.get(role, role)} {facility_id}"
    identifier = [{"system": FACILITY_SYSTEM, "value": facility_id}]
    organization = {
        "resourceType": "Organization",
        "id": f"org-{key}",
        "identifier": identifier,
        "active": True,
        "type": ORG_TYPE,
        "name": name,
    }
    location = {
        "resourceType": "Location",
        "id": f"loc-{key}",
        "identifier": identifier,
        "status": "active",
        "name": name,
        "mode": "instance",
        "managingOrganization": organization_ref(facility_id),
    }
    return orjson.dumps(organization, option=OPTIONS), orjson.dumps(location, option=OPTIONS)


def facility_resources(facilities: Iterable[tuple[str, str]]) -> tuple[bytes, bytes]:
    """NDJSON (Organization lines, Location lines) for (facility_id, role) pairs, in that order."""
    organizations: list[bytes] = []
    locations: list[bytes] = []
    for facility_id, role in facilities:
        organization, location = facility_lines(facility_id, role)
        organizations.append(organization)
        locations.append(location)
    return _lines(organizations), _lines(locations)


def casualty_resources(p: Patient, job: bytes) -> list[tuple[str, str, bytes]]:
    """(resource type, id, JSON) of every resource of one casualty in the bulk output, in an
    order where each resource comes after those it refers to: the facilities it visited
    (Organization, then Location), then Patient, Encounters, Conditions, Observations and
    Procedures. The JSON is the bulk output's, byte for byte (what a push to a server sends)."""
    lines: list[bytes] = []
    seen: set[str] = set()
    for visit in p.visits:
        if visit.facility == "POI" or visit.facility_id in seen:
            continue
        seen.add(visit.facility_id)
        lines.extend(facility_lines(visit.facility_id, visit.facility))
    for data in encode(p, job):
        lines.extend(line for line in data.split(NL) if line)
    out = []
    for line in lines:
        match = _HEAD.match(line)
        if match is None:  # pragma: no cover - every resource above starts so
            raise ValueError(f"unexpected resource head: {line[:80]!r}")
        out.append((match.group(1).decode(), match.group(2).decode(), line))
    return out


# ----------------------------------------------------------------------------------------------
# Transaction bundles (format "fhir-bundle")
#
# One Bundle of type transaction per casualty, one per line: the facilities the casualty visited
# (Organization, then Location) as conditional creates (ifNoneExist on their identifier, so
# loading many bundles creates each facility once), then the Patient, Encounters, Conditions,
# Observations and Procedures of the bulk output, each POSTed without its id. Every entry has a
# fullUrl urn:uuid:<uuid> and every reference inside the bundle names one of them; the uuids
# derive from the bulk ids (unique per job, see scope), the Patient's is its FHIR id. The bytes
# are exactly the bulk resources' bytes with the id left out and references rewritten, so both
# formats always say the same thing.

BUNDLE_FILE = "fhir-bundles.ndjson"
#: A common server limit on the entries of one transaction (issue 11). The generator's
#: casualties stay far below it (see docs/formats.md); one above it fails its chunk loudly
#: (BundleTooLarge) rather than writing a bundle such servers refuse.
MAX_BUNDLE_ENTRIES = 500
_HEAD = re.compile(rb'\{"resourceType":"([A-Za-z]+)","id":"([A-Za-z0-9\-.]+)",')
_REFERENCE = re.compile(rb'"reference":"([^"]+)"')


class BundleTooLarge(ValueError):
    """A casualty's transaction bundle would hold more than MAX_BUNDLE_ENTRIES entries."""


def _urn(job: bytes, reference: bytes) -> bytes:
    return b"urn:uuid:" + _uuid(job, reference).encode()


@lru_cache(maxsize=4096)
def _facility_entries(facility_id: str, role: str) -> tuple[bytes, bytes, bytes, bytes]:
    """(Organization reference, its conditional-create request, Location reference, request)."""
    condition = f"identifier={FACILITY_SYSTEM}|{quote(facility_id, safe='-._~')}"
    requests = (
        orjson.dumps({"method": "POST", "url": kind, "ifNoneExist": condition})
        for kind in ("Organization", "Location")
    )
    org_request, loc_request = requests
    key = facility_key(facility_id)
    return (
        f"Organization/org-{key}".encode(),
        org_request,
        f"Location/loc-{key}".encode(),
        loc_request,
    )


def bundle(p: Patient, job: bytes, encoded: tuple[bytes, ...] | None = None) -> bytes:
    """One NDJSON line: the transaction Bundle of patient `p` (`encoded`: encode(p, job), when
    the caller has it already). BundleTooLarge beyond MAX_BUNDLE_ENTRIES entries."""
    if encoded is None:
        encoded = encode(p, job)
    items: list[tuple[bytes, bytes]] = []  # (resource JSON with id, request JSON)
    seen: set[str] = set()
    for visit in p.visits:
        fid = visit.facility_id
        if visit.facility == "POI" or fid in seen:
            continue
        seen.add(fid)
        org_json, loc_json = facility_lines(fid, visit.facility)
        _, org_request, _, loc_request = _facility_entries(fid, visit.facility)
        items.append((org_json, org_request))
        items.append((loc_json, loc_request))
    for data in encoded:
        for line in data.split(NL):
            if line:
                items.append((line, b""))
    if len(items) > MAX_BUNDLE_ENTRIES:
        raise BundleTooLarge(
            f"casualty {p.id} (index {p.index}) needs {len(items)} entries in its transaction "
            f"bundle, more than {MAX_BUNDLE_ENTRIES}"
        )
    urns: dict[bytes, bytes] = {}
    heads: list[tuple[bytes, bytes, int]] = []  # (resource type, its urn, end of its head)
    for resource, _ in items:
        match = _HEAD.match(resource)
        if match is None:  # pragma: no cover - every resource above starts so
            raise ValueError(f"unexpected resource head: {resource[:80]!r}")
        kind, rid = match.group(1), match.group(2)
        reference = kind + b"/" + rid
        urn = b"urn:uuid:" + rid if kind == b"Patient" else _urn(job, reference)
        urns[reference] = urn
        heads.append((kind, urn, match.end()))

    def rewrite(found: re.Match[bytes]) -> bytes:
        return b'"reference":"' + urns[found.group(1)] + b'"'

    entries: list[bytes] = []
    for (resource, request), (kind, urn, end) in zip(items, heads, strict=True):
        body = _REFERENCE.sub(rewrite, b'{"resourceType":"' + kind + b'",' + resource[end:])
        if not request:
            request = b'{"method":"POST","url":"' + kind + b'"}'
        entries.append(
            b'{"fullUrl":"' + urn + b'","resource":' + body + b',"request":' + request + b"}"
        )
    bundle_id = _urn(job, b"Bundle/" + p.id.encode())[9:]
    return (
        b'{"resourceType":"Bundle","id":"'
        + bundle_id
        + b'","type":"transaction","entry":['
        + b",".join(entries)
        + b"]}\n"
    )
