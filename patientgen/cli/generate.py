"""`patientgen generate` and `patientgen presets`.

`generate` submits a job to the configured store and runs it in this process with a live progress
bar, so the run is recorded, listed by `patientgen jobs list`, and resumable with
`patientgen generate --resume JOB_ID` after Ctrl-C or a crash.

Bad input (unknown preset, both or neither of --preset/--scenario, an unreadable or invalid
scenario file, a bad format name, out-of-range numbers, an --out folder that is a file or cannot
be made or written) prints one line on stderr, exits with code 2 and writes nothing: no job is
submitted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from patientgen.cli.app import app
from patientgen.cli.common import (
    EXIT_FAILED,
    BadInput,
    check_formats,
    fail,
    load_scenario,
    load_settings,
    open_service,
    parse_formats,
    parse_int,
    ready_data_folder,
)
from patientgen.folders import folder_problem
from patientgen.formats import DEFAULT_FORMATS, FORMATS


def _check_out(out: Path) -> None:
    """That files can be written into `out`, before any job exists (folders.folder_problem: the
    folders it makes to see are removed again)."""
    for folder in (out, *out.parents):
        if folder.exists():
            if not folder.is_dir():
                raise BadInput(f"--out: {folder} exists and is not a folder")
            break
    problem = folder_problem(out, keep=False)
    if problem is not None:
        raise BadInput(f"--out: cannot write to {out}: {problem}")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _print_result(console: Any, out: Path, files: list[Any], summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"Files in {out}", title_justify="left")
    table.add_column("file")
    table.add_column("format")
    table.add_column("size", justify="right")
    table.add_column("records", justify="right")
    for f in files:
        table.add_row(
            f.name, f.format, _size(f.bytes), "" if f.records is None else f"{f.records:,}"
        )
    console.print(table)

    s = Table(title="Summary", title_justify="left")
    s.add_column("measure")
    s.add_column("value", justify="right")
    n = summary["patients"]
    s.add_row("patients", f"{n:,}")
    for title, key in (
        ("category", "by_category"),
        ("outcome", "by_outcome"),
        ("triage", "by_triage"),
        ("last facility", "by_last_facility"),
    ):
        for name, count in summary[key].items():
            s.add_row(f"{title}: {name}", f"{count:,} ({100 * count / n:.1f}%)" if n else "0")
    battle = summary["battle_injury"]
    s.add_row("battle injuries", f"{battle['casualties']:,}")
    s.add_row("battle CFR (KIA+DOW)/(KIA+WIA)", _pct(battle["cfr"]))
    s.add_row("battle %KIA", _pct(battle["pct_kia"]))
    s.add_row("battle %DOW", _pct(battle["pct_dow"]))
    s.add_row("mass-casualty patients", f"{summary['mass_casualty_patients']:,}")
    for outcome, p in summary["time_to_outcome_minutes"]["percentiles"].items():
        if p["p50"] is not None:
            s.add_row(
                f"minutes to outcome {outcome} (p50 / p90)", f"{p['p50']:,.0f} / {p['p90']:,.0f}"
            )
    per_day = summary["casualties_per_day"]
    if per_day:
        s.add_row("casualties per day (min / max)", f"{min(per_day):,} / {max(per_day):,}")
    console.print(s)


@app.command(
    "generate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def generate_command(
    ctx: typer.Context,
    preset: Annotated[
        str | None, typer.Option("--preset", metavar="NAME", help="A built-in preset.")
    ] = None,
    scenario_file: Annotated[
        str | None,
        typer.Option("--scenario", metavar="FILE", help="A scenario as a JSON file."),
    ] = None,
    patients: Annotated[
        str | None,
        typer.Option("--patients", metavar="N", help="Override the number of patients."),
    ] = None,
    seed: Annotated[
        str | None, typer.Option("--seed", metavar="S", help="Override the seed.")
    ] = None,
    formats: Annotated[
        str | None,
        typer.Option(
            "--format",
            metavar="LIST",
            help=(
                f"Comma-separated formats: {','.join(FORMATS)} "
                f"(default {','.join(DEFAULT_FORMATS)})."
            ),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Output folder (default: the job's folder)."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="JOB_ID", help="Continue an interrupted job."),
    ] = None,
    chunk_size: Annotated[
        str | None, typer.Option("--chunk-size", hidden=True, help="Patients per chunk.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", metavar="URL", help="Job store (PATIENTGEN_DATABASE_URL)."),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", metavar="DIR", help="Data folder.")
    ] = None,
) -> None:
    """Generate a scenario's casualties as a recorded, resumable job run in this process.

    The job is submitted to the configured store (listed afterwards by `patientgen jobs list`) and
    run here with a live progress bar; Ctrl-C stops at the next chunk and `--resume JOB_ID` goes on
    from there. Files go to the job's folder under the data folder, or to --out.
    """
    from uuid import UUID

    scenario = wanted = None
    job_id = None
    try:
        if ctx.args:
            raise BadInput(f"unexpected argument {ctx.args[0]!r} (see --help)")
        if resume is not None:
            given = [
                name
                for name, value in (
                    ("--preset", preset),
                    ("--scenario", scenario_file),
                    ("--patients", patients),
                    ("--seed", seed),
                    ("--format", formats),
                    ("--out", out),
                )
                if value is not None
            ]
            if given:
                raise BadInput(f"--resume continues a job as it was submitted; drop {given[0]}")
            try:
                job_id = UUID(resume.strip())
            except ValueError:
                raise BadInput(f"--resume: not a job id: {resume!r}") from None
        else:
            scenario = load_scenario(preset, scenario_file, patients, seed)
            wanted = parse_formats(formats if formats is not None else ",".join(DEFAULT_FORMATS))
            check_formats(scenario, wanted)
            if out is not None:
                _check_out(out)
        size = parse_int("--chunk-size", chunk_size)
        if size is not None and size < 1:
            raise BadInput("--chunk-size: must be at least 1")
    except BadInput as exc:
        fail(str(exc))

    settings = load_settings(database_url=database_url, data_dir=data_dir, chunk_size=size)
    ready_data_folder(settings)
    earlier = _manifest_in(out) if out is not None else None
    with open_service(settings, check_storage=True) as service:
        if job_id is not None:
            job = service.resume(job_id)
        else:
            try:
                job, _ = service.submit(scenario, wanted, "local", output_dir=out)
            except ValueError as exc:  # the output folder (the service checks it)
                fail(f"--out: {exc}")
        _run_here(service, job, earlier)


def _manifest_in(folder: Path) -> bytes | None:
    """The manifest an earlier run left in an --out folder, if any."""
    from patientgen.formats import manifest

    try:
        return (folder / manifest.FILE).read_bytes()
    except OSError:
        return None


def _run_here(service: Any, job: Any, earlier: bytes | None = None) -> None:
    """Run `job` in this process with a progress bar (or follow it while a `serve` on the same
    store runs it); print the result, and say so when it replaced other files an earlier run
    left in its --out folder (`earlier`: that run's manifest): a job that wrote them serves
    nothing from then on."""
    import signal
    import threading

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from patientgen.formats.bundle import OutputFile
    from patientgen.jobs.model import JobStatus, RunOutcome

    console = Console()
    err = Console(stderr=True)
    outcome: RunOutcome | None
    if job.status == JobStatus.COMPLETED:
        err.print(f"job {job.job_id} is already completed")
        outcome = RunOutcome.COMPLETED
    else:
        print(f"job {job.job_id}", file=sys.stderr)
        stop = threading.Event()
        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            with Progress(
                TextColumn("[bold]generating"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task("generate", total=job.config["scenario"]["total_patients"])
                job, outcome = service.run_here(
                    job.job_id,
                    stop,
                    on_progress=lambda done, _total: bar.update(task, completed=done),
                )
        finally:
            signal.signal(signal.SIGINT, previous)
    if outcome is None:  # another worker (a running `serve`) ran it
        outcome = RunOutcome.COMPLETED if job.status == JobStatus.COMPLETED else None
    if outcome == RunOutcome.RELEASED:
        fail(f"interrupted; continue with: patientgen generate --resume {job.job_id}", 130)
    if outcome != RunOutcome.COMPLETED:
        reason = job.error or (outcome or job.status).replace("_", " ")
        fail(f"job {job.job_id} {job.status.value}: {reason}", EXIT_FAILED)
    out = service.output_dir(job)
    if earlier is not None and _manifest_in(out) != earlier:
        err.print(
            f"replaced the files an earlier run left in {out}: "
            "the job that wrote them serves nothing from now on",
            soft_wrap=True,  # one line, the path whole
        )
    files = [OutputFile(**f) for f in job.output_files]
    total = job.config["scenario"]["total_patients"]
    name = job.config["scenario"]["name"]
    console.print(
        f"Wrote {total:,} patients of {name!r} (seed {job.config['scenario']['seed']}) to {out}"
    )
    _print_result(console, out, files, job.summary or {})


@app.command("presets")
def presets_command() -> None:
    """List the built-in scenario presets."""
    from rich.console import Console
    from rich.table import Table

    from patientgen.scenario import PRESETS

    table = Table(title="Presets", title_justify="left")
    table.add_column("name")
    table.add_column("patients", justify="right")
    table.add_column("days", justify="right")
    table.add_column("description")
    for preset in PRESETS.values():
        s = preset.scenario
        table.add_row(
            preset.name, f"{s.total_patients:,}", str(s.duration_days), preset.description
        )
    Console().print(table)
