"""`patients.ndjson`: one patient record per line, plus the offsets index `patients.ndjson.idx`.

The record bytes are exactly those of `patients.json` (see formats.json). The index holds the
byte offset of every record as a little-endian uint64, so record k starts at byte `8 * k` of the
index: the API pages patients without parsing the file (bundle.read_patients).
"""

from __future__ import annotations

import sys
from array import array

FILE = "patients.ndjson"
INDEX_FILE = "patients.ndjson.idx"
OFFSET_SIZE = 8


def offsets_to_bytes(offsets: array) -> bytes:
    """Little-endian uint64 bytes of an array('Q') of offsets."""
    if sys.byteorder != "little":  # pragma: no cover - every supported machine is little-endian
        offsets = array("Q", offsets)
        offsets.byteswap()
    return offsets.tobytes()


def offsets_from_bytes(data: bytes) -> array:
    """The array('Q') of offsets in little-endian uint64 `data`."""
    offsets = array("Q")
    offsets.frombytes(data)
    if sys.byteorder != "little":  # pragma: no cover
        offsets.byteswap()
    return offsets
