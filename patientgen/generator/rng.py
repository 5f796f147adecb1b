"""Deterministic random streams: everything random is derived from (seed, index) with blake2b.

No hash() of a str, no wall clock, no uuid4, no global random state: a patient's stream and id are
a pure function of the scenario seed and the patient's index, so any range can be made alone.
"""

from __future__ import annotations

import _random
import random
from collections.abc import Callable
from hashlib import blake2b
from math import log
from statistics import NormalDist
from struct import Struct

_PAIR = Struct("<QQ")
_PATIENT = b"pg-patient-v1"
_EVENTS = b"pg-events-v1"
_CALIBRATION = b"pg-calib-v1"
_CHAIN = b"pg-chain-v1"


_VARIANT = "89ab"


def patient_seed(seed: int, index: int) -> tuple[str, int]:
    """The id (a version-4-shaped UUID string) and the stream seed of patient `index`.

    Both come from one blake2b digest of (seed, index): the first 16 bytes make the UUID, the
    last 16 seed the patient's private Mersenne Twister.
    """
    digest = blake2b(_PAIR.pack(seed, index), digest_size=32, person=_PATIENT).digest()
    h = digest[:16].hex()
    uid = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[digest[8] & 3]}{h[17:20]}-{h[20:]}"
    return uid, int.from_bytes(digest[16:], "little")


def stream_seed(seed: int, index: int) -> int:
    """The stream seed of patient `index` alone (patient_seed's second half, without the id)."""
    digest = blake2b(_PAIR.pack(seed, index), digest_size=32, person=_PATIENT).digest()
    return int.from_bytes(digest[16:], "little")


def patient_stream(seed: int, index: int) -> tuple[str, random.Random]:
    """The id and a fresh private random stream of patient `index`."""
    uid, stream_seed = patient_seed(seed, index)
    return uid, random.Random(stream_seed)


#: reseed(rng, stream_seed) resets `rng` to the stream of `stream_seed` (the same numbers as
#: random.Random(stream_seed) gives from random(); the generator never uses gauss(), whose cache
#: this does not clear). It is the C seeding of Mersenne Twister (random.Random's base class)
#: itself: called once or twice per patient, a Python wrapper around it would be a frame more.
reseed: Callable[[random.Random, int], None] = _random.Random.seed


#: 4096 quantiles of the standard normal: NORMAL[int(random() * 4096)] is a normal deviate,
#: much cheaper than Random.gauss() and plenty for jittering delays.
NORMAL: tuple[float, ...] = tuple(NormalDist().inv_cdf((k + 0.5) / 4096) for k in range(4096))


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


def chain_tolerance(seed: int, index: int) -> float:
    """Patient `index`'s tolerance of waiting in the care-chain simulation: an Exp(1) draw of
    its own (blake2b of (seed, index)), apart from the patient's stream, which it never moves."""
    digest = blake2b(_PAIR.pack(seed, index), digest_size=8, person=_CHAIN).digest()
    u = (int.from_bytes(digest, "little") >> 11) / float(1 << 53)  # [0, 1)
    return -log(1.0 - u)
