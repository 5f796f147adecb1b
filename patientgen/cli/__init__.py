"""The `patientgen` command line: one Typer app, each group of commands in its own module."""

from __future__ import annotations

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
    """Console-script entry point."""
    _register()
    app(prog_name="patientgen")
