"""Saved scenarios: named scenarios kept on the server for the caller's API key (its owner)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Request
from starlette.responses import Response

from patientgen.api.auth import Principal, principal
from patientgen.api.common import json_response, problem_responses
from patientgen.api.problems import field_problem
from patientgen.api.resolve import resolve_scenario
from patientgen.api.schemas import (
    SUBMIT_EXAMPLES,
    SavedScenarioListOut,
    SavedScenarioOut,
    SaveScenarioRequest,
)
from patientgen.jobs.model import SavedScenario
from patientgen.jobs.service import SCENARIO_NAME

router = APIRouter(tags=["scenarios"])

ScenarioName = Annotated[
    str,
    Path(
        description="1-100 letters, digits, spaces, `_`, `.` or `-` (no space at either end).",
        pattern=f"^{SCENARIO_NAME.pattern}$",
        examples=["Exercise Northern Shield"],
    ),
]
_SAVE_EXAMPLES = {
    key: {
        "summary": value["summary"],
        "value": {k: v for k, v in value["value"].items() if k != "formats"},
    }
    for key, value in SUBMIT_EXAMPLES.items()
}


def _doc(saved: SavedScenario) -> dict[str, Any]:
    """The API's view: the owner is the caller; a listing has no `scenario`."""
    return saved.model_dump(mode="json", exclude={"owner"}, exclude_none=True)


def _etag(saved: SavedScenario) -> dict[str, str]:
    return {"ETag": f'"{saved.version}"'}


def _expected(if_match: str | None, if_none_match: str | None) -> int | None:
    """The version a conditional save expects (RFC 9110): `If-None-Match: *` 0 (a new name only),
    `If-Match: "N"` version N; None: save whatever is there. The headers' forms are checked by
    their patterns (422 otherwise)."""
    if if_match is not None and if_none_match is not None:
        raise field_problem(
            ("header", "If-Match"),
            "not together with If-None-Match",
            "Send If-Match or If-None-Match, not both.",
        )
    if if_none_match is not None:
        return 0
    if if_match is not None:
        return int(if_match.strip().removeprefix("W/").strip('"')) or -1  # "0" matches nothing
    return None


@router.get(
    "/saved-scenarios",
    response_model=SavedScenarioListOut,
    summary="List your saved scenarios",
    responses=problem_responses(401, 503),
)
async def list_scenarios(request: Request, who: Principal = Depends(principal)) -> Response:
    """Your saved scenarios by name, without their content."""
    state = request.app.state
    saved = await state.call(state.service.scenarios, who.owner)
    return json_response({"items": [_doc(s) for s in saved]})


@router.get(
    "/saved-scenarios/{name}",
    response_model=SavedScenarioOut,
    summary="Get a saved scenario",
    responses=problem_responses(401, 404, 422, 503),
)
async def read_scenario(
    request: Request, name: ScenarioName, who: Principal = Depends(principal)
) -> Response:
    """The scenario and its version; the `ETag` is the version, for `If-Match` on a replace."""
    state = request.app.state
    saved = await state.call(state.service.scenario, name, who.owner)
    return json_response(_doc(saved), headers=_etag(saved))


@router.put(
    "/saved-scenarios/{name}",
    response_model=SavedScenarioOut,
    status_code=201,
    summary="Save or replace a scenario",
    responses={
        200: {
            "model": SavedScenarioOut,
            "description": "An earlier scenario of that name replaced",
        },
        **problem_responses(400, 401, 412, 413, 415, 422, 503),
    },
)
async def save_scenario(
    request: Request,
    name: ScenarioName,
    body: Annotated[SaveScenarioRequest, Body(openapi_examples=_SAVE_EXAMPLES)],
    who: Principal = Depends(principal),
    if_match: Annotated[
        str | None,
        Header(
            description='Replace only this version (the ETag of a GET, e.g. `"3"`).',
            pattern=r'^\s*(W/)?"[0-9]{1,9}"\s*$',
        ),
    ] = None,
    if_none_match: Annotated[
        str | None,
        Header(
            description="`*`: save only if no scenario has this name yet.", pattern=r"^\s*\*\s*$"
        ),
    ] = None,
) -> Response:
    """Validate the scenario (every problem listed, nothing saved on any) and keep it under
    `name`: 201 when new, 200 when it replaced one (its `version` grows). With `If-None-Match: *`
    or `If-Match` a name taken, or replaced since it was read, gives 412 and saves nothing."""
    state = request.app.state
    expected = _expected(if_match, if_none_match)
    scenario, _ = resolve_scenario(body.scenario, body.preset, body.overrides)
    saved = await state.call(
        state.service.save_scenario, name, scenario, who.owner, expected=expected
    )
    return json_response(_doc(saved), 201 if saved.version == 1 else 200, headers=_etag(saved))


@router.delete(
    "/saved-scenarios/{name}",
    status_code=204,
    summary="Delete a saved scenario",
    responses=problem_responses(401, 404, 422, 503),
)
async def delete_scenario(
    request: Request, name: ScenarioName, who: Principal = Depends(principal)
) -> Response:
    state = request.app.state
    await state.call(state.service.delete_scenario, name, who.owner)
    return Response(status_code=204)
