"""Small helpers shared by the routes: store calls, the caller's scope, job documents."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from patientgen.api.schemas import ProblemOut
from patientgen.delivery import shown
from patientgen.formats.attributes import INTERNAL_FORMATS
from patientgen.jobs.model import TERMINAL_STATUSES

TERMINAL = frozenset(s.value for s in TERMINAL_STATUSES)

_STATUS_TITLES = {
    400: "Malformed request",
    401: "Authentication required",
    404: "Not found",
    409: "Conflict with the job's state or an earlier request",
    413: "Request body too large",
    415: "Unsupported media type",
    412: "Precondition failed (If-Match or If-None-Match did not hold)",
    416: "Range not satisfiable",
    422: "Invalid fields (every one listed in `errors`)",
    429: "Too many active jobs, open event streams or ZIP downloads for this key",
    500: "Unexpected error",
    503: "Job store unavailable",
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for problem+json answers with the given status codes."""
    return {
        code: {
            "model": ProblemOut,
            "description": _STATUS_TITLES.get(code, "Error"),
            "content": {"application/problem+json": {}},
        }
        for code in codes
    }


def status_name(value: Any) -> str:
    return str(getattr(value, "value", value))


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def job_links(prefix: str, job_id: str) -> dict[str, str]:
    base = f"{prefix}/jobs/{job_id}"
    return {
        "self": base,
        "events": f"{base}/events",
        "files": f"{base}/files",
        "archive": f"{base}/archive",
        "patients": f"{base}/patients",
    }


def file_url(prefix: str, job_id: str, name: str) -> str:
    return f"{prefix}/jobs/{job_id}/files/{name}"


def file_entry(prefix: str, job_id: str, item: Any) -> dict[str, Any]:
    get = item.get if isinstance(item, dict) else (lambda k, d=None: getattr(item, k, d))
    name = str(get("name"))
    return {
        "name": name,
        "format": str(get("format")),
        "bytes": int(get("bytes") or 0),
        "sha256": str(get("sha256") or ""),
        "records": get("records"),
        "url": file_url(prefix, job_id, name),
    }


def output_entries(job: Any) -> list[Any]:
    """The job's output files: every file it lists but the internal indexes (a job completed
    before the runner left them out of its list still has them there)."""
    return [
        item
        for item in job.output_files or []
        if (item.get("format") if isinstance(item, dict) else getattr(item, "format", None))
        not in INTERNAL_FORMATS
    ]


def job_document(job: Any, prefix: str) -> dict[str, Any]:
    """A Job as the API shows it: never lease internals, never the idempotency key. Its summary
    is the stored one, without the care chain's per-hour series (summary.json, and
    `GET /jobs/{id}/summary`, have it)."""
    job_id = str(job.job_id)
    return {
        "job_id": job_id,
        "owner": str(job.owner),
        "status": status_name(job.status),
        "progress": int(job.progress or 0),
        "progress_details": dict(job.progress_details or {}),
        "config": shown(job.config),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "updated_at": job.updated_at,
        "completed_at": job.completed_at,
        "cancel_requested_at": job.cancel_requested_at,
        "attempts": int(job.attempts or 0),
        "max_attempts": int(job.max_attempts or 0),
        "error": job.error,
        "allowed_actions": job.allowed_actions,
        "output_files": [file_entry(prefix, job_id, f) for f in output_entries(job)],
        "summary": job.summary,
        "links": job_links(prefix, job_id),
    }


async def get_job(request: Request, job_id: Any, scope: str | None) -> Any:
    state = request.app.state
    return await state.call(state.service.get, job_id, owner=scope)
