"""`patients.csv`: one row per patient, flat columns (documented in docs/formats.md).

RFC 4180: comma separated, CRLF line ends, fields quoted by the csv module when they contain a
comma, a quote or a line break. The header is written once, when the parts are joined. Lists
(conditions, procedures, the path through the chain of care) are joined with `|`; times are
RFC 3339 UTC with a `Z`, exactly as in the JSON output.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from patientgen.generator.patient import Patient, Severity

FILE = "patients.csv"

COLUMNS: tuple[str, ...] = (
    "index",
    "id",
    "service_number",
    "given_name",
    "family_name",
    "gender",
    "birth_date",
    "age",
    "blood_group",
    "nationality",
    "front",
    "category",
    "warfare",
    "mechanism",
    "mechanism_code",
    "injured_at",
    "mass_casualty",
    "event_id",
    "triage",
    "outcome",
    "outcome_at",
    "outcome_facility",
    "minutes_to_outcome",
    "facilities",
    "facility_ids",
    "condition_count",
    "max_severity",
    "condition_codes",
    "conditions",
    "body_sites",
    "procedure_count",
    "procedure_codes",
    "vitals_facility",
    "heart_rate",
    "respiratory_rate",
    "systolic_bp",
    "diastolic_bp",
    "spo2",
    "temperature_c",
    "gcs",
    "avpu",
    "pain",
)

#: The columns a scenario with a medical plan adds (after COLUMNS): the total waits of the
#: casualty by kind (minutes), what was waited for (`kind:facility:what:minutes`, `|`-joined),
#: the units it was diverted from, and the wait that contributed to its death.
CHAIN_COLUMNS: tuple[str, ...] = (
    "wait_evacuation_minutes",
    "wait_treatment_minutes",
    "wait_surgery_minutes",
    "wait_bed_minutes",
    "waits",
    "diverted_from",
    "death_delay_kind",
    "death_delay_minutes",
    "death_delay_waited_for",
    "died_waiting",
)

LIST_SEPARATOR = "|"
PATH_SEPARATOR = ">"
_SEVERITY_RANK: dict[Severity, int] = {"mild": 0, "moderate": 1, "severe": 2, "critical": 3}
_NO_VITALS = (None,) * 10


def _ts(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _header(columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(columns)
    return buffer.getvalue().encode("utf-8")


#: The header row, written once at the top of the joined file.
HEADER = _header(COLUMNS)
#: The header row of a scenario with a medical plan.
CHAIN_HEADER = _header(COLUMNS + CHAIN_COLUMNS)


def row(p: Patient) -> list[object]:
    """The flat CSV row of one patient, in COLUMNS order."""
    injured = p.injured_at
    birth = p.birth_date
    age = injured.year - birth.year - ((injured.month, injured.day) < (birth.month, birth.day))
    conditions = p.conditions
    procedures = [proc.code for visit in p.visits for proc in visit.procedures]
    vitals_row: tuple[object, ...] = _NO_VITALS
    for visit in p.visits:
        v = visit.vitals
        if v is not None:
            vitals_row = (
                visit.facility,
                v.heart_rate,
                v.respiratory_rate,
                v.systolic_bp,
                v.diastolic_bp,
                v.spo2,
                v.temperature_c,
                v.gcs,
                v.avpu,
                v.pain,
            )
            break
    max_severity = max(
        (c.severity for c in conditions), key=_SEVERITY_RANK.__getitem__, default=None
    )
    return [
        p.index,
        p.id,
        p.service_number,
        p.given_name,
        p.family_name,
        p.gender,
        birth.isoformat(),
        age,
        p.blood_group,
        p.nationality,
        p.front,
        p.category,
        p.warfare,
        p.mechanism,
        p.mechanism_code,
        _ts(injured),
        "true" if p.mass_casualty else "false",
        p.event_id,
        p.triage,
        p.outcome,
        _ts(p.outcome_at),
        p.outcome_facility,
        round((p.outcome_at - injured).total_seconds() / 60.0, 1),
        PATH_SEPARATOR.join(v.facility for v in p.visits),
        PATH_SEPARATOR.join(v.facility_id for v in p.visits),
        len(conditions),
        max_severity,
        LIST_SEPARATOR.join(c.code for c in conditions),
        LIST_SEPARATOR.join(c.display for c in conditions),
        LIST_SEPARATOR.join(c.body_site or "" for c in conditions),
        len(procedures),
        LIST_SEPARATOR.join(procedures),
        *vitals_row,
    ]


def chain_row(p: Patient) -> list[object]:
    """The CHAIN_COLUMNS of a patient of a scenario with a medical plan."""
    totals = {"evacuation": 0.0, "treatment": 0.0, "surgery": 0.0, "bed": 0.0}
    listed = []
    diverted = []
    for visit in p.visits:
        for w in getattr(visit, "waits", ()):
            totals[w.kind] += w.minutes
            if w.minutes:
                listed.append(f"{w.kind}:{visit.facility}:{w.waited_for}:{w.minutes}")
        source = getattr(visit, "diverted_from", None)
        if source is not None:
            diverted.append(source)
    delay = getattr(p, "delay", None)
    return [
        *(round(totals[k], 1) for k in ("evacuation", "treatment", "surgery", "bed")),
        LIST_SEPARATOR.join(listed),
        LIST_SEPARATOR.join(diverted),
        delay.kind if delay is not None else None,
        delay.minutes if delay is not None else None,
        delay.waited_for if delay is not None else None,
        "true" if getattr(p, "died_waiting", False) else "false",
    ]


class CsvEncoder:
    """Collects rows in memory and hands them out as UTF-8 bytes (call `drain` often).
    `chain`: the scenario has a medical plan (rows carry CHAIN_COLUMNS too)."""

    __slots__ = ("_buffer", "_chain", "_writer")

    def __init__(self, chain: bool = False) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")
        self._chain = chain

    def add(self, patient: Patient) -> None:
        if self._chain:
            self._writer.writerow(row(patient) + chain_row(patient))
        else:
            self._writer.writerow(row(patient))

    def drain(self) -> bytes:
        data = self._buffer.getvalue().encode("utf-8")
        self._buffer.seek(0)
        self._buffer.truncate()
        return data
