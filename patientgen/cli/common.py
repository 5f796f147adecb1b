"""What every command of the CLI shares: exits, options, settings, the job service, and turning
scenario and format options into validated input.

Bad input prints one line on stderr starting with `error:` and exits with code 2, changing nothing;
a database that cannot be reached exits with code 1. No command module imports another: what two
commands share lives here.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from patientgen.folders import folder_problem

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 1
EXIT_FAILED = 1


class BadInput(Exception):
    """Input the user must fix: reported as one line, exit code 2."""


#: Unknown options and extra arguments reach the command, which reports them in one line.
LENIENT = {"allow_extra_args": True, "ignore_unknown_options": True}

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        metavar="URL",
        help="sqlite:///file.db or postgresql://... (env PATIENTGEN_DATABASE_URL).",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Data folder (env PATIENTGEN_DATA_DIR)."),
]


JobIdArgument = Annotated[
    str,
    typer.Argument(metavar="JOB_ID", help="The job's id, as `patientgen jobs list` shows it."),
]


class BareArgumentUsage(TyperCommand):
    """A command whose usage line shows a required argument as `JOB_ID`, not `{JOB_ID}` (its
    usage errors are one line, as every command's: cli/app.OneLineUsageErrors)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        # Typer writes a required argument as {JOB_ID}; the usual notation is a bare JOB_ID
        # (optional ones stay in [brackets]).
        pieces = super().collect_usage_pieces(ctx)
        return [p[1:-1] if p.startswith("{") and p.endswith("}") else p for p in pieces]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def ready_data_folder(settings: Any) -> None:
    """The data folder made and writable (PATIENTGEN_DATA_DIR), or one line and exit 2: for a
    command that keeps a SQLite database or jobs' files there."""
    problem = folder_problem(settings.data_dir, keep=True)
    if problem is not None:
        fail(f"data folder (PATIENTGEN_DATA_DIR): cannot write to {settings.data_dir}: {problem}")


def load_settings(**flags: Any) -> Any:
    """Settings from env vars and the given flags; a bad value is bad input."""
    from pydantic import ValidationError

    from patientgen.settings import get_settings

    try:
        return get_settings(**flags)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        fail(f"{where}: {first.get('msg', 'invalid')}")


@contextlib.contextmanager
def storage_checked() -> Iterator[None]:
    """The one place the storage check's refusals become one line and exit 2: this process's
    storage is not the database's (StorageMismatch), or a switch would split active jobs
    between two storages (JobsActive)."""
    from patientgen.jobs.model import JobsActive, StorageMismatch

    try:
        yield
    except (StorageMismatch, JobsActive) as exc:
        fail(str(exc))


@contextlib.contextmanager
def open_service(settings: Any, *, check_storage: bool = False) -> Iterator[Any]:
    """The JobService, with the job layer's errors turned into one-line exits; `check_storage`
    for a command that runs jobs (JobService.open)."""
    from pydantic import ValidationError

    from patientgen.jobs.model import (
        IdempotencyConflict,
        InvalidCursor,
        InvalidTransition,
        JobNotFound,
        KeyNotFound,
        StoreUnavailable,
    )
    from patientgen.jobs.service import JobService
    from patientgen.scenario import validation_line

    # a one-off command says why the database cannot be reached in its one error line
    # (StoreUnavailable carries the driver's reason): the pool's warning per attempt is noise
    # here, where serve and worker keep it in their logs
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    try:
        with storage_checked():
            service = JobService.open(settings, check_storage=check_storage)
    except StoreUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    except ValueError as exc:
        fail(str(exc))
    try:
        with storage_checked():
            yield service
    except (JobNotFound, KeyNotFound, InvalidTransition, InvalidCursor) as exc:
        fail(str(exc))
    except IdempotencyConflict as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_line(exc))
    except StoreUnavailable as exc:
        fail(str(exc), EXIT_UNAVAILABLE)
    finally:
        service.close()


def job_id_text(text: str | None) -> str:
    """A job id given on the command line, normalised (bad input otherwise)."""
    from uuid import UUID

    if text is None:
        fail("missing JOB_ID (see `patientgen jobs list`)")
    try:
        return str(UUID(text.strip()))
    except ValueError:
        fail(f"not a job id: {text!r} (a UUID, as `patientgen jobs list` shows)")


def no_extra(ctx: typer.Context) -> None:
    if ctx.args:
        what = "option" if ctx.args[0].startswith("-") else "argument"
        fail(f"unexpected {what} {ctx.args[0]!r} (see --help)")


def parse_int(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise BadInput(f"{option}: expected an integer, got {text!r}") from None


def load_scenario(
    preset: str | None, scenario_file: str | None, patients: str | None, seed: str | None
) -> Any:
    """The validated Scenario the options describe; BadInput with one line otherwise."""
    from pydantic import ValidationError

    from patientgen.scenario import PRESETS, Scenario, validation_line

    n_patients = parse_int("--patients", patients)
    n_seed = parse_int("--seed", seed)
    if (preset is None) == (scenario_file is None):
        raise BadInput("give exactly one of --preset NAME or --scenario FILE")
    if preset is not None:
        if preset not in PRESETS:
            raise BadInput(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
        data: dict[str, Any] = PRESETS[preset].scenario.model_dump()
    else:
        path = Path(scenario_file or "")
        try:
            raw = json_text(path.read_bytes())
        except OSError as exc:
            raise BadInput(f"cannot read scenario file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise BadInput(f"invalid scenario {path}: not {exc.encoding} text") from None
        try:
            data = Scenario.model_validate_json(raw).model_dump()
        except ValidationError as exc:
            raise BadInput(f"invalid scenario {path}: {validation_line(exc)}") from None
    if n_patients is not None:
        data["total_patients"] = n_patients
    if n_seed is not None:
        data["seed"] = n_seed
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise BadInput(f"invalid scenario: {validation_line(exc)}") from None


#: Byte order marks a JSON file may begin with, and the encoding each names: the UTF-8 one that
#: Windows Notepad writes, the UTF-16 ones of Windows PowerShell 5's `>` (RFC 8259 lets a reader
#: ignore a BOM).
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def json_text(raw: bytes) -> bytes:
    """A JSON file's bytes as UTF-8 without a byte order mark (UnicodeDecodeError when the text is
    not in the encoding its mark names)."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding).encode()
    return raw


def check_formats(scenario: Any, formats: tuple[str, ...]) -> None:
    """BadInput when the formats do not fit the scenario (e.g. cards for too many patients)."""
    from patientgen.formats.bundle import format_problems

    problems = format_problems(scenario.total_patients, formats)
    if problems:
        raise BadInput(f"--format: {'; '.join(problems)}")


def parse_formats(text: str) -> tuple[str, ...]:
    from patientgen.formats.bundle import normalize_formats

    try:
        return normalize_formats(text)
    except ValueError as exc:
        raise BadInput(f"--format: {exc}") from None
