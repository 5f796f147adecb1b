"""Loading resources into a FHIR R4 server: Bundles of PUTs with the resources' own ids.

Every resource is sent as `PUT Type/id` with the id it has in the job's bulk output (ids are
unique per job and the same in every run of it): sending a resource twice updates it instead of
creating a second one, so a push resumed after a crash, or a bundle resent after a lost answer,
creates no duplicate, and the facilities that many casualties share exist once. References are
the bulk output's own (`Patient/<id>`), so any split of the resources into bundles is valid, and
the resources come in an order where each follows those it names. A facility comes with each
casualty that visited it and is sent the first time only (per run).

What the server says decides what happens next:
- 2xx: a transaction took every entry; in a batch, each entry's own status says (non-2xx entries
  are rejections, with the entry's OperationOutcome);
- 413: the bundle was too large for the server: it is split in two and `group_size` halves;
- 400, 409, 412, 422 to a whole bundle: the same entries go again as a batch, whose answer says
  which entries the server refuses (each a rejection with the server's OperationOutcome; the
  others load); a server that answers a batch no better has the bundle split until they are
  found;
- 429, 503: wait for Retry-After (seconds or a date; 5 s without one), then again;
- 500, 502, 504, no answer: retried `retries` times, waiting `backoff` s, then twice that and so
  on, then TargetFailed or TargetUnreachable;
- 401, 403: TargetRefused at once; 404, 405 to the bundle: TargetFailed (no FHIR endpoint there).
"""

from __future__ import annotations

import email.utils
import ssl
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from patientgen.delivery import (
    Item,
    Pause,
    Rejection,
    TargetFailed,
    TargetRefused,
    TargetUnreachable,
    describe_outcome,
    untrusted,
)

FHIR_JSON = "application/fhir+json"
#: Resources many casualties share (the facilities).
SHARED = ("Organization/", "Location/")
#: Statuses of a whole bundle that say "some entry in it is wrong": find it by splitting.
_ENTRY_ERRORS = frozenset({400, 409, 412, 422})
_BUSY = frozenset({429, 503})
_SERVER_ERRORS = frozenset({500, 502, 504})
#: Longest wait for one Retry-After, and for all of them in a row.
MAX_RETRY_AFTER = 300.0
MAX_BUSY_WAIT = 1800.0
_OUTCOME_BYTES = 4000


def retry_after(value: str | None, default: float = 5.0) -> float:
    """Seconds to wait for a Retry-After header (delta-seconds or an HTTP date), capped."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_RETRY_AFTER)


def _certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate failure behind a transport error (httpx wraps httpcore's, which wraps
    ssl's), if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _outcome(response: httpx.Response) -> Any:
    """The OperationOutcome of an answer (or its first bytes as text)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:_OUTCOME_BYTES]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    return response.text[:_OUTCOME_BYTES]


class FhirTarget:
    """A FHIR server at `url` (its base, e.g. http://host/fhir/R4)."""

    def __init__(
        self,
        url: str,
        pause: Pause,
        *,
        mode: str = "transaction",
        bundle_size: int = 100,
        authorization: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 1.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`tls`: what https trusts (delivery.tls_context); None: the system's CAs."""
        if mode not in ("transaction", "batch"):
            raise ValueError(f"mode must be transaction or batch, not {mode!r}")
        self.url = url.rstrip("/") + "/"
        self.mode = mode
        self.group_size = bundle_size
        self.retries = 0
        self.pause = pause
        self._shared: set[str] = set()  # facilities this target has taken already
        self.max_retries = retries
        self.backoff = backoff
        headers = {"Accept": FHIR_JSON, "Content-Type": FHIR_JSON}
        if authorization:
            headers["Authorization"] = authorization
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, verify=tls or True
        )

    def close(self) -> None:
        self._http.close()

    def bundle(self, items: list[Item], mode: str | None = None) -> bytes:
        entries = []
        for item in items:
            url = item.ref.encode()
            entries.append(
                b'{"fullUrl":"'
                + self.url.encode()
                + url
                + b'","resource":'
                + item.data
                + b',"request":{"method":"PUT","url":"'
                + url
                + b'"}}'
            )
        return (
            b'{"resourceType":"Bundle","type":"'
            + (mode or self.mode).encode()
            + b'","entry":['
            + b",".join(entries)
            + b"]}"
        )

    def send(self, items: list[Item]) -> list[Rejection]:
        # A facility comes with each casualty that visited it: sent once per run (once in a
        # bundle, where a second entry of the same resource would be an error).
        unique: list[Item] = []
        for item in items:
            if item.ref.startswith(SHARED):
                if item.ref in self._shared:
                    continue
                self._shared.add(item.ref)
            unique.append(item)
        rejected = self._send(unique)
        self._shared.difference_update(r.ref for r in rejected)
        return rejected

    def _send(self, items: list[Item], mode: str | None = None) -> list[Rejection]:
        if not items:
            return []
        mode = mode or self.mode
        response = self._post(self.bundle(items, mode))
        status = response.status_code
        if 200 <= status < 300:
            return self._entry_rejections(items, response) if mode == "batch" else []
        if status == 413 or status in _ENTRY_ERRORS:
            if len(items) == 1:
                return [Rejection(items[0].ref, str(status), _outcome(response))]
            if status == 413:
                self.group_size = max(1, min(self.group_size, len(items)) // 2)
            elif mode == "transaction":
                # PUTs of distinct resources: a batch of the same entries does what the
                # transaction would, and its answer says which entries the server refuses
                try:
                    return self._send(items, "batch")
                except TargetFailed:
                    pass  # no batches here either: find them by halving
            half = len(items) // 2
            return self._send(items[:half], mode) + self._send(items[half:], mode)
        raise TargetFailed(
            f"the FHIR server at {self.url} answered {status} to a bundle of {len(items)} "
            f"resource(s): {describe_outcome(_outcome(response))}"
        )

    def _entry_rejections(self, items: list[Item], response: httpx.Response) -> list[Rejection]:
        try:
            entries = orjson.loads(response.content).get("entry") or []
        except (orjson.JSONDecodeError, AttributeError):
            raise TargetFailed(
                f"the FHIR server at {self.url} answered a batch with no Bundle"
            ) from None
        if len(entries) != len(items):
            raise TargetFailed(
                f"the FHIR server at {self.url} answered {len(entries)} entries to a batch of "
                f"{len(items)}"
            )
        rejected = []
        for item, entry in zip(items, entries, strict=True):
            answer = entry.get("response") or {}
            code = str(answer.get("status") or "").split(" ", 1)[0]
            if not code.startswith("2"):
                rejected.append(Rejection(item.ref, code or "?", answer.get("outcome")))
        return rejected

    def _post(self, body: bytes) -> httpx.Response:
        """POST the bundle; waits out 429/503 and retries server errors and lost connections.
        Returns any other answer."""
        failures = 0
        busy_waited = 0.0
        while True:
            try:
                response = self._http.post("", content=body)
            except httpx.TransportError as exc:
                bad_certificate = _certificate_error(exc)
                if bad_certificate is not None:
                    raise untrusted(f"the FHIR server at {self.url}", bad_certificate) from None
                failures += 1
                if failures > self.max_retries:
                    raise TargetUnreachable(
                        f"no answer from the FHIR server at {self.url} after {self.max_retries} "
                        f"retries: {exc or type(exc).__name__}"
                    ) from None
                self._wait(self.backoff * 2.0 ** (failures - 1))
                continue
            status = response.status_code
            if status in (401, 403):
                raise TargetRefused(
                    f"the FHIR server at {self.url} refused the credentials ({status}): "
                    f"{describe_outcome(_outcome(response))}"
                )
            if status in (404, 405):
                raise TargetFailed(
                    f"no FHIR endpoint at {self.url}: it answered {status} to a POST of a Bundle"
                )
            if status in _BUSY:
                wait = retry_after(response.headers.get("retry-after"))
                busy_waited += wait
                if busy_waited > MAX_BUSY_WAIT:
                    raise TargetFailed(
                        f"the FHIR server at {self.url} stayed busy ({status}) for "
                        f"{busy_waited:.0f} s"
                    )
                self._wait(wait)
                continue
            if status in _SERVER_ERRORS:
                failures += 1
                if failures > self.max_retries:
                    raise TargetFailed(
                        f"the FHIR server at {self.url} answered {status} {self.max_retries + 1} "
                        f"times in a row: {describe_outcome(_outcome(response))}"
                    )
                self._wait(self.backoff * 2.0 ** (failures - 1))
                continue
            return response

    def _wait(self, seconds: float) -> None:
        self.retries += 1
        self.pause(seconds)
