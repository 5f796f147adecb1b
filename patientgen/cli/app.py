"""The one Typer app every command module adds its commands to (and the `jobs` group, which two
modules fill: jobs.py and casualties.py)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="patientgen",
    help="Generate realistic synthetic military casualties in durable jobs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as Click writes it: Typer's boxed help shows a type after every flag
    # (`--json <bool>`, `--help <bool>`), which reads as if the flag took a value.
    rich_markup_mode=None,
)

jobs_app = typer.Typer(help="Submit and manage jobs in the configured store.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
