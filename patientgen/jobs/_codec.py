"""Small helpers shared by the stores: JSON, UTC time, text timestamps (no SQL here)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, overload

import orjson

_TS = "%Y-%m-%d %H:%M:%S.%f"


def utcnow() -> datetime:
    return datetime.now(UTC)


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def loads(text: str | bytes | None) -> Any:
    return None if text is None else orjson.loads(text)


@overload
def ts(value: datetime) -> str: ...
@overload
def ts(value: None) -> None: ...
def ts(value: datetime | None) -> str | None:
    """A UTC timestamp as fixed-width text: sorts the same as the instant."""
    return None if value is None else value.astimezone(UTC).strftime(_TS)


@overload
def parse_ts(text: str) -> datetime: ...
@overload
def parse_ts(text: None) -> None: ...
def parse_ts(text: str | None) -> datetime | None:
    """A timestamp `ts` wrote (SQLite's text columns). fromisoformat reads that fixed shape,
    and every fraction strptime's %f would, about six times faster: a job row holds up to six
    of them, read on every GET, list page, claim and heartbeat."""
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)
