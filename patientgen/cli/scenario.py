"""`patientgen scenario template`: a complete scenario file to start from.

patientgen scenario template > my.json                      # every field, at its default
patientgen scenario template --preset urban-assault > my.json
patientgen generate --scenario my.json
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from patientgen.cli.app import app
from patientgen.cli.common import fail

scenario_app = typer.Typer(help="Scenario files: a template to edit.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")


@scenario_app.command("template")
def template(
    preset: Annotated[
        str | None,
        typer.Option("--preset", metavar="NAME", help="Start from this preset's scenario."),
    ] = None,
) -> None:
    """Print a scenario as JSON with every field filled in (the defaults, or a preset's), ready
    for --scenario FILE of `generate` and `jobs submit`, and for the API's "scenario"."""
    from patientgen.scenario import PRESETS, Scenario

    if preset is None:
        scenario = Scenario()
    elif preset in PRESETS:
        scenario = PRESETS[preset].scenario
    else:
        fail(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    print(json.dumps(scenario.model_dump(mode="json"), indent=2))
