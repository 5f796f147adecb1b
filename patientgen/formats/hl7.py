"""`adt.hl7`: HL7 v2.5.1 ADT messages, one per event of each casualty's path through the chain.

What a patient-tracking system sees of a casualty, in the order it happens:
- arrival at the first facility: A04 (register) at a Role 1, A01 (admit) at a Role 2, 3 or 4;
- arrival at each later facility: A02 (transfer), the previous facility as the prior location;
- triage and first vital signs taken there: A08 (update), with OBX segments (LOINC for the vital
  signs as in the FHIR output; triage in a local code system, `99PGN`, since triage has no
  standard code) and DG1 segments for the conditions (SNOMED CT, coding system `SCT`); a
  casualty of a medical plan who died there while waiting, found failing before the death:
  another A08 with the vital signs then (no triage OBX);
- leaving the theatre's chain: A03 (discharge) with the disposition (HL7 table 0112: 01 returned
  to duty, 02 evacuated to a Role 4 at home, when the last theatre facility sent the casualty
  off, 20 died, with the death time and indicator in PID-29/30).
The messages are those of the theatre's facilities (Roles 1 to 3): a Role 4 is at home, outside
the tracking system the messages are for. A casualty killed in action never reached a facility:
no ADT event is theirs (they are in every other output).

The file holds one message per line: segments end with CR as the standard says, each message with
an LF after it, so `split(b"\\n")` gives the messages, each ready to be framed for MLLP. Every
value comes from the patient record (no clock, no random): the same patient gives the same bytes,
and the message control id (MSH-10, 20 characters) is derived from the patient id and the
message's place in the patient's messages. Text is escaped as the standard says (`\\F\\` for
`|`, and so on).

Messages are built here as text for speed (a patient in a few microseconds; the well-kept library
hl7apy builds about a hundred messages a second); the tests parse and validate every message of a
job with hl7apy at its strict level.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import lru_cache
from uuid import UUID

from patientgen.generator import codes
from patientgen.generator.patient import Patient, Visit, Vitals

FILE = "adt.hl7"
VERSION = "2.5.1"
SENDING_APPLICATION = "PATIENTGEN"
RECEIVING_APPLICATION = "TRACKING"
#: The local coding system of the triage category (HL7's pattern for local systems: 99zzz).
TRIAGE_SYSTEM = "99PGN"
#: HL7 table 0112 (discharge disposition) of the ways a casualty leaves the theatre's chain.
RETURNED, EVACUATED, EXPIRED = "01", "02", "20"
#: Facilities in the theatre, whose tracking system the messages are for: a Role 4 is at home.
THEATRE = frozenset({"R1", "R2", "R3"})
#: PV1-2 patient class: a Role 1 sees casualties as emergencies, a hospital admits them.
PATIENT_CLASS = {"R1": "E", "R2": "I", "R3": "I", "R4": "I"}

_UCUM = {
    "heart_rate": "/min",
    "respiratory_rate": "/min",
    "systolic_bp": "mm[Hg]",
    "diastolic_bp": "mm[Hg]",
    "spo2": "%",
    "temperature_c": "Cel",
    "gcs": "{score}",
    "pain": "{score}",
}
_ESCAPES = str.maketrans({"\\": "\\E\\", "|": "\\F\\", "^": "\\S\\", "&": "\\T\\", "~": "\\R\\"})


def _text(value: str) -> str:
    return value.translate(_ESCAPES).replace("\r", " ").replace("\n", " ")


def _ts(value: datetime) -> str:
    """DTM in UTC with its offset: YYYYMMDDHHMMSS+0000."""
    return value.strftime("%Y%m%d%H%M%S+0000")


#: The longest namespace id (HD.1, of MSH-4 and of a location's facility) HL7 v2.5.1 allows.
NAMESPACE_LENGTH = 20


@lru_cache(maxsize=4096)
def facility_namespace(facility_id: str) -> str:
    """The namespace id (HD.1) of a facility: its id when that fits in NAMESPACE_LENGTH; else its
    first 11 characters, "-" and 8 hex digits of the id's sha256 (one per unit: `R1-<front>-<k>`
    of a long front name)."""
    if len(facility_id) <= NAMESPACE_LENGTH:
        return facility_id
    digest = hashlib.sha256(facility_id.encode("utf-8")).hexdigest()[:8]
    return f"{facility_id[: NAMESPACE_LENGTH - 9]}-{digest}"


def _location(visit: Visit) -> str:
    """PL: point of care ^ room ^ bed ^ facility (HD); the facility is the unit's namespace."""
    return f"{visit.facility}^^^{_text(facility_namespace(visit.facility_id))}"


class _Messages:
    """The messages of one patient, numbered in order."""

    def __init__(self, p: Patient) -> None:
        self.p = p
        self.prefix = UUID(p.id).hex[:17]
        self.out: list[str] = []
        self.disposition = RETURNED
        pid = [""] * 29
        pid[0:2] = ["PID", "1"]
        pid[3] = f"{p.id}^^^{SENDING_APPLICATION}^MR~{_text(p.service_number)}^^^{p.nationality}"
        pid[5] = f"{_text(p.family_name)}^{_text(p.given_name)}"
        pid[7] = f"{p.birth_date:%Y%m%d}"
        pid[8] = "M" if p.gender == "male" else "F"
        pid[28] = f"{p.nationality}^^ISO3166_1"  # nationality
        self.pid = "|".join(pid)  # PID-29 and 30 (death) are added to a death's message

    def add(
        self,
        event: str,
        structure: str,
        at: datetime,
        visit: Visit,
        body: list[str],
        prior: Visit | None = None,
        died: datetime | None = None,
    ) -> None:
        stamp = _ts(at)
        control = f"{self.prefix}{len(self.out):03d}"
        pid = self.pid if died is None else f"{self.pid}|{_ts(died)}|Y"
        pv1 = self._pv1(visit, prior, at if event == "A03" else None)
        segments = [
            f"MSH|^~\\&|{SENDING_APPLICATION}|{_text(facility_namespace(visit.facility_id))}|"
            f"{RECEIVING_APPLICATION}|THEATRE|{stamp}||ADT^{event}^{structure}|{control}|P|"
            f"{VERSION}",
            f"EVN|{event}|{stamp}",
            pid,
            pv1,
            *body,
        ]
        self.out.append("\r".join(segments) + "\r\n")

    def _pv1(self, visit: Visit, prior: Visit | None, discharged: datetime | None) -> str:
        fields = [""] * 46
        fields[0] = "PV1"
        fields[1] = "1"
        fields[2] = PATIENT_CLASS.get(visit.facility, "E")
        fields[3] = _location(visit)
        if prior is not None:
            fields[6] = _location(prior)
        fields[19] = f"{self.p.id}-{visit.facility}"
        fields[44] = _ts(visit.arrived_at)
        if discharged is not None:
            fields[36] = self.disposition
            fields[45] = _ts(discharged)
        return "|".join(fields).rstrip("|")

    def update(self, visit: Visit, vitals: Vitals | None, triage: bool = True) -> list[str]:
        """OBX of the triage (unless `triage` is False) and of `vitals` taken at `visit`, DG1 of
        the patient's conditions."""
        obx: list[str] = []
        if triage and visit.triage is not None:
            name = codes.TRIAGE[visit.triage]
            obx.append(
                f"OBX|{len(obx) + 1}|CWE|TRIAGE^Triage category^{TRIAGE_SYSTEM}||"
                f"{visit.triage}^{name}^{TRIAGE_SYSTEM}||||||F|||{_ts(visit.arrived_at)}"
            )
        if vitals is not None:
            taken = _ts(vitals.taken_at)
            for field, loinc in codes.VITALS_LOINC.items():
                value = getattr(vitals, field)
                display = _text(codes.LOINC[loinc])
                kind = "ST" if field == "avpu" else "NM"
                unit = f"{_UCUM[field]}^^UCUM" if field in _UCUM else ""
                obx.append(
                    f"OBX|{len(obx) + 1}|{kind}|{loinc}^{display}^LN||{value}|{unit}|||||F|||"
                    f"{taken}"
                )
        dg1 = [
            f"DG1|{n}||{c.code}^{_text(c.display)}^SCT||{_ts(c.onset)}|W"
            for n, c in enumerate(self.p.conditions, 1)
        ]
        return obx + dg1


def encode(p: Patient) -> bytes:
    """The ADT messages of one patient, one per line (nothing for a casualty killed in action)."""
    messages = _Messages(p)
    prior: Visit | None = None
    for visit in (v for v in p.visits if v.facility in THEATRE):
        if prior is None:
            event = "A04" if visit.facility == "R1" else "A01"
            messages.add(event, "ADT_A01", visit.arrived_at, visit, [])
        else:
            messages.add("A02", "ADT_A02", visit.arrived_at, visit, [], prior=prior)
        if visit.triage is not None or visit.vitals is not None:
            at = visit.vitals.taken_at if visit.vitals is not None else visit.arrived_at
            messages.add("A08", "ADT_A01", at, visit, messages.update(visit, visit.vitals))
        failing: Vitals | None = getattr(visit, "deterioration", None)
        if failing is not None:  # found failing before dying there while waiting
            update = messages.update(visit, failing, triage=False)
            messages.add("A08", "ADT_A01", failing.taken_at, visit, update)
        prior = visit
    if prior is None:
        return b""
    if p.outcome_facility not in THEATRE:  # sent home (to a Role 4), whatever came after
        messages.disposition = EVACUATED
        messages.add("A03", "ADT_A03", prior.departed_at or p.outcome_at, prior, [])
    elif p.outcome == "RTD":
        messages.add("A03", "ADT_A03", p.outcome_at, prior, [])
    else:  # died at the facility
        messages.disposition = EXPIRED
        messages.add("A03", "ADT_A03", p.outcome_at, prior, [], died=p.outcome_at)
    return "".join(messages.out).encode("utf-8")
