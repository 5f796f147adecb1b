"""A ZIP of a job's files, streamed while it is written, never held in memory.

The stdlib `zipfile` writes into a small unseekable sink (so it uses data descriptors) on a thread
of its own; the sink hands blocks of about 256 KiB through a bounded queue to the async generator
the response iterates. A slow client therefore slows the writer down (back-pressure) instead of
filling memory, and a client that goes away stops the writer at its next block.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import zipfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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


def _write_zip(members: Sequence[tuple[str, Path]], sink: _Sink) -> None:
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, path in members:
            info = zipfile.ZipInfo.from_file(path, arcname=name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as source, archive.open(info, "w", force_zip64=True) as target:
                while block := source.read(BLOCK):
                    target.write(block)
    sink.close()


async def zip_stream(members: Sequence[tuple[str, Path]]) -> AsyncIterator[bytes]:
    """Yield the bytes of a ZIP holding `members` (archive name, file path)."""
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
