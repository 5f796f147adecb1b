"""The care-chain simulation: every casualty of a job through facilities and lifts of finite
capacity (a discrete-event simulation on a heapq event loop; bench/chain_loop.py says why not
simpy).

Input: the medical plan of the scenario and the skeletons (generator/flow.py) of every casualty
who reaches care, in a SkeletonStore (generator/skeletons.py). A casualty is read from the store
when it enters the chain, holds only its current stage (none while it merely stays somewhere),
and is dropped when its record ends (then only the beds it gives back are left in the event
queue): memory follows the casualties in the chain at once, not the job. Each casualty, stage by
stage:

1. waits at the place it leaves for a lift of its front (ground ambulance, or helicopter for the
   flight from the point of injury past Role 1 and for immediate casualties to Role 3; none for
   the sick walking to Role 1 and for the walking wounded, minimal where they leave
   (flow.MINIMAL), none for the strategic flight to Role 4). A free asset takes the first
   request in priority order and up to `patients_per_lift - 1` more waiting at the same place
   for the same role, then is away `turnaround_minutes`; helicopters without `night` fly only
   by day. A request for a lift waits no longer than its precedence window (WINDOW): then the
   unit's own vehicle takes the casualty by road (CASEVAC, `_casevac`). The casualty then
   travels its baseline transit, or the leg's transit by road (flow.road_transit) when a
   vehicle of its unit took it instead of a helicopter.
2. arrives: a unit without a free holding bed diverts it (unless minimal) to the unit of the
   same role on the front with the most free beds; with none free anywhere it is held where it
   arrived;
3. after triage, waits for a holding bed and a treatment team of the unit together (the team is
   held `treat_s`; the minimal need neither: the medics of the minimal area see them), then for
   an operating table (tables work `table_hours` a day from medical_plan.TABLES_OPEN_AT), then,
   immediate casualties at Role 2/3, for an ICU bed (held until it leaves; a wait in recovery
   that moves nothing later);
4. leaves at its baseline time moved by its waits (its bed is held until its lift leaves).

Priority everywhere: triage T1, T2, T3, then T4 (expectant behind everyone: MEDEVAC precedence
Urgent, Priority, Routine follows the triage), then the time of the request, then the index.
Waiting kills: a battle casualty with an injury that can kill carries a hazard per hour of
waiting (HAZARD_PER_HOUR by triage, doubled for a critical injury, halved once operated on) and
dies when the hazard accumulated over its waits passes its tolerance (rng.chain_tolerance: an
Exp(1) draw of its own). The dead release their bed and ICU bed at once.

Invariants: the result depends only on the plan, the skeletons and the seed (events at the same
time run in the order they were scheduled; no clock, no hash of a str); the skeletons are never
changed. No step walks a queue: what a queue holds is counted as it changes (`Unit.queued`, the
hourly queue length; `Unit.bed_marks`, whether a wait for a team became a wait for a bed), so
the work grows with the casualties and the days, however many wait at once
(tests/test_chain_scaling.py).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from patientgen.generator.coherence import PRECEDENCE_WINDOW
from patientgen.generator.flow import (
    AIR,
    BED,
    CASEVAC,
    GROUND,
    ICU,
    MINIMAL,
    TABLE,
    TEAM,
    Record,
    Skeleton,
    Stage,
    road_transit,
)
from patientgen.generator.plan import Plan, unit_specs
from patientgen.generator.rng import chain_tolerance
from patientgen.generator.skeletons import SkeletonStore
from patientgen.medical_plan import NIGHT_END, NIGHT_START, TABLES_OPEN_AT

#: Hazard of death per hour of waiting, by triage rank (T1, T2, T3, T4), for a severe injury.
HAZARD_PER_HOUR = (0.06, 0.015, 0.0, 0.25)
DAY = 86400
HOUR = 3600

# event kinds
_FREE, _ARRIVE, _TRIAGED, _TEAM_DONE, _SURGERY, _TABLE_DONE, _LEAVE, _DEATH, _WAKE, _END = range(10)
_WINDOW = 10
#: MEDEVAC precedence by triage rank (T1 Urgent, T2 Priority, T3 and T4 Routine): the window
#: within which a lift should come, in seconds (coherence.PRECEDENCE_WINDOW, by rank).
WINDOW = tuple(int(PRECEDENCE_WINDOW[t].total_seconds()) for t in ("T1", "T2", "T3", "T4"))
#: Bits of an event key for the order in which events were scheduled: 4 billion a job, where
#: the largest scenario (scenario.MAX_PATIENTS, about 10 events a casualty) schedules about 10^8.
SEQ_BITS = 32


@dataclass(slots=True)
class Unit:
    uid: str
    role: str
    front: int
    teams: int
    tables: int
    hours: float
    icu: int
    beds: int
    care_q: list[Any] = field(default_factory=list)
    table_q: list[Any] = field(default_factory=list)
    icu_q: list[Any] = field(default_factory=list)
    table_wake: bool = False
    table_seconds: int = 0
    icu_seconds: int = 0
    in_use: int = 0
    #: entries of its three queues whose casualty is alive (the hourly queue length)
    queued: int = 0
    #: times a care call ended with casualties queued and no holding bed free: who waited for a
    #: team across one of them waited for a bed too (see Simulation._cause)
    bed_marks: int = 0


@dataclass(slots=True)
class Pool:
    free: int
    per_lift: int
    turnaround: int
    night: bool
    mode: int  # GROUND or AIR: what its assets are
    queue: list[Any] = field(default_factory=list)
    wake: bool = False


@dataclass(slots=True)
class _P:
    index: int
    front: int
    lethal: bool
    severity: int
    pos: int  # its number in the SkeletonStore
    n: int  # its number of stages
    # the stage being worked on; None (dropped) while it only stays, see _after_care
    s: Stage
    tolerance: float  # rng.chain_tolerance, drawn when first needed (-1.0 until then)
    k: int = 0  # the stage being worked on
    shift: int = 0  # seconds added to the baseline so far
    hazard: float = 0.0
    token: int = 0
    dead: bool = False
    operated: bool = False
    waiting: int = -1  # wait slot 0..3, -1 when not waiting
    wait_cause: int = 0
    wait_since: int = 0
    wait_mark: int = 0  # its unit's bed_marks when its wait for care began
    # the units whose ICU queue still holds an entry of a wait it left (see _leave)
    left_icu: list[Unit] | None = None
    bed: Unit | None = None
    icu: Unit | None = None
    icu_since: int = 0
    unit: Unit | None = None
    rec: _Recording | None = None  # made on the first thing to record (most have none)


class _Recording:
    """A casualty's Record while the simulation runs (mutable; frozen by `freeze`)."""

    __slots__ = ("death", "diverted", "waits")

    def __init__(self) -> None:
        #: k -> [waited for the lift, treatment, surgery, an ICU bed; causes of the first three]
        self.waits: dict[int, list[int]] = {}
        self.diverted: dict[int, str] = {}  # k -> the unit it went to instead
        self.death: tuple[int, int, int, int, int, int] | None = None

    def freeze(self) -> Record:
        return Record.of(
            ((k, *w) for k, w in sorted(self.waits.items())),  # type: ignore[misc]
            tuple(sorted(self.diverted.items())),
            self.death,
        )


class Simulation:
    """One run over the casualties of a job (see the module docstring)."""

    def __init__(self, plan: Plan) -> None:
        medical = plan.scenario.medical_plan
        if medical is None:
            raise ValueError("the care-chain simulation needs a medical plan")
        self.seed = plan.seed
        self.start = plan.start_ts
        self.hours = plan.scenario.duration_days * 24
        self.units: dict[str, Unit] = {}
        self.by_role: dict[tuple[int, str], list[Unit]] = {}
        self.pools: dict[tuple[int, int], Pool] = {}
        for care in medical.fronts:
            front = plan.front_index[care.front]
            for uid, g in unit_specs(medical, care.front, plan.slugs[care.front]):
                role = uid.split("-", 1)[0]
                u = Unit(uid, role, front, g.treatment_teams, g.operating_tables, g.table_hours,
                         g.icu_beds, g.holding_beds)  # fmt: skip
                self.units[uid] = u
                self.by_role.setdefault((front, role), []).append(u)
            ground, air = care.ground_ambulances, care.helicopters
            self.pools[(front, GROUND)] = Pool(
                ground.count, ground.patients_per_lift, int(ground.turnaround_minutes * 60), True,
                GROUND,
            )  # fmt: skip
            # no helicopter (plan.no_air): the flights go by road, in its ground ambulances
            air_turnaround = int(air.turnaround_minutes * 60)
            self.pools[(front, AIR)] = (
                Pool(air.count, air.patients_per_lift, air_turnaround, air.night, AIR)
                if air.count
                else self.pools[(front, GROUND)]
            )
        self.icu_beds = {uid: u.icu for uid, u in self.units.items()}
        # The event queue: a heap of int keys, (t - start) << SEQ_BITS | seq (the order of
        # (time, order scheduled) in one int, which compares several times faster than a
        # tuple), and each key's (t, kind, who, arg) in `pending` until it is popped.
        self.events: list[int] = []
        self.pending: dict[int, tuple[int, int, Any, int]] = {}
        self.seq = 0
        self.store = SkeletonStore(self.start, [], [])
        self.recorded: dict[int, _Recording] = {}  # index -> record, for who has one
        # statistics
        self.lifts: dict[tuple[int, int, int], int] = {}  # (front, mode, day) -> lifts
        self.precedence = [[0, 0] for _ in range(4)]  # per rank: [requests, within window]
        self.casevac = [0, 0, 0, 0]  # per rank: requests taken by a vehicle of opportunity
        self.samples: dict[str, list[list[int]]] = {uid: [[], []] for uid in self.units}
        self.next_hour = self.start

    # --- plumbing -----------------------------------------------------------------------------
    def _at(self, t: int, kind: int, who: Any, arg: int = 0) -> None:
        self.seq += 1
        key = (t - self.start) << SEQ_BITS | self.seq
        self.pending[key] = (t, kind, who, arg)
        heapq.heappush(self.events, key)

    def _arrival_key(self, t: int) -> int:
        """The key an arrival at `t` is compared with (no event has it): above every event of
        an earlier second, below every event of second `t`, so a casualty ready at the same
        second as a scheduled event goes first."""
        return (t - self.start) << SEQ_BITS

    def _record(self, p: _P) -> _Recording:
        if p.rec is None:
            p.rec = self.recorded[p.index] = _Recording()
        return p.rec

    def _rate(self, p: _P, rank: int) -> float:
        if not p.lethal:
            return 0.0
        base = HAZARD_PER_HOUR[rank] * (2.0 if p.severity >= 2 else 1.0)
        return (base * (0.5 if p.operated else 1.0)) / HOUR

    def _wait(self, p: _P, t: int, slot: int, cause: int, rank: int) -> None:
        p.waiting, p.wait_cause, p.wait_since = slot, cause, t
        p.token += 1
        rate = self._rate(p, rank)
        if rate > 0.0:
            if p.tolerance < 0.0:  # only who can die of waiting needs one
                p.tolerance = chain_tolerance(self.seed, p.index)
            left = (p.tolerance - p.hazard) / rate
            self._at(t + max(0, math.ceil(left)), _DEATH, p, p.token)

    def _end_wait(self, p: _P, t: int, rank: int) -> int:
        waited = t - p.wait_since
        p.hazard += self._rate(p, rank) * waited
        p.token += 1
        slot = p.waiting
        cause = self._cause(p)
        p.waiting = -1
        if waited > 0:
            k = p.k + 1
            w = self._record(p).waits.setdefault(k, [0, 0, 0, 0, 0, 0, 0])
            w[slot] += waited
            if slot < 3:
                w[4 + slot] = cause
            if slot < 3:
                p.shift += waited
        return waited

    @staticmethod
    def _cause(p: _P) -> int:
        """What the casualty waits for in its current wait: a wait for a treatment team
        across a moment its unit had casualties queued and no holding bed free (a bed mark since
        the wait began) was a wait for a bed too."""
        if p.waiting == 1 and p.wait_cause == TEAM and p.unit.bed_marks != p.wait_mark:  # type: ignore[union-attr]
            return BED
        return p.wait_cause

    # --- the run ------------------------------------------------------------------------------
    def run(self, skeletons: SkeletonStore | Iterable[Skeleton]) -> None:
        """Every casualty's first request comes in order of time (a casualty ready at the same
        second as a scheduled event goes first); the heap holds only what they schedule, so it
        stays small. A casualty is taken from the store as it enters the chain and kept only
        while it is in it (its record, if any, stays)."""
        if not isinstance(skeletons, SkeletonStore):
            store = SkeletonStore(self.start, list(self.units), [])
            for sk in skeletons:
                store.add(sk)
            skeletons = store
        store = self.store = skeletons
        events = self.events
        take = self.pending.pop
        pop = heapq.heappop
        arrivals = store.arrivals()
        nxt = next(arrivals, None)
        nxt_key = 0 if nxt is None else self._arrival_key(nxt[0])
        while nxt is not None or events:
            if nxt is not None and (not events or nxt_key <= events[0]):
                t, k = nxt
                nxt = next(arrivals, None)
                if nxt is not None:
                    nxt_key = self._arrival_key(nxt[0])
                index, front, lethal, severity, n = store.header(k)
                p = _P(index, front, lethal, severity, k, n, store.stage(k, 0), -1.0)
                if t >= self.next_hour:
                    self._sample(t)
                self._ready(p, t)
                continue
            t, kind, who, arg = take(pop(events))
            if t >= self.next_hour:
                self._sample(t)
            if kind == _FREE:
                who.free += 1
                self._dispatch(who, t)
            elif kind == _ARRIVE:
                self._arrive(who, t)
            elif kind == _TRIAGED:
                self._triaged(who, t)
            elif kind == _TEAM_DONE:
                self._team_done(who, t)
            elif kind == _SURGERY:
                self._surgery(who, t)
            elif kind == _TABLE_DONE:
                self._table_done(who, t)
            elif kind == _LEAVE:
                self._leave(who, t)
            elif kind == _END:
                self._give_back(t, *who)
            elif kind == _DEATH:
                if who.token == arg and not who.dead and who.waiting >= 0:
                    self._die(who, t)
            elif kind == _WINDOW:
                if who.token == arg and not who.dead and who.waiting == 0:
                    self._casevac(who, t)
            elif kind == _WAKE:
                if isinstance(who, Pool):
                    who.wake = False
                    self._dispatch(who, t)
                else:
                    who.table_wake = False
                    self._tables(who, t)
        self._sample(self.start + self.hours * HOUR)

    def _sample(self, t: int) -> None:
        """Occupancy (holding beds in use) and queue (casualties waiting for a team, a table or
        an ICU bed there) of every unit at each hour mark up to t."""
        end = self.start + self.hours * HOUR
        while self.next_hour <= t and self.next_hour < end:
            for uid, u in self.units.items():
                occupancy, queue = self.samples[uid]
                occupancy.append(u.in_use)
                queue.append(u.queued)
            self.next_hour += HOUR

    # --- lifts ----------------------------------------------------------------------------
    def _ready(self, p: _P, t: int) -> None:
        s = p.s
        if s.lift is None:
            self._depart(p, t)
            return
        pool = self.pools[(p.front, s.lift)]
        origin = p.unit.uid if p.unit is not None else self.store.origin_of(p.pos)
        self._wait(p, t, 0, pool.mode, s.lift_rank)
        heapq.heappush(pool.queue, (s.lift_rank, t, p.index, origin, s.role, p.token, p))
        # past the request's precedence window a vehicle of the unit's own takes it by road
        self._at(t + WINDOW[s.lift_rank], _WINDOW, p, p.token)
        self._dispatch(pool, t)

    def _casevac(self, p: _P, t: int) -> None:
        """No ground ambulance nor helicopter came within the request's precedence window: the
        unit takes the casualty by road in a vehicle of its own (CASEVAC), at once, on the
        leg's transit by road (flow.road_transit: longer than the flight from the point of
        injury to Role 2), which moves the rest of its record later; its entry left in the
        lift's queue is stale (its token) and skipped there."""
        s = p.s
        rank = s.lift_rank
        p.wait_cause = CASEVAC
        self._end_wait(p, t, rank)
        self.precedence[rank][0] += 1
        self.casevac[rank] += 1
        self._depart(p, t, True)

    def _dispatch(self, pool: Pool, t: int) -> None:
        queue = pool.queue
        while pool.free > 0 and queue:
            if not pool.night and _is_night(t):
                if not pool.wake:
                    pool.wake = True
                    self._at(_dawn(t), _WAKE, pool)
                return
            head = heapq.heappop(queue)
            if head[-1].dead or head[-1].token != head[5]:  # dead, or gone by CASEVAC
                continue
            riders = [head]
            others = []
            scanned = 0
            while queue and len(riders) < pool.per_lift and scanned < 64:
                item = heapq.heappop(queue)
                scanned += 1
                if item[-1].dead or item[-1].token != item[5]:
                    continue
                if item[3] == head[3] and item[4] == head[4]:
                    riders.append(item)
                else:
                    others.append(item)
            for item in others:
                heapq.heappush(queue, item)
            pool.free -= 1
            self._at(t + pool.turnaround, _FREE, pool)
            p0 = head[-1]
            mode = pool.mode
            key = (p0.front, mode, (t - self.start) // DAY)
            self.lifts[key] = self.lifts.get(key, 0) + 1
            for item in riders:
                p = item[-1]
                rank = item[0]
                waited = self._end_wait(p, t, rank)
                self.precedence[rank][0] += 1
                if waited <= WINDOW[rank]:
                    self.precedence[rank][1] += 1
                self._depart(p, t, mode != p.s.lift)

    def _depart(self, p: _P, t: int, by_road: bool = False) -> None:
        """Leave on the leg's transit, or on its transit by road (flow.road_transit) for a
        flight that went by road; such a casualty has a record, however little it waited:
        flow.apply lists the road and moves what follows (the unqueued fast path would not)."""
        s = p.s
        extra = 0
        if by_road:
            self._record(p)
            extra = road_transit(s) - s.transit
            p.shift += extra
        self._release(p, t)
        self._at(t + s.transit + extra, _ARRIVE, p)

    def _release(self, p: _P, t: int) -> None:
        """Free the holding bed and ICU bed the casualty holds (leaving or dead)."""
        bed, icu = p.bed, p.icu
        p.bed = p.icu = None
        self._give_back(t, bed, icu, p.icu_since)

    def _give_back(self, t: int, bed: Unit | None, icu: Unit | None, icu_since: int) -> None:
        """A holding bed and an ICU bed (held since icu_since) free again, and who waited."""
        if icu is not None:
            icu.icu += 1
            icu.icu_seconds += t - icu_since
            self._icu_grant(icu, t)
        if bed is not None:
            bed.beds += 1
            bed.in_use -= 1
            self._care(bed, t)

    # --- a facility -----------------------------------------------------------------------
    def _arrive(self, p: _P, t: int) -> None:
        s = p.s
        u = self.units[s.unit]
        if u.beds <= 0 and s.rank != MINIMAL:
            best = max(self.by_role[(p.front, u.role)], key=lambda x: (x.beds, -ord(x.uid[-1])))
            if best.beds > 0:
                self._record(p).diverted[p.k + 1] = best.uid
                u = best
        p.unit = u
        self._at(t + (s.triaged - s.arrive), _TRIAGED, p)

    def _triaged(self, p: _P, t: int) -> None:
        u = p.unit
        assert u is not None
        s = p.s
        if s.rank == MINIMAL:  # walking wounded, seen in the minimal area: no team, no bed
            self._at(t + s.treat_s, _TEAM_DONE, p)
            return
        heapq.heappush(u.care_q, (s.rank, t, p.index, p))
        u.queued += 1
        self._wait(p, t, 1, TEAM if u.beds > 0 else BED, s.rank)
        p.wait_mark = u.bed_marks
        self._care(u, t)

    def _care(self, u: Unit, t: int) -> None:
        q = u.care_q
        while q and u.teams > 0 and u.beds > 0:
            p = heapq.heappop(q)[-1]
            if p.dead:
                continue
            u.queued -= 1
            s = p.s
            self._end_wait(p, t, s.rank)
            u.teams -= 1
            u.beds -= 1
            u.in_use += 1
            p.bed = u
            self._at(t + s.treat_s, _TEAM_DONE, p)
        if q and u.beds <= 0:  # who waits now waits for a bed (_cause)
            u.bed_marks += 1

    def _team_done(self, p: _P, t: int) -> None:
        u = p.unit
        assert u is not None
        s = p.s
        if s.rank != MINIMAL:  # the minimal held no team (_triaged)
            u.teams += 1
            self._care(u, t)
        if s.surgery_at is not None:
            self._at(max(t, s.surgery_at + p.shift), _SURGERY, p)
        else:
            self._after_care(p, t)

    def _surgery(self, p: _P, t: int) -> None:
        u = p.unit
        assert u is not None
        s = p.s
        heapq.heappush(u.table_q, (s.rank, t, p.index, p))
        u.queued += 1
        self._wait(p, t, 2, TABLE, s.rank)
        self._tables(u, t)

    def _tables(self, u: Unit, t: int) -> None:
        q = u.table_q
        while q and u.tables > 0:
            if u.hours < 24 and not _tables_open(t, u.hours):
                if not u.table_wake:
                    u.table_wake = True
                    self._at(_opening(t), _WAKE, u)
                return
            p = heapq.heappop(q)[-1]
            if p.dead:
                continue
            u.queued -= 1
            s = p.s
            self._end_wait(p, t, s.rank)
            u.tables -= 1
            u.table_seconds += s.surgery_s
            self._at(t + s.surgery_s, _TABLE_DONE, p)

    def _table_done(self, p: _P, t: int) -> None:
        u = p.unit
        assert u is not None
        u.tables += 1
        p.operated = True
        self._tables(u, t)
        self._after_care(p, t)

    def _after_care(self, p: _P, t: int) -> None:
        s = p.s
        u = p.unit
        assert u is not None
        if s.icu and self.icu_beds[u.uid] > 0:
            if u.icu > 0 and not u.icu_q:
                u.icu -= 1
                p.icu, p.icu_since = u, t
            else:
                heapq.heappush(u.icu_q, (s.rank, t, p.index, p))
                u.queued += 1
                self._wait(p, t, 3, ICU, s.rank)
        leave = max(t, s.leave + p.shift)
        if p.waiting == 3:
            self._at(leave, _LEAVE, p)
        elif s.final or p.k + 1 >= p.n:
            # its record ends here and it waits for nothing more: all that is left of it is the
            # beds it gives back when it leaves (days later, for many: a job of a million keeps
            # tens of thousands of them at once)
            self._at(leave, _END, (p.bed, p.icu, p.icu_since))
            p.bed = p.icu = None
        else:  # it stays, then moves on: its stage is read again then
            self._at(leave, _LEAVE, p)
            p.s = None  # type: ignore[assignment]

    def _icu_grant(self, u: Unit, t: int) -> None:
        q = u.icu_q
        while q and u.icu > 0:
            p = heapq.heappop(q)[-1]
            if p.dead:
                continue
            u.queued -= 1
            if p.waiting != 3 or p.unit is not u:  # it left before a bed came free
                p.left_icu.remove(u)  # type: ignore[union-attr]
                continue
            self._end_wait(p, t, p.s.rank)
            u.icu -= 1
            p.icu, p.icu_since = u, t

    def _leave(self, p: _P, t: int) -> None:
        if p.dead:
            return
        if p.waiting == 3:  # leaves (or ends) before an ICU bed came free
            self._end_wait(p, t, p.s.rank)
            # its entry stays in the queue (and counts as queued) until _icu_grant takes it
            assert p.unit is not None
            p.left_icu = [*(p.left_icu or ()), p.unit]
        if p.s is not None and (p.s.final or p.k + 1 >= p.n):
            self._release(p, t)
            return
        p.k += 1
        p.s = self.store.stage(p.pos, p.k)
        self._ready(p, t)

    def _die(self, p: _P, t: int) -> None:
        """Died while waiting: where, when, in which wait, for what, for how long."""
        p.dead = True
        # its entries in the queues no longer count: the one it waits in, those of waits it left
        if p.waiting > 0:
            p.unit.queued -= 1  # type: ignore[union-attr]
        for u in p.left_icu or ():
            u.queued -= 1
        p.left_icu = None
        slot = p.waiting
        k = p.k + 1  # the stage whose need was waited for
        place = k - 1 if slot == 0 else k
        self._record(p).death = (place, t, k, slot, self._cause(p), t - p.wait_since)
        p.waiting = -1
        self._release(p, t)

    # --- the result -------------------------------------------------------------------------
    def records(self) -> dict[int, Record]:
        """Every casualty's record, frozen, by index."""
        recorded = self.recorded
        return {index: recorded[index].freeze() for index in sorted(recorded)}

    def statistics(self) -> dict[str, Any]:
        """Facility load per hour, requirements and lift figures (JSON-ready)."""
        days = max(1, self.hours // 24)
        lifts: dict[str, list[int]] = {}
        for (front, mode, day), n in sorted(self.lifts.items()):
            key = "helicopter" if mode == AIR else "ground ambulance"
            row = lifts.setdefault(key, [0] * days)
            if 0 <= day < days:
                row[day] += n
            del front
        names = ("T1", "T2", "T3", "T4")
        return {
            "hourly": {
                uid: {"occupancy": s[0], "queue": s[1]} for uid, s in sorted(self.samples.items())
            },
            "operating_table_hours": {
                uid: round(u.table_seconds / HOUR, 1) for uid, u in sorted(self.units.items())
            },
            "icu_bed_days": {
                uid: round(u.icu_seconds / DAY, 2) for uid, u in sorted(self.units.items())
            },
            "lifts_per_day": lifts,
            "lift_precedence_met": {
                names[r]: {
                    "requests": n,
                    "within_window": ok,
                    "by_vehicle_of_opportunity": self.casevac[r],
                }
                for r, (n, ok) in enumerate(self.precedence)
            },
        }


def _is_night(t: int) -> bool:
    hour = (t % DAY) // HOUR
    return hour >= NIGHT_START or hour < NIGHT_END


def _dawn(t: int) -> int:
    day = t - t % DAY
    dawn = day + NIGHT_END * HOUR
    return dawn if dawn > t else dawn + DAY


def _tables_open(t: int, hours: float) -> bool:
    into = (t % DAY) - TABLES_OPEN_AT * HOUR
    if into < 0:
        into += DAY
    return into < hours * HOUR


def _opening(t: int) -> int:
    day = t - t % DAY
    opening = day + TABLES_OPEN_AT * HOUR
    return opening if opening > t else opening + DAY


def simulate(plan: Plan, skeletons: SkeletonStore | Iterable[Skeleton]) -> Simulation:
    """Run the simulation of a job over its skeletons (in index order)."""
    sim = Simulation(plan)
    sim.run(skeletons)
    return sim
