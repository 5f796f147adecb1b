"""Delivery of a job's casualties into the systems under test: a FHIR server, an MLLP listener.

A target takes items in order and answers, for each group it sent, which items the other side
refused (`Rejection`). What it cannot get past is raised, and the whole tree is here:

    DeliveryError               the base; its text is the sentence a user reads
    ├── TargetUnreachable       no connection, or none that lasted, after the retries
    ├── TargetRefused           the credentials were refused (HTTP 401 or 403)
    ├── TargetFailed            the target kept failing (HTTP 5xx after the retries, an answer
    │                           that is not FHIR or HL7, a URL that is no FHIR endpoint)
    ├── TargetUntrusted         its TLS certificate is not one this service trusts (not retried)
    └── SecretUnreadable        (sealed.py) the credentials were sealed with another key

Targets know nothing of jobs: the job layer (patientgen.jobs.delivery) feeds them, saves where it
got to, and gives them `pause(seconds)`, which waits for a retry and raises when the job must stop
(cancelled, worker stopping, lease lost) so no target ever holds a job past its end.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_serializer,
)


class DeliveryError(Exception):
    """A target could not be delivered to; the message says what happened, where."""


class TargetUnreachable(DeliveryError):
    pass


class TargetRefused(DeliveryError):
    pass


class TargetUntrusted(DeliveryError):
    """The target's TLS certificate did not verify against the trusted CAs (tls_context)."""


class TargetFailed(DeliveryError):
    pass


#: Waits up to `seconds` before a retry; raises when the job must stop meanwhile.
Pause = Callable[[float], None]


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """What a push trusts: the system's CAs, and those of `ca_file` (PEM; the setting
    delivery_ca_file, e.g. a test lab's own CA). Certificates and host names are checked."""
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    return context


def untrusted(where: str, exc: BaseException) -> TargetUntrusted:
    """The error for a certificate that did not verify (said once, never retried)."""
    why = getattr(exc, "verify_message", None) or str(exc)
    return TargetUntrusted(
        f"the TLS certificate of {where} is not trusted ({why}): give its CA in "
        "PATIENTGEN_DELIVERY_CA_FILE"
    )


@dataclass(frozen=True)
class Item:
    """One thing to deliver: `ref` names it in reports (e.g. "Patient/abc", an HL7 control id),
    `data` is its bytes (a FHIR resource's JSON, an HL7 message)."""

    ref: str
    data: bytes


@dataclass(frozen=True)
class Rejection:
    """An item the target refused: its ref, the status (HTTP code or HL7 acknowledgement code)
    and what the target said (an OperationOutcome, or the ACK's text)."""

    ref: str
    status: str
    outcome: Any

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "status": self.status, "outcome": self.outcome}


def describe_outcome(outcome: Any) -> str:
    """One line of what a target said: an OperationOutcome's issues, or the text."""
    if isinstance(outcome, dict):
        texts = [
            (issue.get("details") or {}).get("text") or issue.get("diagnostics") or ""
            for issue in outcome.get("issue") or []
        ]
        return "; ".join(t for t in texts if t)[:300] or "no details"
    return str(outcome or "")[:300] or "no details"


class Target(Protocol):
    #: How many items the next `send` may take at most (may shrink as the target asks).
    group_size: int
    #: Retries made so far (waits for 429/503, reconnections, resends).
    retries: int

    def send(self, items: list[Item]) -> list[Rejection]:
        """Deliver `items` (at most group_size); on return each was accepted or is rejected."""

    def close(self) -> None: ...


# ----------------------------------------------------------------------------------------------
# What a user asks for (the API's body, the CLI's options, a delivery job's config)


class Pace(BaseModel):
    """A replay: each item sent when it happens in exercise time, instead of all at once."""

    model_config = ConfigDict(extra="forbid")

    speed: float = Field(
        gt=0,
        le=1_000_000,
        description="Exercise seconds per wall-clock second: 1 is real time, 60 an hour a minute.",
        examples=[60],
    )
    start: AwareDatetime | Literal["now"] = Field(
        "now",
        description="When the scenario's start happens on the wall clock: `now` (when the "
        "delivery begins) or a date-time with its offset. A paused replay goes on from where "
        "its exercise clock stopped.",
    )


#: http(s)://host[:port][/path]: a DNS name, an IPv4 address or an IPv6 one in brackets, a port
#: 1-65535, a path of URL characters, no query or fragment (what matches is what is accepted,
#: once a bracketed address is a valid IPv6 address).
_H = "[0-9A-Fa-f]{1,4}"
#: An IPv6 address in its hexadecimal forms (eight groups, or fewer around one `::`).
IPV6_PATTERN = (
    f"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}"
    f"|({_H}:){{1,4}}(:{_H}){{1,3}}|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}"
    f"|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
)
URL_PATTERN = (
    r"^https?://([A-Za-z0-9][A-Za-z0-9.\-]*|\[" + IPV6_PATTERN + r"\])"
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?$"
)


class FhirDelivery(BaseModel):
    """Load the casualties into a FHIR R4 server."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["fhir"]
    url: str = Field(
        min_length=8,
        max_length=2000,
        pattern=URL_PATTERN,
        description="The server's base URL (http or https), e.g. http://host:8080/fhir/R4.",
        examples=["http://127.0.0.1:8103/fhir/R4"],
    )
    mode: Literal["transaction", "batch"] = Field(
        "transaction", description="Bundle type: batch for servers that refuse transactions."
    )
    bundle_size: int = Field(
        100, ge=1, le=10_000, description="Resources per bundle at most (halved on 413)."
    )
    pace: Pace | None = Field(None, description="Replay in exercise time (absent: all at once).")
    authorization: str | None = Field(
        None,
        max_length=8000,
        description="The Authorization header to send, e.g. `Bearer <token>`. Kept with the "
        "delivery job to resume it; never shown in its config.",
    )

    @field_validator("url", mode="wrap")
    @classmethod
    def _a_host(cls, value: object, handler: ValidatorFunctionWrapHandler) -> str:
        try:
            url: str = handler(value)
        except ValidationError as exc:  # said in words, not as the pattern itself
            if any(e["type"] == "string_pattern_mismatch" for e in exc.errors()):
                raise ValueError(
                    "not an http or https URL of a host (a DNS name, an IPv4 address or an "
                    "IPv6 one in brackets), an optional port and a path, e.g. "
                    "http://fhir.example.org:8080/fhir/R4"
                ) from None
            raise
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port that is no number
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if not parts.hostname or parts.query or parts.fragment:
            raise ValueError("a base URL names a host, and has no query or fragment")
        if "[" in parts.netloc:
            try:
                ipaddress.IPv6Address(parts.hostname)
            except ValueError:
                raise ValueError(f"{parts.hostname!r} in brackets is no IPv6 address") from None
        return url

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


class MllpDelivery(BaseModel):
    """Send the casualties' HL7 v2 ADT messages to a listener over MLLP."""

    model_config = ConfigDict(extra="forbid")

    target: Literal["mllp"]
    host: str = Field(
        min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$", examples=["127.0.0.1"]
    )
    port: int = Field(ge=1, le=65535, examples=[2575])
    tls: bool = Field(
        False,
        description="MLLP over TLS: the listener's certificate is checked against the system's "
        "CAs and PATIENTGEN_DELIVERY_CA_FILE.",
    )
    pace: Pace | None = Field(None, description="Replay in exercise time (absent: all at once).")

    @model_serializer(mode="wrap")
    def _plain_without_tls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Plain MLLP dumps as it did before TLS existed (no `tls`): the config a delivery job
        stores and the CLI's idempotency key (a hash of this dump) stay those of before."""
        data: dict[str, Any] = handler(self)
        if not self.tls:
            data.pop("tls", None)
        return data


Delivery = Annotated[FhirDelivery | MllpDelivery, Field(discriminator="target")]
DELIVERY: TypeAdapter[FhirDelivery | MllpDelivery] = TypeAdapter(Delivery)
#: Config keys never shown back (the API and the CLI print a job's config).
SECRET_KEYS = frozenset({"authorization"})


def shown(config: dict[str, Any]) -> dict[str, Any]:
    """A job's config as it may be shown: a delivery's secrets replaced by a mark."""
    delivery = config.get("delivery")
    if not isinstance(delivery, dict) or not SECRET_KEYS & delivery.keys():
        return config
    hidden = {k: ("(hidden)" if k in SECRET_KEYS and v else v) for k, v in delivery.items()}
    return {**config, "delivery": hidden}
