"""`patients.json`: one JSON array of patient records.

A record is the Patient dataclass as orjson serialises it natively (fields in declaration order,
datetimes as RFC 3339 with a `Z` suffix). The array's brackets and the separators between parts
are written when the parts are joined, so a part holds records separated by `,\n` and nothing else.
"""

from __future__ import annotations

import orjson

from patientgen.generator.patient import Patient

FILE = "patients.json"

#: The one set of orjson options every patient record is written with.
OPTIONS = orjson.OPT_UTC_Z
PREFIX = b"[\n"
SEPARATOR = b",\n"
SUFFIX = b"\n]\n"
EMPTY = b"[]\n"


def encode(patient: Patient) -> bytes:
    """The patient as compact JSON bytes (no newline inside: orjson escapes control chars)."""
    return orjson.dumps(patient, option=OPTIONS)
