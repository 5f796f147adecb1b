"""Presets and scenario validation (nothing here touches the job store)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends
from starlette.responses import Response

from patientgen.api.auth import Principal, principal
from patientgen.api.common import json_response, problem_responses
from patientgen.api.problems import Problem
from patientgen.api.resolve import resolve_scenario
from patientgen.api.schemas import (
    SUBMIT_EXAMPLES,
    PresetListOut,
    PresetOut,
    ValidateOut,
    ValidateRequest,
)
from patientgen.scenario import PRESETS, Preset

router = APIRouter(tags=["scenarios"])


def _preset_doc(preset: Preset) -> dict:
    return {
        "name": preset.name,
        "description": preset.description,
        "scenario": preset.scenario.model_dump(mode="json"),
    }


@router.get(
    "/presets",
    response_model=PresetListOut,
    summary="List the built-in presets",
    responses=problem_responses(401),
)
async def list_presets(who: Principal = Depends(principal)) -> Response:
    return json_response({"items": [_preset_doc(p) for p in PRESETS.values()]})


@router.get(
    "/presets/{name}",
    response_model=PresetOut,
    summary="Get one preset",
    responses=problem_responses(401, 404),
)
async def read_preset(name: str, who: Principal = Depends(principal)) -> Response:
    preset = PRESETS.get(name)
    if preset is None:
        raise Problem(404, "not-found", f"No preset {name!r}; known: {', '.join(PRESETS)}.")
    return json_response(_preset_doc(preset))


_VALIDATE_EXAMPLES = {
    key: {
        "summary": value["summary"],
        "value": {k: v for k, v in value["value"].items() if k != "formats"},
    }
    for key, value in SUBMIT_EXAMPLES.items()
}


@router.post(
    "/scenarios/validate",
    response_model=ValidateOut,
    summary="Validate a scenario without submitting it",
    responses=problem_responses(400, 401, 413, 415, 422),
)
async def validate_scenario(
    body: Annotated[ValidateRequest, Body(openapi_examples=_VALIDATE_EXAMPLES)],
    who: Principal = Depends(principal),
) -> Response:
    """200 with the resolved scenario (preset and overrides merged), or 422 listing every problem.
    A missing seed stays as the model's default here; a submit would choose one."""
    scenario, _ = resolve_scenario(body.scenario, body.preset, body.overrides)
    return json_response({"valid": True, "scenario": scenario.model_dump(mode="json")})
