"""`patientgen jobs patients JOB [--triage T1 …]` and `patientgen jobs patient JOB ID`: the
casualties of a completed job from the shell, read like the API reads them (the attribute index
to filter, sort and find; the NDJSON only at the records shown).

Bad input (unknown job, a job without NDJSON or without an index, unknown filter values or sort
key, a malformed id) prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from patientgen.cli.app import jobs_app
from patientgen.cli.common import (
    LENIENT,
    BareArgumentUsage,
    DatabaseOption,
    DataDirOption,
    JobIdArgument,
    fail,
    job_id_text,
    load_settings,
    no_extra,
    open_service,
)
from patientgen.formats import casualties

FilterOption = Annotated[
    list[str] | None,
    typer.Option(metavar="VALUE", help="One value, a comma list, or the option repeated."),
]


@contextlib.contextmanager
def _folder(job_id: str | None, database_url: str | None, data_dir: Path | None) -> Iterator[Path]:
    """The folder of a completed job's NDJSON output, kept there while the block runs."""
    from patientgen.jobs.model import OutputReplaced

    jid = job_id_text(job_id)
    settings = load_settings(database_url=database_url, data_dir=data_dir)
    with open_service(settings, check_storage=True) as service:  # reads where jobs are kept
        job = service.get(jid)
        if job.status.value != "completed":
            fail(f"job {jid} is {job.status.value}; its patients exist once it is completed")
        if "ndjson" not in job.config["formats"]:
            fail(f"job {jid} did not write NDJSON (--format ndjson); its patients cannot be read")
        with contextlib.ExitStack() as held:
            try:
                folder = held.enter_context(service.reading(job, casualties.FILES))
            except OutputReplaced as exc:
                fail(str(exc))
            except FileNotFoundError:
                fail(f"job {jid}: its files are no longer stored")
            yield Path(folder)


def _index(folder: Path) -> casualties.CasualtyIndex:
    try:
        return casualties.open_index(folder)
    except casualties.IndexMissing:
        fail("the job has no casualty index (written by an earlier version): submit it again")


@jobs_app.command("patients", context_settings=LENIENT, cls=BareArgumentUsage)
def patients(
    ctx: typer.Context,
    job_id: JobIdArgument,
    front: FilterOption = None,
    nation: FilterOption = None,
    category: FilterOption = None,
    triage: FilterOption = None,
    outcome: FilterOption = None,
    facility: FilterOption = None,
    sort: Annotated[
        str,
        typer.Option(
            metavar="KEY", help=f"{', '.join(casualties.SORT_KEYS)}; a leading - for descending."
        ),
    ] = "index",
    offset: Annotated[int, typer.Option(min=0, metavar="N")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10_000, metavar="N")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as NDJSON.")] = False,
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """List a completed job's casualties, filtered and sorted."""
    import orjson

    from patientgen.formats.bundle import read_records

    no_extra(ctx)
    with _folder(job_id, database_url, data_dir) as folder:
        index = _index(folder)
        raw = {"front": front, "nation": nation, "category": category, "triage": triage}
        raw |= {"outcome": outcome, "facility": facility}
        filters = {
            name: casualties.split_values(values, index.codes[name])
            for name, values in raw.items()
            if values
        }
        problems = casualties.problems(index, filters, sort)
        if problems:
            fail("; ".join(f"--{p['field']}: {p['message']}" for p in problems))
        total, positions = casualties.select(index, filters, sort, offset, limit)
        records = read_records(folder, positions)
        if as_json:
            sys.stdout.buffer.write(b"".join(record + b"\n" for record in records))
            return
        _table([orjson.loads(record) for record in records])
        shown = f"{offset + 1}-{offset + len(records)}" if records else "none"
        print(f"{shown} of {total:,} matching patients")
        if offset + len(records) < total:
            print(f"more: --offset {offset + len(records)}")


def _table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None)
    for column in ("#", "id", "name", "front", "nation", "category", "triage", "injured"):
        table.add_column(column)
    table.add_column("outcome")
    for r in rows:
        table.add_row(
            str(r["index"]),
            r["id"],
            f"{r['family_name']}, {r['given_name']}",
            r["front"],
            r["nationality"],
            r["category"].replace("_", " "),
            r["triage"] or "—",
            r["injured_at"][:16].replace("T", " "),
            f"{r['outcome']} at {r['outcome_facility']}",
        )
    Console().print(table)


@jobs_app.command("patient", context_settings=LENIENT, cls=BareArgumentUsage)
def patient(
    ctx: typer.Context,
    job_id: JobIdArgument,
    patient_id: Annotated[
        str, typer.Argument(metavar="PATIENT_ID", help="The casualty's id (a UUID).")
    ],
    database_url: DatabaseOption = None,
    data_dir: DataDirOption = None,
) -> None:
    """Print one casualty of a completed job as JSON, found by its id."""
    from uuid import UUID

    import orjson

    from patientgen.formats.bundle import read_records

    no_extra(ctx)
    try:
        wanted = UUID(patient_id.strip())
    except ValueError:
        fail(f"not a patient id: {patient_id!r} (a UUID)")
    with _folder(job_id, database_url, data_dir) as folder:
        position = casualties.find(_index(folder), wanted)
        if position is None:
            fail(f"job {job_id_text(job_id)} has no patient {wanted}")
        record = orjson.loads(read_records(folder, [position])[0])
        sys.stdout.buffer.write(orjson.dumps(record, option=orjson.OPT_INDENT_2) + b"\n")
