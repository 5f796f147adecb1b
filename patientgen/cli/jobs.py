"""`patientgen jobs submit|list|show|cancel|retry|delete`: the job store from the shell.

Bad input to any command (unknown job, bad option value, an action the job's status does not
allow) prints one line on stderr starting with `error:`, exits with code 2 and changes nothing.
A database that cannot be reached exits with code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from patientgen.cli.app import jobs_app
from patientgen.cli.common import (
    LENIENT,
    BadInput,
    BareArgumentUsage,
    DatabaseOption,
    DataDirOption,
    JobIdArgument,
    check_formats,
    fail,
    job_id_text,
    load_scenario,
    load_settings,
    no_extra,
    open_service,
    parse_formats,
)
from patientgen.formats import DEFAULT_FORMATS, FORMATS


def job_dict(job: Any) -> dict[str, Any]:
    """The job as the CLI prints it: as the API shows it, a delivery's secrets hidden."""
    from patientgen.delivery import shown

    return {**job.model_dump(mode="json"), "config": shown(job.config)}


def job_json(job: Any) -> str:
    return json.dumps(job_dict(job), indent=2, sort_keys=True)


@jobs_app.command("submit", context_settings=LENIENT)
def submit(
    ctx: typer.Context,
    preset: Annotated[str | None, typer.Option("--preset", metavar="NAME")] = None,
    scenario_file: Annotated[str | None, typer.Option("--scenario", metavar="FILE")] = None,
    patients: Annotated[str | None, typer.Option("--patients", metavar="N")] = None,
    seed: Annotated[str | None, typer.Option("--seed", metavar="S")] = None,
    formats: Annotated[
        str, typer.Option("--format", metavar="LIST", help=f"Comma-separated: {','.join(FORMATS)}.")
    ] = ",".join(DEFAULT_FORMATS),
    priority: Annotated[str, typer.Option("--priority", metavar="P")] = "0",
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    owner: Annotated[str, typer.Option("--owner", help="Owner of the job.")] = "local",
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Enqueue a job (for workers to run) and print its id."""
    no_extra(ctx)
    try:
        scenario = load_scenario(preset, scenario_file, patients, seed)
        wanted = parse_formats(formats)
        check_formats(scenario, wanted)
        try:
            prio = int(priority)
        except ValueError:
            raise BadInput(f"--priority: expected an integer, got {priority!r}") from None
        if not -1000 <= prio <= 1000:
            raise BadInput("--priority: must be between -1000 and 1000")
    except BadInput as exc:
        fail(str(exc))
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        try:
            job, created = service.submit(scenario, wanted, owner, idempotency_key, prio)
        except ValueError as exc:
            fail(str(exc))
    if not created:
        print(f"job {job.job_id} already exists for this idempotency key", file=sys.stderr)
    print(job.job_id)


@jobs_app.command("list", context_settings=LENIENT)
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option("--status", metavar="LIST", help="e.g. pending,running")
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner")] = None,
    limit: Annotated[str, typer.Option("--limit", metavar="N")] = "50",
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List jobs, newest first."""
    no_extra(ctx)
    try:
        n = int(limit)
    except ValueError:
        fail(f"--limit: expected an integer, got {limit!r}")
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        try:
            page = service.list(owner=owner, statuses=statuses, limit=n, cursor=cursor)
        except ValueError as exc:
            fail(str(exc))
    if as_json:
        items = [job_dict(j) for j in page.items]
        print(json.dumps({"items": items, "next_cursor": page.next_cursor}, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title_justify="left")
    table.add_column("job id", no_wrap=True, min_width=36)
    for column in ("status", "progress", "patients", "owner", "created", "attempts"):
        table.add_column(column, no_wrap=True)
    for job in page.items:
        table.add_row(
            str(job.job_id),
            job.status.value,
            f"{job.progress}%",
            f"{job.config['scenario']['total_patients']:,}",
            job.owner,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            f"{job.attempts}/{job.max_attempts}",
        )
    Console().print(table)
    if page.next_cursor:
        print(f"more: --cursor {page.next_cursor}")


@jobs_app.command("show", context_settings=LENIENT, cls=BareArgumentUsage)
def show(
    ctx: typer.Context,
    job_id: JobIdArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Show one job."""
    no_extra(ctx)
    jid = job_id_text(job_id)
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        job = service.get(jid)
        folder = service.output_dir(job)
    if as_json:
        print(job_json(job))
        return
    d = job.progress_details
    print(f"job       {job.job_id}")
    print(
        f"status    {job.status.value}  ({job.progress}%, attempt {job.attempts}/"
        f"{job.max_attempts})"
    )
    print(
        f"scenario  {job.config['scenario']['name']} — "
        f"{job.config['scenario']['total_patients']:,} patients, seed "
        f"{job.config['scenario']['seed']}"
    )
    print(f"formats   {', '.join(job.config['formats'])}")
    if d:
        print(
            f"progress  {d.get('phase')}: {d.get('patients_done')}/{d.get('patients_total')} "
            f"patients, {d.get('chunks_done')}/{d.get('chunks_total')} chunks"
        )
    print(f"created   {job.created_at:%Y-%m-%d %H:%M:%S} UTC")
    if job.completed_at:
        print(f"finished  {job.completed_at:%Y-%m-%d %H:%M:%S} UTC")
    if job.error:
        print(f"error     {job.error}")
    if job.output_files:
        print(f"files in  {folder}")
        for f in job.output_files:
            print(f"  {f['name']:<40} {f['bytes']:>12,} B  {f['sha256'][:16]}…")


def _act(action: str, job_id: str | None, database_url: str | None, data_dir: Path | None) -> None:
    jid = job_id_text(job_id)
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        if action == "delete":
            service.delete(jid)
            print(f"deleted job {jid}")
            return
        job = getattr(service, action)(jid)
    note = " (stops at the next chunk boundary)" if job.status.value == "running" else ""
    print(f"job {jid} is {job.status.value}{note}")


@jobs_app.command("cancel", context_settings=LENIENT, cls=BareArgumentUsage)
def cancel(
    ctx: typer.Context,
    job_id: JobIdArgument,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Cancel a pending job, or ask a running one to stop at its next chunk."""
    no_extra(ctx)
    _act("cancel", job_id, database_url, data_dir)


@jobs_app.command("retry", context_settings=LENIENT, cls=BareArgumentUsage)
def retry(
    ctx: typer.Context,
    job_id: JobIdArgument,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Queue a failed or cancelled job again."""
    no_extra(ctx)
    _act("retry", job_id, database_url, data_dir)


@jobs_app.command("delete", context_settings=LENIENT, cls=BareArgumentUsage)
def delete(
    ctx: typer.Context,
    job_id: JobIdArgument,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Delete a job that is not running, and its files."""
    no_extra(ctx)
    _act("delete", job_id, database_url, data_dir)
