"""The skeletons of a whole job in compact arrays (the care-chain phase's input).

A `Skeleton` (generator/flow.py) is a dozen Python objects; a job of a million casualties cannot
keep a million of them. `SkeletonStore` keeps each casualty in about 90 bytes: per casualty its
index, front, origin and severity in `array`s, and each stage packed with `STAGE` (times in
seconds from the scenario's start, units by number) in one `bytearray`. The simulation
(generator/chain.py) takes the casualties back one at a time, as `Skeleton`s, when they enter
the chain, and drops them when they leave it.

Invariants: `get(k)` gives back exactly the Skeleton that was added k-th (`add`, or `add_fields`
with the same values); `arrivals()` orders them by their first ready time, then by the order
they were added (the index order of a job).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from struct import Struct

from patientgen.generator.flow import Skeleton, Stage

#: One stage: ready, transit, triaged - arrive, surgery_at (-1: none), surgery_s, treat_s, leave,
#: unit number, flags (role | rank << 2 | lift_rank << 4 | icu << 6 | final << 7), lift (-1: none).
STAGE = Struct("<iiHiHHiHBb")
ROLES = ("R1", "R2", "R3")
ROLE_CODE = {r: k for k, r in enumerate(ROLES)}


class SkeletonStore:
    """The skeletons of one job, added in index order (see the module docstring)."""

    def __init__(self, start_ts: int, units: list[str], origins: list[str]) -> None:
        self.start = start_ts
        self.units = list(units)  # unit ids by number
        self.unit_code = {u: k for k, u in enumerate(self.units)}
        self.origins = list(origins)  # named origins (mass-casualty events) by number
        self.origin_code = {o: k for k, o in enumerate(self.origins)}
        self.index = array("I")
        self.front = array("B")
        self.meta = array("B")  # severity | lethal << 2
        self.origin = array("i")  # number in origins, -1: the casualty's own "#index"
        self.first = array("I", [0])  # stage number of each casualty's first stage, then the end
        self.stages = bytearray()

    def __len__(self) -> int:
        return len(self.index)

    def nbytes(self) -> int:
        arrays = (self.index, self.front, self.meta, self.origin, self.first)
        return sum(a.itemsize * len(a) for a in arrays) + len(self.stages)

    def add_stage(
        self,
        role: str,
        unit: str,
        ready: int,
        transit: int,
        triaged_after: int,
        rank: int,
        lift: int | None,
        lift_rank: int,
        surgery_at: int | None,
        surgery_s: int,
        treat_s: int,
        icu: bool,
        leave: int,
        final: bool,
    ) -> None:
        """One stage of the casualty being added (absolute epoch seconds); then `end`."""
        start = self.start
        code = self.unit_code.get(unit)
        if code is None:
            code = self.unit_code[unit] = len(self.units)
            self.units.append(unit)
        self.stages += STAGE.pack(
            ready - start,
            transit,
            triaged_after,
            -1 if surgery_at is None else surgery_at - start,
            surgery_s,
            treat_s,
            leave - start,
            code,
            ROLE_CODE[role] | rank << 2 | lift_rank << 4 | icu << 6 | final << 7,
            -1 if lift is None else lift,
        )

    def end(self, index: int, front: int, origin: str | None, lethal: bool, severity: int) -> None:
        """Close the casualty whose stages were just added (`origin` None: its own "#index")."""
        self.index.append(index)
        self.front.append(front)
        self.meta.append(severity | lethal << 2)
        if origin is None:
            self.origin.append(-1)
        else:
            code = self.origin_code.get(origin)
            if code is None:
                code = self.origin_code[origin] = len(self.origins)
                self.origins.append(origin)
            self.origin.append(code)
        self.first.append(len(self.stages) // STAGE.size)

    def add(self, sk: Skeleton) -> None:
        for s in sk.stages:
            self.add_stage(
                s.role, s.unit, s.ready, s.transit, s.triaged - s.arrive, s.rank, s.lift,
                s.lift_rank, s.surgery_at, s.surgery_s, s.treat_s, s.icu, s.leave, s.final,
            )  # fmt: skip
        origin = None if sk.origin == f"#{sk.index}" else sk.origin
        self.end(sk.index, sk.front, origin, sk.lethal, sk.severity)

    def get(self, k: int) -> Skeleton:
        """The k-th skeleton added."""
        index, front, lethal, severity, n = self.header(k)
        stages = [self.stage(k, j) for j in range(n)]
        return Skeleton(index, front, self.origin_of(k), lethal, severity, stages)

    def header(self, k: int) -> tuple[int, int, bool, int, int]:
        """(index, front, lethal, severity, number of stages) of the k-th skeleton."""
        meta = self.meta[k]
        first = self.first
        return self.index[k], self.front[k], bool(meta & 4), meta & 3, first[k + 1] - first[k]

    def origin_of(self, k: int) -> str:
        o = self.origin[k]
        return f"#{self.index[k]}" if o < 0 else self.origins[o]

    def stage(self, k: int, j: int) -> Stage:
        """Stage j of the k-th skeleton."""
        start = self.start
        ready, transit, tri, surgery_at, surgery_s, treat_s, leave, unit, flags, lift = (
            STAGE.unpack_from(self.stages, (self.first[k] + j) * STAGE.size)
        )
        ready += start
        arrive = ready + transit
        return Stage(
            ROLES[flags & 3], self.units[unit], ready, transit, arrive, arrive + tri,
            flags >> 2 & 3, None if lift < 0 else lift, flags >> 4 & 3,
            None if surgery_at < 0 else surgery_at + start, surgery_s, treat_s,
            bool(flags & 64), leave + start, bool(flags & 128),
        )  # fmt: skip

    def first_ready(self, k: int) -> int:
        """The first stage's ready time of the k-th skeleton (epoch seconds)."""
        return STAGE.unpack_from(self.stages, self.first[k] * STAGE.size)[0] + self.start

    def arrivals(self) -> Iterator[tuple[int, int]]:
        """(first ready time, k) of every skeleton, by ready time then k."""
        n = len(self)
        keys = [self.first_ready(k) * n + k for k in range(n)]
        keys.sort()
        packed = array("q", keys)  # 8 bytes a casualty instead of 36 while the run lasts
        del keys
        for key in packed:
            yield divmod(key, n) if n else (key, 0)

    def __iter__(self) -> Iterator[Skeleton]:
        for k in range(len(self)):
            yield self.get(k)
