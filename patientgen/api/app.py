"""The FastAPI application factory: JobService, auth, routes, errors, metrics, the web page."""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.staticfiles import StaticFiles

from patientgen.api import problems
from patientgen.api.auth import KeyCache, auth_required
from patientgen.api.common import json_response, problem_responses
from patientgen.api.limits import OwnerSlots, StreamEnds
from patientgen.api.metrics import Metrics
from patientgen.api.middleware import (
    HostGuard,
    LatencyMetrics,
    RequestGuard,
    SecurityHeaders,
    SendTimeout,
)
from patientgen.api.query import known_parameters
from patientgen.api.routes import files, health, jobs, patients, presets, scenarios
from patientgen.settings import Settings

API_PREFIX = "/api/v1"
log = logging.getLogger(__name__)
MAX_BODY_BYTES = 1024 * 1024
#: A store call that takes longer than this answers 503 instead of hanging the request.
STORE_CALL_TIMEOUT = 20.0
#: A client that takes no bytes of a response for this long is disconnected.
SEND_TIMEOUT = 60.0
#: Threads that run store calls at once. Few: the store's own pool is about this size, and many
#: threads fighting for the GIL with the event loop make every request slower under load.
STORE_THREADS = 8
#: Event streams waiting for a job's next update at once (each wait occupies a thread).
SSE_THREADS = 1000
WEB_DIR = Path(__file__).resolve().parent.parent / "web"

T = TypeVar("T")

DESCRIPTION = """
Generate realistic synthetic military casualties in durable background jobs.

Submit a scenario (or a preset with overrides) as a job, follow its progress as Server-Sent Events,
then download the output files (JSON, NDJSON, CSV, FHIR R4), a ZIP of all of them, or page through
the patients. Every error is an RFC 9457 `application/problem+json` document.

Authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>` (keys come from
`patientgen keys create`). Keys are required whenever the service listens on anything but
loopback, or always with `--auth required`. Each job belongs to the key that made it; other keys get
404 for it; admin keys see every job.
"""


def create_app(settings: Settings, service: Any = None) -> FastAPI:
    """The app. Without `service` it opens one from `settings` at start-up (migrations and the
    storage check included: StorageMismatch stops the start) and closes it at shutdown; with
    one, the caller owns it (and checked it: `serve` does)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = None
        if app.state.service is None:
            from patientgen.jobs.service import JobService

            owned = await anyio.to_thread.run_sync(
                functools.partial(JobService.open, settings, check_storage=True)
            )
            app.state.service = owned
        try:
            async with anyio.create_task_group() as tasks:
                if app.state.service.files.remote:
                    tasks.start_soon(_sweep_copies, app.state.service, settings.sweep_interval)
                yield
                tasks.cancel_scope.cancel()
        finally:
            if owned is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(owned.close)
                app.state.service = None

    app = FastAPI(
        title="patientgen",
        version=_version(),
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by docs_page (with a policy of its own)
        redoc_url=None,
        responses=problem_responses(500),
    )
    app.state.settings = settings
    app.state.service = service
    app.state.auth_required = auth_required(settings.auth, settings.host)
    app.state.api_prefix = API_PREFIX
    app.state.key_cache = KeyCache()
    app.state.sse_limiter = anyio.CapacityLimiter(SSE_THREADS)
    app.state.stream_slots = OwnerSlots(settings.max_streams_per_key, "event streams")
    app.state.stream_ends = StreamEnds()
    app.state.archive_slots = OwnerSlots(settings.max_archives_per_key, "ZIP downloads")
    store_limiter = anyio.CapacityLimiter(STORE_THREADS)

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking JobService call off the event loop, bounded in time."""
        if inspect.iscoroutinefunction(fn):
            with anyio.fail_after(STORE_CALL_TIMEOUT):
                return await fn(*args, **kwargs)
        try:
            with anyio.fail_after(STORE_CALL_TIMEOUT):
                return await anyio.to_thread.run_sync(
                    functools.partial(fn, *args, **kwargs),
                    abandon_on_cancel=True,
                    limiter=store_limiter,
                )
        except TimeoutError:
            raise problems.Problem(
                503,
                "service-unavailable",
                "The job store did not answer in time; retry shortly.",
                headers={"Retry-After": "5"},
            ) from None

    app.state.call = call
    metrics = Metrics(lambda: app.state.service)
    app.state.metrics = metrics

    problems.install_handlers(app)
    routers = (jobs, files, patients, presets, scenarios, health)
    for router in (module.router for module in routers):
        app.include_router(router, prefix=API_PREFIX, dependencies=[Depends(known_parameters)])
    app.include_router(health.root_router)
    problems_router(app)
    docs_page(app)

    app.add_middleware(RequestGuard, max_body=MAX_BODY_BYTES, api_prefix=API_PREFIX + "/")
    app.add_middleware(SendTimeout, seconds=SEND_TIMEOUT)
    app.add_middleware(HostGuard, allowed=settings.allowed_host_names)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(LatencyMetrics, histogram=metrics.request_latency)
    app.router.routes.append(
        _WebMount("/", StaticFiles(directory=WEB_DIR, html=True, check_dir=False), name="web")
    )
    app.openapi = functools.partial(_openapi, app)  # type: ignore[method-assign]
    return app


class _WebMount(Mount):
    """The web page at `/`, which never claims a path under the API (so the API's own 404 and
    405 answers, with their `Allow` headers, stay the API's)."""

    def matches(self, scope: Any) -> tuple[Match, Any]:
        if scope.get("path", "").startswith(API_PREFIX + "/") or scope.get("path") == API_PREFIX:
            return Match.NONE, {}
        return super().matches(scope)


async def _sweep_copies(service: Any, interval: float) -> None:
    """With object storage, this host's copies of jobs' files go once unread for a while
    (files.ObjectFiles.sweep_copies), whether or not a worker runs here."""
    while True:
        try:
            swept = await anyio.to_thread.run_sync(service.sweep_copies)
        except Exception:  # the database or the disk away: the next sweep tries again
            log.warning("sweep of this host's copies failed", exc_info=True)
        else:
            if swept:
                log.info("swept %d copies of jobs' files", swept)
        await anyio.sleep(interval)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document; where keys are optional (auth off, or auto on loopback) every
    operation's security also allows no key at all (`{}`)."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        if not app.state.auth_required:
            for operations in document.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict) and operation.get("security"):
                        operation["security"].append({})
        app.openapi_schema = document
    return app.openapi_schema


def problems_router(app: FastAPI) -> None:
    @app.get(
        f"{API_PREFIX}/problems/{{slug}}",
        tags=["meta"],
        summary="Describe a problem type",
        responses=problem_responses(404),
    )
    async def describe_problem(slug: str) -> Response:
        """The `type` of every problem document points here."""
        found = problems.PROBLEM_TYPES.get(slug)
        if found is None:
            raise problems.Problem(404, "not-found", f"No problem type {slug!r}.")
        return json_response(
            {"type": problems.problem_type(slug), "title": found[0], "description": found[1]}
        )


def docs_page(app: FastAPI) -> None:
    """Swagger UI at /api/v1/docs, entirely from this service: its script, styles and icon come
    from the `fastapi-offline` package (Swagger UI's own files, installed with patientgen) and are
    served under /api/v1/docs/assets/, so the docs work on a closed network. The page keeps one
    inline script (FastAPI's, which starts Swagger UI), so it has a policy of its own (docs_csp):
    that script by its sha256, inline styles (Swagger UI sets some), nothing from elsewhere."""
    from fastapi.openapi.docs import get_swagger_ui_html

    assets = f"{API_PREFIX}/docs/assets"
    app.mount(assets, StaticFiles(directory=swagger_ui_assets()), name="docs-assets")
    html = get_swagger_ui_html(
        openapi_url=f"{API_PREFIX}/openapi.json",
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{assets}/swagger-ui-bundle.js",
        swagger_css_url=f"{assets}/swagger-ui.css",
        swagger_favicon_url=f"{assets}/favicon.png",
        # No badge from the public validator service: the docs never reach out.
        swagger_ui_parameters={"validatorUrl": None},
    )
    csp = docs_csp(bytes(html.body).decode())

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    async def swagger_ui() -> Response:
        return Response(html.body, media_type="text/html", headers={"Content-Security-Policy": csp})


def swagger_ui_assets() -> Path:
    """The folder of Swagger UI's files (swagger-ui-bundle.js, swagger-ui.css, favicon.png) as
    the fastapi-offline package installs them."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def docs_csp(page: str) -> str:
    """The docs page's policy: everything from this service only, as on the web page, plus each
    inline script of `page` by its sha256 and inline styles."""
    import base64
    import hashlib
    import re

    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    ]
    return "; ".join(
        [
            "default-src 'self'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "object-src 'none'",
        ]
    )


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("patientgen")
    except Exception:  # pragma: no cover
        return "0"
