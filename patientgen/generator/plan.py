"""Per-scenario tables, computed once per scenario and shared by every patient of it.

Holds the cumulative weights for every choice (bisect on one random number), the mass-casualty
schedule, the facility ids of each front, and the calibration constants:

- the mortality curve: p(death) = 1 / (1 + exp(-(a + SLOPE * score))) where score is the injury
  severity score plus a uniform fraction; `a` is solved (bisection) on a fixed sample of battle
  casualties of the scenario's warfare mix (seeded on its own, see `calibrate`) so that the
  expected battle case fatality rate equals the target (calibration.battle_cfr, else the default
  of the intensity, inside 10-20%: Eastridge 2012 gives about 10% for Iraq/Afghanistan, 16.1%
  Vietnam, 19.1% WWII);
- the triage thresholds on the same score: ISS-like defaults (T3 < 9, T2 < 16, T1 < 50, T4 above),
  or quantiles of the sample matching calibration.triage_mix when given;
- the chance that a minimal (T3) battle casualty returns to duty within 72 hours, chosen so that
  about 18% of battle casualties do (Owens 2008);
- the share of women of each nation (scenario.FEMALE_SHARE, or the calibration override);
- mass-casualty events whose sizes grow with the density of battle casualties (see
  `MC_REFERENCE_PER_DAY`), so the share of casualties in events does not shrink as the patient
  count grows.

Only injuries that can kill (generator.coherence: AIS 3 or more) are given a chance of death,
here in the calibration sample as in generation, so the calibrated case fatality rate holds.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from anyascii import anyascii

from patientgen.generator import care
from patientgen.generator import injuries as inj
from patientgen.generator.coherence import KIA_SURVIVABLE, LETHAL_AIS, lethal_ais
from patientgen.generator.names import pools
from patientgen.generator.rng import cumulative, scenario_stream
from patientgen.generator.timing import MassCasualtyEvent, TimeTable, mass_casualty_schedule
from patientgen.medical_plan import RECORD_ROLE, FacilityGroup, MedicalPlan
from patientgen.scenario import FEMALE_SHARE, Category, Nation, Scenario, TriageCategory

CATEGORIES: tuple[Category, ...] = ("disease", "non_battle_injury", "battle_injury")

#: Default battle-injury case fatality rate by intensity (assumptions inside the 10-20% band).
DEFAULT_CFR = {"low": 0.11, "medium": 0.13, "high": 0.16, "extreme": 0.19}

#: Default triage thresholds on the severity score (ISS-like: minor < 9 <= moderate < 16 <=
#: serious/critical < 50 <= unsurvivable).
DEFAULT_THRESHOLDS = (9.0, 16.0, 50.0)

#: Slope of the mortality curve per score point.
SLOPE = 0.2

#: Share of battle deaths that happen after reaching a facility (DOW); the rest are KIA.
#: Eastridge 2012: 87.3% of combat deaths happened before reaching a treatment facility.
DOW_SHARE = 0.13
#: A flight from the point of injury straight to Role 2 takes this share of the road's delays
#: through Role 1 (poi_to_role1 + role1_to_role2); by road (flow.road_transit) the leg takes them
#: whole.
AIR_SHARE = 0.6

#: Target share of battle casualties back to duty within 72 hours (Owens 2008: 18%).
RTD_72H = 0.18

#: Blood groups with Rh (approximate population shares, percent).
BLOOD_GROUPS = ("O+", "A+", "B+", "AB+", "O-", "A-", "B-", "AB-")
BLOOD_WEIGHTS = (37.4, 35.7, 8.5, 3.4, 6.6, 6.3, 1.5, 0.6)

#: Mass-casualty event sizes (scenario.mass_casualty.min_size/max_size) are those of a scenario
#: with up to this many battle casualties a day; denser scenarios scale every event in proportion
#: (more casualties in the same days means bigger incidents, not the same ones diluted).
MC_REFERENCE_PER_DAY = 50.0

CALIBRATION_SAMPLE = 12000
#: Seed of the calibration sample: fixed, so calibration never depends on a job's seed.
CALIBRATION_SEED = 0


def front_slugs(names: Sequence[str]) -> dict[str, str]:
    """The part of each front's facility ids that names the front (`R1-<slug>-1`, `POI-<slug>`):
    its name in Latin letters (anyascii: "Восток" is "Vostok", "Süd" "Sud", "东线" "DongXian"),
    runs of ASCII letters and digits joined by "-" ("front" when it has none).

    Invariant: the slugs of a scenario's fronts are distinct, so no two fronts share a facility
    id. A front whose slug an earlier front (in the scenario's order) already has gets the first
    free of `<slug>-2`, `<slug>-3`, ...: "A B" and "A-B" give "A-B" and "A-B-2". The slugs of
    distinct names that differ in letters or digits are the plain ones, as they always were.
    (A unit id `<role>-<slug>-<k>` ends in the unit's number, so distinct slugs give distinct
    ids: `A-B` unit 2 is `R1-A-B-2`, `A-B-2` unit 1 is `R1-A-B-2-1`.)
    """
    taken: set[str] = set()
    out: dict[str, str] = {}
    for name in names:
        plain = re.sub(r"[^A-Za-z0-9]+", "-", anyascii(name)).strip("-") or "front"
        found, k = plain, 1
        while found in taken:
            k += 1
            found = f"{plain}-{k}"
        taken.add(found)
        out[name] = found
    return out


@dataclass(frozen=True, slots=True)
class FrontPlan:
    name: str
    nations: tuple[Nation, ...]
    nation_cum: list[float]
    poi_id: str
    r1_ids: tuple[str, ...]
    r2_ids: tuple[str, ...]
    r3_ids: tuple[str, ...]
    units: dict[str, tuple[str, ...]]  # role -> ids of that role's units on this front


_RECORD_ROLES = ("R1", "R2", "R3")
#: Units of each role on a front with unlimited capacity (and in the default sized plan).
_UNITS = {"R1": 4, "R2": 2, "R3": 1}


@lru_cache(maxsize=256)
def _ids(role: str, slug: str, count: int) -> tuple[str, ...]:
    return tuple(f"{role}-{slug}-{k}" for k in range(1, count + 1))


# Tables every plan shares, built once per process: tuples, so no plan can change another's.
_MECHANISM_CUM = {k: tuple(cumulative(list(v))) for k, v in inj.WARFARE_MECHANISMS.items()}
_NBI_NAMES = tuple(inj.NBI_MECHANISMS)
_NBI_CUM = tuple(cumulative(list(inj.NBI_MECHANISMS.values())))
_BLOOD_CUM = tuple(cumulative(list(BLOOD_WEIGHTS)))


@lru_cache(maxsize=64)
def _time_table(tempo: str, days: int, start_hour: float) -> TimeTable:
    """The injury-time tables, shared by the plans of equal (tempo, days, start hour): only
    searched with bisect, never changed."""
    return TimeTable.build(tempo, days, start_hour)


def _unit_counts(medical: MedicalPlan | None, front: str) -> dict[str, int]:
    """Units per record role (Role 2 Basic and Enhanced are both R2, Basic numbered first)."""
    if medical is None:
        return dict(_UNITS)
    care = next(c for c in medical.fronts if c.front == front)
    counts = dict.fromkeys(_RECORD_ROLES, 0)
    for group in care.facilities:
        counts[RECORD_ROLE[group.role]] += group.count
    return counts


def unit_specs(medical: MedicalPlan, front: str, slug: str) -> list[tuple[str, FacilityGroup]]:
    """(unit id, its group) of every unit of a front (`slug`: its front_slugs), in the order of
    their ids."""
    care = next(c for c in medical.fronts if c.front == front)
    out: list[tuple[str, FacilityGroup]] = []
    for role in _RECORD_ROLES:
        k = 0
        for group_role in ("R1", "R2B", "R2E", "R3"):
            group = care.group(group_role)
            if group is None or RECORD_ROLE[group_role] != role:
                continue
            for _ in range(group.count):
                k += 1
                out.append((f"{role}-{slug}-{k}", group))
    return out


def death_probability(a: float, score: float) -> float:
    x = a + SLOPE * score
    if x > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-x))


class Plan:
    """Everything about a scenario that does not depend on the patient index."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.seed = scenario.seed
        self.total = scenario.total_patients
        self.start: datetime = scenario.start
        self.start_ts = math.ceil(scenario.start.timestamp())  # whole seconds, never before start
        self.transliterate = scenario.transliterate_names
        override = scenario.calibration.female_share
        self.female_share: dict[str, float] = {
            n: (FEMALE_SHARE[n] if override is None else override)
            for f in scenario.fronts
            for n in f.nationalities
        }
        mix = scenario.injury_mix
        self.category_cum = cumulative([mix.disease, mix.non_battle_injury, mix.battle_injury])
        medical = scenario.medical_plan
        counts = {f.name: _unit_counts(medical, f.name) for f in scenario.fronts}
        #: front name -> the front's part of its facility ids (front_slugs: distinct)
        self.slugs = front_slugs([f.name for f in scenario.fronts])
        self.fronts = tuple(
            FrontPlan(
                name=f.name,
                nations=tuple(f.nationalities),
                nation_cum=cumulative(list(f.nationalities.values())),
                poi_id=f"POI-{self.slugs[f.name]}",
                r1_ids=_ids("R1", self.slugs[f.name], counts[f.name]["R1"]),
                r2_ids=_ids("R2", self.slugs[f.name], counts[f.name]["R2"]),
                r3_ids=_ids("R3", self.slugs[f.name], counts[f.name]["R3"]),
                units={
                    role: _ids(role, self.slugs[f.name], counts[f.name][role])
                    for role in _RECORD_ROLES
                },
            )
            for f in scenario.fronts
        )
        self.front_index = {f.name: k for k, f in enumerate(scenario.fronts)}
        #: the fronts (by index) whose medical plan has no helicopter: their flights go by road
        self.no_air: frozenset[int] = frozenset(
            () if medical is None
            else (self.front_index[c.front] for c in medical.fronts if c.helicopters.count == 0)
        )  # fmt: skip
        self.front_cum = cumulative([f.share for f in scenario.fronts])
        nations = sorted({n for f in scenario.fronts for n in f.nationalities})
        self.name_pools = {n: pools(n, self.transliterate) for n in nations}
        self.r4_ids = {n: f"R4-{n}" for n in nations}  # Role 4 is in the home nation
        warfare = scenario.warfare.as_dict()
        self.warfare_names = [k for k, w in warfare.items() if w > 0]
        self.warfare_cum = cumulative([warfare[k] for k in self.warfare_names])
        self.mechanism_cum = _MECHANISM_CUM
        self.nbi_names = _NBI_NAMES
        self.nbi_cum = _NBI_CUM
        self.blood_cum = _BLOOD_CUM
        d = scenario.calibration.evacuation_delays
        self.log_delay = {
            "R1": math.log(d.poi_to_role1 * 60.0),
            "R2": math.log(d.role1_to_role2 * 60.0),
            "R3": math.log(d.role2_to_role3 * 60.0),
            "R4": math.log(d.role3_to_role4 * 60.0),
            # severe casualties flown from the point of injury straight to Role 2
            "R2air": math.log(AIR_SHARE * (d.poi_to_role1 + d.role1_to_role2) * 60.0),
        }
        start_hour = self.start.hour + self.start.minute / 60.0 + self.start.second / 3600.0
        self.times = _time_table(scenario.tempo, scenario.duration_days, start_hour)
        self.end_offset = scenario.duration_days * 86400 - 1
        self._mass_casualty(scenario)
        cal = scenario.calibration
        tm = cal.triage_mix
        calibrated = calibrate(
            tuple(zip(self.warfare_names, [warfare[k] for k in self.warfare_names], strict=True)),
            cal.battle_cfr if cal.battle_cfr is not None else DEFAULT_CFR[scenario.intensity],
            None if tm is None else (tm.T1, tm.T2, tm.T3, tm.T4),
        )
        self.target_cfr = calibrated.target_cfr
        self.death_a = calibrated.death_a
        self.thresholds = calibrated.thresholds
        self.quick_rtd = calibrated.quick_rtd

    # --- mass casualties ---------------------------------------------------------------------
    def _mass_casualty(self, scenario: Scenario) -> None:
        mc = scenario.mass_casualty
        stream = scenario_stream(scenario.seed, "events")
        battle = scenario.total_patients * scenario.injury_mix.battle_injury
        scale = max(1.0, battle / scenario.duration_days / MC_REFERENCE_PER_DAY)
        self.events: list[MassCasualtyEvent] = mass_casualty_schedule(
            stream.random,
            mc.rate_per_day,
            scenario.duration_days,
            mc.min_size,
            mc.max_size,
            self.times,
            self.front_cum,
            self.warfare_names,
            self.warfare_cum,
            scale,
        )
        casualties = sum(e.size for e in self.events)
        if self.events and battle >= 1:
            # a battle casualty belongs to an event with this chance; events never take everyone
            self.mc_prob = min(0.7, casualties / battle)
            self.mc_cum = cumulative([e.size for e in self.events])
        else:
            self.mc_prob = 0.0
            self.mc_cum = [1.0]

    def triage(self, score: float, grounded: bool = False) -> TriageCategory:
        """The category of a casualty's injuries from their score; never minimal when
        `grounded` (injuries.never_minimal: a broken leg, an open fracture)."""
        t3, t2, t1 = self.thresholds
        if score < t3:
            return "T2" if grounded else "T3"
        if score < t2:
            return "T2"
        if score < t1:
            return "T1"
        return "T4"


@dataclass(frozen=True, slots=True)
class Calibrated:
    """The solved constants of the mortality curve, triage thresholds and quick return to duty."""

    target_cfr: float
    death_a: float
    thresholds: tuple[float, float, float]
    quick_rtd: float


@lru_cache(maxsize=64)
def calibrate(
    warfare: tuple[tuple[str, float], ...],
    target_cfr: float,
    triage_mix: tuple[float, float, float, float] | None,
) -> Calibrated:
    """Solve the calibration constants on a fixed sample of battle casualties.

    The sample comes from a stream of its own (not the job's seed), so the constants depend only on
    the parameters that shape them: jobs differing in seed, size or dates share one calibration,
    and a worker pays its cost (about 0.1 s) once per distinct parameter set, not once per job.
    """
    names = [name for name, _ in warfare]
    warfare_cum = cumulative([weight for _, weight in warfare])
    mechanism_cum = {k: cumulative(list(v)) for k, v in inj.WARFARE_MECHANISMS.items()}
    r = scenario_stream(CALIBRATION_SEED, "calibration").random
    # (score, never minimal: injuries.never_minimal, Plan.triage) of each casualty
    lethal: list[tuple[float, bool]] = []  # those whose injuries can kill
    safe: list[tuple[float, bool]] = []  # the others: they never die
    # the scores of those of them who may be minimal with mild injuries only (AIS 1), or
    # injuries that heal within days (HEALS, at most moderate): back within 72 h (build._path)
    mild: list[float] = []
    for _ in range(CALIBRATION_SAMPLE):
        kind = names[bisect_right(warfare_cum, r())]
        mechanism = inj.BATTLE_MECHANISMS[bisect_right(mechanism_cum[kind], r())]
        injuries = inj.battle_injuries(mechanism, r)
        score = inj.iss(injuries) + r()
        grounded = any(inj.never_minimal(t, region) for t, region, _ in injuries)
        if lethal_ais(injuries) >= LETHAL_AIS:  # as build._hurt decides who can die
            lethal.append((score, grounded))
        else:
            safe.append((score, grounded))
            if not grounded and (
                max(i[2] for i in injuries) <= 1 or inj.heals_within_days(injuries)
            ):
                mild.append(score)
    total = len(lethal) + len(safe)
    lo, hi = -40.0, 20.0
    for _ in range(45):
        mid = (lo + hi) / 2
        mean = sum(death_probability(mid, s) for s, _ in lethal) / total
        if mean < target_cfr:
            lo = mid
        else:
            hi = mid
    death_a = (lo + hi) / 2
    thresholds = DEFAULT_THRESHOLDS
    if triage_mix is not None:
        thresholds = _mix_thresholds(triage_mix, death_a, lethal, safe, _alive_at_triage(r))
    t3 = thresholds[0]
    minimal_survivors = (
        sum(1.0 - death_probability(death_a, s) for s, g in lethal if s < t3 and not g)
        + sum(1 for s, g in safe if s < t3 and not g)
    ) / total
    # the minimal with only mild injuries, or only injuries that heal within days, always return
    # within 72 hours (build._path); the others do at the rate that makes RTD_72H of all
    always = sum(1 for s in mild if s < t3) / total
    rest = minimal_survivors - always
    quick_rtd = min(0.95, max(0.0, (RTD_72H - always) / rest)) if rest > 0 else 0.0
    return Calibrated(target_cfr, death_a, thresholds, quick_rtd)


def _alive_at_triage(r: Callable[[], float], n: int = 4000) -> float:
    """Share of the killed in action still alive when first triaged at the point of injury (the
    timing of build._first_aid and build._medic, without the minutes of buddy aid)."""
    alive = 0
    for _ in range(n):
        death = care.kia_minutes(r) * 60.0
        alive += death > 60 + int(r() * 240) + 120 + int(r() * 480)
    return alive / n


def _mix_thresholds(
    mix: tuple[float, float, float, float],
    death_a: float,
    lethal: list[tuple[float, bool]],
    safe: list[tuple[float, bool]],
    alive: float,
) -> tuple[float, float, float]:
    """Score thresholds whose expected mix of first triages, among those triaged, is `mix`.

    Who is triaged, and as what, follows generation: a survivor or a casualty who dies of wounds
    gets the category of their score; a KIA is triaged only if alive when the medic comes
    (`alive`), then immediate with the chance KIA_SURVIVABLE unless the score says expectant, else
    expectant; one never minimal (the rows' second item) scoring below the minimal's threshold
    is delayed. The thresholds are weighted quantiles over the calibration sample.
    """
    t1_share, t2_share, t3_share, _ = mix
    kia = 1.0 - DOW_SHARE
    rows = sorted(
        [(s, death_probability(death_a, s) * kia, g) for s, g in lethal]
        + [(s, 0.0, g) for s, g in safe]
    )
    triaged = sum(1.0 - k + k * alive for _, k, _ in rows)
    goals = (t3_share * triaged, t2_share * triaged, t1_share * triaged)
    thresholds: list[float] = []
    level = 0  # 0: filling T3, 1: T2, 2: T1
    filled = 0.0
    delayed = 0.0  # the never minimal below the minimal's threshold: counted as T2
    for score, k, grounded in rows:
        if level == 3:
            break
        while level < 3 and filled >= goals[level] - 1e-12:
            # an empty category closes where the previous one did (or below every score)
            thresholds.append(score if filled > 0 else (thresholds[-1] if thresholds else -1.0))
            level += 1
            filled = delayed if level == 1 else 0.0
        if level == 3:
            break
        if level == 0 and grounded:
            delayed += 1.0 - k
            continue
        filled += 1.0 - k
        if level == 2:  # KIA with a score below the T4 threshold may be triaged immediate
            filled += k * alive * KIA_SURVIVABLE
    while len(thresholds) < 3:
        thresholds.append(1e9)
    return thresholds[0], thresholds[1], thresholds[2]


@lru_cache(maxsize=16)
def _plan_for(key: bytes) -> Plan:
    return Plan(Scenario.model_validate_json(key))


def plan_for(scenario: Scenario) -> Plan:
    """The plan of a scenario, cached by its canonical JSON (equal scenarios share one plan).

    The plan is made from the scenario read back from that JSON, never from the object given:
    a scenario changed with model_copy(update=...) is not validated again, and a plan made from
    it directly differs (tried: 132 files of scripts/output_digests.py changed)."""
    return _plan_for(scenario.canonical_json())
