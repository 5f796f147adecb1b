"""S3-compatible object storage for job files (`PATIENTGEN_STORAGE_URL=s3://bucket/prefix`).

Only files.py uses this module: it is the transport between a worker's local working folder and
the bucket that every host shares. Keys are `<prefix>jobs/<job_id>/<name>` for a job's final
files and `<prefix>jobs/<job_id>/.parts/<part>` for its chunk parts and care-chain result.

Invariants:
- An object appears whole or not at all: a file is sent by one PUT, or above the multipart
  threshold by a multipart upload that is visible only once completed (boto3's transfer manager),
  so nothing half-written is ever readable under a final key.
- A download lands under a temporary name beside its target and is renamed only once complete
  and of the expected size, so a local copy is either absent or whole.
- A process asks nothing of the server before its first use of the bucket (then it checks the
  bucket once, making it when missing), so it starts while the storage is away.
- Removal lists a prefix and deletes what it holds in batches of 1,000, and aborts the multipart
  uploads begun under it (an upload a crashed worker left unfinished is invisible but costs
  storage until aborted).

The library is boto3 (botocore's client is thread-safe and shared by every thread of a
process): it speaks every call needed here (multipart upload, ranged GET, prefix listing,
multipart listing and abort, presigned URLs) against any S3-compatible server.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from patientgen.jobs.model import StoreUnavailable

#: Files above this size go up as multipart uploads (parts of this size, 4 at once).
MULTIPART_BYTES = 64 << 20
T = TypeVar("T")
R = TypeVar("R")

#: Objects sent or fetched at once by one process (ObjectStore.each).
TRANSFERS = 8
#: S3's rules for a multipart upload: every part but the last at least 5 MiB, at most 10,000.
MIN_COMPOSED_PART = 5 << 20
MAX_COMPOSED = 10_000
_READ_BLOCK = 1 << 20
#: Spans of one object closer than this are read by one ranged GET (ObjectStore.read_spans): a
#: request's latency costs more than this many bytes more.
SPAN_GAP = 256 << 10
#: The most one such GET reads, unless a single span is longer.
SPAN_READ = 1 << 20


class StorageUrlError(ValueError):
    """PATIENTGEN_STORAGE_URL is not `s3://bucket[/prefix]`."""


class CompositionRefused(Exception):
    """The server would not compose an object from others (no UploadPartCopy, or a part it
    finds too small): send the file instead."""


class StorageUnavailable(StoreUnavailable):
    """The object storage cannot be reached, or answers that it cannot serve now (5xx, SlowDown),
    after the client's own retries. A StoreUnavailable: the job is left for a later claim, as
    when the database is away, never failed for it."""

    public_detail = "The object storage is unavailable; retry shortly."


#: Error codes of an S3 server that mean "not now" rather than "never".
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed"}
)


@contextlib.contextmanager
def _mapped(what: str) -> Iterator[None]:
    """The one place botocore's and boto3's errors become ours: a connection that fails or
    times out, and a server that answers 5xx or SlowDown, raise StorageUnavailable; anything
    else (a missing bucket, a denied key) propagates as it is."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    try:
        yield
    except (ConnectionError, HTTPClientError) as exc:
        raise StorageUnavailable(f"object storage unreachable ({what}): {exc}") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if _status(exc) >= 500 or code in _TRANSIENT_CODES:
            raise StorageUnavailable(f"object storage unavailable ({what}): {exc}") from exc
        raise
    except S3UploadFailedError as exc:  # the transfer manager's wrapping of either of those
        cause = exc.__context__
        if isinstance(cause, ConnectionError | HTTPClientError) or (
            isinstance(cause, ClientError) and _status(cause) >= 500
        ):
            raise StorageUnavailable(f"object storage unavailable ({what}): {exc}") from exc
        raise


@dataclass(frozen=True)
class Location:
    """Where in object storage: a bucket and a key prefix ending in `/` (or empty)."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
            raise StorageUrlError(
                f"the storage URL must be s3://bucket or s3://bucket/prefix, got {url!r}"
            )
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    @property
    def url(self) -> str:
        """`s3://bucket/prefix` (no trailing slash; `s3://bucket` without a prefix): the same
        for every spelling of one location."""
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


class ObjectStore:
    """One bucket (and prefix) of an S3-compatible server, for every thread of a process."""

    def __init__(
        self,
        url: str,
        *,
        endpoint: str = "",
        region: str = "",
        access_key: str = "",
        secret_key: str = "",
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = Location.parse(url)
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            region_name=region or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=16,
                s3={"addressing_style": "path"} if endpoint else {},
            ),
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES,
            multipart_chunksize=MULTIPART_BYTES,
            max_concurrency=4,
            use_threads=True,
        )
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._bucket_lock = threading.Lock()
        self._bucket_seen = False

    @property
    def _s3(self) -> Any:
        """The client, once the bucket has been seen (made when missing: a first start, a test
        server) by this process. Nothing is asked of the server before the first use, so a
        process starts while the storage is away; until it answers, every use raises
        StorageUnavailable, and the next use asks again."""
        if not self._bucket_seen:
            self.ensure_bucket()
        return self._client

    def each(self, action: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`action` on every item, TRANSFERS at a time in threads this store keeps (a request's
        latency, not the bandwidth, is most of the cost of a small object); the results in
        order, or the error of the first item that failed (the others' transfers may still
        finish: each object appears whole or not at all, and holds the same bytes whoever
        sends it)."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(TRANSFERS, thread_name_prefix="objects")
            pool = self._pool
        return list(pool.map(action, list(items)))

    def read(self, key: str, offset: int, length: int) -> bytes:
        """`length` bytes of the object from `offset` (one ranged GET)."""
        if length <= 0:
            return b""
        return b"".join(self.stream(key, offset, offset + length - 1))

    def read_spans(self, key: str, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes of the object at each (offset, length), in the order given: spans less
        than SPAN_GAP apart read by one ranged GET of at most SPAN_READ bytes (unless one span
        is longer), TRANSFERS GETs at a time."""
        reads = _nearby(spans)
        blobs = self.each(lambda r: self.read(key, r.start, r.end - r.start), reads)
        found: list[bytes] = [b""] * len(spans)
        for read, blob in zip(reads, blobs, strict=True):
            for i in read.members:
                offset, length = spans[i]
                found[i] = blob[offset - read.start : offset - read.start + length]
        return found

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def key(self, *names: str) -> str:
        return self.location.prefix + "/".join(names)

    # -- writing ---------------------------------------------------------------------------
    def upload(self, path: Path, key: str) -> None:
        """Send a local file under `key` (whole or not at all, see the module docstring)."""
        with _mapped(f"upload of {key}"):
            self._s3.upload_file(str(path), self.bucket, key, Config=self._transfer)

    def compose(self, key: str, sources: list[str]) -> None:
        """Make `key` the objects `sources` end to end, copied inside the server (a multipart
        upload of UploadPartCopy parts: visible only once completed, aborted on any error).
        CompositionRefused when the server refuses it for a reason sending would not have."""
        from botocore.exceptions import ClientError

        with _mapped(f"composition of {key}"):
            upload = self._s3.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            try:
                parts = []
                for number, source in enumerate(sources, start=1):
                    copied = self._s3.upload_part_copy(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload,
                        PartNumber=number,
                        CopySource={"Bucket": self.bucket, "Key": source},
                    )
                    parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
                self._s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
                )
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    self._s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload)
                if isinstance(exc, ClientError) and _status(exc) in (400, 403, 404, 501):
                    raise CompositionRefused(str(exc)) from exc
                raise

    # -- reading ---------------------------------------------------------------------------
    def size(self, key: str) -> int | None:
        """The object's size in bytes; None when there is no such object."""
        from botocore.exceptions import ClientError

        try:
            with _mapped(f"size of {key}"):
                head = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _status(exc) == 404:
                return None
            raise
        return int(head["ContentLength"])

    def download(self, key: str, path: Path, expected_size: int | None = None) -> bool:
        """Copy the object to `path` (temporary name, then rename); False when there is no such
        object. A copy of another size than `expected_size` is an error, never renamed."""
        from botocore.exceptions import ClientError

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
        try:
            with _mapped(f"download of {key}"):
                self._s3.download_file(self.bucket, key, str(tmp), Config=self._transfer)
        except ClientError as exc:
            tmp.unlink(missing_ok=True)
            if _status(exc) == 404:
                return False
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        got = tmp.stat().st_size
        if expected_size is not None and got != expected_size:
            tmp.unlink(missing_ok=True)
            raise OSError(f"object {key} has {got} bytes, {expected_size} expected")
        os.replace(tmp, path)
        return True

    def stream(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes start..end (inclusive; end None: to its end), in blocks."""
        http_range = f"bytes={start}-{'' if end is None else end}"
        with _mapped(f"read of {key}"):
            body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=http_range)["Body"]
            try:
                yield from body.iter_chunks(_READ_BLOCK)
            finally:
                body.close()

    def presign(self, key: str, filename: str, content_type: str, seconds: int) -> str:
        """A URL that downloads the object without credentials for `seconds`."""
        return str(
            self._client.generate_presigned_url(  # signed here: no request
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                    "ResponseContentType": content_type,
                },
                ExpiresIn=seconds,
            )
        )

    def keys(self, prefix: str) -> Iterator[str]:
        """Every object key under `prefix`, without it."""
        with _mapped(f"listing of {prefix}"):
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", ()):
                    yield str(item["Key"])[len(prefix) :]

    def uploads(self, prefix: str) -> Iterator[str]:
        """The keys (without `prefix`) of the multipart uploads begun and not finished under it."""
        with _mapped(f"uploads under {prefix}"):
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    yield str(upload["Key"])[len(prefix) :]

    # -- removing --------------------------------------------------------------------------
    def remove_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` and abort the multipart uploads begun under it;
        how many objects and uploads."""
        keys = [{"Key": prefix + key} for key in self.keys(prefix)]
        with _mapped(f"removal under {prefix}"):
            for start in range(0, len(keys), 1000):
                self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": keys[start : start + 1000], "Quiet": True},
                )
        return len(keys) + self.abort_uploads(prefix)

    def abort_uploads(self, prefix: str) -> int:
        """Abort the multipart uploads begun and not finished under `prefix`; how many."""
        aborted = 0
        with _mapped(f"aborting uploads under {prefix}"):
            pages = self._s3.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for page in pages:
                for upload in page.get("Uploads", ()):
                    self._s3.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        return aborted

    def ensure_bucket(self) -> None:
        """Ask the server for the bucket, and create it when it does not exist (a test server's,
        or a first start); StorageUnavailable while the server does not answer. Each call asks
        (the readiness check uses it); the other calls ask once per process, through `_s3`."""
        from botocore.exceptions import ClientError

        with self._bucket_lock, _mapped(f"bucket {self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _status(exc) != 404:
                    raise
                self._client.create_bucket(Bucket=self.bucket)
            self._bucket_seen = True


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


@dataclass
class _SpanRead:
    """One ranged GET [start, end) of an object, serving the spans `members` (their indexes)."""

    start: int
    end: int
    members: list[int]


def _nearby(spans: Sequence[tuple[int, int]]) -> list[_SpanRead]:
    """The GETs that read `spans`: in file order, each span joins the GET before it when it
    begins less than SPAN_GAP after that GET's end and the GET stays within SPAN_READ."""
    reads: list[_SpanRead] = []
    for i in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        offset, length = spans[i]
        last = reads[-1] if reads else None
        end = offset + length
        if (
            last is not None
            and offset - last.end < SPAN_GAP
            and max(last.end, end) - last.start <= SPAN_READ
        ):
            last.end = max(last.end, end)
            last.members.append(i)
        else:
            reads.append(_SpanRead(offset, end, [i]))
    return reads
