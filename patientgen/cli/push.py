"""`patientgen push JOB --fhir URL | --mllp HOST:PORT`: a completed job's casualties into a
FHIR server or to an HL7 v2 listener, as a delivery job run in this process.

patientgen push 0b5f3c2e-... --fhir http://127.0.0.1:8103/fhir/R4 --bundle-size 100
patientgen push 0b5f3c2e-... --fhir https://fhir.example.org/R4 --batch --auth "Bearer $TOKEN"
patientgen push 0b5f3c2e-... --mllp 127.0.0.1:2575

The delivery is recorded like any job (`patientgen jobs list` shows it). Interrupted (Ctrl-C, a
crash, a killed process), the same command goes on where it stopped: the same job and target
make the same delivery job (its idempotency key), whose saved cursor skips what was delivered.
With --detach it is only queued, for the workers of a running `serve`. Bad input (not a job id,
no or both targets, a bad URL or port) prints one line starting with `error:` and exits 2; a
delivery that fails (a refused connection, refused credentials, a server that keeps failing)
exits 1 with what the target said.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Annotated, Any

import typer

from patientgen.cli.app import app
from patientgen.cli.common import (
    EXIT_FAILED,
    LENIENT,
    BadInput,
    DatabaseOption,
    DataDirOption,
    fail,
    load_settings,
    no_extra,
    open_service,
    parse_int,
    validation_line,
)


def _target(
    fhir: str | None, mllp: str | None, batch: bool, bundle_size: str | None, auth: str | None
) -> dict[str, Any]:
    if (fhir is None) == (mllp is None):
        raise BadInput("give one target: --fhir URL or --mllp HOST:PORT")
    if mllp is not None:
        if batch or bundle_size is not None or auth is not None:
            raise BadInput("--batch, --bundle-size and --auth go with --fhir, not --mllp")
        host, sep, port = mllp.rpartition(":")
        if not sep or not host:
            raise BadInput(f"--mllp: expected HOST:PORT, got {mllp!r}")
        return {"target": "mllp", "host": host.strip("[]"), "port": parse_int("--mllp", port)}
    target: dict[str, Any] = {"target": "fhir", "url": fhir}
    if batch:
        target["mode"] = "batch"
    size = parse_int("--bundle-size", bundle_size)
    if size is not None:
        target["bundle_size"] = size
    if auth is not None:
        target["authorization"] = auth
    return target


@app.command("push", context_settings=LENIENT)
def push(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A completed job.")],
    fhir: Annotated[
        str | None, typer.Option("--fhir", metavar="URL", help="A FHIR R4 server's base URL.")
    ] = None,
    mllp: Annotated[
        str | None,
        typer.Option("--mllp", metavar="HOST:PORT", help="An HL7 v2 listener (MLLP)."),
    ] = None,
    batch: Annotated[
        bool, typer.Option("--batch", help="Batch bundles, for servers refusing transactions.")
    ] = False,
    bundle_size: Annotated[
        str | None,
        typer.Option("--bundle-size", metavar="N", help="Resources per bundle (default 100)."),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(
            "--auth", metavar="HEADER", help='The Authorization header, e.g. "Bearer TOKEN".'
        ),
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Only queue it for the workers of a `serve`.")
    ] = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Push a completed job's casualties to a FHIR server or an MLLP listener."""
    from pydantic import ValidationError

    from patientgen.delivery import DELIVERY

    no_extra(ctx)
    try:
        target = DELIVERY.validate_python(_target(fhir, mllp, batch, bundle_size, auth))
    except BadInput as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_line(exc))
    # the same job and target are the same delivery: a repeat goes on with it
    request = f"{job_id.strip().lower()} {target.model_dump_json()}".encode()
    key = "push-" + hashlib.sha256(request).hexdigest()[:40]
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings) as service:
        job, _ = service.push(job_id, target, idempotency_key=key)
        job = service.resume(job.job_id)
        print(f"delivery job {job.job_id}", file=sys.stderr)
        if detach:
            return
        job = _run(service, job)
    _report(job)


def _run(service: Any, job: Any) -> Any:
    import signal
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from patientgen.jobs.model import JobStatus, RunOutcome

    if job.status == JobStatus.COMPLETED:
        return job
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        with Progress(
            TextColumn("[bold]pushing casualties"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task("push", total=job.config["scenario"]["total_patients"])
            job, outcome = service.run_here(
                job.job_id, stop, on_progress=lambda done, _: bar.update(task, completed=done)
            )
    finally:
        signal.signal(signal.SIGINT, previous)
    if outcome == RunOutcome.RELEASED:
        fail("interrupted; the same command goes on where it stopped", 130)
    return job


def _report(job: Any) -> None:
    from patientgen.delivery import describe_outcome
    from patientgen.jobs.model import JobStatus

    if job.status != JobStatus.COMPLETED:
        fail(f"delivery job {job.job_id} {job.status.value}: {job.error or ''}", EXIT_FAILED)
    report = job.summary or {}
    unit = report.get("unit", "items")
    print(
        f"delivered {report.get('delivered', 0):,} {unit} of {report.get('patients', 0):,} "
        f"casualties in {report.get('seconds', 0):.1f} s ({report.get('rate', 0):,.1f} {unit}/s); "
        f"{report.get('rejected', 0):,} rejected, {report.get('retries', 0):,} retries"
    )
    for rejection in report.get("rejections", []):
        said = describe_outcome(rejection.get("outcome"))
        print(f"rejected {rejection['ref']} ({rejection['status']}): {said}")
