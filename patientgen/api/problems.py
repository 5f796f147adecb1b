"""RFC 9457 problem details: one exception type, stable type URIs and the handlers that render them.

Every error the API returns is `application/problem+json` with `type`, `title`, `status` and
`detail`; a 422 adds `errors`, the list of every invalid field. Unexpected exceptions become a
500 problem without a stack trace; a store that cannot be reached becomes a 503 with
`Retry-After`.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from patientgen.jobs.model import (
    IdempotencyConflict,
    InvalidCursor,
    InvalidTransition,
    JobNotFound,
    OutputReplaced,
    ScenarioChanged,
    ScenarioNotFound,
    StoreUnavailable,
    TooManyActiveJobs,
)

log = logging.getLogger("patientgen.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "/api/v1/problems/"

#: slug -> (title, description). The `type` of a problem is PROBLEM_BASE + slug; it never changes.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "validation-error": (
        "Invalid request",
        "The request is well-formed but some fields are invalid; `errors` lists every one of them.",
    ),
    "malformed-request": ("Malformed request", "The request body or a header cannot be parsed."),
    "host-not-allowed": (
        "Host not allowed",
        "The Host header names no host this service answers for (PATIENTGEN_ALLOWED_HOSTS).",
    ),
    "unauthorized": (
        "Authentication required",
        "Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
    ),
    "forbidden": ("Forbidden", "The API key is valid but may not do this."),
    "not-found": ("Not found", "No such resource, or it belongs to someone else."),
    "method-not-allowed": ("Method not allowed", "The resource does not support this method."),
    "not-acceptable": ("Not acceptable", "The requested representation is not available."),
    "invalid-transition": (
        "Not allowed in the job's current state",
        "The job's status does not allow this action (e.g. deleting a running job).",
    ),
    "idempotency-conflict": (
        "Idempotency key reused",
        "The Idempotency-Key was already used with a different request body.",
    ),
    "precondition-failed": (
        "Precondition failed",
        "The resource is not in the state the request's If-Match or If-None-Match expects; "
        "`current_version` says what is there now (absent: nothing).",
    ),
    "not-ready": ("Job not completed", "The job has no output yet; wait until it is completed."),
    "no-ndjson-output": (
        "No NDJSON output",
        "Patients can be paged only for jobs that produced the NDJSON format.",
    ),
    "no-casualty-index": (
        "No casualty index",
        "The job was written before casualties could be filtered, sorted and looked up; "
        "submit its scenario again to get one (plain paging works without it).",
    ),
    "payload-too-large": ("Request body too large", "The request body exceeds the size limit."),
    "unsupported-media-type": ("Unsupported media type", "Send the body as application/json."),
    "range-not-satisfiable": (
        "Range not satisfiable",
        "The requested byte range lies outside the file.",
    ),
    "too-many-patients": (
        "Too many patients for this key",
        "The scenario asks for more patients than the API key's limit allows.",
    ),
    "too-many-active-jobs": (
        "Too many active jobs",
        "The API key already has its maximum number of pending or running jobs.",
    ),
    "too-many-streams": (
        "Too many open streams",
        "The API key already has its maximum number of open event streams or ZIP downloads.",
    ),
    "service-unavailable": (
        "Service unavailable",
        "The job store cannot be reached right now; retry after a short while.",
    ),
    "internal-error": ("Internal server error", "An unexpected error; it has been logged."),
}

_STATUS_SLUG = {
    400: "malformed-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "invalid-transition",
    413: "payload-too-large",
    415: "unsupported-media-type",
    412: "precondition-failed",
    416: "range-not-satisfiable",
    422: "validation-error",
    503: "service-unavailable",
}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class Problem(Exception):
    """Raise anywhere in a route to answer with a problem+json response."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        title = PROBLEM_TYPES.get(self.slug, ("Error", ""))[0]
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        body.update(self.extra)
        return body

    def response(self, instance: str | None = None) -> Response:
        return problem_response(self.status, self.body(instance), self.headers)


def problem_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _json_safe(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def field_errors(errors: list[Any], prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """Pydantic error dicts -> the `errors` member: pointer-like `field`, `message`, `type`."""
    out = []
    for err in errors:
        loc = tuple(prefix) + tuple(err.get("loc", ()))
        out.append(
            {
                "field": ".".join(str(part) for part in loc),
                "loc": [_json_safe(part) for part in loc],
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "value_error")),
            }
        )
    return out


#: At most this many entries in `errors`: a body of 60,000 unknown keys must not get a 9 MB answer.
MAX_LISTED_ERRORS = 200


def field_problem(
    loc: tuple[str, ...],
    messages: str | list[str],
    detail: str | None = None,
    *,
    slug: str = "validation-error",
    kind: str = "value_error",
) -> Problem:
    """A 422 about one field (`loc`, e.g. ("body", "formats")), one error per message; the
    detail is "<field>: <messages>" unless given."""
    listed = [messages] if isinstance(messages, str) else messages
    field = ".".join(loc)
    errors = [{"field": field, "loc": list(loc), "message": m, "type": kind} for m in listed]
    return Problem(422, slug, detail or f"{field}: " + "; ".join(listed), errors=errors)


def invalid_fields_problem(errors: list[dict[str, Any]], detail: str | None = None) -> Problem:
    """The 422 for `field_errors` output: a readable detail and the list (capped, saying so)."""
    if detail is None:
        detail = f"{len(errors)} invalid field(s): " + "; ".join(
            f"{e['field'] or 'body'}: {e['message']}" for e in errors[:5]
        )
        if len(errors) > MAX_LISTED_ERRORS:
            detail += f" (the first {MAX_LISTED_ERRORS} are listed in `errors`)"
    return Problem(422, "validation-error", detail, errors=errors[:MAX_LISTED_ERRORS])


def validation_problem(
    exc: ValidationError, prefix: tuple[str | int, ...] = (), detail: str | None = None
) -> Problem:
    errors = field_errors(exc.errors(include_url=False, include_input=False), prefix)
    return invalid_fields_problem(errors, detail)


#: The job layer maps every driver error of an unreachable database to StoreUnavailable, in one
#: table (jobs/dialects.py DATABASE_ERRORS): that is the only "store down" the API sees.
STORE_DOWN: tuple[type[BaseException], ...] = (StoreUnavailable,)


def translate(exc: BaseException) -> Problem | None:
    """Map an exception of the job layer to its problem, or None when it is not one of them."""
    if isinstance(exc, Problem):
        return exc
    if isinstance(exc, JobNotFound):
        return Problem(404, "not-found", "No such job.")
    if isinstance(exc, OutputReplaced):
        return Problem(404, "not-found", exc.public_detail)
    if isinstance(exc, ScenarioNotFound):
        return Problem(404, "not-found", f"No saved scenario {exc.name!r}.")
    if isinstance(exc, ScenarioChanged):
        if exc.current is None:
            return Problem(
                412, "precondition-failed", f"The saved scenario {exc.name!r} no longer exists."
            )
        return Problem(
            412,
            "precondition-failed",
            f"The saved scenario {exc.name!r} exists at version {exc.current.version}; "
            "nothing was saved.",
            headers={"ETag": f'"{exc.current.version}"'},
            current_version=exc.current.version,
        )
    if isinstance(exc, IdempotencyConflict):
        return Problem(
            409,
            "idempotency-conflict",
            "This Idempotency-Key was already used with a different request body.",
        )
    if isinstance(exc, TooManyActiveJobs):
        return Problem(
            429,
            "too-many-active-jobs",
            f"This API key already has {exc.active} pending or running jobs "
            f"(limit {exc.limit}); wait for one to finish.",
            headers={"Retry-After": "10"},
        )
    if isinstance(exc, InvalidTransition):
        return Problem(409, "invalid-transition", str(exc) or "Not allowed in the job's state.")
    if isinstance(exc, InvalidCursor):
        return Problem(
            422,
            "validation-error",
            "The cursor is not valid; use the next_cursor of a previous page.",
            errors=[
                {
                    "field": "query.cursor",
                    "loc": ["query", "cursor"],
                    "message": "invalid cursor",
                    "type": "invalid_cursor",
                }
            ],
        )
    if isinstance(exc, StoreUnavailable):  # the database, or the object storage
        return Problem(
            503,
            "service-unavailable",
            exc.public_detail,
            headers={"Retry-After": "2"},
        )
    return None


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    from starlette.routing import Match

    methods = []
    for method in ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"):
        scope = dict(request.scope, method=method)
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            methods.append(method)
    return methods


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        raw = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in raw):
            problem = Problem(400, "malformed-request", "The request body is not valid JSON.")
        else:
            problem = invalid_fields_problem(field_errors(raw))
        return problem.response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        slug = _STATUS_SLUG.get(exc.status_code, "malformed-request")
        detail = exc.detail if isinstance(exc.detail, str) else PROBLEM_TYPES[slug][1]
        if exc.status_code == 404 and detail == "Not Found":
            detail = "No such resource."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        problem = Problem(exc.status_code, slug, detail, headers=headers)
        return problem.response(request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        problem = translate(exc)
        if problem is None:
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            problem = Problem(500, "internal-error", "An unexpected error occurred.")
        return problem.response(request.url.path)

    for exc_type in (
        JobNotFound,
        OutputReplaced,
        ScenarioNotFound,
        ScenarioChanged,
        IdempotencyConflict,
        InvalidTransition,
        InvalidCursor,
        TooManyActiveJobs,
        *STORE_DOWN,
    ):
        app.add_exception_handler(exc_type, _unexpected)
