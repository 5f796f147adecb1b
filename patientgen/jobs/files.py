"""Where a job's files are, and the one way they are removed.

Layout under the data folder: `jobs/<job_id>/` holds a job's final files and, while it runs, its
`.parts/` folder of chunk part files; `generate --out DIR` puts the final files in DIR instead.
Nothing above this module builds a path of a job.

Removal has one rule: a job's files are removed only by `detach`, and `detach` is only ever passed
as the `inside` callback of a store write (`sql_store.SqlStore`), so it runs inside the
transaction of a write that succeeded: a fenced write of the worker holding the lease, the
reaper's conditional write, or a user's delete of a job that is not running. `detach` renames the
folder into `jobs/.trash/` (atomic and instant, so the transaction stays short; the row lock, or
SQLite's write lock, keeps anyone from claiming the job meanwhile) and `purge` deletes the trash
after the commit. A worker that lost its lease never reaches `detach`.

Storage is one interface, this class, with two implementations. `JobFiles` keeps everything in
the local data folder (the default). `ObjectFiles` (PATIENTGEN_STORAGE_URL=s3://bucket/prefix)
keeps a job's shared files in S3-compatible object storage, which every host sees, and uses the
local folder as a worker's working folder and a read cache:
- a chunk's part files, and the care-chain result, are sent to the bucket (`share`) before the
  chunk is recorded, so a worker on any host can join or resume them (`gather` fetches the
  recorded ones it lacks);
- the final files are sent (`publish`, manifest last) before the job is completed, so a
  completed job's files are all in the bucket; each object appears whole or not at all;
- a reader on any host gets a local copy of the files it reads (`reading`, each checked
  against the manifest's size; the manifest last when the copy is whole) or streams one file
  (`stream`);
- `detach` also names the job's objects (all, or its parts) for `purge` to delete after the
  commit (and the write records the job in the database in its own transaction:
  `SqlStore.record_removals`), and `sweep` deletes what a process that died between the two
  left behind, found from those records (the whole bucket is listed only every
  `storage_listing_interval`, for what no write recorded): the parts
  of a job that has ended, every object of a job that ended without completing or is gone, and
  this host's folders of such jobs (no other host's fenced write reaches them). Each of those
  deletes runs under the job's row lock (`store.if_ended`), so a retry cannot start meanwhile.
- a host's folder of a completed job (the owner's copy, or files fetched to be read) is a cache
  of the bucket: `reading` marks it read (`.read`'s time; writing it counts too), and the sweep
  removes it once unread for `storage_cache_seconds`, so no host's disk grows with the number
  of jobs; and while this host's copies take more than `storage_cache_bytes`, it removes the
  least recently read ones until they fit, so reading many big jobs within that time does not
  fill the disk either (a working folder of a job not completed is no copy: not counted, not
  removed). The API sweeps its host's copies too (`sweep_copies`), as workers do. A reader
  holds the folder while it fetches and reads (a shared `flock` on it), and the sweep moves a
  copy only under an exclusive one it does not wait for: a copy in use on this host, in any
  process, is never removed under its reader.
In both, `sweep` also empties the trash a process killed before its purge left.

Every process on one database must use one storage: with another, a worker would write files
no other host finds and an API would find none of the others'. The database records its jobs'
storage (the service fact `storage`: `storage_name`, `local` or `s3://bucket/prefix`, never the
endpoint); every process that runs or serves jobs (workers, `serve`, the API, `generate`) calls
`ensure_same_storage` once the database answers: the first records its own, any other refuses
to start (StorageMismatch). `use_storage` (`patientgen db use-storage`) switches while no job is
pending or running; files already written stay where they are.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import orjson

from patientgen.formats.ndjson import FILE as NDJSON
from patientgen.jobs.model import (
    TERMINAL_STATUSES,
    Job,
    JobNotFound,
    JobStatus,
    OutputReplaced,
    StorageMismatch,
)
from patientgen.jobs.objects import (
    MAX_COMPOSED,
    MIN_COMPOSED_PART,
    CompositionRefused,
    Location,
    ObjectStore,
)

if TYPE_CHECKING:
    from patientgen.formats.bundle import Records
    from patientgen.jobs.store import JobStore
    from patientgen.settings import Settings

log = logging.getLogger(__name__)

#: Seconds between two marks of one copy as read by one process (see ObjectFiles._mark_read).
_MARK_EVERY = 30.0
#: How many jobs' last marks a process remembers before it forgets the stale ones.
_MARKS_KEPT = 1024

PARTS = ".parts"
TRASH = ".trash"
SCRATCH = ".scratch"
MANIFEST = "manifest.json"
#: In a host's copy of a completed job's files (object storage): its time is the last read.
READ_MARK = ".read"


class Scope(StrEnum):
    """What of a job `detach` removes."""

    ALL = "all"  # the job's folder
    PARTS = "parts"  # the parts folder only (a finished job's leftovers)


class JobFiles:
    """The files of every job under one data folder."""

    #: Whether sharing a chunk's parts sends them somewhere (worth overlapping with writing the
    #: next chunk); here they are shared by being where they are.
    remote = False

    def __init__(self, data_dir: Path | str) -> None:
        self.root = Path(data_dir) / "jobs"
        self._moved = False  # detach moved something that purge has not deleted yet

    def folder(self, job_id: UUID) -> Path:
        return self.root / str(job_id)

    def parts(self, job_id: UUID) -> Path:
        return self.folder(job_id) / PARTS

    def make_parts(self, job_id: UUID) -> None:
        """Make the job's parts folder (its owner does, once it holds the job; a helper never
        does, so a helper late for a job that ended finds none and writes nothing)."""
        self.parts(job_id).mkdir(parents=True, exist_ok=True)

    def output(self, job: Job) -> Path:
        """Where a job's final files are (its folder, or the folder `generate --out` chose)."""
        chosen = job.config.get("output_dir")
        return Path(chosen) if chosen else self.folder(job.job_id)

    def _checked_output(self, job: Job) -> Path:
        """The completed job's output folder, after a check that a `generate --out` folder
        still holds the job's files: the manifest the job wrote (its sha256) and each output at
        its recorded size. The user's folder is theirs to name again: a later run may have put
        its own files there (OutputReplaced). The job's own folder under the data folder is
        the service's and taken as it is."""
        out = self.output(job)
        if out == self.folder(job.job_id):
            return out
        recorded = {str(f["name"]): f for f in job.output_files}  # the manifest among them
        wrote = recorded.get(MANIFEST, {}).get("sha256")
        try:
            sized = all((out / name).stat().st_size == f["bytes"] for name, f in recorded.items())
            whole = sized and hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest() == wrote
        except OSError:
            whole = False
        if not whole:
            raise OutputReplaced(job.job_id, str(out))
        return out

    def detach(self, job: Job, scope: Scope = Scope.ALL, outputs: Sequence[str] = ()) -> None:
        """Move the job's files out of the way (see the module docstring for when this may be
        called). `outputs`: final files this run wrote into an --out folder before it learnt it
        must not complete (a completed job's files in an --out folder are the user's: a delete
        leaves them)."""
        self._to_trash(
            self.parts(job.job_id) if scope == Scope.PARTS else self.folder(job.job_id),
            job.job_id,
        )
        out = self.output(job)
        if out != self.folder(job.job_id):
            for name in outputs:
                with contextlib.suppress(OSError):
                    (out / name).unlink()

    def _to_trash(self, target: Path, job_id: UUID) -> None:
        if target.exists():
            trash = self.root / TRASH
            trash.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(target, trash / f"{job_id}-{uuid.uuid4().hex}")
                self._moved = True

    def purge(self) -> None:
        """Delete what `detach` moved away (call after the transaction committed), with whatever
        another process that died before its own purge left in the trash. Nothing to do (no
        system call) when this instance moved nothing."""
        if not self._moved:
            return
        self._moved = False
        self._empty_trash()

    def _empty_trash(self) -> int:
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in list((self.root / TRASH).iterdir()):
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed

    # -- sharing between hosts: nothing to do where every worker shares the data folder --------
    def has_parts(self, job_id: UUID) -> bool:
        """Whether the job has part files anywhere (a parts folder here)."""
        return self.parts(job_id).exists()

    def share(self, job_id: UUID, folder: Path, names: Iterable[str]) -> None:
        """Make these part files (in `folder`) visible to every worker as the job's parts."""

    @contextlib.contextmanager
    def helping(self, job_id: UUID, needs: Sequence[str]) -> Iterator[Path]:
        """The folder a worker helping with another's job writes a chunk into, holding the part
        files `needs` it reads (the care-chain result): here the job's parts folder, which the
        helper never creates (FileNotFoundError at write when the job's run removed it)."""
        yield self.parts(job_id)

    def gather(self, job_id: UUID, names: Iterable[str]) -> None:
        """Bring these part files, where any worker shared them, into the local parts folder."""

    def publish(
        self, job_id: UUID, names: Iterable[str], joined: Mapping[str, Sequence[str]] = {}
    ) -> None:
        """Make these final files (in order, manifest last) readable from every host; `joined`:
        the final files that are part files of the job end to end, with those parts' names."""

    #: Whether this host's folders of completed jobs are copies that the sweep removes once
    #: idle (read them inside `reading`); here they are the files themselves.
    cached = False

    @contextlib.contextmanager
    def reading(self, job: Job, names: Sequence[str] | None = None) -> Iterator[Path]:
        """The folder where a completed job's files (`names`, default all) can be read on this
        host, kept there while the block runs (here: until a user deletes the job; a file
        opened before that reads to its end; a `generate --out` folder only while it holds the
        job's files: OutputReplaced)."""
        yield self._checked_output(job)

    @contextlib.contextmanager
    def reading_here(self, job: Job) -> Iterator[Path | None]:
        """The folder holding the completed job's files on this host, without fetching any,
        kept while the block runs; None when they are only in shared storage (read them with
        `stream`)."""
        yield self._checked_output(job)

    def stream(self, job: Job, name: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes start..end (inclusive) of a final file read from shared storage (only where
        `here` is None)."""
        raise FileNotFoundError(f"job {job.job_id} has no files in shared storage")

    def presigned(self, job: Job, name: str, content_type: str) -> str | None:
        """A URL the client may download the file from directly; None: served by the API."""
        return None

    def records(self, job: Job) -> Records | None:
        """Where the completed job's patients.ndjson is read from, when not from the folder
        `reading` gives (None)."""
        return None

    def sweep(self, store: JobStore, turn: float | None = None) -> int:
        """Delete what a process that died after a removal's commit left behind (here, before
        its purge: the trash, which only the next purge of a process that moved something would
        empty otherwise); how much. `turn` (a worker's periodic sweep): what every process on
        the database shares is swept only if none did within `turn` seconds (here: nothing is
        shared)."""
        return self._empty_trash()

    def ready(self) -> str:
        """Where the files are kept, once that place answers (StoreUnavailable until then)."""
        return "local"

    def sweep_copies(self, store: JobStore) -> int:
        """Remove this host's copies of the bucket's files that are no longer needed (see
        ObjectFiles); here the folder is where the files live, not a copy: nothing."""
        return 0


def job_files(settings: Settings) -> JobFiles:
    """The files of every job, where the settings keep them (see the module docstring)."""
    if not settings.storage_url:
        return JobFiles(settings.data_dir)
    return ObjectFiles(settings.data_dir, _object_store(settings), settings)


#: The turn (store.take_turn) of the periodic sweep of the bucket, shared by every process.
BUCKET_SWEEP = "turn:bucket-sweep"
#: The turn of the listing of every object of the bucket (Settings.storage_listing_interval).
BUCKET_LISTING = "turn:bucket-listing"
#: Jobs whose status the bucket sweep reads at once (one statement each).
SWEEP_READ = 1000
#: A recorded removal is the sweep's once this many seconds old: the process that made the write
#: deletes the objects right after its commit, and has had time to.
REMOVAL_GRACE = 60.0
#: Batches of recorded removals one sweep handles at most (the rest wait for the next).
REMOVAL_BATCHES = 20
#: The service fact (store.record_fact) naming where a database's jobs keep their files.
STORAGE_FACT = "storage"
#: The storage name of files in each host's data folder.
LOCAL = "local"


def storage_name(settings: Settings) -> str:
    """Where these settings keep jobs' files, as the database records it: `local`, or the
    storage URL normalised (`s3://bucket/prefix`); never the endpoint, since hosts may reach one
    bucket by different endpoints."""
    if not settings.storage_url:
        return LOCAL
    return Location.parse(settings.storage_url).url


def ensure_same_storage(store: JobStore, settings: Settings) -> str:
    """Record this process's storage if the database has none recorded (the first process on
    it, or the first since the upgrade that added the record); StorageMismatch when another is
    recorded. Every process that runs or serves jobs calls it at start. Returns the name."""
    ours = storage_name(settings)
    recorded = store.record_fact(STORAGE_FACT, ours)
    if recorded != ours:
        raise StorageMismatch(recorded, ours)
    return ours


def use_storage(store: JobStore, settings: Settings) -> tuple[str | None, str]:
    """Record this process's storage in place of the database's (`patientgen db use-storage`);
    JobsActive while a job is pending or running. Files already written are not moved. Returns
    (what was recorded before, what is now)."""
    ours = storage_name(settings)
    return store.replace_fact_when_idle(STORAGE_FACT, ours), ours


_stores: dict[tuple[str, ...], ObjectStore] = {}
_stores_lock = threading.Lock()


def _object_store(settings: Settings) -> ObjectStore:
    """One client per process and storage (boto3's client is thread-safe). It asks nothing of
    the server until it is used, so a process starts while the storage is away."""
    secret = settings.storage_secret_key
    key = (
        settings.storage_url,
        settings.storage_endpoint,
        settings.storage_region,
        settings.storage_access_key,
        secret.get_secret_value() if secret else "",
    )
    with _stores_lock:
        found = _stores.get(key)
        if found is None:
            found = ObjectStore(
                settings.storage_url,
                endpoint=settings.storage_endpoint,
                region=settings.storage_region,
                access_key=settings.storage_access_key,
                secret_key=key[4],
            )
            _stores[key] = found
        return found


class ObjectFiles(JobFiles):
    """Job files in S3-compatible object storage, with the local data folder as each worker's
    working folder and each host's read cache (see the module docstring)."""

    remote = True
    cached = True

    def __init__(self, data_dir: Path | str, objects: ObjectStore, settings: Settings) -> None:
        super().__init__(data_dir)
        self.objects = objects
        self._presign = settings.storage_presign_seconds
        self._pending: list[tuple[UUID, Scope]] = []  # what detach named, for purge
        self._pending_lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._keep_seconds = settings.storage_cache_seconds
        self._keep_bytes = int(settings.storage_cache_bytes)
        self._listing_interval = settings.storage_listing_interval
        self._marked: dict[UUID, float] = {}  # job -> when this process last marked it read

    def _prefix(self, job_id: UUID, scope: Scope = Scope.ALL) -> str:
        prefix = self.objects.key("jobs", str(job_id)) + "/"
        return prefix + PARTS + "/" if scope == Scope.PARTS else prefix

    def has_parts(self, job_id: UUID) -> bool:
        return super().has_parts(job_id) or any(
            True for _ in self.objects.keys(self._prefix(job_id, Scope.PARTS))
        )

    def share(self, job_id: UUID, folder: Path, names: Iterable[str]) -> None:
        prefix = self._prefix(job_id, Scope.PARTS)
        self.objects.each(lambda name: self.objects.upload(folder / name, prefix + name), names)

    @contextlib.contextmanager
    def helping(self, job_id: UUID, needs: Sequence[str]) -> Iterator[Path]:
        """A scratch folder of this helper's own, removed afterwards: its parts are shared
        through the bucket (a part written after the job ended is an orphan that `sweep`
        removes). FileNotFoundError when a part file it needs is not in the bucket."""
        scratch = self.root / SCRATCH / f"{os.getpid()}-{job_id}-{uuid.uuid4().hex}"
        try:
            scratch.mkdir(parents=True)
            for name in needs:
                if not self.objects.download(
                    self._prefix(job_id, Scope.PARTS) + name, scratch / name
                ):
                    raise FileNotFoundError(f"no part {name} of job {job_id} in object storage")
            yield scratch
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def gather(self, job_id: UUID, names: Iterable[str]) -> None:
        parts, prefix = self.parts(job_id), self._prefix(job_id, Scope.PARTS)
        missing = [name for name in names if not (parts / name).is_file()]
        self.objects.each(lambda name: self.objects.download(prefix + name, parts / name), missing)

    def publish(
        self, job_id: UUID, names: Iterable[str], joined: Mapping[str, Sequence[str]] = {}
    ) -> None:
        """A final file that is shared parts end to end is composed from them in the bucket
        (multipart copies: nothing sent again) where S3's rules allow it: every part but the
        last at least 5 MiB, at most 10,000 of them; the others are sent."""
        folder, parts = self.folder(job_id), self.parts(job_id)

        def put(name: str) -> None:
            key = self._prefix(job_id) + name
            sized = [(p, (parts / p).stat().st_size) for p in joined.get(name, ())]
            sources = [p for p, size in sized if size > 0]
            sizes = [size for _, size in sized if size > 0]
            if (
                1 < len(sources) <= MAX_COMPOSED
                and min(sizes[:-1]) >= MIN_COMPOSED_PART
                and sum(sizes) == (folder / name).stat().st_size
            ):
                prefix = self._prefix(job_id, Scope.PARTS)
                with contextlib.suppress(CompositionRefused):  # sent instead
                    self.objects.compose(key, [prefix + p for p in sources])
                    return
            self.objects.upload(folder / name, key)

        names = list(names)
        self.objects.each(put, [name for name in names if name != MANIFEST])
        if MANIFEST in names:  # last: a manifest is never there before every file it lists
            put(MANIFEST)

    @contextlib.contextmanager
    def reading(self, job: Job, names: Sequence[str] | None = None) -> Iterator[Path]:
        """A local copy of the completed job's files `names` (default: all of them, and the
        manifest last, which marks a whole copy), fetched once per host (each file under a
        temporary name first, kept only at the size the manifest gives) and held while the
        block runs: no sweep on this host removes a copy being fetched or read (`_held`)."""
        if job.config.get("output_dir"):
            yield self._checked_output(job)
            return
        with self._held(job.job_id) as folder:
            if not _holds(folder, names):
                with self._fetch_lock:  # one fetch of a job at a time in this process
                    if not _holds(folder, names):
                        self._fetch(job, folder, names)
            self._mark_read(job.job_id, folder)
            yield folder

    @contextlib.contextmanager
    def reading_here(self, job: Job) -> Iterator[Path | None]:
        if job.config.get("output_dir"):
            yield self._checked_output(job)
            return
        if not (self.folder(job.job_id) / MANIFEST).is_file():
            yield None
            return
        with self._held(job.job_id) as folder:
            whole = (folder / MANIFEST).is_file()  # else swept meanwhile (the sweep removes
            if whole:  # the empty folder `_held` made)
                self._mark_read(job.job_id, folder)
            yield folder if whole else None

    @contextlib.contextmanager
    def _held(self, job_id: UUID) -> Iterator[Path]:
        """The job's folder on this host (made if need be), with a shared lock on it for the
        block: the sweep moves a copy away only under an
        exclusive lock it does not wait for (`_unless_held`), so a copy a reader holds stays.
        A folder moved away between the open and the lock is seen (another directory, or none,
        at its place) and the lock taken again."""
        folder = self.folder(job_id)
        while True:
            folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            except FileNotFoundError:
                continue  # moved away after the mkdir
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                with contextlib.suppress(FileNotFoundError):
                    if os.stat(folder).st_ino == os.fstat(fd).st_ino:
                        break
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
        try:
            yield folder
        finally:
            os.close(fd)  # releases the lock

    def _unless_held(self, folder: Path, remove: Callable[[], None]) -> bool:
        """Run `remove` (it moves `folder` away) unless a reader holds the folder (`_held`),
        under an exclusive lock taken without waiting; whether it ran."""
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # being read: kept
            remove()
            return True
        finally:
            os.close(fd)

    def _fetch(self, job: Job, folder: Path, names: Sequence[str] | None) -> None:
        """Bring the job's files `names` (None: all, and the manifest last) from the bucket into
        `folder`, those it lacks at the manifest's size."""
        listed = self._listed(job.job_id)
        wanted = list(listed) if names is None else list(names)
        for name in wanted:
            size = listed.get(name)
            if size is None:
                raise FileNotFoundError(f"job {job.job_id} has no file {name}")
            path = folder / name
            if path.is_file() and path.stat().st_size == size:
                continue
            if not self.objects.download(self._prefix(job.job_id) + name, path, size):
                raise FileNotFoundError(f"no file {name} of job {job.job_id} in the bucket")
        if names is None:  # last: the copy is whole
            self.objects.download(self._prefix(job.job_id) + MANIFEST, folder / MANIFEST)
        self._mark_read(job.job_id, folder, fetched=True)

    def _mark_read(self, job_id: UUID, folder: Path, fetched: bool = False) -> None:
        """Note that this host read the copy now: always after a fetch (the mark says the
        folder is a copy), else at most every few seconds per process (the mark only has to be
        much fresher than `storage_cache_seconds`)."""
        now = time.monotonic()
        every = min(_MARK_EVERY, self._keep_seconds / 4)
        if not fetched and now - self._marked.get(job_id, -_MARK_EVERY) < every:
            return
        if len(self._marked) > _MARKS_KEPT:  # forget marks too old to skip the next one
            self._marked = {k: t for k, t in self._marked.items() if now - t < every}
        self._marked[job_id] = now
        with contextlib.suppress(FileNotFoundError):  # swept meanwhile: fetched again next time
            (folder / READ_MARK).touch()

    def _listed(self, job_id: UUID) -> dict[str, int]:
        """Every file the job's manifest lists (outputs and internal files), with its size."""
        from patientgen.formats import manifest as manifest_format

        scratch = self.root / SCRATCH / f"{os.getpid()}-{job_id}-{uuid.uuid4().hex}"
        try:
            if not self.objects.download(self._prefix(job_id) + MANIFEST, scratch / MANIFEST):
                raise FileNotFoundError(f"no manifest of job {job_id} in the bucket")
            document = orjson.loads((scratch / MANIFEST).read_bytes())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {str(e["name"]): int(e["bytes"]) for e in manifest_format.listed(document)}

    def stream(self, job: Job, name: str, start: int, end: int) -> Iterator[bytes]:
        return self.objects.stream(self._prefix(job.job_id) + name, start, end)

    def records(self, job: Job) -> Records | None:
        """patients.ndjson read from the bucket by ranged GETs (records close together share
        one: ObjectStore.read_spans), unless this host has it (at the manifest's size), so a
        page of a big job needs no copy of the file."""
        local = self.folder(job.job_id) / NDJSON
        size = next(
            (int(f["bytes"]) for f in job.output_files or () if f.get("name") == NDJSON), None
        )
        if job.config.get("output_dir") or size is None:
            return None
        if local.is_file() and local.stat().st_size == size:
            return None
        return _ObjectRecords(self.objects, self._prefix(job.job_id) + NDJSON, size)

    def presigned(self, job: Job, name: str, content_type: str) -> str | None:
        if not self._presign or job.config.get("output_dir"):
            return None
        return self.objects.presign(
            self._prefix(job.job_id) + name, Path(name).name, content_type, self._presign
        )

    def detach(self, job: Job, scope: Scope = Scope.ALL, outputs: Sequence[str] = ()) -> None:
        super().detach(job, scope, outputs)
        with self._pending_lock:
            self._pending.append((job.job_id, scope))

    def purge(self) -> None:
        """After the commit: the objects `detach` named, and with a job's parts (it completed)
        the uploads left unfinished under it (a dead owner's composition or multipart send)."""
        super().purge()
        with self._pending_lock:
            pending, self._pending = self._pending, []
        for job_id, scope in pending:
            try:
                self.objects.remove_prefix(self._prefix(job_id, scope))
                if scope == Scope.PARTS:
                    self.objects.abort_uploads(self._prefix(job_id))
            except Exception:  # left for sweep: the job has ended either way
                log.warning("could not remove objects of job %s", job_id, exc_info=True)

    def ready(self) -> str:
        self.objects.ensure_bucket()
        return "s3"

    def sweep(self, store: JobStore, turn: float | None = None) -> int:
        """This host's folders, then the bucket: the jobs whose removal a write recorded
        (`store.removals_due`: what a process that died before its purge left), and every
        `storage_listing_interval` a listing of every job's objects (what no write recorded).
        For each job with something to remove (its parts when it has ended, everything when it
        ended without completing or is gone), the removal under its row lock. With `turn`, the
        bucket is swept only when no process on the database took that turn within `turn`
        seconds (store.take_turn), and listed only when none did within the listing interval:
        one sweep per interval, and one listing per listing interval, for every host and
        worker. Without (an explicit sweep), both now."""
        removed = self._sweep_scratch() + self.sweep_copies(store)
        if turn is not None and not store.take_turn(BUCKET_SWEEP, turn):
            return removed
        removed += self._sweep_recorded(store)
        if store.take_turn(BUCKET_LISTING, self._listing_interval if turn is not None else 0):
            removed += self._sweep_listed(store)
        return removed

    def _sweep_recorded(self, store: JobStore) -> int:
        """The recorded removals older than REMOVAL_GRACE, a batch at a time: each job's
        objects checked (one listing of its own prefix, usually empty), then its record dropped
        (kept if a removal failed: the sweep raises, and the next one tries again)."""
        removed = 0
        for _ in range(REMOVAL_BATCHES):
            due = store.removals_due(REMOVAL_GRACE, SWEEP_READ)
            if not due:
                break
            removed += self._sweep_jobs(store, [(job_id, True) for job_id, _ in due])
            store.forget_removals(due)
            if len(due) < SWEEP_READ:
                break
        return removed

    def _sweep_listed(self, store: JobStore) -> int:
        """One listing of every job's objects; the jobs with any to remove."""
        listed = list(self._listed_jobs(self.objects.key("jobs") + "/").items())
        return self._sweep_jobs(store, listed)

    def _sweep_jobs(self, store: JobStore, jobs: Sequence[tuple[UUID, bool]]) -> int:
        """Remove what these jobs (each with whether it may have parts or unfinished uploads)
        should not have: everything of a job that is gone or ended without completing, the parts
        and unfinished uploads of a completed one. One read of statuses per SWEEP_READ jobs."""
        removed = 0
        root = self.objects.key("jobs") + "/"
        for start in range(0, len(jobs), SWEEP_READ):
            batch = jobs[start : start + SWEEP_READ]
            statuses = store.statuses([job_id for job_id, _ in batch])
            for job_id, has_parts in batch:
                status = statuses.get(job_id)
                if status is None:  # deleted: nothing of it is anyone's
                    removed += self.objects.remove_prefix(f"{root}{job_id}/")
                elif status in TERMINAL_STATUSES and (status != JobStatus.COMPLETED or has_parts):
                    removed += self._sweep_ended(store, job_id, f"{root}{job_id}/")
        return removed

    def sweep_copies(self, store: JobStore) -> int:
        """This host's folders of jobs that are gone or have ended, and the trash (what the API
        sweeps; workers sweep the bucket too)."""
        return self._sweep_local(store) + JobFiles.sweep(self, store)

    def _sweep_local(self, store: JobStore) -> int:
        """This host's folders of jobs that are gone or have ended: each host's folder is its
        own here (a dead owner's working folder, a copy fetched to be read), so no fenced write
        of another host removes it. A job gone, or ended without completing, loses its folder;
        a completed one its parts, and its folder unless it holds a copy read or written within
        `storage_cache_seconds`; then the copies beyond `storage_cache_bytes` (`_trim_copies`).
        Each under the job's row lock, into the trash (emptied by the caller)."""
        removed = 0
        copies: list[tuple[float, UUID, Path]] = []  # completed jobs' folders: (read, id, path)
        with contextlib.suppress(FileNotFoundError):
            for entry in list(self.root.iterdir()):
                try:
                    job_id = UUID(entry.name)
                except ValueError:
                    continue
                try:
                    job = store.get(job_id)
                except JobNotFound:
                    self._to_trash(entry, job_id)
                    removed += 1
                    continue
                if job.status not in TERMINAL_STATUSES:
                    continue  # a working folder
                times = _times(entry)
                keep = job.status == JobStatus.COMPLETED and self._fresh_copy(times)
                if not keep or (entry / PARTS).exists():
                    removed += self._detach_here(store, job_id, Scope.PARTS if keep else Scope.ALL)
                if job.status == JobStatus.COMPLETED and entry.exists():
                    copies.append((max(times, default=0.0), job_id, entry))
        return removed + self._trim_copies(store, copies)

    def _trim_copies(self, store: JobStore, copies: Sequence[tuple[float, UUID, Path]]) -> int:
        """The rule of `storage_cache_bytes` (0: none): while this host's copies of completed
        jobs (`copies`) take more bytes than it, remove the least recently read (by the time
        `_fresh_copy` uses), skipping any a reader holds (it stays, and counts: it is on the
        disk). A working folder of a job not completed is not a copy: never passed here."""
        if not self._keep_bytes:
            return 0
        sized = [(read, _size(folder), job_id) for read, job_id, folder in copies]
        total = sum(size for _, size, _ in sized)
        removed = 0
        for _, size, job_id in sorted(sized, key=lambda copy: copy[0]):
            if total <= self._keep_bytes:
                break
            moved = self._detach_here(store, job_id, Scope.ALL)
            if moved or not self.folder(job_id).exists():  # or another sweep moved it
                total -= size
            removed += moved
        return removed

    def _fresh_copy(self, times: Sequence[float]) -> bool:
        """Whether a folder whose `_times` these are holds a copy (a whole one, with its
        manifest, or files fetched to be read, with the read mark; not a dead owner's working
        files) written or read within storage_cache_seconds (its newest time: the folder's,
        which a file renamed in changes, or the read mark's)."""
        return len(times) > 1 and time.time() - max(times) < self._keep_seconds

    def _detach_here(self, store: JobStore, job_id: UUID, scope: Scope) -> int:
        """This host's files of an ended job (not its objects: those are the object sweep's),
        under its row lock; 1 when moved to the trash."""

        moved = False

        def detach(ended: Job) -> None:
            nonlocal moved
            if scope == Scope.PARTS:  # never read: no reader holds it
                JobFiles.detach(self, ended, scope)
                moved = True
            else:
                moved = self._unless_held(
                    self.folder(job_id), lambda: JobFiles.detach(self, ended, scope)
                )

        with contextlib.suppress(JobNotFound):
            store.if_ended(job_id, detach)
        return int(moved)

    def _sweep_scratch(self) -> int:
        """Remove the scratch folders of helpers on this host whose process is gone."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for entry in (self.root / SCRATCH).iterdir():
                pid = entry.name.partition("-")[0]
                if pid.isdigit() and not _alive(int(pid)):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed

    def _listed_jobs(self, root: str) -> dict[UUID, bool]:
        """Every job with objects or unfinished uploads under root, and whether it has any that
        a completed job does not keep (a part, an unfinished upload)."""
        jobs: dict[UUID, bool] = {}
        listed = [(key, False) for key in self.objects.keys(root)]
        listed += [(key, True) for key in self.objects.uploads(root)]
        for key, unfinished in listed:
            name, _, rest = key.partition("/")
            with contextlib.suppress(ValueError):
                job_id = UUID(name)
                jobs[job_id] = jobs.get(job_id, False) or unfinished or rest.startswith(PARTS)
        return jobs

    def _sweep_ended(self, store: JobStore, job_id: UUID, prefix: str) -> int:
        removed = 0

        def remove(ended: Job) -> None:
            nonlocal removed
            if ended.status == JobStatus.COMPLETED:  # its final files stay
                removed += self.objects.remove_prefix(prefix + PARTS + "/")
                removed += self.objects.abort_uploads(prefix)
            else:
                removed += self.objects.remove_prefix(prefix)

        with contextlib.suppress(JobNotFound):
            store.if_ended(job_id, remove)
        return removed


class _ObjectRecords:
    """patients.ndjson as an object (formats.bundle.Records)."""

    def __init__(self, objects: ObjectStore, key: str, size: int) -> None:
        self.objects, self.key, self._size = objects, key, size

    def size(self) -> int:
        return self._size

    def read(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        return self.objects.read_spans(self.key, spans)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _times(folder: Path) -> list[float]:
    """The modification times of a host's folder of a job, its read mark and its manifest (those
    that exist): the newest is when the copy was last written or read."""
    times = []
    for path in (folder, folder / READ_MARK, folder / MANIFEST):
        with contextlib.suppress(FileNotFoundError):
            times.append(path.stat().st_mtime)
    return times


def _size(folder: Path) -> int:
    """Bytes of the files under `folder` (a file removed meanwhile counts 0)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(parent, name)).st_size
    return total


def _holds(folder: Path, names: Sequence[str] | None) -> bool:
    """Whether a host's folder of a completed job holds its files `names` (None: all, which
    only a whole copy, with its manifest, does)."""
    return (folder / MANIFEST).is_file() or (
        names is not None and all((folder / name).is_file() for name in names)
    )
