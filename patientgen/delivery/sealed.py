"""Secrets kept with a job, sealed at rest: a delivery's `authorization` header.

A delivery job keeps its target's credentials to resume after a crash, so they live in the job's
config in the database, which backups, replicas and anyone who can read the database see. They
are stored sealed with Fernet (AES-128-CBC and HMAC-SHA256, from the `cryptography` package) as
`sealed:v1:<token>`, and unsealed only by the worker that sends them.

The key: the setting `secret_key` (PATIENTGEN_SECRET_KEY, a Fernet key: 32 bytes in URL-safe
base64, e.g. from `patientgen keys secret`), else a key made once in the data directory
(`secret.key`, mode 0600, created atomically: concurrent processes agree on one). Every process
that accepts pushes or runs them needs the same key: on several hosts, set the setting on each.
A worker whose key differs fails the delivery with a sentence saying so (nothing is sent).

Invariants: a sealed value never appears in a job's document (`delivery.shown` hides it as any
secret); a value stored before sealing existed (no prefix) is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from patientgen.delivery import DeliveryError

PREFIX = "sealed:v1:"
KEY_FILE = "secret.key"
#: The delivery config keys that are sealed.
SEALED_KEYS = ("authorization",)


class SecretUnreadable(DeliveryError):
    """A sealed secret this process's key cannot open."""


def new_key() -> str:
    """A fresh key for PATIENTGEN_SECRET_KEY."""
    return Fernet.generate_key().decode()


def _fernet(settings: Any) -> Fernet:
    configured = settings.secret_key
    if configured is not None:  # a Fernet key: Settings checked it
        return Fernet(configured.get_secret_value().strip())
    return Fernet(_key_file(Path(settings.data_dir)))


def _key_file(data_dir: Path) -> bytes:
    """The data directory's key, made on first use: written to a temporary file, then linked
    to its name, which fails if another process got there first (whose key is then read)."""
    path = data_dir / KEY_FILE
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


def seal(text: str, settings: Any) -> str:
    return PREFIX + _fernet(settings).encrypt(text.encode()).decode()


def unseal(text: str, settings: Any) -> str:
    """The secret; SecretUnreadable when this process's key is not the one that sealed it."""
    if not text.startswith(PREFIX):
        return text  # kept before secrets were sealed
    try:
        return _fernet(settings).decrypt(text[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "the delivery's authorization was sealed with another secret key: give this worker "
            "the PATIENTGEN_SECRET_KEY of the service that accepted the push (or the same data "
            "directory), then retry the delivery"
        ) from None


def seal_delivery(delivery: dict[str, Any], settings: Any) -> dict[str, Any]:
    """A delivery config with its secrets sealed."""
    return {
        k: (seal(v, settings) if k in SEALED_KEYS and isinstance(v, str) else v)
        for k, v in delivery.items()
    }


def unseal_delivery(delivery: dict[str, Any], settings: Any) -> dict[str, Any]:
    """A delivery config with its secrets readable (SecretUnreadable as `unseal`)."""
    return {
        k: (unseal(v, settings) if k in SEALED_KEYS and isinstance(v, str) else v)
        for k, v in delivery.items()
    }
