"""Reading a finished run's records: patients.ndjson located through its offsets index
(patients.ndjson.idx), a page or chosen records at a time, without parsing the file. The
NDJSON's bytes come from a Records source: the local file (FileRecords) or elsewhere (an object
in shared storage, jobs/files.py). Nothing here writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from patientgen.formats import ndjson as ndjson_format


def iter_index(out_dir: Path) -> Iterator[int]:
    """Every record offset of out_dir/patients.ndjson.idx, in order."""
    with open(Path(out_dir) / ndjson_format.INDEX_FILE, "rb") as f:
        while block := f.read(8 * 65536):
            yield from ndjson_format.offsets_from_bytes(block)


class Records(Protocol):
    """Where the bytes of patients.ndjson are read: a local file (FileRecords), or elsewhere (an
    object in shared storage, jobs/files.py)."""

    def size(self) -> int: ...

    def read(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes at each (offset, length), in the order given."""
        ...


class FileRecords:
    """patients.ndjson in a folder: one pread per span."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        return self.path.stat().st_size

    def read(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            return [os.pread(f.fileno(), length, offset) for offset, length in spans]


def read_patients(
    out_dir: Path, offset: int, limit: int, records: Records | None = None
) -> list[bytes]:
    """Records offset..offset+limit-1 of patients.ndjson (JSON bytes, no newline), via the index
    in out_dir; the NDJSON is read from `records` (default: the file in out_dir).

    Reads only the index entries and the bytes of the page, in one read; past the end gives
    fewer (or no) records.
    """
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
    out_dir = Path(out_dir)
    data = records or FileRecords(out_dir / ndjson_format.FILE)
    index_path = out_dir / ndjson_format.INDEX_FILE
    count = index_path.stat().st_size // ndjson_format.OFFSET_SIZE
    if limit == 0 or offset >= count:
        return []
    end = min(count, offset + limit)
    with open(index_path, "rb") as f:
        f.seek(ndjson_format.OFFSET_SIZE * offset)
        wanted = end - offset + (1 if end < count else 0)
        offsets = ndjson_format.offsets_from_bytes(f.read(ndjson_format.OFFSET_SIZE * wanted))
    first = offsets[0]
    last = offsets[end - offset] if end < count else data.size()
    (blob,) = data.read([(first, last - first)])
    return blob.split(b"\n")[:-1]


def read_records(
    out_dir: Path, positions: Sequence[int], records: Records | None = None
) -> list[bytes]:
    """Records at these positions of patients.ndjson (JSON bytes, no newline), in the order
    given: each located through the offsets index in out_dir, all read in one call of
    `records` (default: the file in out_dir)."""
    out_dir = Path(out_dir)
    data = records or FileRecords(out_dir / ndjson_format.FILE)
    size = ndjson_format.OFFSET_SIZE
    spans = []
    with open(out_dir / ndjson_format.INDEX_FILE, "rb", buffering=0) as index:
        count = os.fstat(index.fileno()).st_size // size
        for position in positions:
            if not 0 <= position < count:
                raise IndexError(f"no record {position} (the file holds {count})")
            wanted = 2 if position + 1 < count else 1  # the last record ends with the file
            offsets = ndjson_format.offsets_from_bytes(
                os.pread(index.fileno(), size * wanted, size * position)
            )
            last = offsets[1] if wanted == 2 else data.size()
            spans.append((offsets[0], last - offsets[0]))
    return [record.rstrip(b"\n") for record in data.read(spans)]
