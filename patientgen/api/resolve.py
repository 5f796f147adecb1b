"""Turn a submit body into one validated Scenario: preset + overrides or a scenario; pick a seed."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson
from pydantic import ValidationError

from patientgen.api.problems import Problem, validation_problem
from patientgen.scenario import MAX_SEED, PRESETS, Scenario

MAX_OVERRIDE_DEPTH = 8


def _field_problem(field: tuple[str, ...], message: str, kind: str = "value_error") -> Problem:
    loc = ["body", *field]
    return Problem(
        422,
        "validation-error",
        f"{'.'.join(loc)}: {message}",
        errors=[{"field": ".".join(loc), "loc": loc, "message": message, "type": kind}],
    )


def deep_merge(base: dict[str, Any], overrides: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    """Overrides win; nested objects merge key by key, everything else (lists too) is replaced."""
    if depth > MAX_OVERRIDE_DEPTH:
        raise _field_problem(("overrides",), "nested too deeply")
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value, depth + 1)
        else:
            merged[key] = value
    return merged


def resolve_scenario(
    scenario: Scenario | None,
    preset: str | None,
    overrides: dict[str, Any] | None,
) -> tuple[Scenario, bool]:
    """The scenario a request describes, and whether it carried a seed (a preset's seed counts)."""
    if scenario is not None and preset is not None:
        raise _field_problem(("preset",), "give either `scenario` or `preset`, not both")
    if scenario is not None:
        if overrides is not None:
            raise _field_problem(("overrides",), "`overrides` apply only to a `preset`")
        reject_nul_characters(scenario)
        return scenario, "seed" in scenario.model_fields_set
    if preset is None:
        raise _field_problem(("scenario",), "give a `scenario` or a `preset`", "missing")
    found = PRESETS.get(preset)
    if found is None:
        names = ", ".join(sorted(PRESETS))
        raise _field_problem(("preset",), f"unknown preset {preset!r}; known: {names}")
    if not overrides:
        return found.scenario, True
    base = found.scenario.model_dump(mode="json")
    try:
        resolved = Scenario.model_validate(deep_merge(base, overrides))
    except ValidationError as exc:
        raise validation_problem(exc, ("body", "overrides")) from None
    reject_nul_characters(resolved)
    return resolved, True


def _nul_fields(value: Any, loc: tuple[str | int, ...]) -> list[tuple[str | int, ...]]:
    if isinstance(value, str):
        return [loc] if "\x00" in value else []
    if isinstance(value, dict):
        found = [(*loc, str(k)) for k in value if "\x00" in str(k)]
        for key, item in value.items():
            found.extend(_nul_fields(item, (*loc, str(key))))
        return found
    if isinstance(value, (list, tuple)):
        return [f for i, item in enumerate(value) for f in _nul_fields(item, (*loc, i))]
    return []


def reject_nul_characters(scenario: Scenario) -> None:
    """NUL characters cannot be stored by every store (PostgreSQL's JSONB refuses them) and never
    belong in a name: 422 naming each field that has one."""
    found = _nul_fields(scenario.model_dump(mode="json"), ("body", "scenario"))
    if found:
        errors = [
            {
                "field": ".".join(map(str, loc)),
                "loc": list(loc),
                "message": "must not contain NUL characters",
                "type": "string_pattern_mismatch",
            }
            for loc in found
        ]
        raise Problem(
            422,
            "validation-error",
            f"{errors[0]['field']}: must not contain NUL characters",
            errors=errors,
        )


def derive_seed(owner: str, idempotency_key: str | None, body: dict[str, Any]) -> int:
    """A fresh random seed, or (with an Idempotency-Key) one derived from owner, key and body,
    so repeating the same request resolves to the very same scenario and so the same job."""
    if idempotency_key is None:
        return secrets.randbelow(MAX_SEED + 1)
    digest = hashlib.sha256(
        owner.encode()
        + b"\0"
        + idempotency_key.encode()
        + b"\0"
        + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    ).digest()
    return int.from_bytes(digest[:8], "big") & MAX_SEED


def with_seed(scenario: Scenario, seed: int) -> Scenario:
    return scenario.model_copy(update={"seed": seed})
