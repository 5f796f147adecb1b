"""Property tests of scenario validation against an independent oracle of the rules.

`oracle()` restates every rule of a scenario from its documentation (the OpenAPI schema and
scenario.py's docstrings) on plain JSON data, without pydantic. Then:
- every scenario built by the strategies below to be valid is accepted (nothing valid rejected);
- every one of those with exactly one rule broken is refused, with an error that points at the
  broken field (nothing invalid accepted);
- on arbitrary mixtures of valid and invalid values, the model accepts exactly what the oracle
  accepts, and an accepted scenario survives the round trip through its stored JSON form;
- through the running service, `POST /scenarios/validate` agrees with the oracle too.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from patientgen.scenario import Scenario
from tests.hostile.conftest import Service

# -- the rules, restated independently -----------------------------------------------------------

#: The 31 NATO members with armed forces (not Iceland), ISO 3166-1 alpha-3 (restated here).
NATIONS = frozenset([
    "ALB", "BEL", "BGR", "CAN", "HRV", "CZE", "DNK", "EST", "FIN", "FRA", "DEU", "GRC", "HUN",
    "ITA", "LVA", "LTU", "LUX", "MNE", "NLD", "MKD", "NOR", "POL", "PRT", "ROU", "SVK",
    "SVN", "ESP", "SWE", "TUR", "GBR", "USA",
])  # fmt: skip
INTENSITIES = ("low", "medium", "high", "extreme")
TEMPOS = ("sustained", "escalating", "surge", "declining", "intermittent")
WARFARE = (
    "conventional",
    "artillery",
    "urban",
    "guerrilla",
    "drone",
    "naval",
    "cbrn",
    "peacekeeping",
)
INJURY_DEFAULTS = {"disease": 0.52, "non_battle_injury": 0.33, "battle_injury": 0.15}
TRIAGE = ("T1", "T2", "T3", "T4")
DELAYS = ("poi_to_role1", "role1_to_role2", "role2_to_role3", "role3_to_role4")
#: What a spreadsheet reads as the start of a formula: no front name (a cell of patients.csv)
#: begins so.
FORMULA = ("=", "+", "-", "@")
#: Minutes: a week between echelons; the strategic flight (role3_to_role4) at most 12 hours.
LONGEST_DELAY = dict.fromkeys(DELAYS, 7 * 24 * 60) | {"role3_to_role4": 12 * 60}
MAX_SEED = 2**63 - 1
MAX_PATIENTS = 10_000_000
TOLERANCE = 1e-6


def _line(v: Any, longest: int) -> bool:
    """A name: 1 to `longest` characters, not only spaces, no control character nor line or
    paragraph separator."""
    return (
        isinstance(v, str)
        and 1 <= len(v) <= longest
        and bool(v.strip())
        and not any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in v)
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


def _in(v: Any, low: float, high: float, *, open_low: bool = False, open_high: bool = False):
    if not _is_number(v):
        return False
    above = v > low if open_low else v >= low
    below = v < high if open_high else v <= high
    return above and below


def _int_in(v: Any, low: int, high: int) -> bool:
    return _is_int(v) and low <= v <= high


def _sums_to_one(values: list[float]) -> bool:
    return abs(math.fsum(values) - 1.0) <= TOLERANCE


def _fraction(v: Any) -> bool:
    return _in(v, 0.0, 1.0)


def _aware_timestamp(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        return False
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return False
    return datetime(1900, 1, 1, tzinfo=UTC) <= parsed < datetime(2200, 1, 1, tzinfo=UTC)


def _mix(value: Any, keys: tuple[str, ...], defaults: dict[str, float], where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: not an object"]
    problems = [f"{where}.{k}: unknown" for k in value if k not in keys]
    problems += [
        f"{where}.{k}: not a fraction" for k in keys if k in value and not _fraction(value[k])
    ]
    if not problems and not _sums_to_one([value.get(k, defaults.get(k, 0.0)) for k in keys]):
        problems.append(f"{where}: does not sum to 1")
    return problems


def _front(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: not an object"]
    problems = [
        f"{where}.{k}: unknown" for k in value if k not in ("name", "share", "nationalities")
    ]
    name = value.get("name")
    if not (_line(name, 80) and not name.startswith(FORMULA)):
        problems.append(f"{where}.name")  # also: no spreadsheet formula in patients.csv
    if not _fraction(value.get("share")):
        problems.append(f"{where}.share")
    nations = value.get("nationalities")
    if not isinstance(nations, dict) or not nations:
        problems.append(f"{where}.nationalities: missing or empty")
    else:
        bad = [k for k, v in nations.items() if k not in NATIONS or not _fraction(v)]
        if bad:
            problems.append(f"{where}.nationalities: {bad}")
        elif not _sums_to_one(list(nations.values())):
            problems.append(f"{where}.nationalities: does not sum to 1")
    return problems


def _fronts(value: Any) -> list[str]:
    if not isinstance(value, list):
        return ["fronts: not a list"]
    problems = []
    if not 1 <= len(value) <= 20:
        problems.append("fronts: 1 to 20")
    for i, front in enumerate(value):
        problems += _front(front, f"fronts[{i}]")
    if problems:
        return problems
    names = [front["name"] for front in value]
    if len(set(names)) != len(names):
        problems.append("fronts: names repeat")
    if not _sums_to_one([front["share"] for front in value]):
        problems.append("fronts: shares do not sum to 1")
    return problems


def _mass_casualty(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["mass_casualty: not an object"]
    problems = [
        f"mass_casualty.{k}: unknown"
        for k in value
        if k not in ("rate_per_day", "min_size", "max_size")
    ]
    if "rate_per_day" in value and not _in(value["rate_per_day"], 0.0, 20.0):
        problems.append("mass_casualty.rate_per_day")
    sizes = {"min_size": 8, "max_size": 40} | {
        k: value[k] for k in ("min_size", "max_size") if k in value
    }
    bad = [k for k, v in sizes.items() if not _int_in(v, 2, 10_000)]
    problems += [f"mass_casualty.{k}" for k in bad]
    if not bad and sizes["min_size"] > sizes["max_size"]:
        problems.append("mass_casualty: min_size > max_size")
    return problems


def _calibration(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["calibration: not an object"]
    known = ("triage_mix", "battle_cfr", "female_share", "evacuation_delays")
    problems = [f"calibration.{k}: unknown" for k in value if k not in known]
    triage = value.get("triage_mix")
    if triage is not None:
        if isinstance(triage, dict) and any(k not in triage for k in TRIAGE):
            problems.append("calibration.triage_mix: T1-T4 required")
        else:
            problems += _mix(triage, TRIAGE, {}, "calibration.triage_mix")
    cfr = value.get("battle_cfr")
    if cfr is not None and not _in(cfr, 0.0, 1.0, open_low=True, open_high=True):
        problems.append("calibration.battle_cfr")
    female = value.get("female_share")  # null: each nation's own share
    if female is not None and not _fraction(female):
        problems.append("calibration.female_share")
    if "evacuation_delays" in value:
        delays = value["evacuation_delays"]
        if not isinstance(delays, dict):
            problems.append("calibration.evacuation_delays: not an object")
        else:
            problems += [
                f"calibration.evacuation_delays.{k}: unknown" for k in delays if k not in DELAYS
            ]
            problems += [
                f"calibration.evacuation_delays.{k}"
                for k in DELAYS
                if k in delays and not _in(delays[k], 0.0, LONGEST_DELAY[k], open_low=True)
            ]
    return problems


def oracle(data: dict[str, Any]) -> list[str]:
    """Every rule a scenario breaks (empty: valid). Absent fields take their defaults."""
    checks: dict[str, Callable[[Any], list[str]]] = {
        "name": lambda v: [] if _line(v, 120) else ["name"],
        "seed": lambda v: [] if _int_in(v, 0, MAX_SEED) else ["seed"],
        "total_patients": lambda v: [] if _int_in(v, 1, MAX_PATIENTS) else ["total_patients"],
        "start": lambda v: [] if _aware_timestamp(v) else ["start"],
        "duration_days": lambda v: [] if _int_in(v, 1, 365) else ["duration_days"],
        "intensity": lambda v: [] if v in INTENSITIES else ["intensity"],
        "tempo": lambda v: [] if v in TEMPOS else ["tempo"],
        "warfare": lambda v: _mix(v, WARFARE, {}, "warfare"),
        "injury_mix": lambda v: _mix(v, tuple(INJURY_DEFAULTS), INJURY_DEFAULTS, "injury_mix"),
        "fronts": _fronts,
        "mass_casualty": _mass_casualty,
        "calibration": _calibration,
        "transliterate_names": lambda v: [] if isinstance(v, bool) else ["transliterate_names"],
    }
    problems = [f"{k}: unknown field" for k in data if k not in checks]
    for key, check in checks.items():
        if key in data:
            problems += check(data[key])
    return problems


# -- strategies: valid scenarios ------------------------------------------------------------------

#: Characters of a one-line name (no control characters, line or paragraph separators).
LINE = st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp"))
names = st.text(LINE, min_size=1, max_size=40).filter(
    lambda v: bool(v.strip()) and not v.startswith(FORMULA)
)


@st.composite
def shares(draw: st.DrawFn, n: int) -> list[float]:
    """n fractions summing to 1 (integer weights, normalised; the last one takes the rest)."""
    weights = draw(st.lists(st.integers(1, 1000), min_size=n, max_size=n))
    total = sum(weights)
    values = [w / total for w in weights]
    return values


@st.composite
def mix(draw: st.DrawFn, keys: tuple[str, ...], min_keys: int = 1) -> dict[str, float]:
    chosen = draw(
        st.lists(st.sampled_from(keys), min_size=min_keys, max_size=len(keys), unique=True)
    )
    return dict(zip(chosen, draw(shares(len(chosen))), strict=True))


@st.composite
def fronts(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 4))
    front_names = draw(st.lists(names, min_size=n, max_size=n, unique=True))
    return [
        {"name": name, "share": share, "nationalities": draw(mix(tuple(sorted(NATIONS))))}
        for name, share in zip(front_names, draw(shares(n)), strict=True)
    ]


@st.composite
def starts(draw: st.DrawFn) -> str:
    offset = draw(st.integers(-12 * 60, 14 * 60))
    moment = draw(st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)))
    return moment.replace(tzinfo=timezone(timedelta(minutes=offset))).isoformat()


@st.composite
def mass_casualty(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(2, 10_000))
    high = draw(st.integers(low, 10_000))
    out: dict[str, Any] = {"min_size": low, "max_size": high}
    out["rate_per_day"] = draw(st.floats(0.0, 20.0))
    return draw(st.sampled_from([out, {"rate_per_day": out["rate_per_day"]}, {}]))


@st.composite
def calibration(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["triage_mix"] = dict(zip(TRIAGE, draw(shares(4)), strict=True))
    if draw(st.booleans()):
        out["battle_cfr"] = draw(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True))
    if draw(st.booleans()):
        out["female_share"] = draw(st.floats(0.0, 1.0))
    if draw(st.booleans()):
        out["evacuation_delays"] = {
            k: draw(st.floats(0.0, LONGEST_DELAY[k], exclude_min=True))
            for k in draw(st.lists(st.sampled_from(DELAYS), unique=True))
        }
    return out


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(LINE, min_size=1, max_size=120).filter(lambda v: bool(v.strip())),
    "seed": st.integers(0, MAX_SEED),
    "total_patients": st.integers(1, MAX_PATIENTS),
    "start": starts(),
    "duration_days": st.integers(1, 365),
    "intensity": st.sampled_from(INTENSITIES),
    "tempo": st.sampled_from(TEMPOS),
    "warfare": mix(WARFARE),
    "injury_mix": st.one_of(
        mix(tuple(INJURY_DEFAULTS), min_keys=3),
        st.just({"disease": 0.52}),
        st.just({}),
    ),
    "fronts": fronts(),
    "mass_casualty": mass_casualty(),
    "calibration": calibration(),
    "transliterate_names": st.booleans(),
}


@st.composite
def valid_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(list(FIELDS)), unique=True))
    return {key: draw(FIELDS[key]) for key in chosen}


# -- strategies: exactly one rule broken ---------------------------------------------------------

WRONG_TYPES = st.sampled_from([None, "5", "abc", True, [1], {"a": 1}])


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any], st.DrawFn], Any]:
    def apply(data: dict[str, Any], draw: st.DrawFn) -> tuple[Any, ...]:
        target = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = draw(value) if isinstance(value, st.SearchStrategy) else value
        return path

    return apply


def _ensure(data: dict[str, Any], key: str, draw: st.DrawFn) -> None:
    if key not in data:
        data[key] = draw(FIELDS[key])


def _break_mix(key: str, keys: tuple[str, ...]):
    def apply(data: dict[str, Any], draw: st.DrawFn) -> tuple[Any, ...]:
        _ensure(data, key, draw)
        if key == "injury_mix":
            data[key] = dict(zip(keys, draw(shares(3)), strict=True))
        field = draw(st.sampled_from(sorted(data[key])))
        how = draw(st.sampled_from(["sum", "range", "nan", "unknown", "type"]))
        if how == "sum":
            delta = draw(st.floats(1e-5, 0.5)) * draw(st.sampled_from([-1, 1]))
            value = data[key][field] + delta
            if not 0.0 <= value <= 1.0:
                value = data[key][field] - delta
            data[key][field] = value
        elif how == "range":
            data[key][field] = draw(st.sampled_from([-0.1, 1.5, -1e-3, 2]))
        elif how == "nan":
            data[key][field] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        elif how == "unknown":
            data[key]["not_a_" + field] = 0.0
        else:
            data[key][field] = draw(WRONG_TYPES)
        return (key,)

    return apply


def _break_front(data: dict[str, Any], draw: st.DrawFn) -> tuple[Any, ...]:
    _ensure(data, "fronts", draw)
    items = data["fronts"]
    i = draw(st.integers(0, len(items) - 1))
    how = draw(
        st.sampled_from(
            ["empty", "too_many", "dup", "shares", "nations_empty", "nation", "nations_sum",
             "extra", "name_long", "name_empty", "name_lines", "name_formula", "share_range",
             "not_list"]
        )
    )  # fmt: skip
    if how == "empty":
        data["fronts"] = []
    elif how == "too_many":
        parts = draw(shares(21))
        data["fronts"] = [
            {"name": f"F{k}", "share": parts[k], "nationalities": {"USA": 1.0}} for k in range(21)
        ]
    elif how == "dup":
        if len(items) == 1:
            items.append(dict(items[0]))
            items[0]["share"] = items[1]["share"] = 0.5
        else:
            items[i]["name"] = items[i - 1]["name"]
    elif how == "shares":
        items[i]["share"] = items[i]["share"] + 0.01 if items[i]["share"] < 0.9 else 0.5
    elif how == "nations_empty":
        items[i]["nationalities"] = {}
        return ("fronts", i, "nationalities")
    elif how == "nation":
        items[i]["nationalities"] = {"XXX": 1.0}
        return ("fronts", i, "nationalities")
    elif how == "nations_sum":
        nations = items[i]["nationalities"]
        first = next(iter(nations))
        nations[first] = nations[first] / 2 if nations[first] > 0.01 else 0.5
        return ("fronts", i, "nationalities")
    elif how == "extra":
        items[i]["colour"] = "red"
        return ("fronts", i)
    elif how == "name_long":
        items[i]["name"] = "x" * 81
        return ("fronts", i, "name")
    elif how == "name_empty":
        items[i]["name"] = ""
        return ("fronts", i, "name")
    elif how == "name_lines":
        items[i]["name"] = draw(st.sampled_from(["a\nb", "  ", "\t", "x\u2028y", "\x00"]))
        return ("fronts", i, "name")
    elif how == "name_formula":
        items[i]["name"] = draw(st.sampled_from(FORMULA)) + items[i]["name"]
        return ("fronts", i, "name")
    elif how == "share_range":
        items[i]["share"] = draw(st.sampled_from([-0.5, 1.5, math.nan]))
        return ("fronts", i, "share")
    else:
        data["fronts"] = items[0]
    return ("fronts",)


def _break_sizes(data: dict[str, Any], draw: st.DrawFn) -> tuple[Any, ...]:
    data.setdefault("mass_casualty", {})
    mc = data["mass_casualty"]
    how = draw(st.sampled_from(["order", "min", "max", "rate", "type", "extra"]))
    if how == "order":
        low = draw(st.integers(3, 10_000))
        mc["min_size"], mc["max_size"] = low, draw(st.integers(2, low - 1))
    elif how == "min":
        mc["min_size"] = draw(st.sampled_from([1, 0, -5]))
        mc["max_size"] = 40
    elif how == "max":
        mc["max_size"] = 10_001
    elif how == "rate":
        mc["rate_per_day"] = draw(st.sampled_from([-0.1, 20.5, math.inf, math.nan]))
    elif how == "type":
        mc["min_size"] = draw(st.sampled_from([2.5, "8", True, None]))
    else:
        mc["size"] = 3
    return ("mass_casualty",)


def _break_calibration(data: dict[str, Any], draw: st.DrawFn) -> tuple[Any, ...]:
    data.setdefault("calibration", {})
    cal = data["calibration"]
    how = draw(st.sampled_from(["triage_sum", "triage_missing", "cfr", "female", "delay", "extra"]))
    if how == "triage_sum":
        cal["triage_mix"] = {"T1": 0.2, "T2": 0.3, "T3": 0.4, "T4": 0.2}
    elif how == "triage_missing":
        cal["triage_mix"] = {"T1": 0.5, "T2": 0.5, "T3": 0.0}
    elif how == "cfr":
        cal["battle_cfr"] = draw(st.sampled_from([0, 0.0, 1, 1.0, -0.2, math.nan, "0.5"]))
    elif how == "female":
        cal["female_share"] = draw(st.sampled_from([-0.01, 1.01, math.inf]))
    elif how == "delay":
        cal["evacuation_delays"] = (
            {draw(st.sampled_from(DELAYS)): draw(st.sampled_from([0, 0.0, -5, 10080.5, math.nan]))}
            if draw(st.booleans())
            else {"role3_to_role4": draw(st.sampled_from([720.5, 1000.0, 10080.0]))}
        )
    else:
        cal["morale"] = 0.5
    return ("calibration",)


BREAKERS: dict[str, Callable[[dict[str, Any], st.DrawFn], tuple[Any, ...]]] = {
    "extra field": _set(("colour",), "red"),
    "name empty": _set(("name",), ""),
    "name not one line": _set(("name",), st.sampled_from(["a\r\nb", " ", "\x07", "a\u2029"])),
    "name too long": _set(("name",), "n" * 121),
    "name type": _set(("name",), st.sampled_from([None, 5, ["a"]])),
    "seed negative": _set(("seed",), st.integers(max_value=-1)),
    "seed too big": _set(("seed",), st.integers(MAX_SEED + 1, 2**80)),
    "seed type": _set(("seed",), st.sampled_from([1.5, "7", True, None, [7]])),
    "patients zero": _set(("total_patients",), st.integers(-10, 0)),
    "patients too many": _set(("total_patients",), st.integers(MAX_PATIENTS + 1, 2**64)),
    "patients type": _set(("total_patients",), st.sampled_from(["10", False, 10.5])),
    "days": _set(("duration_days",), st.sampled_from([0, -1, 366, 10_000])),
    "intensity": _set(("intensity",), st.sampled_from(["apocalyptic", "LOW", "", None])),
    "tempo": _set(("tempo",), st.sampled_from(["chaotic", "Surge", 3])),
    "start naive": _set(("start",), "2026-03-02T06:00:00"),
    "start garbage": _set(("start",), st.sampled_from(["yesterday", "", "2026-13-01T00:00:00Z"])),
    "start out of range": _set(
        ("start",), st.sampled_from(["1899-12-31T23:59:59Z", "2200-01-01T00:00:00Z"])
    ),
    "start number": _set(("start",), st.sampled_from([0, 1_700_000_000, 1.5])),
    "warfare": _break_mix("warfare", WARFARE),
    "injury_mix": _break_mix("injury_mix", tuple(INJURY_DEFAULTS)),
    "fronts": _break_front,
    "mass_casualty": _break_sizes,
    "calibration": _break_calibration,
    "transliterate type": _set(("transliterate_names",), st.sampled_from(["yes", 1, 0, None])),
}


@st.composite
def broken_scenarios(draw: st.DrawFn) -> tuple[str, dict[str, Any], tuple[Any, ...]]:
    data = draw(valid_scenarios())
    rule = draw(st.sampled_from(sorted(BREAKERS)))
    where = BREAKERS[rule](data, draw)
    return rule, data, where


# -- strategies: arbitrary mixtures ----------------------------------------------------------------

ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.sampled_from(["low", "surge", "2026-03-02T06:00:00Z", "5", "0.5"]),
)


@st.composite
def mixed_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """Valid scenarios in which each field, and each value inside a mix, may be replaced by an
    arbitrary JSON value."""
    data = draw(valid_scenarios())
    for key in list(data):
        if draw(st.integers(0, 5)) == 0:
            data[key] = draw(ANY_VALUE)
        elif isinstance(data[key], dict) and data[key] and draw(st.booleans()):
            inner = draw(st.sampled_from(sorted(data[key])))
            data[key][inner] = draw(ANY_VALUE)
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(max_size=8))] = draw(ANY_VALUE)
    return data


# -- the properties --------------------------------------------------------------------------------

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _loc_starts(errors: list[dict[str, Any]], where: tuple[Any, ...]) -> bool:
    return any(tuple(e["loc"][: len(where)]) == where for e in errors)


@PROPERTY
@given(valid_scenarios())
def test_nothing_valid_is_rejected(data: dict[str, Any]) -> None:
    assert oracle(data) == [], "the strategy built an invalid scenario"
    scenario = Scenario.model_validate(data)
    again = Scenario.model_validate(scenario.model_dump(mode="json"))
    assert again == scenario
    assert again.canonical_json() == scenario.canonical_json()


@PROPERTY
@given(broken_scenarios())
def test_nothing_invalid_is_accepted(case: tuple[str, dict[str, Any], tuple[Any, ...]]) -> None:
    rule, data, where = case
    assert oracle(data), f"the oracle accepts a scenario with {rule!r} broken"
    with pytest.raises(ValidationError) as refused:
        Scenario.model_validate(data)
    errors = refused.value.errors()
    assert _loc_starts(errors, where), (rule, where, [e["loc"] for e in errors])


@PROPERTY
@given(mixed_scenarios())
def test_model_agrees_with_the_oracle(data: dict[str, Any]) -> None:
    problems = oracle(data)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        assert problems, f"valid by the rules, refused: {exc.errors()}: {data!r}"
        return
    assert not problems, f"accepted although {problems}: {data!r}"
    assert Scenario.model_validate(scenario.model_dump(mode="json")) == scenario


def _json_safe(data: Any) -> bool:
    """JSON cannot carry NaN or infinities (the HTTP tests skip those values)."""
    if isinstance(data, float):
        return math.isfinite(data)
    if isinstance(data, dict):
        return all(_json_safe(v) for v in data.values())
    if isinstance(data, list):
        return all(_json_safe(v) for v in data)
    return True


def _has_nul(data: Any) -> bool:
    """A NUL character in any string of `data` (keys included), which the API refuses."""
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_nul(v) for v in data)
    return False


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(valid_scenarios(), broken_scenarios().map(lambda c: c[1]), mixed_scenarios()))
def test_validate_endpoint_agrees_with_the_oracle(
    hostile_service: Service, data: dict[str, Any]
) -> None:
    if not _json_safe(data) or any("\x00" in str(k) for k in data):
        return
    with hostile_service.client("other") as http:
        answer = http.post("/scenarios/validate", json={"scenario": data})
    problems = oracle(data)
    nul = _has_nul(data)  # repr() would show a NUL escaped, never as the character
    if problems or nul:
        assert answer.status_code == 422, (problems, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["errors"]
    else:
        assert answer.status_code == 200, answer.text
        assert answer.json()["valid"] is True


def test_oracle_sanity() -> None:
    """The oracle itself: the defaults and every preset are valid; a few known breaks are not."""
    from patientgen.scenario import PRESETS

    assert oracle({}) == []
    for preset in PRESETS.values():
        assert oracle(preset.scenario.model_dump(mode="json")) == []
    assert oracle({"injury_mix": {"disease": 0.5}})
    assert oracle({"warfare": {}})
    assert oracle({"mass_casualty": {"min_size": 50}})
    assert oracle({"start": datetime(2026, 1, 1, tzinfo=UTC).isoformat()}) == []
