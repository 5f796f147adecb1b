"""Unit tests of the pure ASGI middleware (no server needed)."""

from __future__ import annotations

import anyio
import pytest

from patientgen.api.middleware import SendTimeout


async def _app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for _ in range(3):
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def test_a_client_that_stops_reading_is_cut_off() -> None:
    sent: list[dict] = []

    async def stalled_send(message) -> None:
        sent.append(message)
        if len(sent) == 3:  # the client's buffers are full from the second body chunk on
            await anyio.sleep(60)

    async def main() -> None:
        # the response is left unfinished (the server then closes the connection) and nothing
        # escapes as an error, so a stalled client costs no traceback in the log
        with anyio.fail_after(5):
            await SendTimeout(_app, seconds=0.2)({"type": "http"}, None, stalled_send)

    anyio.run(main)
    assert len(sent) == 3


def test_other_errors_still_propagate() -> None:
    async def failing(scope, receive, send) -> None:
        raise ValueError("boom")

    async def send(message) -> None:
        pass

    with pytest.raises(ValueError):
        anyio.run(SendTimeout(failing, seconds=0.2), {"type": "http"}, None, send)


def test_a_reading_client_gets_everything() -> None:
    sent: list[dict] = []

    async def send(message) -> None:
        sent.append(message)

    anyio.run(SendTimeout(_app, seconds=0.2), {"type": "http"}, None, send)
    assert [m["type"] for m in sent].count("http.response.body") == 4
