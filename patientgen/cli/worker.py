"""`patientgen worker [--concurrency N]`: run jobs from the configured store until stopped."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from patientgen.cli.app import app
from patientgen.cli.common import (
    LENIENT,
    DatabaseOption,
    fail,
    load_settings,
    no_extra,
    ready_data_folder,
    storage_checked,
)


@app.command("worker", context_settings=LENIENT)
def worker(
    ctx: typer.Context,
    concurrency: Annotated[
        str, typer.Option("--concurrency", "-c", metavar="N", help="Job slots (processes).")
    ] = "1",
    lease_seconds: Annotated[
        str | None, typer.Option("--lease-seconds", metavar="S", help="Lease of a running job.")
    ] = None,
    database_url: DatabaseOption = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", metavar="DIR")] = None,
    log_level: Annotated[str, typer.Option("--log-level", metavar="LEVEL")] = "info",
) -> None:
    """Claim and run jobs; SIGTERM/SIGINT hand the running jobs back and exit 0. Refuses to
    start (exit 2) when its storage (PATIENTGEN_STORAGE_URL) is not the database's."""
    no_extra(ctx)
    try:
        n = int(concurrency)
    except ValueError:
        fail(f"--concurrency: expected an integer, got {concurrency!r}")
    if not 1 <= n <= 256:
        fail("--concurrency: must be between 1 and 256")
    lease = None
    if lease_seconds is not None:
        try:
            lease = float(lease_seconds)
        except ValueError:
            fail(f"--lease-seconds: expected a number, got {lease_seconds!r}")
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        fail(f"--log-level: unknown level {log_level!r} (debug, info, warning, error)")
    settings = load_settings(database_url=database_url, data_dir=data_dir, lease_seconds=lease)
    ready_data_folder(settings)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from patientgen.jobs.model import StoreUnavailable
    from patientgen.jobs.service import JobService

    with storage_checked():  # another storage than the database's: one line, exit 2
        try:  # applies migrations once and checks the storage; a bad URL is bad input
            JobService.open(settings, check_storage=True).close()
        except ValueError as exc:
            fail(str(exc))
        except StoreUnavailable as exc:  # not fatal: checked once it answers
            logging.getLogger("patientgen.worker").warning("%s; retrying until it is back", exc)
        code = JobService.run_workers(settings, n)
    raise typer.Exit(code)
