"""When casualties happen: tempo over the days of a scenario, hour-of-day patterns, mass casualties.

All tables here are computed once per scenario (see plan.py); sampling takes a few random numbers
from the patient's own stream.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace

from patientgen.generator.rng import cumulative


def tempo_weights(tempo: str, days: int) -> list[float]:
    """Relative casualty rate of each day of the scenario for a tempo."""
    out = []
    for d in range(days):
        t = (d + 0.5) / days
        if tempo == "escalating":
            w = 0.3 + 1.7 * t
        elif tempo == "surge":  # a build-up, a peak around a third of the way in, a tail
            w = 0.35 + 2.5 * math.exp(-(((t - 0.35) / 0.12) ** 2))
        elif tempo == "declining":
            w = 2.0 - 1.7 * t
        elif tempo == "intermittent":  # two busy days in every six, quiet in between
            w = 3.0 if d % 6 < 2 else 0.4
        else:  # sustained
            w = 1.0
        out.append(w)
    return out


def _hours(peaks: list[tuple[float, float, float]], floor: float) -> list[float]:
    """24 hourly weights: a floor plus gaussian bumps (centre hour, width in hours, height)."""
    out = []
    for h in range(24):
        w = floor
        for centre, width, height in peaks:
            delta = min(abs(h + 0.5 - centre), 24 - abs(h + 0.5 - centre))
            w += height * math.exp(-((delta / width) ** 2))
        out.append(w)
    return out


#: Hour-of-day pattern by kind of fighting, and for disease and non-battle injuries.
HOUR_WEIGHTS: dict[str, list[float]] = {
    "conventional": _hours([(5.5, 2.0, 1.6), (16.0, 3.0, 0.8)], 0.35),  # dawn attacks
    "artillery": _hours([(5.0, 2.5, 1.0), (19.0, 3.0, 0.9)], 0.5),  # fire at dawn and dusk
    "urban": _hours([(11.0, 4.0, 1.3)], 0.3),  # clearing by daylight
    "guerrilla": _hours([(8.5, 2.0, 1.2), (18.0, 2.0, 1.0)], 0.3),  # patrols, ambush at dusk
    "drone": _hours([(2.0, 3.0, 0.7), (13.0, 5.0, 0.7)], 0.5),  # day and thermal night use
    "naval": _hours([], 1.0),
    "cbrn": _hours([(4.5, 2.0, 1.5)], 0.3),  # before dawn, stable air
    "peacekeeping": _hours([(13.0, 4.0, 1.2)], 0.25),  # patrols and incidents by day
    "disease": _hours([(8.5, 2.0, 1.5), (19.0, 3.0, 0.5)], 0.2),  # sick call in the morning
    "non_battle_injury": _hours([(14.0, 4.5, 1.4)], 0.25),  # training and work hours
}


@dataclass(frozen=True, slots=True)
class TimeTable:
    """Sampling tables for the injury time of one scenario."""

    start_hour: float  # hour of day (UTC) at which the scenario starts
    days: int
    battle_days: list[float]  # cumulative over days, battle tempo
    dnbi_days: list[float]  # cumulative over days: disease and non-battle injuries
    hours: dict[str, list[float]]  # cumulative over 24 hours, per warfare kind / category

    @classmethod
    def build(cls, tempo: str, days: int, start_hour: float) -> TimeTable:
        battle = tempo_weights(tempo, days)
        # disease and accidents follow the number of troops more than the fighting: mostly flat
        dnbi = [0.75 + 0.25 * w for w in battle]
        return cls(
            start_hour=start_hour,
            days=days,
            battle_days=cumulative(battle),
            dnbi_days=cumulative(dnbi),
            hours={k: cumulative(v) for k, v in HOUR_WEIGHTS.items()},
        )

    def offset(self, random: Callable[[], float], battle: bool, hour_key: str) -> int:
        """Seconds after the scenario start, inside [0, days * 86400)."""
        day = bisect_right(self.battle_days if battle else self.dnbi_days, random())
        hour = bisect_right(self.hours[hour_key], random()) + random()
        in_day = ((hour - self.start_hour) % 24.0) * 3600.0
        return min(int(day * 86400 + in_day), self.days * 86400 - 1)


@dataclass(frozen=True, slots=True)
class MassCasualtyEvent:
    event_id: str
    offset: int  # seconds after the scenario start
    size: int
    front: int  # index into scenario.fronts
    warfare: str


def mass_casualty_schedule(
    rng_random: Callable[[], float],
    rate_per_day: float,
    days: int,
    min_size: int,
    max_size: int,
    table: TimeTable,
    front_cum: list[float],
    warfare_names: list[str],
    warfare_cum: list[float],
    scale: float = 1.0,
) -> list[MassCasualtyEvent]:
    """The events of a scenario: a Poisson number of them, drawn once from the scenario seed.

    Each event's size is drawn in [min_size, max_size] and multiplied by `scale` (at least 1: the
    density of battle casualties relative to the reference of plan.MC_REFERENCE_PER_DAY).
    """
    expected = rate_per_day * days
    # Poisson by inversion (expected is at most 20 * 365 = 7300, fine in floating point via log)
    count = 0
    if expected > 0:
        if expected < 500:
            limit = math.exp(-expected)
            prod = rng_random()
            while prod > limit:
                count += 1
                prod *= rng_random()
        else:  # normal approximation for large means
            u1, u2 = rng_random() or 1e-12, rng_random()
            z = math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)
            count = max(0, round(expected + z * math.sqrt(expected)))
    events = []
    for k in range(count):
        warfare = warfare_names[bisect_right(warfare_cum, rng_random())]
        events.append(
            MassCasualtyEvent(
                event_id=f"MCE-{k + 1:04d}",
                offset=table.offset(rng_random, True, warfare),
                size=round(scale * (min_size + int(rng_random() * (max_size - min_size + 1)))),
                front=bisect_right(front_cum, rng_random()),
                warfare=warfare,
            )
        )
    events.sort(key=lambda e: (e.offset, e.event_id))
    # number them in time order: MCE-0001 is the first event of the scenario
    return [replace(e, event_id=f"MCE-{k + 1:04d}") for k, e in enumerate(events)]
