"""The items of a paced delivery (a replay) in exercise-time order, and when each is due.

A push sends a job's items casualty by casualty; a replay sends them when they happen. Each item
gets a time: an HL7 message its MSH-7; a FHIR resource the first of effectiveDateTime,
performedDateTime, onsetDateTime, period.start and deceasedDateTime it has, never earlier than
the resources of the same casualty it refers to (an Observation comes after its Encounter), and a
resource with no time of its own (Patient, Organization, Location) that of its casualty's first
event, ahead of it. The order is (time, casualty, place in the casualty's items): fixed by
(scenario, seed), so a resumed replay goes on at the same place.

`Timeline` makes every casualty once to learn the times (keeping only packed sort keys, a few
tens of bytes per item), then makes them again on demand as their items come due, the recent
ones kept in a small cache (a casualty's events are close together in time). Hence the cap on
paced deliveries: MAX_PATIENTS casualties.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson

from patientgen.delivery import Item

#: Casualties a paced delivery may have (a replay runs in exercise time: an exercise's size).
MAX_PATIENTS = 20_000
_TIME_KEYS = ("effectiveDateTime", "performedDateTime", "onsetDateTime", "deceasedDateTime")
_REFERENCE = re.compile(rb'"reference":"([A-Za-z]+/[^"]+)"')
_CACHE = 4096
_INDEX_BITS = 24  # up to 16M casualties (far above MAX_PATIENTS)
_ITEM_BITS = 16  # up to 65,536 items of one casualty


def _seconds(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _hl7_seconds(message: bytes) -> int:
    stamp = message.split(b"\r", 1)[0].split(b"|")[6].decode()  # MSH-7: YYYYMMDDHHMMSS+ZZZZ
    return int(datetime.strptime(stamp, "%Y%m%d%H%M%S%z").timestamp())


def item_times(kind: str, found: list[Item]) -> list[int]:
    """Epoch seconds of each of one casualty's items (see the module docstring)."""
    if kind != "fhir":
        return [_hl7_seconds(item.data) for item in found]
    own: list[int | None] = []
    for item in found:
        resource = orjson.loads(item.data)
        stamp = next((resource[k] for k in _TIME_KEYS if k in resource), None)
        if stamp is None and isinstance(resource.get("period"), dict):
            stamp = resource["period"].get("start")
        own.append(_seconds(stamp) if stamp else None)
    first = min((t for t in own if t is not None), default=0)
    times: dict[str, int] = {}
    out = []
    for item, t in zip(found, own, strict=True):
        after = [
            times[ref.decode()] for ref in _REFERENCE.findall(item.data) if ref.decode() in times
        ]
        when = max([t if t is not None else first, *after])
        times[item.ref] = when
        out.append(when)
    return out


class Timeline:
    """The items of `scenario` for `kind` ("fhir" or "hl7") in time order."""

    def __init__(self, scenario: Any, kind: str) -> None:
        if scenario.total_patients > MAX_PATIENTS:
            raise ValueError(
                f"a paced delivery takes at most {MAX_PATIENTS:,} casualties, the job has "
                f"{scenario.total_patients:,}"
            )
        from patientgen.jobs.delivery import casualty_items

        self.scenario = scenario
        self.kind = kind
        self._cache: OrderedDict[int, list[Item]] = OrderedDict()
        keys: list[int] = []
        for index, found in casualty_items(scenario, kind, 0):
            for n, t in enumerate(item_times(kind, found)):
                keys.append((t << (_INDEX_BITS + _ITEM_BITS)) | (index << _ITEM_BITS) | n)
        keys.sort()
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def start(self) -> int:
        """Epoch seconds of exercise time zero (the scenario's start)."""
        return int(self.scenario.start.timestamp())

    def items(self, position: int) -> Iterator[tuple[int, int, Item]]:
        """(position, epoch seconds, item) from `position` (items already delivered) on."""
        mask = (1 << _ITEM_BITS) - 1
        for at in range(position, len(self.keys)):
            key = self.keys[at]
            n = key & mask
            index = (key >> _ITEM_BITS) & ((1 << _INDEX_BITS) - 1)
            yield at, key >> (_INDEX_BITS + _ITEM_BITS), self._casualty(index)[n]

    def _casualty(self, index: int) -> list[Item]:
        found = self._cache.get(index)
        if found is None:
            from patientgen.jobs.delivery import casualty_items

            found = next(casualty_items(self.scenario, self.kind, index, index + 1))[1]
            self._cache[index] = found
            if len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(index)
        return found


def due(anchor_wall: float, anchor_at: int, at: int, speed: float) -> float:
    """The wall-clock time (time.time()) exercise time `at` happens, given that `anchor_at`
    happens at `anchor_wall`."""
    return anchor_wall + (at - anchor_at) / speed


def wall_start(start: str | None, now: float) -> float:
    """When exercise time zero happens: `now` for None or "now", else the ISO time given."""
    if start in (None, "now"):
        return now
    assert start is not None
    return datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(UTC).timestamp()
