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


def _count(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


class SummaryBuilder:
    """Accumulates the summary of a range of patients, one `add` at a time."""

    def __init__(self, scenario: Scenario) -> None:
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
        self.patients += 1
        c = self.counters
        _count(c["by_category"], p.category)
        _count(c["by_mechanism"], p.mechanism or "none")
        triage = p.triage or "none"
        _count(c["by_triage"], triage)
        outcome = p.outcome
        _count(c["by_outcome"], outcome)
        _count(c["by_nation"], p.nationality)
        _count(c["by_front"], p.front)
        _count(c["by_last_facility"], p.outcome_facility)
        _count(c["by_warfare"], p.warfare)
        _count(self.outcome_by_triage.setdefault(triage, {}), outcome)
        died = outcome == "KIA" or outcome == "DOW" or outcome == "DIED"
        if died:
            _count(c["deaths_by_category"], p.category)
        if p.mass_casualty:
            self.mass_casualty += 1
        minutes = (p.outcome_at - p.injured_at).total_seconds() / 60.0
        hist = self.histograms.get(outcome)
        if hist is not None:
            hist[bisect_right(TIME_BINS, minutes)] += 1
        if p.category == "battle_injury":
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
        day = int((p.injured_at - self._start).total_seconds() // _DAY)
        if 0 <= day < self._days:
            self.per_day[day] += 1
        else:
            self.outside += 1
        facilities = self.facilities
        for visit in p.visits:
            if visit.facility == "POI":
                continue
            entry = facilities.get(visit.facility_id)
            if entry is None:
                facilities[visit.facility_id] = [visit.facility, 1]
            else:
                entry[1] += 1

    def to_dict(self) -> dict[str, Any]:
        """The chunk summary: JSON-serialisable, mergeable (merge_summaries)."""
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
    }
