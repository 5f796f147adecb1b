"""`patients.attrs`: the attribute index of `patients.ndjson`, internal to the service.

One fixed-width record per patient, in the order of patients.ndjson (record k is patient k), so
the API filters, sorts, counts and finds casualties without parsing the NDJSON. Written by
formats.bundle next to the offsets index: per chunk a part, joined by plain concatenation.

Invariants:
- Every code depends on the scenario alone (fronts in the scenario's order, nations in
  NATO_MEMBERS' fixed order, the other fields in the fixed orders below), never on which
  patients a chunk holds: the joined file is byte-identical whatever the chunking.
- The dictionary (`dictionary(scenario)`) maps codes to names; it is written next to the
  records as `patients.attrs.json` so a reader needs nothing else.
- Neither file is an output of the job: both are listed with the internal formats
  (INTERNAL_FORMATS), which the job's file list, its archive and the client leave out.

Record layout (RECORD_SIZE bytes, little-endian; every field 8-byte aligned, so the whole file
read as int64 gives each time column as a stride):
    int64 injured_at (microseconds since the Unix epoch, UTC; the arrival at the point of injury)
    int64 outcome_at (same)
    16 bytes patient id (the UUID's bytes)
    uint8 front, nation, category, triage, outcome, facility; 2 bytes zero
    int64 arrival at R1, R2, R3, R4 (same unit; NEVER where the casualty did not get there)
A casualty visits each role at most once, in the order POI, R1 … R4 (skipping some), and the
last visit is its outcome facility: the arrival times and outcome_at give its whole path through
the chain (the replay of the web page is drawn from them alone). Version 2 added the arrivals.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any

from patientgen.generator.patient import Patient
from patientgen.scenario import NATO_MEMBERS, Scenario

FILE = "patients.attrs"
DICTIONARY_FILE = "patients.attrs.json"
FORMAT = "attributes"
#: Formats of files a run writes for the service's own reads, never offered as outputs.
INTERNAL_FORMATS: frozenset[str] = frozenset({"index", FORMAT})
VERSION = 2

_RECORD = struct.Struct("<qq16s6B2xqqqq")
RECORD_SIZE = _RECORD.size  # 72
#: Record size of each version a reader accepts (version 1: the same without the arrivals).
RECORD_SIZES: dict[int, int] = {1: 40, VERSION: RECORD_SIZE}
#: Byte offset of each one-byte code field in a record.
CODE_OFFSETS: dict[str, int] = {
    "front": 32,
    "nation": 33,
    "category": 34,
    "triage": 35,
    "outcome": 36,
    "facility": 37,
}
ID_OFFSET = 16
#: Index of each time field among a record's int64 words (RECORD_SIZE // 8 words a record).
TIME_WORDS: dict[str, int] = {"injured_at": 0, "outcome_at": 1}
#: Index of the arrival time at each role after the point of injury among a record's words.
ARRIVAL_WORDS: dict[str, int] = {"R1": 5, "R2": 6, "R3": 7, "R4": 8}
#: The arrival time of a role the casualty never reached.
NEVER = -(2**63)

CATEGORIES: tuple[str, ...] = ("battle_injury", "non_battle_injury", "disease")
TRIAGES: tuple[str, ...] = ("none", "T1", "T2", "T3", "T4")  # none: died before any triage
OUTCOMES: tuple[str, ...] = ("KIA", "DOW", "DIED", "RTD", "EVACUATED_R4")
FACILITIES: tuple[str, ...] = ("POI", "R1", "R2", "R3", "R4")
NATIONS: tuple[str, ...] = tuple(NATO_MEMBERS)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def dictionary(scenario: Scenario) -> dict[str, list[str]]:
    """Names of the codes of each field: code k of field f is dictionary[f][k]."""
    return {
        "front": [front.name for front in scenario.fronts],
        "nation": list(NATIONS),
        "category": list(CATEGORIES),
        "triage": list(TRIAGES),
        "outcome": list(OUTCOMES),
        "facility": list(FACILITIES),
    }


def dictionary_bytes(scenario: Scenario) -> bytes:
    """The dictionary file's bytes (sorted keys: the same scenario gives the same bytes)."""
    import orjson

    document: dict[str, Any] = {"version": VERSION, "codes": dictionary(scenario)}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS) + b"\n"


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND  # exact: integer arithmetic on timedeltas


class Encoder:
    """Turns patients into records for one scenario (code tables built once)."""

    def __init__(self, scenario: Scenario) -> None:
        codes = dictionary(scenario)
        self._tables = {
            field: {name: k for k, name in enumerate(names)} for field, names in codes.items()
        }

    def encode(self, p: Patient) -> bytes:
        t = self._tables
        arrivals = dict.fromkeys(ARRIVAL_WORDS, NEVER)
        for visit in p.visits:
            if visit.facility in arrivals:
                arrivals[visit.facility] = _micros(visit.arrived_at)
        try:
            return _RECORD.pack(
                _micros(p.injured_at),
                _micros(p.outcome_at),
                bytes.fromhex(p.id.replace("-", "")),  # the UUID's bytes, without uuid.UUID
                t["front"][p.front],
                t["nation"][p.nationality],
                t["category"][p.category],
                t["triage"][p.triage or "none"],
                t["outcome"][p.outcome],
                t["facility"][p.outcome_facility],
                *arrivals.values(),
            )
        except KeyError as exc:  # a value the scenario's dictionary does not know
            raise ValueError(f"patient {p.index}: no code for {exc.args[0]!r}") from None
