"""The HTTP API: a FastAPI app over JobService (`create_app`)."""

from __future__ import annotations

from typing import Any


def create_app(settings: Any, service: Any = None) -> Any:
    """See `patientgen.api.app.create_app` (imported lazily: FastAPI loads only when used)."""
    from patientgen.api.app import create_app as _create_app

    return _create_app(settings, service)


__all__ = ["create_app"]
