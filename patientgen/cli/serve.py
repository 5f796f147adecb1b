"""`patientgen serve`: the HTTP API on uvicorn, with N embedded worker processes."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from patientgen.cli.app import app
from patientgen.cli.common import ready_data_folder, storage_checked

AuthMode = Literal["auto", "required", "off"]


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _raise_open_files_limit() -> None:
    """Lift the soft limit of open files to the hard one. Every connection is a file: with the
    usual soft limit of 1024, about a thousand connections (idle, slow or hostile, until the head
    timeout closes them) make the server refuse everyone else, /healthz included."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX, or not allowed
        pass


def _server_class() -> type:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server that ends the event streams as its shutdown begins (StreamEnds):
        they would otherwise hold the shutdown for its whole graceful timeout."""

        def __init__(self, config: uvicorn.Config, stream_ends: Any) -> None:
            super().__init__(config)
            self.stream_ends = stream_ends

        async def shutdown(self, sockets: Any = None) -> None:
            self.stream_ends.close()
            await super().shutdown(sockets)

    return Server


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    workers: Annotated[
        int,
        typer.Option(min=0, max=64, help="Embedded worker processes (0: API only)."),
    ] = 1,
    auth: Annotated[
        str | None,
        typer.Option(
            help="auto: API keys required unless listening on loopback; required; off.",
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data folder (jobs, SQLite).")] = None,
    database_url: Annotated[
        str | None, typer.Option(help="sqlite:///file.db or postgresql://...")
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the HTTP API (and the web page at /) with embedded workers. Start-up applies the
    database migrations and checks that the storage (PATIENTGEN_STORAGE_URL) is the database's
    (exit 2 otherwise); Ctrl-C or SIGTERM shuts down gracefully (workers hand their jobs back)."""
    import uvicorn

    from patientgen.api import create_app
    from patientgen.api.protocol import bounded_http_protocol
    from patientgen.jobs.service import JobService
    from patientgen.settings import get_settings

    if auth is not None and auth not in ("auto", "required", "off"):
        raise typer.BadParameter("choose auto, required or off", param_hint="--auth")
    try:
        settings = get_settings(
            host=host, port=port, auth=auth, data_dir=data_dir, database_url=database_url
        )
    except Exception as exc:
        typer.echo(f"error: invalid settings: {exc}", err=True)
        raise typer.Exit(2) from None
    ready_data_folder(settings)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:  # applies migrations; an unreachable or full database is waited for, as workers do,
        # and the storage checked once it answers
        with storage_checked():
            service = JobService.open_when_ready(settings, threading.Event())
    except typer.Exit:
        raise
    except ValueError as exc:
        typer.echo(f"error: cannot open the job store: {exc}", err=True)
        raise typer.Exit(2) from None
    except Exception as exc:
        typer.echo(f"error: cannot open the job store: {exc}", err=True)
        raise typer.Exit(1) from None

    _raise_open_files_limit()
    pool = None
    try:
        if workers:
            pool = JobService.worker_pool(settings, workers)
            pool.start()
        application = create_app(settings, service)
        store = "PostgreSQL" if settings.database_url.startswith("postgres") else "SQLite"
        typer.echo(
            f"patientgen: http://{settings.host}:{settings.port}/ on {store}, "
            f"{workers} embedded worker(s), API keys "
            f"{'required' if application.state.auth_required else 'not required'}",
            err=True,
        )
        config = uvicorn.Config(
            application,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            timeout_graceful_shutdown=5,
            proxy_headers=False,
            # 431 for a request head over 64 KiB; connections whose head does not arrive in
            # time (slowloris, idle keep-alive) are closed after settings.head_timeout
            http=bounded_http_protocol(settings.head_timeout),
        )
        # uvicorn handles SIGINT/SIGTERM itself and re-raises the signal once it has shut down;
        # turning SIGTERM into SystemExit then lets the `finally` below stop the workers.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        _server_class()(config, application.state.stream_ends).run()
    finally:
        if pool is not None:
            pool.stop()
        service.close()
