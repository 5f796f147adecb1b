"""`patientgen keys create|list|revoke`: API keys (shown once, stored only as a hash); `keys
secret`: a key for PATIENTGEN_SECRET_KEY, which seals the credentials kept with delivery jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from patientgen.cli.app import app
from patientgen.cli.common import fail, load_settings, open_service

keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="A label for the key (who or what uses it).")],
    admin: Annotated[bool, typer.Option("--admin", help="May see and manage every job.")] = False,
    max_patients: Annotated[
        int | None, typer.Option(min=1, help="Most patients one job of this key may ask for.")
    ] = None,
    max_active_jobs: Annotated[
        int | None, typer.Option(min=1, help="Most pending or running jobs at a time.")
    ] = None,
) -> None:
    """Create a key. The key itself is printed once, alone on the last line."""
    with open_service(load_settings()) as service:
        try:
            key, secret = service.create_key(name, admin, max_patients, max_active_jobs)
        except ValueError as exc:  # the name or a limit (the service checks them)
            fail(str(exc))
    limits = []
    if max_patients is not None:
        limits.append(f"max_patients={max_patients}")
    if max_active_jobs is not None:
        limits.append(f"max_active_jobs={max_active_jobs}")
    typer.echo(
        f"created key {key.key_id} ({key.name}{', admin' if key.admin else ''}"
        f"{', ' + ', '.join(limits) if limits else ''}); it is shown only now:",
        err=True,
    )
    typer.echo(secret)


@keys_app.command("list")
def list_keys() -> None:
    """List the keys (never their secrets)."""
    with open_service(load_settings()) as service:
        keys = service.list_keys()
    typer.echo(f"{'KEY_ID':<24} {'NAME':<24} ADMIN  MAX_PATIENTS  MAX_ACTIVE  CREATED  REVOKED")
    for key in keys:
        typer.echo(
            f"{key.key_id:<24} {key.name[:24]:<24} {'yes' if key.admin else 'no':<6} "
            f"{key.max_patients if key.max_patients is not None else '-':<13} "
            f"{key.max_active_jobs if key.max_active_jobs is not None else '-':<11} "
            f"{key.created_at:%Y-%m-%d}  "
            f"{key.revoked_at.strftime('%Y-%m-%d') if key.revoked_at else '-'}"
        )


@keys_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="The KEY_ID from `keys list`.")]) -> None:
    """Revoke a key: requests with it get 401 from now on; its jobs stay."""
    with open_service(load_settings()) as service:  # an unknown key: one line, exit 2
        service.revoke_key(key_id)
    typer.echo(f"revoked key {key_id}")


@keys_app.command("secret")
def secret() -> None:
    """Print a new key for PATIENTGEN_SECRET_KEY (it seals a delivery's credentials at rest;
    every host of a deployment needs the same one). Nothing is stored."""
    from patientgen.delivery.sealed import new_key

    typer.echo(new_key())
