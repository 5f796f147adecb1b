"""The early-warning score of a set of vital signs, and what counts as a notable deterioration.

The score is NEWS2 (National Early Warning Score 2, Royal College of Physicians, 2017): each of
respiratory rate, SpO2 (scale 1), systolic blood pressure, pulse, consciousness and temperature
scores 0 to 3 by the published bands, and the score is their sum. Two parts of NEWS2 are left out
because the record does not hold them: supplemental oxygen (+2) and "new confusion" (only AVPU
is recorded: anything but Alert scores 3).

A *notable deterioration* between two consecutive vital-sign sets of one casualty is either
- a rise of the score by at least 2 into NEWS2's urgent-response band (5 or more), or
- a parameter that newly scores 3 (NEWS2's single-parameter trigger, its "red score").
It is what the exercise inject list (formats.mel) announces and the casualty card (formats.cards)
marks. Pure functions of the values: the same vital signs always give the same answer.
"""

from __future__ import annotations

from patientgen.generator.patient import Vitals

#: Score of NEWS2's urgent-response band.
URGENT = 5
#: A rise of at least this much into the urgent band is a notable deterioration.
RISE = 2
RED = 3

# (upper bound inclusive, points), in increasing order; the last bound is open.
_RESPIRATION = ((8, 3), (11, 1), (20, 0), (24, 2), (None, 3))
_SPO2 = ((91, 3), (93, 2), (95, 1), (None, 0))
_SYSTOLIC = ((90, 3), (100, 2), (110, 1), (219, 0), (None, 3))
_PULSE = ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (None, 3))
_TEMPERATURE = ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (None, 2))

#: Names of the scored parameters, in the order of `parameters`.
PARAMETERS: tuple[str, ...] = (
    "respiratory rate",
    "SpO2",
    "systolic BP",
    "pulse",
    "consciousness",
    "temperature",
)


def _points(value: float, bands: tuple[tuple[float | None, int], ...]) -> int:
    for upper, points in bands:
        if upper is None or value <= upper:
            return points
    raise AssertionError("the last band is open")  # pragma: no cover


def parameters(v: Vitals) -> tuple[int, ...]:
    """The points of each parameter (PARAMETERS order)."""
    return (
        _points(v.respiratory_rate, _RESPIRATION),
        _points(v.spo2, _SPO2),
        _points(v.systolic_bp, _SYSTOLIC),
        _points(v.heart_rate, _PULSE),
        0 if v.avpu == "A" else RED,
        _points(v.temperature_c, _TEMPERATURE),
    )


def score(v: Vitals) -> int:
    """The aggregate score (0 to 18 here)."""
    return sum(parameters(v))


def deterioration(before: Vitals, after: Vitals) -> list[str]:
    """Why `after` is a notable deterioration from `before` (empty list: it is not)."""
    old, new = parameters(before), parameters(after)
    reasons = [
        f"{name} now scores {RED}"
        for name, was, now in zip(PARAMETERS, old, new, strict=True)
        if now == RED and was < RED
    ]
    total_old, total_new = sum(old), sum(new)
    if total_new >= URGENT and total_new - total_old >= RISE:
        reasons.insert(0, f"NEWS2 {total_old} to {total_new}")
    return reasons
