"""Where a job's files are, and the one way they are removed.

Layout under the data folder: `jobs/<job_id>/` holds a job's final files and, while it runs, its
`.parts/` folder of chunk part files; `generate --out DIR` puts the final files in DIR instead.
Nothing above this module builds a path of a job.

Removal has one rule: a job's files are removed only by `detach`, and `detach` is only ever passed
as the `inside` callback of a store write (`sql_store.SqlStore`), so it runs inside the
transaction of a write that succeeded: a fenced write of the worker holding the lease, the
reaper's conditional write, or a user's delete of a job that is not running. `detach` renames the
folder into `jobs/.trash/` (atomic and instant, so the transaction stays short; the row lock, or
SQLite's write lock, keeps anyone from claiming the job meanwhile) and `purge` deletes the trash
after the commit. A worker that lost its lease never reaches `detach`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from uuid import UUID

from patientgen.jobs.model import Job

PARTS = ".parts"
TRASH = ".trash"


class Scope(StrEnum):
    """What of a job `detach` removes."""

    ALL = "all"  # the job's folder
    PARTS = "parts"  # the parts folder only (a finished job's leftovers)


class JobFiles:
    """The files of every job under one data folder."""

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir) / "jobs"
        self._moved = False  # detach moved something that purge has not deleted yet

    def folder(self, job_id: UUID) -> Path:
        return self.root / str(job_id)

    def parts(self, job_id: UUID) -> Path:
        return self.folder(job_id) / PARTS

    def output(self, job: Job) -> Path:
        """Where a job's final files are (its folder, or the folder `generate --out` chose)."""
        chosen = job.config.get("output_dir")
        return Path(chosen) if chosen else self.folder(job.job_id)

    def detach(self, job: Job, scope: Scope = Scope.ALL, outputs: Sequence[str] = ()) -> None:
        """Move the job's files out of the way (see the module docstring for when this may be
        called). `outputs`: final files this run wrote into an --out folder before it learnt it
        must not complete (a completed job's files in an --out folder are the user's: a delete
        leaves them)."""
        target = self.parts(job.job_id) if scope == Scope.PARTS else self.folder(job.job_id)
        if target.exists():
            trash = self.root / TRASH
            trash.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(target, trash / f"{job.job_id}-{uuid.uuid4().hex}")
                self._moved = True
        out = self.output(job)
        if out != self.folder(job.job_id):
            for name in outputs:
                with contextlib.suppress(OSError):
                    (out / name).unlink()

    def purge(self) -> None:
        """Delete what `detach` moved away (call after the transaction committed), with whatever
        another process that died before its own purge left in the trash. Nothing to do (no
        system call) when this instance moved nothing."""
        if not self._moved:
            return
        self._moved = False
        trash = self.root / TRASH
        for entry in list(trash.iterdir()):
            shutil.rmtree(entry, ignore_errors=True)
