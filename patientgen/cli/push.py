"""`patientgen push JOB --fhir URL | --mllp HOST:PORT`: a completed job's casualties into a
FHIR server or to an HL7 v2 listener, as a delivery job run in this process; `patientgen replay
JOB --to ... --speed N`: the same, each item when it happens in exercise time.

patientgen push 0b5f3c2e-... --fhir http://127.0.0.1:8103/fhir/R4 --bundle-size 100
patientgen push 0b5f3c2e-... --fhir https://fhir.example.org/R4 --batch --auth "Bearer $TOKEN"
patientgen push 0b5f3c2e-... --mllp 127.0.0.1:2575

The delivery is recorded like any job (`patientgen jobs list` shows it). Interrupted (Ctrl-C, a
crash, a killed process), the same command goes on where it stopped: the same job and target
make the same delivery job (its idempotency key), whose saved cursor skips what was delivered.
With --detach it is only queued, for the workers of a running `serve`.

patientgen replay 0b5f3c2e-... --to mllp://127.0.0.1:2575 --speed 60      # an hour a minute
patientgen replay 0b5f3c2e-... --to fhir://127.0.0.1:8103/fhir/R4 --speed 600 \\
    --start 2026-12-04T09:00:00+01:00
patientgen replay 0b5f3c2e-... --to stdout --speed 3600 --format fhir

A replay to a FHIR server or a listener is a delivery job too: Ctrl-C pauses it (the exercise
clock stops) and the same command goes on from there. To stdout nothing is recorded: Ctrl-C
prints how many items were written, and --skip N goes on after them. Bad input (not a job id,
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
)
from patientgen.scenario import validation_line

#: Options `push` and `replay` share.
DetachOption = Annotated[
    bool, typer.Option("--detach", help="Only queue it for the workers of a `serve`.")
]
AuthOption = Annotated[
    str | None,
    typer.Option(
        "--auth", metavar="HEADER", help='FHIR: the Authorization header, e.g. "Bearer TOKEN".'
    ),
]


def _target(
    fhir: str | None,
    mllp: str | None,
    batch: bool,
    bundle_size: str | None,
    auth: str | None,
    tls: bool = False,
) -> dict[str, Any]:
    if (fhir is None) == (mllp is None):
        raise BadInput("give one target: --fhir URL or --mllp HOST:PORT")
    if mllp is not None:
        if batch or bundle_size is not None or auth is not None:
            raise BadInput("--batch, --bundle-size and --auth go with --fhir, not --mllp")
        host, sep, port = mllp.rpartition(":")
        if not sep or not host:
            raise BadInput(f"--mllp: expected HOST:PORT, got {mllp!r}")
        port_number = parse_int("--mllp", port)
        return {"target": "mllp", "host": host.strip("[]"), "port": port_number, "tls": tls}
    if tls:
        raise BadInput("--tls goes with --mllp (a FHIR server's URL says https)")
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
    auth: AuthOption = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="MLLP over TLS (trusting the system's CAs and PATIENTGEN_DELIVERY_CA_FILE).",
        ),
    ] = False,
    detach: DetachOption = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Push a completed job's casualties to a FHIR server or an MLLP listener."""
    from pydantic import ValidationError

    from patientgen.delivery import DELIVERY

    no_extra(ctx)
    try:
        target = DELIVERY.validate_python(_target(fhir, mllp, batch, bundle_size, auth, tls))
    except BadInput as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_line(exc))
    _deliver_here(
        load_settings(database_url=database_url, data_dir=data_dir), job_id, target, detach
    )


def _deliver_here(settings: Any, job_id: str, target: Any, detach: bool) -> None:
    """Make (or find again) the delivery job and run it here, then print its report."""
    # the same job and target are the same delivery: a repeat goes on with it
    request = f"{job_id.strip().lower()} {target.model_dump_json()}".encode()
    key = "push-" + hashlib.sha256(request).hexdigest()[:40]
    with open_service(settings) as service:
        try:
            job, _ = service.push(job_id, target, idempotency_key=key)
        except ValueError as exc:
            fail(str(exc))
        job = service.resume(job.job_id)
        print(f"delivery job {job.job_id}", file=sys.stderr)
        if detach:
            return
        job = _run(service, job)
    _report(job)


def _replay_target(to: str) -> dict[str, Any]:
    """--to: fhir://host[:port]/path (fhirs:// for https), http(s)://..., mllp://host:port
    (mllps:// for MLLP over TLS)."""
    from urllib.parse import urlsplit

    scheme, sep, rest = to.partition("://")
    scheme = scheme.lower()
    if scheme in ("fhir", "fhirs", "http", "https") and sep:
        web = {"fhir": "http", "fhirs": "https"}.get(scheme, scheme)
        return {"target": "fhir", "url": f"{web}://{rest}"}
    if scheme in ("mllp", "mllps") and sep:
        where = urlsplit(to)
        if not where.hostname or where.port is None:
            raise BadInput(f"--to: expected {scheme}://HOST:PORT, got {to!r}")
        return {
            "target": "mllp",
            "host": where.hostname,
            "port": where.port,
            "tls": scheme == "mllps",
        }
    raise BadInput(
        f"--to: expected fhir://..., fhirs://..., mllp://HOST:PORT, mllps://HOST:PORT or stdout, "
        f"got {to!r}"
    )


@app.command("replay", context_settings=LENIENT)
def replay(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB_ID", help="A completed job.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            metavar="TARGET",
            help="fhir://HOST[:PORT]/PATH, fhirs://..., mllp://HOST:PORT, mllps://... or stdout.",
        ),
    ],
    speed: Annotated[
        str,
        typer.Option("--speed", metavar="N", help="Exercise seconds per second (1: real time)."),
    ],
    start: Annotated[
        str,
        typer.Option(
            "--start",
            metavar="WHEN",
            help="now, or when the scenario's start happens (ISO date-time with its offset).",
        ),
    ] = "now",
    auth: AuthOption = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="stdout: hl7 (default) or fhir.")
    ] = "hl7",
    skip: Annotated[
        str | None, typer.Option("--skip", metavar="N", help="stdout: go on after N items.")
    ] = None,
    detach: DetachOption = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Replay a completed job's casualties in exercise time to a FHIR server, an MLLP listener or
    standard output."""
    from pydantic import ValidationError

    from patientgen.delivery import DELIVERY

    no_extra(ctx)
    try:
        try:
            pace = {"speed": float(speed), "start": start}
        except ValueError:
            raise BadInput(f"--speed: expected a number, got {speed!r}") from None
        if to == "stdout":
            if fmt not in ("hl7", "fhir"):
                raise BadInput(f"--format: hl7 or fhir, not {fmt!r}")
            first = parse_int("--skip", skip) or 0
            if first < 0:
                raise BadInput("--skip: must not be negative")
            from patientgen.delivery import Pace

            checked = Pace.model_validate(pace)
        else:
            if skip is not None or fmt != "hl7":
                raise BadInput("--format and --skip go with --to stdout")
            wanted = _replay_target(to)
            if auth is not None:
                if wanted["target"] != "fhir":
                    raise BadInput("--auth goes with a FHIR target")
                wanted["authorization"] = auth
            target = DELIVERY.validate_python({**wanted, "pace": pace})
    except BadInput as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_line(exc))
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    if to == "stdout":
        with open_service(settings) as service:
            job = service.get(job_id)
        _replay_to_stdout(job, fmt, checked, first)
        return
    _deliver_here(settings, job_id, target, detach)


def _replay_to_stdout(job: Any, fmt: str, pace: Any, first: int) -> None:
    """Each item on standard output when it happens; nothing recorded."""
    import time

    from patientgen.jobs.delivery import paced_groups
    from patientgen.jobs.model import JobStatus
    from patientgen.jobs.timeline import Timeline
    from patientgen.scenario import Scenario

    if job.status != JobStatus.COMPLETED or "delivery" in job.config:
        fail(f"job {job.job_id} is not a completed generation job")
    start = None if pace.start == "now" else pace.start.isoformat()
    timeline = Timeline(Scenario.model_validate(job.config["scenario"]), fmt)
    out = sys.stdout.buffer
    written = first
    try:
        for group, after in paced_groups(timeline, first, pace.speed, start, lambda: 1, time.sleep):
            for item in group:
                out.write(item.data + b"\n")
            out.flush()
            written = after
    except KeyboardInterrupt:
        fail(f"paused after {written} items; go on with --skip {written}", 130)


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
