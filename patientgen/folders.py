"""Whether files can be written into a folder: the one check every command and the SQLite store
make before they rely on a folder (the data folder, the SQLite database's, `generate --out`).

A leaf module: it imports nothing of patientgen, so the store and the CLI both use it."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


def folder_problem(path: Path, *, keep: bool) -> str | None:
    """Why files cannot be written into folder `path` (None when they can): it is made, with the
    folders above it that are missing, and a file is created in it and removed. Unless `keep`,
    the folders this made are removed again, so a refused command leaves nothing behind.
    Several processes may make the same folders at once (workers started together): a folder
    another made first is theirs, not a problem."""
    made: list[Path] = []
    try:
        for folder in reversed((path, *path.parents)):
            if not folder.exists():
                try:
                    folder.mkdir()
                except FileExistsError:
                    continue  # made meanwhile by another process (a file in the way fails below)
                made.append(folder)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        if not keep:
            for folder in reversed(made):
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return None
