"""Deterministic random streams: everything random is derived from (seed, index) with blake2b.

No hash() of a str, no wall clock, no uuid4, no global random state: a patient's stream and id are
a pure function of the scenario seed and the patient's index, so any range can be made alone.
"""

from __future__ import annotations

import random
from hashlib import blake2b
from struct import Struct
from uuid import UUID

_PAIR = Struct("<QQ")
_PATIENT = b"pg-patient-v1"
_EVENTS = b"pg-events-v1"
_CALIBRATION = b"pg-calib-v1"


def patient_stream(seed: int, index: int) -> tuple[str, random.Random]:
    """The id (a UUID string) and the private random stream of patient `index`."""
    digest = blake2b(_PAIR.pack(seed, index), digest_size=32, person=_PATIENT).digest()
    uid = str(UUID(bytes=digest[:16], version=4))
    return uid, random.Random(int.from_bytes(digest[16:], "little"))


def scenario_stream(seed: int, purpose: str) -> random.Random:
    """A stream for per-scenario tables (mass-casualty schedule, calibration samples)."""
    person = {"events": _EVENTS, "calibration": _CALIBRATION}[purpose]
    digest = blake2b(_PAIR.pack(seed, 0), digest_size=32, person=person).digest()
    return random.Random(int.from_bytes(digest, "little"))


def cumulative(weights: list[float] | tuple[float, ...]) -> list[float]:
    """Normalised cumulative weights for `items[bisect_right(cum, random())]`; the last is 1.0.

    Zero weights are never picked. Raises ValueError when all weights are zero.
    """
    total = float(sum(weights))
    if total <= 0.0:
        raise ValueError("weights must not all be zero")
    out: list[float] = []
    acc = 0.0
    for w in weights:
        acc += w
        out.append(acc / total)
    # random() < 1.0, so the last item stays reachable and nothing falls off the end
    last_positive = max(k for k, w in enumerate(weights) if w > 0)
    for k in range(last_positive, len(out)):
        out[k] = 1.0
    return out
