"""Per-owner caps of long-lived answers: event streams and ZIP downloads, in one API process.

Each open event stream holds a thread slot and a store poll, each ZIP download a writer thread
and file reads; without a cap one key could open enough of them to slow everyone down.

Invariant: an owner's count in an `OwnerSlots` is the number of its capped responses being sent
right now. A slot is taken when the response starts to be sent (after every check of the route
passed) and given back when sending ends, however it ends: finished, client gone, send timeout,
error. Over the cap the response is replaced by a 429 problem with Retry-After, and its body
iterator is closed unstarted. Counts live in the API process (the event loop's thread only, so
no lock): several API processes each allow the cap.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, Iterator
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from patientgen.api.problems import Problem

#: Seconds a refused client is asked to wait before trying again.
RETRY_AFTER = 5


class StreamEnds:
    """Ends the event streams when the service shuts down. A stream of a job still running never
    ends on its own: uvicorn would wait for it the whole graceful-shutdown timeout and then cancel
    it mid-answer. `close()` (serve calls it as the shutdown begins) cancels every stream's wait
    for the job's next update, and the stream then ends like a finished answer; clients connect
    again (the page and `patientgen.client` do, SSE's `retry:` says when). Event loop's thread
    only, like OwnerSlots."""

    def __init__(self) -> None:
        self.closing = False
        self._waits: set[anyio.CancelScope] = set()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[anyio.CancelScope]:
        """A cancel scope around one wait of a stream: cancelled by close() (at once when the
        shutdown has begun); `cancel_called` then tells the stream to end."""
        scope = anyio.CancelScope()
        if self.closing:
            scope.cancel()
        self._waits.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._waits.discard(scope)

    def close(self) -> None:
        self.closing = True
        for scope in list(self._waits):
            scope.cancel()


class OwnerSlots:
    """At most `limit` open responses of one kind (`what`) per owner."""

    def __init__(self, limit: int, what: str) -> None:
        self.limit = limit
        self.what = what
        self._open: dict[str, int] = {}

    def count(self, owner: str) -> int:
        return self._open.get(owner, 0)

    def try_acquire(self, owner: str) -> bool:
        if self.count(owner) >= self.limit:
            return False
        self._open[owner] = self.count(owner) + 1
        return True

    def release(self, owner: str) -> None:
        left = self.count(owner) - 1
        if left > 0:
            self._open[owner] = left
        else:
            self._open.pop(owner, None)

    def refusal(self) -> Problem:
        return Problem(
            429,
            "too-many-streams",
            f"This API key already has {self.limit} open {self.what} (the limit); close one "
            "or wait for one to end.",
            headers={"Retry-After": str(RETRY_AFTER)},
        )


class CappedStreamingResponse(StreamingResponse):
    """A StreamingResponse that counts against `owner`'s slots while it is being sent."""

    def __init__(
        self, content: AsyncIterable[Any], *, slots: OwnerSlots, owner: str, **kwargs: Any
    ) -> None:
        super().__init__(content, **kwargs)
        self.slots = slots
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.slots.try_acquire(self.owner):
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()
            await self.slots.refusal().response(scope.get("path"))(scope, receive, send)
            return
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slots.release(self.owner)
