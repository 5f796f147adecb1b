"""`mel.csv`: the exercise's master events list (MEL/MSEL), one inject per row, in exercise time.

Columns (COLUMNS): serial, exercise_time, from, to, method, subject, message, expected_action.
Injects, each a pure function of the patients (no clock, no random):
- one per **arrival** of a casualty at a facility (Roles 1 to 4): the casualty, their MIST and
  signs on arrival, what the facility is expected to do (triage, treatment, disposition);
- one per **mass-casualty event** that has casualties in the job: its scheduled time (the
  generator's plan), front, kind of fighting and the job's casualties of it by triage;
- one per **notable deterioration** between two consecutive vital-sign sets of a casualty (as
  formats.news2 defines it), at the time of the later set (with a medical plan, the signs of a
  casualty found failing before it died waiting are the last set: generator.patient.taken).

Order: by exercise time (RFC 3339 UTC, whole seconds), then kind (event, arrival,
deterioration), then the casualty index (the event id for an event), then the place in the
casualty's path; serial numbers count 1, 2, ... in that order. The order is total, so the file
never depends on how the patients were chunked.

How it is joined (formats.bundle): a chunk collects its injects (`Collector`) and writes them as
a *part*: one JSON array per line, already sorted, an event's casualties of that chunk counted
in one row. The join streams every part through a k-way merge (heapq.merge: one row per part in
memory), adds up the rows of one event that several chunks hold (they are adjacent: same key),
numbers the rows and writes the CSV (RFC 4180, CRLF, header first). A one-chunk run goes
through the same merge of its one part, so its bytes are those of any chunking.
"""

from __future__ import annotations

import csv
import heapq
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any

import orjson

from patientgen.formats import news2
from patientgen.generator import codes
from patientgen.generator.coherence import retriage
from patientgen.generator.patient import DEATH_OUTCOMES, Patient, Visit, Vitals, taken
from patientgen.generator.plan import plan_for
from patientgen.scenario import Scenario

FILE = "mel.csv"
COLUMNS: tuple[str, ...] = (
    "serial",
    "exercise_time",
    "from",
    "to",
    "method",
    "subject",
    "message",
    "expected_action",
)
#: Kinds of injects, in their tie-break order at the same second.
EVENT, ARRIVAL, DETERIORATION = 0, 1, 2
#: Casualty counts of an event row: all, T1, T2, T3, T4, untriaged, killed in action.
_COUNTS = ("T1", "T2", "T3", "T4")
_BATCH = 256


def _header() -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(COLUMNS)
    return buffer.getvalue().encode("utf-8")


HEADER = _header()


def _ts(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hm(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d %b %H:%MZ")


def signs(v: Vitals) -> str:
    """The vital signs in one line, as a controller reads them out."""
    return (
        f"HR {v.heart_rate}, RR {v.respiratory_rate}, BP {v.systolic_bp}/{v.diastolic_bp}, "
        f"SpO2 {v.spo2}%, temp {v.temperature_c:.1f} C, GCS {v.gcs} ({v.avpu}), "
        f"pain {v.pain}/10, NEWS2 {news2.score(v)}"
    )


def _who(p: Patient) -> str:
    return (
        f"{p.family_name}, {p.given_name} ({p.service_number}, {p.nationality}, "
        f"{'M' if p.gender == 'male' else 'F'}, blood {p.blood_group})"
    )


def _mechanism(p: Patient) -> str:
    what = p.mechanism or p.category.replace("_", " ")
    return f"{what} ({p.warfare})" if p.category == "battle_injury" else what


def _injuries(p: Patient) -> str:
    return "; ".join(
        f"{c.display} ({c.body_site + ', ' if c.body_site else ''}{c.severity})"
        for c in p.conditions
    )


def _triage(value: str | None) -> str:
    return f"{value} {codes.TRIAGE[value]}" if value is not None else "none"


class Collector:
    """The injects of one chunk's patients (memory: one chunk's rows)."""

    def __init__(self, scenario: Scenario) -> None:
        plan = plan_for(scenario)
        self._events = {e.event_id: e for e in plan.events}
        self._fronts = [front.name for front in plan.fronts]
        self._start_ts = plan.start_ts
        self._rows: list[list[Any]] = []
        self._mascal: dict[str, list[int]] = {}

    def add(self, p: Patient) -> None:
        ident = f"{p.index:010d}"
        if p.event_id is not None:
            counts = self._mascal.setdefault(p.event_id, [0] * (len(_COUNTS) + 3))
            counts[0] += 1
            if p.triage is None:
                counts[len(_COUNTS) + 1] += 1
            else:
                counts[1 + _COUNTS.index(p.triage)] += 1
            if p.outcome == "KIA":
                counts[len(_COUNTS) + 2] += 1
        visits = p.visits
        done: list[str] = []  # treatment before the current facility
        for k, visit in enumerate(visits):
            if visit.facility != "POI":
                self._rows.append(_arrival(p, ident, k, visits[k - 1] if k else None, done))
            done.extend(proc.display for proc in visit.procedures if proc.display not in done)
        measured = [(k, v, signs) for k, v in enumerate(visits) for signs in taken(v)]
        for (_, _, before), (k, visit, after) in pairwise(measured):
            reasons = news2.deterioration(before, after)
            if reasons:
                self._rows.append(_deterioration(p, ident, k, visit, after, reasons))

    def part(self) -> bytes:
        """The chunk's part: its rows sorted, one JSON array per line."""
        rows = list(self._rows)
        for event_id, counts in self._mascal.items():
            event = self._events[event_id]
            at = datetime.fromtimestamp(self._start_ts + event.offset, UTC)
            front = self._fronts[event.front]
            rows.append([_ts(at), EVENT, event_id, 0, front, event.warfare, counts])
        rows.sort(key=_key)
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def _arrival(p: Patient, ident: str, k: int, prior: Visit | None, done: list[str]) -> list[Any]:
    visit = p.visits[k]
    came = prior.facility_id if prior is not None else "point of injury"
    transit = visit.transit_minutes
    message = f"{_who(p)} arrives from {came}"
    if transit is not None:
        message += f" after {transit:.0f} min in transit"
    message += f". M: {_mechanism(p)}, {_hm(p.injured_at)}. I: {_injuries(p) or 'none'}. "
    message += f"S: {signs(visit.vitals) if visit.vitals is not None else 'not taken'}. "
    message += f"T: {', '.join(done) or 'none'}."
    action = (
        f"Receive and triage (expected {_triage(visit.triage)})"
        if visit.triage is not None
        else "Receive and admit"
    )
    here = [proc.display for proc in visit.procedures]
    if here:
        action += f"; treat: {', '.join(here)}"
    action += "; " + _disposition(p, k)
    subject = f"Arrival of casualty {p.id} at {visit.facility_id}"
    return [_ts(visit.arrived_at), ARRIVAL, ident, k, came, visit.facility_id, "role player",
            subject, message, action]  # fmt: skip


def _disposition(p: Patient, k: int) -> str:
    visit = p.visits[k]
    if k + 1 < len(p.visits):
        following = p.visits[k + 1]
        departs = visit.departed_at or following.arrived_at
        return f"evacuate to {following.facility_id} (departs {_hm(departs)})"
    if p.outcome in DEATH_OUTCOMES:
        return f"the casualty dies here despite treatment ({_hm(p.outcome_at)})"
    if p.outcome == "RTD":
        return f"return to duty ({_hm(p.outcome_at)})"
    return "admit (end of the theatre's chain)"


def _deterioration(
    p: Patient, ident: str, k: int, visit: Visit, vitals: Vitals, reasons: list[str]
) -> list[Any]:
    message = (
        f"{_who(p)} deteriorates at {visit.facility_id}: {'; '.join(reasons)}. "
        f"Role player shows: {signs(vitals)}."
    )
    expected = visit.triage
    failing = vitals is getattr(visit, "deterioration", None)  # found failing after its triage
    if expected is not None and failing:
        expected = retriage(expected, vitals)
    action = (
        f"Recognise the deterioration, re-assess and re-triage (expected "
        f"{_triage(expected)}), escalate care"
    )
    subject = f"Deterioration of casualty {p.id} at {visit.facility_id}"
    return [_ts(vitals.taken_at), DETERIORATION, ident, k, "exercise control",
            visit.facility_id, "role player", subject, message, action]  # fmt: skip


def _key(row: list[Any]) -> tuple[str, int, str, int]:
    return row[0], row[1], row[2], row[3]


def merge(parts: Iterable[Iterable[list[Any]]]) -> Iterator[list[Any]]:
    """The rows of sorted parts in one sorted stream, the rows of one event added up."""
    pending: list[Any] | None = None
    for row in heapq.merge(*parts, key=_key):
        if pending is not None and row[1] == EVENT and _key(row) == _key(pending):
            pending[6] = [a + b for a, b in zip(pending[6], row[6], strict=True)]
            continue
        if pending is not None:
            yield pending
        pending = row
    if pending is not None:
        yield pending


def read_part(lines: Iterable[bytes]) -> Iterator[list[Any]]:
    """The rows of a part (or of a merged stream written like one)."""
    for line in lines:
        if line.strip():
            yield orjson.loads(line)


def encode_part_rows(rows: Iterable[list[Any]]) -> Iterator[bytes]:
    """Rows written back in the part form (an intermediate merge of many parts)."""
    for row in rows:
        yield orjson.dumps(row) + b"\n"


def _event_fields(row: list[Any]) -> list[str]:
    at, _, event_id, _, front, warfare, counts = row
    total, *by_triage, untriaged, kia = counts
    triaged = ", ".join(f"{name} {n}" for name, n in zip(_COUNTS, by_triage, strict=True))
    message = (
        f"Mass-casualty event {event_id} ({warfare}) on the {front} front: {total} casualties "
        f"({triaged}, not triaged {untriaged}); {kia} killed in action."
    )
    action = (
        f"Declare MASCAL on the {front} front: activate the MASCAL plan, alert the front's "
        f"Role 1 and Role 2 facilities, task evacuation assets, prepare to receive "
        f"{total - kia} casualties"
    )
    subject = f"MASCAL {event_id}: {total} casualties, {front} front"
    return [at, f"unit in contact, {front} front", f"PECC {front}", "radio", subject, message,
            action]  # fmt: skip


def encode(rows: Iterable[list[Any]]) -> Iterator[bytes]:
    """The CSV file of merged rows, header first, serials counted here, in blocks of bytes."""
    yield HEADER
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    pending = 0
    for serial, row in enumerate(rows, 1):
        if row[1] == EVENT:
            writer.writerow([serial, *_event_fields(row)])
        else:
            writer.writerow([serial, row[0], *row[4:]])
        pending += 1
        if pending == _BATCH:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending:
        yield buffer.getvalue().encode("utf-8")
