"""Every change this package makes to the file system: files written under temporary names and
renamed whole, fsyncs, moves, copies, and every removal. A reader finds here, and only here,
where a file of a run is written, renamed or removed (the stages above decide what and where).

Files are written in batches (Batch): every file of a batch is fsynced before any is renamed,
each folder is fsynced once after the renames, and files are renamed in the order they were
opened, so a caller that opens the manifest last makes it visible last. Nothing is ever visible
under a final name before its bytes are on disk, so a crash never leaves a half file that looks
whole, and a leftover temporary file is never taken for a part.

Memory does not grow with the size of a file: joins copy in fixed-size blocks (in the kernel
where it can: copy_file_range), hashed through one reused buffer per thread.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from patientgen.formats.bundle.layout import OutputFile, tmp_path

_BLOCK = 1 << 20
_BUFFER = 1 << 20


def _load_sync_file_range() -> Callable[[int], None] | None:
    """sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) where libc has it (Linux), else None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    function.restype = ctypes.c_int
    return lambda fd: function(fd, 0, 0, 2)


#: Start writing a file's dirty pages to disk now, without waiting: the disk then works while
#: the CPU generates, and the fsync at the end of a part or output file waits far less.
start_writeback = _load_sync_file_range()


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_buffers = threading.local()


def block_buffer() -> bytearray:
    """This thread's one copy/hash buffer (a fresh 1 MiB buffer per file costs more than the
    copying and hashing of a small file)."""
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(_BLOCK)
    return buffer


class Batch:
    """Files written under temporary names and made visible together, in order.

    commit(): flush every file and start the writeback of all of them, then fsync each (the disk
    writes them at once, so the fsyncs after the first mostly find their data there already),
    rename each onto its final name in the order they were opened, and fsync each folder once.
    Nothing is ever visible under a final name before its bytes are on disk. abort() removes every
    temporary file.
    """

    def __init__(self, owner: str = "", *, sync_folders: bool = True) -> None:
        self.owner = owner
        self.sync_folders = sync_folders
        self.files: list[Any] = []
        self.tmp: list[Path] = []
        self.final: list[Path] = []

    def open(self, final: Path, buffering: int = _BUFFER, owner: str | None = None) -> Any:
        """A new temporary file for `final`, open for writing (and reading back: digest);
        its name carries `owner` (default: the batch's)."""
        tmp = tmp_path(final, self.owner if owner is None else owner)
        f = open(tmp, "w+b", buffering=buffering)  # noqa: SIM115
        self.files.append(f)
        self.tmp.append(tmp)
        self.final.append(final)
        return f

    def writeback(self) -> None:
        if start_writeback is not None:
            for f in self.files:
                f.flush()
                start_writeback(f.fileno())

    def commit(self, folders: Iterable[Path] = ()) -> None:
        """Make every file visible under its final name; `folders`: more folders to fsync
        (the parents of folders this batch's files are the first entries of)."""
        for f in self.files:
            f.flush()
            if start_writeback is not None:
                start_writeback(f.fileno())
        for f in self.files:
            os.fsync(f.fileno())
            f.close()
        for tmp, final in zip(self.tmp, self.final, strict=True):
            os.replace(tmp, final)
        if self.sync_folders:
            for folder in dict.fromkeys([*(path.parent for path in self.final), *folders]):
                fsync_dir(folder)

    def abort(self) -> None:
        for f in self.files:
            # closing flushes the buffer, which fails again on a full disk: close them all
            # anyway and remove every temporary file
            with contextlib.suppress(OSError):
                f.close()
        for tmp in self.tmp:
            tmp.unlink(missing_ok=True)


def write_raw(f: Any, data: bytes) -> None:
    """All of `data` to an unbuffered file (a raw write may write less than it was given)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view) :]


def digest(f: Any) -> tuple[int, str, int]:
    """Size, sha256 and line count of a file being written (read back from the page cache,
    through its own descriptor: no open, and the file's offset is left as it is)."""
    f.flush()
    fd = f.fileno()
    size = 0
    digest = hashlib.sha256()
    lines = 0
    buffer = block_buffer()
    view = memoryview(buffer)
    while n := _pread_into(fd, buffer, size):
        digest.update(view[:n])
        lines += buffer.count(b"\n", 0, n)
        size += n
    return size, digest.hexdigest(), lines


def _pread_into(fd: int, buffer: bytearray, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    data = os.pread(fd, len(buffer), offset)  # pragma: no cover - no preadv here
    buffer[: len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


class Sink:
    """A final file being written (a temporary file of a Batch): running sha256, size, lines.

    Parts are copied in the kernel (copy_file_range) and hashed from the page cache through one
    reused buffer: on the VMs this runs on, fresh user-space buffers and write() of fresh pages
    cost far more than the hashing itself.
    """

    def __init__(self, batch: Batch, out_dir: Path, name: str) -> None:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = batch.open(path, buffering=0)
        self.hash = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def write(self, data: bytes) -> None:
        if data:
            view = memoryview(data)
            while view:
                view = view[self.file.write(view) :]
            self.hash.update(data)
            self.size += len(data)
            self.lines += data.count(b"\n")

    def copy(self, path: Path) -> None:
        buffer = block_buffer()
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as source:
            length = os.fstat(source.fileno()).st_size
            copied = _copy_range(source.fileno(), self.file.fileno(), length)
            if copied < length:  # no in-kernel copy here: copy through the buffer
                source.seek(copied)
                while n := source.readinto(buffer):
                    chunk = view[:n]
                    while chunk:
                        chunk = chunk[self.file.write(chunk) :]
            if start_writeback is not None:
                start_writeback(self.file.fileno())
            source.seek(0)
            while n := source.readinto(buffer):
                self.hash.update(view[:n])
                self.lines += buffer.count(b"\n", 0, n)
            self.size += length

    def output(self, name: str, fmt: str, records: int | None) -> OutputFile:
        return OutputFile(name, fmt, self.size, self.hash.hexdigest(), records)


def _copy_range(source: int, target: int, length: int) -> int:
    """Copy `length` bytes from the current offsets in the kernel; returns how many it copied."""
    copied = 0
    if not hasattr(os, "copy_file_range"):  # pragma: no cover - not Linux
        return 0
    try:
        while copied < length:
            n = os.copy_file_range(source, target, length - copied)
            if n == 0:
                break
            copied += n
    except OSError:  # EXDEV, ENOSYS, EINVAL on some filesystems: the caller copies the rest
        pass
    return copied


def remove_own_leftovers(out_dir: Path, names: list[str], owner: str) -> None:
    """Remove the temporary files that earlier, interrupted attempts of this run left in out_dir.

    Only names this run itself would write (a final name of its formats, its run mark) of an
    attempt no later than this one (`owner` is `<run>.<attempt>`): a user's own files, outputs of
    other formats or other runs, and other writers' temporary files stay as they are (`generate
    --out DIR` may point at a folder holding anything), and so do those of a later attempt: a
    worker paused past its lease that wakes inside finalize leaves its successor's files alone.
    """
    run, _, attempt = owner.rpartition(".")
    wanted: dict[Path, list[str]] = {}
    for name in names:
        path = out_dir / name
        wanted.setdefault(path.parent, []).append(f"{path.name}.tmp-{run}")
    for folder, prefixes in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(tuple(prefixes)) or not entry.is_file(
                follow_symlinks=False
            ):
                continue
            rest = entry.name.rpartition(f".tmp-{run}")[2]  # ".<attempt>-pid-thread"
            theirs = rest[1:].partition("-")[0] if rest.startswith(".") else "0"  # 0: unmarked
            if theirs.isdigit() and int(theirs) <= int(attempt):
                Path(entry.path).unlink(missing_ok=True)


#: rename() cannot move a file there: out_dir is on another filesystem; copy instead.
NO_RENAME = frozenset({errno.EXDEV})


def move(source: Path, target: Path) -> None:
    """Rename the complete, fsynced file `source` onto `target` (atomically)."""
    os.replace(source, target)


def is_copy_of(path: Path, expected: OutputFile) -> bool:
    """True when `path` holds exactly the bytes `expected` describes."""
    try:
        if path.stat().st_size != expected.bytes:
            return False
        digest = hashlib.sha256()
        buffer = block_buffer()
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
    except OSError:
        return False
    return digest.hexdigest() == expected.sha256


def write_scratch(stack: contextlib.ExitStack, path: Path, blocks: Iterable[bytes]) -> Path:
    """`blocks` written to a scratch file: a temporary name next to `path` (never taken for a
    part), removed when `stack` closes. Returns its path."""
    target = tmp_path(path)
    stack.callback(target.unlink, missing_ok=True)
    with open(target, "wb") as out:
        out.writelines(blocks)
    return target


def make_folders(paths: Iterable[Path]) -> None:
    """Make each folder of `paths` (and its parents) where it is not there yet."""
    for path in dict.fromkeys(paths):
        path.mkdir(parents=True, exist_ok=True)


def remove_folder(path: Path) -> None:
    """Remove folder `path` and everything in it (nothing when it is not there)."""
    shutil.rmtree(path, ignore_errors=True)
