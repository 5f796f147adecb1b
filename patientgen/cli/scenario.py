"""`patientgen scenario template|save|list|show|delete`: scenario files and saved scenarios.

patientgen scenario template > my.json                      # every field, at its default
patientgen scenario template --preset urban-assault > my.json
patientgen generate --scenario my.json
patientgen scenario save "Exercise A" --scenario my.json    # kept in the store, per --owner
patientgen scenario list | show NAME | delete NAME

Saved scenarios are those the API offers (`/saved-scenarios`), per owner (`--owner`, default the
local owner the CLI's jobs use). Bad input (an unknown name, a bad scenario, a bad name) prints
one line starting with `error:`, exits with code 2 and saves nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from patientgen.cli.app import app
from patientgen.cli.common import (
    LENIENT,
    BadInput,
    DatabaseOption,
    DataDirOption,
    fail,
    load_scenario,
    load_settings,
    no_extra,
    open_service,
)

scenario_app = typer.Typer(
    help="Scenarios: a template to edit; named scenarios kept in the store.", no_args_is_help=True
)
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
    # every field, the medical plan too ("unlimited", "sized" or a plan; left out of dumps when
    # unlimited, so it is named here)
    data = {**scenario.model_dump(mode="json")}
    data.setdefault("capacity", "unlimited")
    print(json.dumps(data, indent=2))


OwnerOption = Annotated[str, typer.Option("--owner", help="Whose scenarios.")]


@scenario_app.command("save", context_settings=LENIENT)
def save(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The name to keep it under.")],
    preset: Annotated[str | None, typer.Option("--preset", metavar="NAME")] = None,
    scenario_file: Annotated[str | None, typer.Option("--scenario", metavar="FILE")] = None,
    patients: Annotated[str | None, typer.Option("--patients", metavar="N")] = None,
    seed: Annotated[str | None, typer.Option("--seed", metavar="S")] = None,
    new: Annotated[
        bool, typer.Option("--new", help="Refuse (exit 2) if NAME is taken, instead of replacing.")
    ] = False,
    owner: OwnerOption = "local",
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Keep a scenario (a preset or a file, with --patients/--seed) under NAME, replacing one of
    that name (unless --new); prints its version (1 when new)."""
    from patientgen.jobs.model import ScenarioChanged

    no_extra(ctx)
    try:
        scenario = load_scenario(preset, scenario_file, patients, seed)
    except BadInput as exc:
        fail(str(exc))
    with open_service(load_settings(database_url=database_url, data_dir=data_dir)) as service:
        try:
            saved = service.save_scenario(name, scenario, owner, expected=0 if new else None)
        except ValueError as exc:
            fail(str(exc))
        except ScenarioChanged as exc:
            version = exc.current.version if exc.current else 0
            fail(f"a saved scenario {name!r} exists (version {version}); nothing was saved")
    print(f"{saved.name}: version {saved.version}")


@scenario_app.command("list", context_settings=LENIENT)
def list_saved(
    ctx: typer.Context,
    owner: OwnerOption = "local",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """The saved scenarios, by name."""
    no_extra(ctx)
    with open_service(load_settings(database_url=database_url, data_dir=data_dir)) as service:
        saved = service.scenarios(owner)
    if as_json:
        print(json.dumps([s.model_dump(mode="json", exclude={"scenario"}) for s in saved]))
        return
    for item in saved:
        print(f"{item.name}\tversion {item.version}\t{item.updated_at:%Y-%m-%d %H:%M}")


def _on_saved(action: Callable[[Any], Any], database_url: str | None, data_dir: Path | None) -> Any:
    """action(service) on a saved scenario; an unknown name fails with one line (exit 2)."""
    from patientgen.jobs.model import ScenarioNotFound

    with open_service(load_settings(database_url=database_url, data_dir=data_dir)) as service:
        try:
            return action(service)
        except ScenarioNotFound as exc:
            fail(str(exc))


@scenario_app.command("show", context_settings=LENIENT)
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    owner: OwnerOption = "local",
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print a saved scenario as JSON (ready for --scenario FILE)."""
    no_extra(ctx)
    saved = _on_saved(lambda service: service.scenario(name, owner), database_url, data_dir)
    print(json.dumps(saved.scenario, indent=2))


@scenario_app.command("delete", context_settings=LENIENT)
def delete(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    owner: OwnerOption = "local",
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a saved scenario."""
    no_extra(ctx)
    _on_saved(lambda service: service.delete_scenario(name, owner), database_url, data_dir)
