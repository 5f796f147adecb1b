"""Who is calling: the API key from `Authorization: Bearer` or `X-API-Key`, as a FastAPI dependency.

Whether a key is required is decided once at start-up (`auth_required`). Without a required key an
anonymous caller acts as owner "local"; a key that is sent is always checked, so a wrong key is a
401 even where keys are optional. /metrics asks for a key like every other route
(`metrics_access`) unless the setting `metrics_public` opens it to anyone.
"""

from __future__ import annotations

import hashlib
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from patientgen.api.problems import Problem

LOCAL_OWNER = "local"
#: How long a checked key is trusted without asking the store again (also the revocation delay).
KEY_CACHE_SECONDS = 2.0

_bearer = HTTPBearer(auto_error=False, description="An API key made by `patientgen keys create`.")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The same API key, in a header of its own."
)


@dataclass(frozen=True, slots=True)
class Principal:
    owner: str
    admin: bool
    max_patients: int | None = None
    max_active_jobs: int | None = None
    #: No key was sent (where keys are optional): the owner is LOCAL_OWNER.
    anonymous: bool = False

    @property
    def scope(self) -> str | None:
        """The owner filter for JobService: None (everything) for admins."""
        return None if self.admin else self.owner


class KeyCache:
    """Valid keys seen in the last `ttl` seconds (by the sha256 of the secret), so that a busy
    client does not cost a store lookup per request. A revoked key stops working within `ttl`."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: dict[bytes, tuple[float, Any]] = {}

    @staticmethod
    def _digest(secret: str) -> bytes:
        return hashlib.sha256(secret.encode()).digest()

    def get(self, secret: str) -> Any | None:
        entry = self._entries.get(self._digest(secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, secret: str, key: Any) -> None:
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[self._digest(secret)] = (time.monotonic() + self.ttl, key)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_required(mode: str, host: str) -> bool:
    """`auto`: keys required whenever the service listens on anything but loopback."""
    if mode == "required":
        return True
    if mode == "off":
        return False
    return not is_loopback(host)


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def principal(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header_key: str | None = Depends(_api_key_header),
) -> Principal:
    state = request.app.state
    secret = header_key or (bearer.credentials if bearer is not None else None)
    if not secret and request.headers.get("authorization"):
        raise _unauthorized("Only `Authorization: Bearer <key>` is understood.")
    if not secret:
        if state.auth_required:
            raise _unauthorized("An API key is required.")
        return Principal(owner=LOCAL_OWNER, admin=False, anonymous=True)
    if len(secret) > 200:
        raise _unauthorized("The API key is not valid.")
    key = state.key_cache.get(secret)
    if key is None:
        key = await state.call(state.service.authenticate, secret)
        if key is None or getattr(key, "revoked_at", None) is not None:
            raise _unauthorized("The API key is not valid or has been revoked.")
        state.key_cache.put(secret, key)
    return Principal(
        owner=str(key.key_id),
        admin=bool(key.admin),
        max_patients=key.max_patients,
        max_active_jobs=key.max_active_jobs,
    )


async def metrics_access(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    header_key: str | None = Depends(_api_key_header),
) -> None:
    """Who may read /metrics: anyone with `metrics_public`, otherwise callers `principal`
    accepts (any valid key where keys are required)."""
    if request.app.state.settings.metrics_public:
        return
    await principal(request, bearer, header_key)
