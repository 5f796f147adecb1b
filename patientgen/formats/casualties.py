"""Queries over the attribute index (formats.attributes): filter, sort, count, facets, find by id,
and the replay's tracks (each casualty's path in times) and counters (arrivals, deaths and
returns to duty per role before a moment).

Read-only: the index files are memory-mapped, never copied whole into Python objects, and the
NDJSON is never parsed. A filter is a translate() of one strided byte column into a 0/1 mask
(masks of several fields ANDed as integers); an unsorted page is itertools.compress over the
mask; a sorted page walks a permutation computed once per loaded index and key (a counting sort
for code fields, a stable sort for times), so every order is deterministic: ties keep the
ascending patient order, and a descending sort is the ascending permutation reversed.

Time filters (TIME_FILTERS) are half-open: `X_before=T` keeps X < T and `X_after=T` keeps
X >= T, so the two partition the casualties; counters at T count what happened before T, and
the casualties "active" at T (injured_before=T and outcome_after=T) are exactly those whose later
events are not counted yet.

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
from patientgen.formats import ndjson as ndjson_format

#: The files of a job the queries here read, and the offsets index that finds each record.
INDEX_FILES: tuple[str, ...] = (
    attributes.FILE,
    attributes.DICTIONARY_FILE,
    ndjson_format.INDEX_FILE,
)
#: With the records themselves (patients.ndjson).
FILES: tuple[str, ...] = (*INDEX_FILES, ndjson_format.FILE)
#: Filterable fields, in the order the API and the page show them.
FIELDS: tuple[str, ...] = ("front", "nation", "category", "triage", "outcome", "facility")
#: Sort keys (a leading "-" sorts descending); "index" is the order of the files.
SORT_KEYS: tuple[str, ...] = ("index", "injured_at", "outcome_at", *FIELDS)
_CACHED = 8
#: Time filters: name -> (time field, True to keep times before the bound, False at or after it).
TIME_FILTERS: dict[str, tuple[str, bool]] = {
    "injured_before": ("injured_at", True),
    "injured_after": ("injured_at", False),
    "outcome_before": ("outcome_at", True),
    "outcome_after": ("outcome_at", False),
}
#: Columns of the replay, in order: the point of injury, then the roles.
ROLES: tuple[str, ...] = attributes.FACILITIES
DEATHS: frozenset[str] = frozenset({"KIA", "DOW", "DIED"})


class IndexMissing(LookupError):
    """The job's folder has no attribute index (a job written before it existed)."""


class NoArrivals(LookupError):
    """The job's attribute index is of version 1, written before it held the arrival times the
    replay needs (filters, sorts and lookups still work on it)."""


@dataclass
class CasualtyIndex:
    """One job's attribute index, memory-mapped, with its dictionary."""

    count: int
    codes: dict[str, list[str]]
    data: mmap.mmap | bytes
    record_size: int = attributes.RECORD_SIZE
    _columns: dict[str, bytes] = field(default_factory=dict)
    _orders: dict[str, array] = field(default_factory=dict)
    _facets: dict[str, list[dict[str, Any]]] | None = None

    def column(self, name: str) -> bytes:
        """The one-byte codes of field `name`, one per patient."""
        found = self._columns.get(name)
        if found is None:
            offset = attributes.CODE_OFFSETS[name]
            found = self._columns[name] = self.data[offset :: self.record_size]
        return found

    def times(self, word: int) -> list[int]:
        """The int64 word `word` of every record (a time column), in patient order."""
        words = memoryview(self.data).cast("q") if self.count else memoryview(b"").cast("q")
        return words[word :: self.record_size // 8].tolist()

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
            times = words[attributes.TIME_WORDS[key] :: self.record_size // 8].tolist()
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
    record_size = attributes.RECORD_SIZES.get(document.get("version"))  # type: ignore[arg-type]
    if record_size is None:
        raise IndexMissing(f"{path}: version {document.get('version')}")
    data: mmap.mmap | bytes = b""
    if stat.st_size:
        fd = os.open(path, os.O_RDONLY)
        try:
            data = mmap.mmap(fd, stat.st_size, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
    index = CasualtyIndex(stat.st_size // record_size, document["codes"], data, record_size)
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


def mask(
    index: CasualtyIndex,
    filters: Mapping[str, list[str]],
    bounds: Mapping[str, int] | None = None,
) -> bytes | None:
    """One byte per patient, 1 where every filter matches (None: no filter, all match). Values
    must be known (see problems); several values of one field match any of them. `bounds` are
    time filters (TIME_FILTERS names -> microseconds since the epoch)."""
    combined: int | None = None
    for name, bound in (bounds or {}).items():
        field_name, before = TIME_FILTERS[name]
        times = index.times(attributes.TIME_WORDS[field_name])
        keep = bytes(map(bound.__gt__ if before else bound.__le__, times))
        bits = int.from_bytes(keep, "little")
        combined = bits if combined is None else combined & bits
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
    bounds: Mapping[str, int] | None = None,
) -> tuple[int, list[int]]:
    """(number of matching patients, positions of matches offset..offset+limit-1 in `sort`)."""
    matches = mask(index, filters, bounds)
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
        if at % index.record_size == attributes.ID_OFFSET:
            return at // index.record_size
        start = at + 1
    return None


def require_arrivals(index: CasualtyIndex) -> None:
    """Raises NoArrivals for an index written before it held the arrival times."""
    if index.record_size != attributes.RECORD_SIZE:
        raise NoArrivals("the casualty index has no arrival times (version 1)")


def span(index: CasualtyIndex) -> tuple[int, int] | None:
    """(first injury, last outcome) of the whole job in microseconds; None for no patient."""
    if not index.count:
        return None
    injured = index.times(attributes.TIME_WORDS["injured_at"])
    outcomes = index.times(attributes.TIME_WORDS["outcome_at"])
    return min(injured), max(outcomes)


def tracks(index: CasualtyIndex, positions: Iterable[int]) -> list[dict[str, Any]]:
    """Each casualty's path: codes as names, and `times` (epoch milliseconds: injury, arrival
    at R1 … R4 or None where never reached, outcome)."""
    words = memoryview(index.data).cast("q") if index.count else None
    require_arrivals(index)
    stride = index.record_size // 8
    codes = index.codes
    found: list[dict[str, Any]] = []
    for position in positions:
        assert words is not None
        record = words[position * stride : (position + 1) * stride]
        base = position * index.record_size
        arrivals = [record[w] for w in attributes.ARRIVAL_WORDS.values()]
        found.append(
            {
                "index": position,
                "front": codes["front"][index.data[base + attributes.CODE_OFFSETS["front"]]],
                "nation": codes["nation"][index.data[base + attributes.CODE_OFFSETS["nation"]]],
                "triage": codes["triage"][index.data[base + attributes.CODE_OFFSETS["triage"]]],
                "outcome": codes["outcome"][index.data[base + attributes.CODE_OFFSETS["outcome"]]],
                "facility": codes["facility"][
                    index.data[base + attributes.CODE_OFFSETS["facility"]]
                ],
                "times": [
                    record[0] // 1000,
                    *(None if t == attributes.NEVER else t // 1000 for t in arrivals),
                    record[1] // 1000,
                ],
            }
        )
    return found


def counters(
    index: CasualtyIndex, filters: Mapping[str, list[str]], at: int
) -> dict[str, dict[str, int]]:
    """Per column (ROLES): casualties arrived, died there and returned to duty from there before
    `at` (microseconds), among those matching `filters`. Arrivals at POI are the injured."""
    require_arrivals(index)
    matches = mask(index, filters)
    every = range(index.count)
    chosen: Iterable[int] = every if matches is None else compress(every, matches)
    positions = list(chosen)
    result: dict[str, dict[str, int]] = {}
    columns = {"POI": index.times(attributes.TIME_WORDS["injured_at"])}
    for role, word in attributes.ARRIVAL_WORDS.items():
        columns[role] = index.times(word)
    for role in ROLES:
        times = columns[role]
        arrived = sum(1 for k in positions if attributes.NEVER < times[k] < at)
        result[role] = {"arrivals": arrived, "deaths": 0, "rtd": 0}
    outcome_at = index.times(attributes.TIME_WORDS["outcome_at"])
    outcome_column = index.column("outcome")
    facility_column = index.column("facility")
    outcome_names = index.codes["outcome"]
    facility_names = index.codes["facility"]
    for k in positions:
        if outcome_at[k] >= at:
            continue
        outcome = outcome_names[outcome_column[k]]
        kind = "deaths" if outcome in DEATHS else "rtd" if outcome == "RTD" else None
        if kind is not None:
            result[facility_names[facility_column[k]]][kind] += 1
    return result
