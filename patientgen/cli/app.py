"""The one Typer app every command module adds its commands to (and the `jobs` group, which two
modules fill: jobs.py and casualties.py)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup


class OneLineUsageErrors(TyperGroup):
    """The root command: every usage error (an unknown option or command, a missing argument or
    option) is one line on stderr and exit status 2, like all other bad input of the commands
    (common.fail); Click's own answer is a usage block of four lines. A group given alone still
    prints its help. Whoever runs the app (the console script, a test's CliRunner) gets the same.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        run = functools.partial(
            super().main, args, prog_name, complete_var, windows_expand_args=windows_expand_args,
            **extra,
        )  # fmt: skip
        if not standalone_mode:
            return run(standalone_mode=False)
        try:
            status = run(standalone_mode=False)
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        except typer.TyperException as exc:  # Click's errors (Typer bundles Click)
            sys.exit(_report(exc))
        sys.exit(status if isinstance(status, int) else 0)


def _report(exc: typer.TyperException) -> int:
    """Write Click's error `exc` on stderr; its exit status."""
    message = str(exc.format_message() if hasattr(exc, "format_message") else exc)
    ctx = getattr(exc, "ctx", None)  # a usage error: the command it is about
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group alone: its help, as Click does
        print(message, file=sys.stderr)
    elif ctx is not None:
        what = f"{message[:1].lower()}{message[1:].rstrip('.')}"
        print(f"error: {what} (see {ctx.command_path} --help)", file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)
    return int(getattr(exc, "exit_code", 2))


app = typer.Typer(
    name="patientgen",
    cls=OneLineUsageErrors,
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
