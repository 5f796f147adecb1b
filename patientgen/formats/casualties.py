"""Queries over the attribute index (formats.attributes): filter, sort, count, facets, find by id.

Read-only: the index files are memory-mapped, never copied whole into Python objects, and the
NDJSON is never parsed. A filter is a translate() of one strided byte column into a 0/1 mask
(masks of several fields ANDed as integers); an unsorted page is itertools.compress over the
mask; a sorted page walks a permutation computed once per loaded index and key (a counting sort
for code fields, a stable sort for times), so every order is deterministic: ties keep the
ascending patient order, and a descending sort is the ascending permutation reversed.

An opened index is cached per file (path, inode, size, mtime): a job's files never change once
it is completed, and a regenerated job has new files, hence a new key.
"""

from __future__ import annotations

import mmap
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import compress, islice
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson

from patientgen.formats import attributes

#: Filterable fields, in the order the API and the page show them.
FIELDS: tuple[str, ...] = ("front", "nation", "category", "triage", "outcome", "facility")
#: Sort keys (a leading "-" sorts descending); "index" is the order of the files.
SORT_KEYS: tuple[str, ...] = ("index", "injured_at", "outcome_at", *FIELDS)
_CACHED = 8


class IndexMissing(LookupError):
    """The job's folder has no attribute index (a job written before it existed)."""


@dataclass
class CasualtyIndex:
    """One job's attribute index, memory-mapped, with its dictionary."""

    count: int
    codes: dict[str, list[str]]
    data: mmap.mmap | bytes
    _columns: dict[str, bytes] = field(default_factory=dict)
    _orders: dict[str, array] = field(default_factory=dict)
    _facets: dict[str, list[dict[str, Any]]] | None = None

    def column(self, name: str) -> bytes:
        """The one-byte codes of field `name`, one per patient."""
        found = self._columns.get(name)
        if found is None:
            offset = attributes.CODE_OFFSETS[name]
            found = self._columns[name] = self.data[offset :: attributes.RECORD_SIZE]
        return found

    def order(self, key: str) -> array:
        """Positions of every patient in ascending order of `key` (ties: ascending position)."""
        found = self._orders.get(key)
        if found is None:
            found = self._orders[key] = self._sorted(key)
        return found

    def _sorted(self, key: str) -> array:
        if key == "index":
            return array("I", range(self.count))
        if key in attributes.TIME_WORDS:
            words = memoryview(self.data).cast("q")
            times = words[attributes.TIME_WORDS[key] :: attributes.RECORD_SIZE // 8].tolist()
            return array("I", sorted(range(self.count), key=times.__getitem__))
        names = self.codes[key]
        ranks: Iterable[int] = range(len(names))
        if key == "nation":  # by alpha-3 code; the other fields' codes are in a meaningful
            ranks = sorted(ranks, key=names.__getitem__)  # order already (T1 before T2 …)
        column = self.column(key)
        positions = array("I")
        for code in ranks:
            positions.extend(compress(range(self.count), column.translate(_table([code]))))
        return positions


def _table(codes: Iterable[int]) -> bytes:
    """A translate() table mapping the given codes to 1 and every other byte to 0."""
    table = bytearray(256)
    for code in codes:
        table[code] = 1
    return bytes(table)


_cache: OrderedDict[tuple[str, int, int, int], CasualtyIndex] = OrderedDict()
_cache_lock = threading.Lock()


def open_index(out_dir: Path) -> CasualtyIndex:
    """The attribute index of the run in out_dir (cached while its files stay the same)."""
    path = Path(out_dir) / attributes.FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise IndexMissing(str(path)) from None
    key = (str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    document = orjson.loads((Path(out_dir) / attributes.DICTIONARY_FILE).read_bytes())
    if document.get("version") != attributes.VERSION:
        raise IndexMissing(f"{path}: version {document.get('version')}")
    data: mmap.mmap | bytes = b""
    if stat.st_size:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = mmap.mmap(fd, stat.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
    index = CasualtyIndex(stat.st_size // attributes.RECORD_SIZE, document["codes"], data)
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > _CACHED:
            _cache.popitem(last=False)
    return index


def split_values(raw: Iterable[str], known: Iterable[str]) -> list[str]:
    """Filter values from a query: repeated parameters and comma lists (a known value that holds
    a comma, such as a front's name, is taken whole)."""
    names = set(known)
    values: list[str] = []
    for item in raw:
        if item in names:
            values.append(item)
        else:
            values.extend(part.strip() for part in item.split(",") if part.strip())
    return values


def problems(
    index: CasualtyIndex, filters: Mapping[str, list[str]], sort: str | None
) -> list[dict[str, Any]]:
    """Every unknown filter value and sort key, as the API's `errors` entries."""
    found: list[dict[str, Any]] = []
    for name, values in filters.items():
        known = index.codes[name]
        for value in values:
            if value not in known:
                found.append(
                    {
                        "field": name,
                        "loc": ["query", name],
                        "message": f"unknown {name} {value!r} (this job has: {', '.join(known)})",
                        "type": "unknown_value",
                    }
                )
    if sort is not None and sort.removeprefix("-") not in SORT_KEYS:
        found.append(
            {
                "field": "sort",
                "loc": ["query", "sort"],
                "message": f"unknown sort key {sort!r} (choose from {', '.join(SORT_KEYS)}, "
                "with a leading '-' for descending)",
                "type": "unknown_value",
            }
        )
    return found


def mask(index: CasualtyIndex, filters: Mapping[str, list[str]]) -> bytes | None:
    """One byte per patient, 1 where every filter matches (None: no filter, all match). Values
    must be known (see problems); several values of one field match any of them."""
    combined: int | None = None
    for name, values in filters.items():
        if not values:
            continue
        codes = index.codes[name]
        column = index.column(name).translate(_table(codes.index(v) for v in values))
        bits = int.from_bytes(column, "little")
        combined = bits if combined is None else combined & bits
    if combined is None:
        return None
    return combined.to_bytes(index.count, "little")


def select(
    index: CasualtyIndex,
    filters: Mapping[str, list[str]],
    sort: str,
    offset: int,
    limit: int,
) -> tuple[int, list[int]]:
    """(number of matching patients, positions of matches offset..offset+limit-1 in `sort`)."""
    matches = mask(index, filters)
    total = index.count if matches is None else matches.count(1)
    key = sort.removeprefix("-")
    descending = sort.startswith("-")
    stop = offset + limit
    if key == "index" and not descending:
        if matches is None:
            return total, list(range(min(offset, total), min(stop, total)))
        return total, list(islice(compress(range(index.count), matches), offset, stop))
    order = index.order(key)
    walk: Iterable[int] = reversed(order) if descending else order
    if matches is not None:
        walk = (position for position in walk if matches[position])
    return total, list(islice(walk, offset, stop))


def facets(index: CasualtyIndex) -> dict[str, list[dict[str, Any]]]:
    """For each field, the values present in the job and how many patients have each (in the
    field's dictionary order, values with no patient left out). Counted once per index."""
    if index._facets is not None:
        return index._facets
    result: dict[str, list[dict[str, Any]]] = {}
    for name in FIELDS:
        column = index.column(name)
        result[name] = [
            {"value": value, "count": count}
            for code, value in enumerate(index.codes[name])
            if (count := column.count(code))
        ]
    index._facets = result
    return result


def find(index: CasualtyIndex, patient_id: UUID) -> int | None:
    """The position of the patient with this id, or None (a search of the index's id bytes)."""
    needle = patient_id.bytes
    start = 0
    while (at := index.data.find(needle, start)) >= 0:
        if at % attributes.RECORD_SIZE == attributes.ID_OFFSET:
            return at // attributes.RECORD_SIZE
        start = at + 1
    return None
