"""The `patientgen` command line: one Typer app, each group of commands in its own module."""

from __future__ import annotations

import logging

from patientgen.cli.app import app

__all__ = ["app", "main"]


def _register() -> None:
    # Each module adds its commands to `app`; importing them here keeps registration in one place.
    from patientgen.cli import (  # noqa: F401
        casualties,
        db,
        generate,
        jobs,
        keys,
        push,
        scenario,
        serve,
        worker,
    )


def main() -> None:
    """Console-script entry point. The connection pool's warning for each failed connect is
    not printed: a command says why the database cannot be reached in its own message (the
    store's StoreUnavailable carries the driver's reason), as `serve` and `worker` log it while
    they wait for it."""
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    _register()
    app()
