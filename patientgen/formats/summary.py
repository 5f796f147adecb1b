"""Mergeable summaries of a population: what `summary.json` holds.

A chunk summary holds only counters and fixed histogram bins (no raw lists), so summaries of any
chunking of a range merge into exactly the summary of the whole range. Derived figures (rates and
percentiles) are computed from the merged integers, never merged themselves.

Battle-injury rates follow Holcomb et al., J Trauma 2006;60:397-401 (see domain.md):
  CFR  = (KIA + DOW) / (KIA + WIA)
  %KIA = KIA / (KIA + WIA - RTD)
  %DOW = DOW / (WIA - RTD)
with WIA = battle casualties who reached a treatment facility (everyone but the KIA), DOW = those
of them who died, and RTD = those of them "returned to duty" in Holcomb's sense: back to duty
within 72 hours of wounding (the wounded who were never admitted as seriously hurt). Those who
return to duty after a longer stay count among the wounded. `rtd` (every return to duty, at any
time) stays in the counters for reference; the rates use `rtd_within_72h`.

Deaths are KIA, DOW (battle) and DIED (disease or non-battle injury, after reaching care).
A KIA who died before anyone triaged them counts under triage "none".

A scenario with a medical plan adds `care_chain` (absent otherwise, so summaries without a plan
are as before): histograms of every wait by kind (WAIT_BINS; a need met at once is a wait of 0)
with their p50/p90, the deaths, those with a delay cause and those who died waiting; and the
statistics of the simulation (facility occupancy and queue per hour, operating-table hours, ICU
bed-days, lifts per day, MEDEVAC precedence met), computed once per job and carried by chunk 0.

The per-hour series (`care_chain.simulation.hourly`: every unit's occupancy and queue for every
hour) is in summary.json alone. It grows with units times hours, whatever the patient count (a
year of 1,200 units, 20 fronts of 60, is 42 MB for a job of 1,000 patients), so the
summaries a job stores in its database (each chunk's, and the merged one in its row) leave it
out: chunk summaries never have it, and `with_series` puts it back, from the care-chain result,
when summary.json is written. Every summary.json is thus the same bytes whatever the chunking.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario

#: Upper edges (minutes) of the time-to-outcome histogram bins; the last bin is open-ended.
TIME_BINS: tuple[int, ...] = (
    5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1080, 1440, 2160, 2880,
    4320, 5760, 7200, 10080, 14400, 20160, 30240, 43200,
)  # fmt: skip
OUTCOMES: tuple[str, ...] = ("KIA", "DOW", "DIED", "RTD", "EVACUATED_R4")
PERCENTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))
_COUNTERS: tuple[str, ...] = (
    "by_category",
    "by_mechanism",
    "by_triage",
    "by_outcome",
    "by_nation",
    "by_front",
    "by_last_facility",
    "by_warfare",
    "deaths_by_category",
)
_BATTLE_COUNTS: tuple[str, ...] = ("casualties", "kia", "wia", "dow", "rtd", "rtd_within_72h")
_DAY = 86_400.0
#: The key of the per-hour series in the simulation's statistics (summary.json only).
SERIES = "hourly"
#: Upper edges (minutes) of the wait histogram bins after the first, which holds the waits of 0.
WAIT_BINS: tuple[int, ...] = (
    5, 10, 15, 30, 45, 60, 90, 120, 180, 240, 360, 480, 720, 1080, 1440, 2160, 2880, 4320,
)  # fmt: skip
WAIT_KINDS: tuple[str, ...] = ("evacuation", "treatment", "surgery", "bed")


class SummaryBuilder:
    """Accumulates the summary of a range of patients, one `add` at a time."""

    def __init__(self, scenario: Scenario, chain: dict[str, Any] | None = None) -> None:
        """`chain`: the care-chain statistics, given to the builder of chunk 0 only (kept
        without the per-hour series: see the module docstring)."""
        self._chain = scenario.medical_plan is not None
        self._chain_stats = None if chain is None else _without(chain, SERIES)
        self.waits = {kind: [0] * (len(WAIT_BINS) + 2) for kind in WAIT_KINDS}
        self.chain_deaths = [0, 0, 0]  # deaths, with a delay cause, died waiting
        self._start = scenario.start
        self._days = scenario.duration_days
        self.patients = 0
        self.counters: dict[str, dict[str, int]] = {name: {} for name in _COUNTERS}
        self.battle = dict.fromkeys(_BATTLE_COUNTS, 0)
        self.mass_casualty = 0
        self.histograms = {outcome: [0] * (len(TIME_BINS) + 1) for outcome in OUTCOMES}
        self.per_day = [0] * self._days
        self.outside = 0
        self.facilities: dict[str, list[Any]] = {}
        self.outcome_by_triage: dict[str, dict[str, int]] = {}

    def add(self, p: Patient) -> None:
        # counters updated inline, without a helper's call: this runs once per patient
        self.patients += 1
        c = self.counters
        category = p.category
        counter = c["by_category"]
        counter[category] = counter.get(category, 0) + 1
        mechanism = p.mechanism or "none"
        counter = c["by_mechanism"]
        counter[mechanism] = counter.get(mechanism, 0) + 1
        triage = p.triage or "none"
        counter = c["by_triage"]
        counter[triage] = counter.get(triage, 0) + 1
        outcome = p.outcome
        counter = c["by_outcome"]
        counter[outcome] = counter.get(outcome, 0) + 1
        counter = c["by_nation"]
        counter[p.nationality] = counter.get(p.nationality, 0) + 1
        counter = c["by_front"]
        counter[p.front] = counter.get(p.front, 0) + 1
        counter = c["by_last_facility"]
        counter[p.outcome_facility] = counter.get(p.outcome_facility, 0) + 1
        counter = c["by_warfare"]
        counter[p.warfare] = counter.get(p.warfare, 0) + 1
        by_triage = self.outcome_by_triage.get(triage)
        if by_triage is None:
            by_triage = self.outcome_by_triage[triage] = {}
        by_triage[outcome] = by_triage.get(outcome, 0) + 1
        died = outcome == "KIA" or outcome == "DOW" or outcome == "DIED"
        if died:
            counter = c["deaths_by_category"]
            counter[category] = counter.get(category, 0) + 1
        if p.mass_casualty:
            self.mass_casualty += 1
        injured_at = p.injured_at
        minutes = (p.outcome_at - injured_at).total_seconds() / 60.0
        hist = self.histograms.get(outcome)
        if hist is not None:
            hist[bisect_right(TIME_BINS, minutes)] += 1
        if category == "battle_injury":
            b = self.battle
            b["casualties"] += 1
            if outcome == "KIA":
                b["kia"] += 1
            else:
                b["wia"] += 1
                if outcome == "DOW":
                    b["dow"] += 1
                elif outcome == "RTD":
                    b["rtd"] += 1
                    if minutes <= 72 * 60:
                        b["rtd_within_72h"] += 1
        day = int((injured_at - self._start).total_seconds() // _DAY)
        if 0 <= day < self._days:
            self.per_day[day] += 1
        else:
            self.outside += 1
        facilities = self.facilities
        if self._chain:
            self._add_waits(p, died)
        for visit in p.visits:
            if visit.facility == "POI":
                continue
            entry = facilities.get(visit.facility_id)
            if entry is None:
                facilities[visit.facility_id] = [visit.facility, 1]
            else:
                entry[1] += 1

    def _add_waits(self, p: Patient, died: bool) -> None:
        for visit in p.visits:
            for w in getattr(visit, "waits", ()):
                m = w.minutes
                self.waits[w.kind][0 if m <= 0 else 1 + bisect_right(WAIT_BINS, m)] += 1
        if died:
            c = self.chain_deaths
            c[0] += 1
            if getattr(p, "delay", None) is not None:
                c[1] += 1
            if getattr(p, "died_waiting", False):
                c[2] += 1

    def to_dict(self) -> dict[str, Any]:
        """The chunk summary: JSON-serialisable, mergeable (merge_summaries)."""
        extra: dict[str, Any] = {}
        if self._chain:
            extra["care_chain"] = {
                "waits": {k: list(v) for k, v in self.waits.items()},
                "deaths": self.chain_deaths[0],
                "deaths_with_delay": self.chain_deaths[1],
                "died_waiting": self.chain_deaths[2],
                "simulation": self._chain_stats,
            }
        return {
            "patients": self.patients,
            **{name: dict(counter) for name, counter in self.counters.items()},
            "outcome_by_triage": {t: dict(c) for t, c in self.outcome_by_triage.items()},
            "mass_casualty_patients": self.mass_casualty,
            "battle_injury": dict(self.battle),
            "time_to_outcome_minutes": {
                "bins": list(TIME_BINS),
                "histograms": {k: list(v) for k, v in self.histograms.items()},
            },
            "casualties_per_day": list(self.per_day),
            "casualties_outside_period": self.outside,
            "facilities": {
                fid: {"role": role, "visits": visits}
                for fid, (role, visits) in sorted(self.facilities.items())
            },
            **extra,
        }


def _add_counter(into: dict[str, int], other: dict[str, int]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


def _add_list(into: list[int], other: list[int]) -> list[int]:
    if len(other) > len(into):
        into.extend([0] * (len(other) - len(into)))
    for i, value in enumerate(other):
        into[i] += value
    return into


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 6) if denominator > 0 else None


def _percentiles(histogram: list[int]) -> dict[str, float | None]:
    total = sum(histogram)
    result: dict[str, float | None] = {}
    for name, q in PERCENTILES:
        if total == 0:
            result[name] = None
            continue
        target = q * total
        cumulative = 0
        value = float(TIME_BINS[-1])
        for i, count in enumerate(histogram):
            if count and cumulative + count >= target:
                lower = float(TIME_BINS[i - 1]) if i > 0 else 0.0
                upper = float(TIME_BINS[i]) if i < len(TIME_BINS) else lower
                value = lower + (target - cumulative) / count * (upper - lower)
                break
            cumulative += count
        result[name] = round(value, 1)
    return result


def merge_summaries(chunk_summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge chunk summaries (in any order) and add the derived rates and percentiles.

    Merging the chunks of any chunking of a range gives the same dict as the single-chunk summary;
    a merged summary may itself be merged again (its derived figures are recomputed).
    """
    patients = 0
    counters: dict[str, dict[str, int]] = {name: {} for name in _COUNTERS}
    battle = dict.fromkeys(_BATTLE_COUNTS, 0)
    mass_casualty = 0
    histograms: dict[str, list[int]] = {o: [0] * (len(TIME_BINS) + 1) for o in OUTCOMES}
    per_day: list[int] = []
    outside = 0
    facilities: dict[str, dict[str, Any]] = {}
    outcome_by_triage: dict[str, dict[str, int]] = {}
    for s in chunk_summaries:
        patients += s["patients"]
        for name in _COUNTERS:
            _add_counter(counters[name], s[name])
        for key in _BATTLE_COUNTS:
            battle[key] += s["battle_injury"][key]
        # .get: chunk summaries recorded before this counter existed (a job resumed after an
        # upgrade) simply lack it.
        for triage, outcomes in s.get("outcome_by_triage", {}).items():
            _add_counter(outcome_by_triage.setdefault(triage, {}), outcomes)
        mass_casualty += s["mass_casualty_patients"]
        for outcome, hist in s["time_to_outcome_minutes"]["histograms"].items():
            _add_list(histograms.setdefault(outcome, [0] * (len(TIME_BINS) + 1)), hist)
        _add_list(per_day, s["casualties_per_day"])
        outside += s["casualties_outside_period"]
        for fid, entry in s["facilities"].items():
            mine = facilities.get(fid)
            if mine is None:
                facilities[fid] = {"role": entry["role"], "visits": entry["visits"]}
            else:
                mine["visits"] += entry["visits"]

    chain = _merge_chain(
        [s["care_chain"] for s in chunk_summaries if "care_chain" in s]  # type: ignore[index]
    )
    kia, wia, dow, rtd = battle["kia"], battle["wia"], battle["dow"], battle["rtd_within_72h"]
    all_outcomes = [0] * (len(TIME_BINS) + 1)
    for hist in histograms.values():
        _add_list(all_outcomes, hist)
    percentiles = {outcome: _percentiles(hist) for outcome, hist in histograms.items()}
    percentiles["all"] = _percentiles(all_outcomes)
    return {
        "patients": patients,
        **{name: dict(sorted(counters[name].items())) for name in _COUNTERS},
        "outcome_by_triage": {
            triage: dict(sorted(outcomes.items()))
            for triage, outcomes in sorted(outcome_by_triage.items())
        },
        "mass_casualty_patients": mass_casualty,
        "battle_injury": {
            **battle,
            "cfr": _ratio(kia + dow, kia + wia),
            "pct_kia": _ratio(kia, kia + wia - rtd),
            "pct_dow": _ratio(dow, wia - rtd),
        },
        "time_to_outcome_minutes": {
            "bins": list(TIME_BINS),
            "histograms": histograms,
            "percentiles": percentiles,
        },
        "casualties_per_day": per_day,
        "casualties_outside_period": outside,
        "facilities": dict(sorted(facilities.items())),
        **({"care_chain": chain} if chain is not None else {}),
    }


def with_series(merged: dict[str, Any], chain: dict[str, Any] | None) -> dict[str, Any]:
    """The merged summary as summary.json holds it: with the per-hour series of the care-chain
    statistics `chain` (None without a medical plan) put back into its simulation."""
    block = merged.get("care_chain")
    if chain is None or SERIES not in chain or not isinstance(block, dict):
        return merged
    simulation = block.get("simulation")
    if not isinstance(simulation, dict):
        return merged
    return {**merged, "care_chain": {**block, "simulation": {**simulation, SERIES: chain[SERIES]}}}


def _without(mapping: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _merge_chain(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The merged care_chain block (None when no chunk has one), with p50/p90 of each wait."""
    if not parts:
        return None
    waits = {kind: [0] * (len(WAIT_BINS) + 2) for kind in WAIT_KINDS}
    deaths = with_delay = died_waiting = 0
    simulation = None
    for part in parts:
        for kind, hist in part["waits"].items():
            _add_list(waits[kind], hist)
        deaths += part["deaths"]
        with_delay += part["deaths_with_delay"]
        died_waiting += part["died_waiting"]
        if part.get("simulation") is not None:
            simulation = part["simulation"]
    return {
        "wait_bins_minutes": [0, *WAIT_BINS],
        "waits": waits,
        "wait_percentiles_minutes": {kind: _wait_percentiles(h) for kind, h in waits.items()},
        "deaths": deaths,
        "deaths_with_delay": with_delay,
        "died_waiting": died_waiting,
        "share_of_deaths_with_delay": _ratio(with_delay, deaths),
        "simulation": simulation,
    }


def _wait_percentiles(histogram: list[int]) -> dict[str, float | None]:
    """p50 and p90 of a wait histogram (bin 0: no wait; then WAIT_BINS, last open-ended)."""
    total = sum(histogram)
    result: dict[str, float | None] = {}
    for name, q in (("p50", 0.5), ("p90", 0.9)):
        if total == 0:
            result[name] = None
            continue
        target = q * total
        if histogram[0] >= target:
            result[name] = 0.0
            continue
        cumulative = histogram[0]
        value = float(WAIT_BINS[-1])
        for i in range(1, len(histogram)):
            count = histogram[i]
            if count and cumulative + count >= target:
                lower = float(WAIT_BINS[i - 2]) if i >= 2 else 0.0
                upper = float(WAIT_BINS[i - 1]) if i - 1 < len(WAIT_BINS) else lower
                value = lower + (target - cumulative) / count * (upper - lower)
                break
            cumulative += count
        result[name] = round(value, 1)
    return result
