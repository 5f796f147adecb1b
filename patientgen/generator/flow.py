"""A casualty's path as the care-chain simulation sees it, and its result applied to the record.

`skeleton(plan, patient)` reads what the simulation needs from the patient made with unlimited
capacity (the *baseline*, generator/build.py): for each facility visit, when it was ready to
leave the previous place, the transit, the triage time, the surgery and its length, whether an
ICU bed is needed, when it leaves. The simulation (generator/chain.py) runs on the skeletons of
the whole job and returns, per casualty, a `Record` of its waits, diversions and death. `apply`
turns the same baseline patient and its record into the final record: every time after a wait is
moved later by that wait, a diverted visit names its new unit, a death while waiting ends the
record there, after the signs of the casualty found failing.

Invariants:
- the skeleton is a pure function of the baseline patient (and the plan), so the simulation phase
  and every chunk of the detail phase see the same one (the phase takes it from
  generator/skeleton_path.py, which gives the same skeleton without making the patient);
- shifts only ever add time after a point, so the order of a record's times is kept: strictly
  increasing timelines stay strictly increasing;
- nothing is drawn from the patient's random stream here: the baseline record is made exactly as
  with unlimited capacity, then moved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from struct import Struct

from patientgen.generator import care
from patientgen.generator.care import SURGERY_SECONDS
from patientgen.generator.coherence import injury_can_kill
from patientgen.generator.patient import (
    Event,
    Outcome,
    Patient,
    QueuedPatient,
    QueuedVisit,
    Visit,
    Wait,
    WaitKind,
)
from patientgen.generator.plan import AIR_SHARE, Plan

#: A treatment team is held at least / at most this long per casualty (seconds).
TREAT_MIN = 10 * 60
TREAT_MAX = 90 * 60
#: A wait at least this long before a death is recorded as contributing to it.
CONTRIBUTING_MINUTES = 30.0
#: A casualty who dies while waiting is found failing this long before (seconds), or as soon
#: after the last thing its record holds there as allows (half a minute after the signs taken
#: on arrival; its vital signs then: care.failing), and dies at least half a minute after.
FAILING_BEFORE = 600
#: What was waited for, by code (the simulation's records hold the codes).
CAUSES: tuple[str, ...] = (
    "ground ambulance",
    "helicopter",
    "treatment team",
    "holding bed",
    "operating table",
    "ICU bed",
    # the wait for a lift that ended when the precedence window passed: taken by road in a
    # vehicle of opportunity (CASEVAC, chain.py; `road_transit`)
    "vehicle of opportunity",
)
GROUND, AIR, TEAM, BED, TABLE, ICU, CASEVAC = range(7)
_KINDS: tuple[WaitKind, ...] = ("evacuation", "treatment", "surgery", "bed")
RANK = {"T1": 0, "T2": 1, "T3": 2, "T4": 3}
#: The minimal (T3) are walking wounded (the triage sieve sorts who can walk as minimal; they
#: are "managed by minimally trained staff", domain.md; their "minor professional treatment
#: ... can be done on an outpatient or ambulatory basis", the US Navy's Hospital Corpsman
#: manual, NAVEDTRA 14295): leaving a place where they were triaged minimal they walk or ride a
#: vehicle of opportunity (no lift), and wherever they are the medics of the minimal area see
#: them, ambulatory (no treatment team, no holding bed).
MINIMAL = RANK["T3"]


@dataclass(slots=True)
class Stage:
    """Visit k (k >= 1) of a baseline patient, in epoch seconds."""

    role: str  # R1, R2, R3
    unit: str
    ready: int  # the baseline departure from the previous place
    transit: int
    arrive: int
    triaged: int
    rank: int  # triage at this facility: 0 = T1 ... 3 = T4
    lift: int | None  # GROUND, AIR, or None (no lift needed for this leg)
    lift_rank: int  # triage of the leg's precedence (at the place left)
    surgery_at: int | None  # the first surgical procedure, if any
    surgery_s: int
    treat_s: int
    icu: bool
    leave: int  # the baseline departure from here, or the end of the record
    final: bool  # the record ends here (death, return to duty)


@dataclass(slots=True)
class Skeleton:
    index: int
    front: int
    origin: str  # where the first lift picks up: the mass-casualty event, else the casualty
    lethal: bool  # a battle casualty with an injury that can kill: waiting may kill
    severity: int  # 1 severe, 2 critical (worst injury)
    stages: list[Stage]


def team_seconds(triaged: int, worked: int, surgery_at: int | None) -> int:
    """How long a treatment team holds a casualty triaged at `triaged` whose last procedure
    before its first operation (or of all, without one) was at `worked`: until the operation
    when it follows at once (within 10 minutes), else until 10 minutes after `worked` (an
    operation planned for later, a second look: build._facilities); from TREAT_MIN to
    TREAT_MAX, but never past an operation that follows sooner (down to a minute).
    `skeleton` and skeleton_path.add both ask it."""
    until = worked + 600 if surgery_at is None or surgery_at > worked + 600 else surgery_at
    treat = min(max(until - triaged, TREAT_MIN), TREAT_MAX)
    if surgery_at is not None and triaged + treat > surgery_at:
        treat = max(surgery_at - triaged, 60)
    return treat


def road_transit(s: Stage) -> int:
    """The transit of stage `s` by road, as when no lift came within its precedence window
    (CASEVAC): the flight from the point of injury straight to Role 2 took plan.AIR_SHARE of the
    road's delays through Role 1, so by road it takes them whole; every other leg keeps its
    transit (the plan has one delay from Role 2 to Role 3, whatever the mode)."""
    if s.lift == AIR and s.role == "R2":
        return int(s.transit / AIR_SHARE)
    return s.transit


#: One stage a casualty waited at: (k, seconds waited for the lift there, for treatment, for
#: surgery, for an ICU bed, then the cause of the lift, treatment and surgery waits).
Row = tuple[int, int, int, int, int, int, int, int]
_ROW = Struct("<8q")


@dataclass(slots=True, frozen=True)
class Record:
    """The simulation's result for one casualty (only casualties with something to say).

    Compact: every worker that writes a chunk of a job holds the records of the whole job
    (under a starved plan, nearly one per casualty), so the rows are packed in one bytes object
    (no tuple nor int object each). The simulation builds each record in a mutable form
    (chain.py) and freezes it here."""

    rows: bytes = b""  # the Rows, by k, packed (_ROW)
    diverted: tuple[tuple[int, str], ...] = ()  # (k, the unit it went to instead), by k
    # death while waiting: (place k: 0 = point of injury, epoch seconds, stage k of the wait,
    # wait slot 0..3, cause code, seconds waited)
    death: tuple[int, int, int, int, int, int] | None = None

    @classmethod
    def of(
        cls,
        rows: Iterable[Row],
        diverted: tuple[tuple[int, str], ...],
        death: tuple[int, int, int, int, int, int] | None,
    ) -> Record:
        """A record of its rows packed (the simulation's and the checkpoint's form alike)."""
        return cls(b"".join(_ROW.pack(*row) for row in rows), diverted, death)

    def stages(self) -> Iterator[Row]:
        """The rows, by k."""
        return _ROW.iter_unpack(self.rows)  # type: ignore[return-value]

    def row(self, k: int) -> Row | None:
        """The waits at stage k, None where it waited for nothing."""
        for row in _ROW.iter_unpack(self.rows):
            if row[0] == k:
                return row  # type: ignore[return-value]
        return None

    def diverted_to(self, k: int) -> str | None:
        """The unit visit k went to instead of the planned one, None where it was not diverted."""
        for stage, unit in self.diverted:
            if stage == k:
                return unit
        return None

    def to_json(self) -> list[object]:
        return [list(self.stages()), self.diverted, self.death]

    @classmethod
    def from_json(cls, data: list[object]) -> Record:
        rows, diverted, death = data
        return cls.of(
            rows,  # type: ignore[arg-type]
            tuple((k, unit) for k, unit in diverted),  # type: ignore[attr-defined]
            None if death is None else tuple(death),  # type: ignore[arg-type]
        )


_SURGICAL = frozenset(SURGERY_SECONDS)


def _minutes(seconds: int) -> float:
    """Seconds as minutes to a tenth (as Visit.transit_minutes)."""
    return seconds // 6 / 10


def _ts(d: datetime) -> int:
    return int(d.timestamp())


def skeleton(plan: Plan, p: Patient) -> Skeleton | None:
    """What the simulation needs of baseline patient `p`; None for one who never reaches care."""
    visits = p.visits
    if len(visits) < 2:
        return None
    battle = p.category == "battle_injury"
    severity = 0
    for c in p.conditions:
        if c.region is not None:
            if c.severity == "critical":
                severity = 2
            elif c.severity == "severe" and severity < 1:
                severity = 1
    stages: list[Stage] = []
    previous = visits[0]
    leave_prev = previous.departed_at
    disease = p.category == "disease"
    last = len(visits) - 1
    for k in range(1, len(visits)):
        v = visits[k]
        if v.facility == "R4" or leave_prev is None:
            break
        ready = _ts(leave_prev)
        arrive = _ts(v.arrived_at)
        triaged = _ts(v.vitals.taken_at) if v.vitals is not None else arrive
        surgery_at = None
        surgery_s = 0
        # the team's care ends at the first operation, or 10 minutes after the last procedure
        # before it when the operation is planned for later (a second look, build._facilities)
        worked = triaged
        for proc in v.procedures:
            t = _ts(proc.performed_at)
            if proc.code in _SURGICAL:
                if surgery_at is None:
                    surgery_at = t
                surgery_s += SURGERY_SECONDS[proc.code]
            elif surgery_at is None and t > worked:
                worked = t
        treat = team_seconds(triaged, worked, surgery_at)
        final = v.departed_at is None
        leave = _ts(v.departed_at) if v.departed_at is not None else _ts(p.outcome_at)
        prev_triage = previous.triage or v.triage or "T3"
        lift = _lift(k, visits, disease)
        stages.append(
            Stage(
                role=v.facility,
                unit=v.facility_id,
                ready=ready,
                transit=arrive - ready,
                arrive=arrive,
                triaged=triaged,
                rank=RANK[v.triage or "T3"],
                lift=lift,
                lift_rank=RANK[prev_triage],
                surgery_at=surgery_at,
                surgery_s=surgery_s,
                treat_s=treat,
                icu=v.facility in ("R2", "R3") and v.triage == "T1" and k <= last,
                leave=leave,
                final=final,
            )
        )
        previous = v
        leave_prev = v.departed_at
    if not stages:
        return None
    front = plan.front_index[p.front]
    origin = p.event_id if p.event_id is not None else f"#{p.index}"
    lethal = battle and p.outcome != "KIA" and any(injury_can_kill(c) for c in p.conditions)
    return Skeleton(p.index, front, origin, lethal, severity, stages)


def _lift(k: int, visits: list[Visit], disease: bool) -> int | None:
    """How visit k is reached: none for the sick walking to Role 1 and for the walking wounded
    (minimal where they leave: MINIMAL), a helicopter from the point of injury past Role 1 and
    for an immediate casualty to Role 3, else a ground ambulance."""
    v = visits[k]
    before = visits[k - 1].triage or v.triage or "T3"
    if (k == 1 and disease) or before == "T3":
        return None
    if k == 1:
        return AIR if v.facility == "R2" else GROUND
    return AIR if (v.facility == "R3" and before == "T1") else GROUND


_NO_TREAT_WAIT = Wait("treatment", 0.0, CAUSES[TEAM])
_NO_SURGERY_WAIT = Wait("surgery", 0.0, CAUSES[TABLE])
_NO_ICU_WAIT = Wait("bed", 0.0, CAUSES[ICU])
_NO_LIFT_WAIT = (Wait("evacuation", 0.0, CAUSES[GROUND]), Wait("evacuation", 0.0, CAUSES[AIR]))


def unqueued(p: Patient) -> QueuedPatient:
    """apply(plan, p, skeleton(plan, p), None), the same record, without the skeleton's times:
    baseline patient `p` of a scenario with a plan that waited for nothing."""
    visits = p.visits
    disease = p.category == "disease"
    stages = 0  # the visits the simulation saw: 1..stages
    for k in range(1, len(visits)):
        if visits[k].facility == "R4" or visits[k - 1].departed_at is None:
            break
        stages = k
    out: list[Visit] = []
    for k, v in enumerate(visits):
        listed: list[Wait] = []
        if 1 <= k <= stages:
            if v.triage != "T3":  # MINIMAL: no team, no bed
                listed.append(_NO_TREAT_WAIT)
            for x in v.procedures:  # a loop, not any(generator): once per visit of every patient
                if x.code in _SURGICAL:
                    listed.append(_NO_SURGERY_WAIT)
                    break
            if v.facility in ("R2", "R3") and v.triage == "T1":
                listed.append(_NO_ICU_WAIT)
        if k < stages:
            lift = _lift(k + 1, visits, disease)
            if lift is not None:
                listed.append(_NO_LIFT_WAIT[lift])
        out.append(
            QueuedVisit(
                v.facility, v.facility_id, v.arrived_at, v.departed_at, v.triage, v.vitals,
                v.procedures, v.disposition, v.transit_minutes, listed, None,
            )
        )  # fmt: skip
    return QueuedPatient(
        p.index, p.id, p.service_number, p.given_name, p.family_name, p.gender, p.birth_date,
        p.blood_group, p.nationality, p.front, p.category, p.warfare, p.mechanism,
        p.mechanism_code, p.injured_at, p.mass_casualty, p.event_id, p.triage, p.conditions,
        out, p.timeline, p.outcome, p.outcome_at, p.outcome_facility, None, False,
    )  # fmt: skip


# --- applying a record ---------------------------------------------------------------------
def apply(plan: Plan, p: Patient, sk: Skeleton | None, rec: Record | None) -> QueuedPatient:
    """The final record of baseline patient `p` under the simulation's record `rec` (None: no
    wait at all). Every visit becomes a QueuedVisit listing its needs and their waits (`_visit`);
    every time is moved later by the waits before it (`_Moves`); a death while waiting ends the
    record there (`_died_waiting`)."""
    stages = sk.stages if sk is not None else []
    no_air = plan.front_index[p.front] in plan.no_air
    moves = _Moves(stages, rec, no_air)
    move = moves.move
    death = rec.death if rec is not None else None
    cut = len(p.visits) if death is None else death[0] + 1
    visits = [_visit(k, v, stages, rec, moves, no_air) for k, v in enumerate(p.visits[:cut])]
    timeline = [
        Event(move(e.at), e.kind, e.facility, e.detail) for e in p.timeline if not moves.gone(e.at)
    ]
    if rec is not None and rec.diverted:
        _rename(timeline, p.visits, rec.diverted)
    outcome: Outcome = p.outcome
    outcome_at = move(p.outcome_at)
    outcome_facility = p.outcome_facility
    delay = None
    if death is not None:
        timeline, delay = _died_waiting(visits, timeline, death)
        place, last = death[0], visits[-1]
        outcome = "KIA" if place == 0 else ("DOW" if p.category == "battle_injury" else "DIED")
        outcome_at, outcome_facility = timeline[-1].at, last.facility
    elif outcome in ("DOW", "DIED"):
        longest = _longest(visits)
        if longest is not None and longest.minutes >= CONTRIBUTING_MINUTES:
            delay = longest
    return QueuedPatient(
        p.index, p.id, p.service_number, p.given_name, p.family_name, p.gender, p.birth_date,
        p.blood_group, p.nationality, p.front, p.category, p.warfare, p.mechanism,
        p.mechanism_code, p.injured_at, p.mass_casualty, p.event_id, p.triage, p.conditions,
        visits, timeline, outcome, outcome_at, outcome_facility, delay, death is not None,
    )  # fmt: skip


class _Moves:
    """The times of one record under its waits: each baseline time is moved later by every wait
    that came before it (`move`); after a death while waiting, nothing the fatal wait came
    before happens (`gone`: baseline times from that point on are dropped)."""

    __slots__ = ("drop_at", "drop_inclusive", "road", "shifts")

    def __init__(self, stages: list[Stage], rec: Record | None, no_air: bool) -> None:
        self.shifts: list[tuple[int, bool, int]] = []  # (baseline time, inclusive, seconds)
        # the stages k reached by road instead of a flight: the front has no helicopter, or
        # none came within the precedence window (CASEVAC); what follows comes later
        self.road = {k for k, s in enumerate(stages, 1) if s.lift == AIR} if no_air else set()
        if rec is not None:
            for k, lift, treat, surgery, _, lift_cause, *_ in rec.stages():
                s = stages[k - 1]
                if lift_cause == CASEVAC and s.lift == AIR:
                    self.road.add(k)
                if lift:
                    self.shifts.append((s.ready, True, lift))
                if treat:
                    self.shifts.append((s.triaged, False, treat))
                if surgery and s.surgery_at is not None:
                    self.shifts.append((s.surgery_at, True, surgery))
        for k in self.road:
            s = stages[k - 1]
            if road_transit(s) != s.transit:
                self.shifts.append((s.ready, False, road_transit(s) - s.transit))
        self.drop_at: int | None = None
        self.drop_inclusive = True
        death = rec.death if rec is not None else None
        if death is not None:
            k_wait, slot = death[2], death[3]
            s = stages[k_wait - 1]
            if slot == 0:
                self.drop_at = s.ready
            elif slot == 1:
                self.drop_at, self.drop_inclusive = s.triaged, False
            elif slot == 2:
                self.drop_at = s.surgery_at

    def move(self, d: datetime) -> datetime:
        if not self.shifts:
            return d
        t = _ts(d)
        add = 0
        for at, inclusive, seconds in self.shifts:
            if t > at or (inclusive and t == at):
                add += seconds
        return datetime.fromtimestamp(t + add, UTC) if add else d

    def gone(self, d: datetime) -> bool:
        if self.drop_at is None:
            return False
        t = _ts(d)
        return t > self.drop_at or (self.drop_inclusive and t == self.drop_at)


def _visit(
    k: int, v: Visit, stages: list[Stage], rec: Record | None, moves: _Moves, no_air: bool
) -> Visit:
    """Visit k of the baseline moved (what a death while waiting drops left out), with its
    waits: for treatment, surgery and an ICU bed where it had those needs, and for the lift
    that took the casualty on (a ground ambulance for a flight of a front without helicopters);
    a diverted visit names the unit it went to."""
    move = moves.move
    vit = v.vitals
    if vit is not None and moves.shifts:
        vit.taken_at = move(vit.taken_at)
    procs = v.procedures
    if moves.drop_at is not None:
        procs = [x for x in procs if not moves.gone(x.performed_at)]
    if moves.shifts:
        for proc in procs:
            proc.performed_at = move(proc.performed_at)
    listed: list[Wait] = []
    transit_minutes = v.transit_minutes
    if 1 <= k <= len(stages):
        s = stages[k - 1]
        row = rec.row(k) if rec is not None else None
        if k in moves.road:
            transit_minutes = _minutes(road_transit(s))
        if row is None:
            row = (k, 0, 0, 0, 0, 0, TEAM, TABLE)
        if s.rank != MINIMAL:
            listed.append(Wait("treatment", _minutes(row[2]), CAUSES[row[6] or TEAM]))
        if s.surgery_at is not None:
            listed.append(Wait("surgery", _minutes(row[3]), CAUSES[TABLE]))
        if s.icu:
            listed.append(Wait("bed", _minutes(row[4]), CAUSES[ICU]))
    if k < len(stages) and stages[k].lift is not None:
        mode = GROUND if no_air else stages[k].lift or GROUND
        row = rec.row(k + 1) if rec is not None else None
        lift = row[1] if row is not None else 0
        listed.append(Wait("evacuation", _minutes(lift), CAUSES[row[5] if row and lift else mode]))
    diverted_from = None
    unit = v.facility_id
    diverted = rec.diverted_to(k) if rec is not None else None
    if diverted is not None:
        diverted_from, unit = unit, diverted
    departed = move(v.departed_at) if v.departed_at is not None else None
    return QueuedVisit(
        v.facility, unit, move(v.arrived_at), departed, v.triage, vit, procs, v.disposition,
        transit_minutes, listed, diverted_from,
    )  # fmt: skip


def _longest(visits: list[Visit]) -> Wait | None:
    """The longest wait of a record (the first of equals), None when it waited for nothing."""
    longest: Wait | None = None
    for vis in visits:
        for w in vis.waits:  # type: ignore[attr-defined]
            if w.minutes and (longest is None or w.minutes > longest.minutes):
                longest = w
    return longest


def _died_waiting(
    visits: list[Visit], timeline: list[Event], death: tuple[int, int, int, int, int, int]
) -> tuple[list[Event], Wait]:
    """End a record with its death while waiting, at the last of `visits` (in place): the
    timeline without what came after (returned, its last event the death), the signs of the
    casualty found failing before it (the visit's `deterioration`: care.failing of the last
    signs taken, FAILING_BEFORE the death), the visit's waits up to the fatal one, counted only
    as long as it lasted, which is the delay returned."""
    _, at, _, slot, cause, waited = death
    last_v = visits[-1]
    died_at = datetime.fromtimestamp(at, UTC)
    if slot == 3:  # died waiting for an ICU bed: what came after it did not happen
        last_v.procedures = [x for x in last_v.procedures if x.performed_at < died_at]
        timeline = [e for e in timeline if e.at < died_at]
    while timeline and timeline[-1].kind in ("departed", "evacuated"):
        timeline.pop()
    floor = _ts(timeline[-1].at) + 1 if timeline else at
    if last_v.vitals is not None:
        floor = max(floor, _ts(last_v.vitals.taken_at) + 30)
    for x in last_v.procedures:
        floor = max(floor, _ts(x.performed_at) + 1)
    # found failing FAILING_BEFORE the death, never before what the record already holds there
    seen = max(floor, at - FAILING_BEFORE)
    if at < seen + 30:
        died_at = datetime.fromtimestamp(seen + 30, UTC)
    earlier = next((v.vitals for v in reversed(visits) if v.vitals is not None), None)
    if earlier is not None:
        last_v.deterioration = care.failing(earlier, datetime.fromtimestamp(seen, UTC))  # type: ignore[attr-defined]
    last_v.departed_at = None
    last_v.disposition = "died"
    timeline.append(Event(died_at, "died", last_v.facility, None))
    kind = _KINDS[slot]
    # the wait the casualty died in: only the time waited, the later needs are dropped
    trimmed: list[Wait] = []
    for w in last_v.waits:  # type: ignore[attr-defined]
        if w.kind == kind:
            trimmed.append(Wait(kind, _minutes(waited), CAUSES[cause]))
            break
        trimmed.append(w)
    last_v.waits = trimmed  # type: ignore[attr-defined]
    return timeline, Wait(kind, _minutes(waited), CAUSES[cause])


def _rename(
    timeline: list[Event], visits: list[Visit], diverted: tuple[tuple[int, str], ...]
) -> None:
    """Name the unit a diverted casualty went to in the events that name the planned one."""
    for k, unit in diverted:
        old = visits[k].facility_id
        facility = visits[k].facility
        for e in timeline:
            if e.detail == old and (
                (e.kind == "arrived" and e.facility == facility)
                or (e.kind in ("departed", "evacuated") and e.facility == visits[k - 1].facility)
            ):
                e.detail = unit
