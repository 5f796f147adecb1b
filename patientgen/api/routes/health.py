"""Liveness, readiness and Prometheus metrics (under /api/v1 and, for probes, at the root).

/healthz and /readyz answer without a key; /metrics (job counts, owners' activity) needs one
wherever keys are required, unless `metrics_public` is set.
"""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from patientgen.api.auth import metrics_access
from patientgen.api.common import json_response, problem_responses
from patientgen.api.problems import Problem
from patientgen.api.schemas import HealthOut

router = APIRouter(tags=["health"])
root_router = APIRouter(include_in_schema=False)


async def healthz() -> Response:
    """The process is alive (does not touch the database)."""
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """The database answers and its schema is at the head migration; 503 otherwise."""
    state = request.app.state
    service = state.service
    result = await state.call(service.ready)
    checks = {str(k): v for k, v in dict(result).items()}
    if checks.get("at_head") is False:
        raise Problem(
            503,
            "service-unavailable",
            f"The database schema is at {checks.get('revision')!r}, not at the head migration.",
            headers={"Retry-After": "10"},
        )
    return json_response({"status": "ready", "checks": checks})


async def metrics(request: Request) -> Response:
    """Prometheus text format: jobs by status, job durations, patients, request latency."""
    body = await anyio.to_thread.run_sync(request.app.state.metrics.render)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


_METRICS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
    **problem_responses(401),
}

for target in (router, root_router):
    target.add_api_route(
        "/healthz", healthz, methods=["GET"], response_model=HealthOut, summary="Liveness"
    )
    target.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        response_model=HealthOut,
        summary="Readiness",
        responses=problem_responses(503),
    )
    target.add_api_route(
        "/metrics",
        metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        response_class=Response,
        responses=_METRICS_DOC,
        dependencies=[Depends(metrics_access)],
    )
