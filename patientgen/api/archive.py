"""A ZIP of a job's files, streamed while it is written, never held in memory.

The stdlib `zipfile` writes into a small unseekable sink (so it uses data descriptors) on a thread
of its own; the sink hands blocks of about 256 KiB through a bounded queue to the async generator
the response iterates. A slow client therefore slows the writer down (back-pressure) instead of
filling memory, and a client that goes away stops the writer at its next block.

Every file is opened before the first byte is sent (`open_members`), so a download that has
begun holds the files as they were then, whole, even if the job's folder is removed meanwhile
(a delete, or the sweep of an idle copy): an open file outlives its name.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

import anyio

BLOCK = 256 * 1024
QUEUE_BLOCKS = 8
_DONE = object()


class _Stopped(Exception):
    """The consumer went away; the writer thread unwinds."""


class _Sink:
    """A write-only, unseekable file object that forwards blocks into a queue."""

    def __init__(self, out: queue.Queue[object], stop: threading.Event) -> None:
        self.out = out
        self.stop = stop
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.position

    def write(self, data: bytes) -> int:
        if self.stop.is_set():
            raise _Stopped
        self.buffer += data
        self.position += len(data)
        if len(self.buffer) >= BLOCK:
            self._push(bytes(self.buffer))
            self.buffer.clear()
        return len(data)

    def _push(self, block: object) -> None:
        while True:
            if self.stop.is_set():
                raise _Stopped
            try:
                self.out.put(block, timeout=0.5)
                return
            except queue.Full:
                continue

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self.buffer:
            self._push(bytes(self.buffer))
            self.buffer.clear()


#: A member of the archive: its name in the ZIP and the file, open for reading.
Member = tuple[str, BinaryIO]


class MissingMember(Exception):
    """A file of the archive is not there (its name in the archive)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def open_members(files: Sequence[tuple[str, Path]]) -> list[Member]:
    """Open every file now; MissingMember, with none left open, if one is not a file."""
    opened: list[Member] = []
    try:
        for name, path in files:
            try:
                opened.append((name, path.open("rb")))
            except (FileNotFoundError, IsADirectoryError):
                raise MissingMember(name) from None
    except BaseException:
        _close(opened)
        raise
    return opened


def _close(members: Sequence[Member]) -> None:
    for _, source in members:
        source.close()


def _write_zip(members: Sequence[Member], sink: _Sink) -> None:
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, source in members:
            info = _info(name, os.fstat(source.fileno()))
            with archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(BLOCK):
                    target.write(block)
    sink.close()


def _info(name: str, stat: os.stat_result) -> zipfile.ZipInfo:
    """What `ZipInfo.from_file` says of a regular file, from the open file's status."""
    info = zipfile.ZipInfo(name, time.localtime(stat.st_mtime)[:6])
    info.external_attr = (stat.st_mode & 0xFFFF) << 16
    info.file_size = stat.st_size
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


async def zip_stream(members: Sequence[Member]) -> AsyncIterator[bytes]:
    """Yield the bytes of a ZIP holding `members` (from `open_members`; closed once written,
    or once the client is gone)."""
    blocks: queue.Queue[object] = queue.Queue(maxsize=QUEUE_BLOCKS)
    stop = threading.Event()
    failure: list[BaseException] = []

    def writer() -> None:
        sink = _Sink(blocks, stop)
        try:
            _write_zip(members, sink)
        except _Stopped:
            return
        except BaseException as exc:  # reported to the consumer below
            failure.append(exc)
        finally:
            _close(members)
        with contextlib.suppress(_Stopped):
            sink._push(_DONE)

    thread = threading.Thread(target=writer, name="zip-writer", daemon=True)
    thread.start()
    try:
        while True:
            block = await anyio.to_thread.run_sync(
                _next_block, blocks, stop, abandon_on_cancel=True
            )
            if block is _DONE or block is None:
                break
            assert isinstance(block, bytes)
            yield block
        if failure:
            raise failure[0]
    finally:
        stop.set()


def _next_block(blocks: queue.Queue[object], stop: threading.Event) -> object:
    while not stop.is_set():
        try:
            return blocks.get(timeout=0.5)
        except queue.Empty:
            continue
    return None
