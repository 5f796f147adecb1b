"""THE one place output files are written.

A run is split into chunks of patients. `write_chunk` writes each requested format's *part* files
for one chunk into a parts folder; `finalize` joins the parts in chunk order into the final files,
writes `summary.json` and `manifest.json` and removes the parts. Chunks can be written in any order,
by any process, and rewritten after a crash: a part is written under a temporary name, fsynced and
renamed, so a leftover temporary file is never taken for a part, and the same chunk always gives
the same bytes. The joined files never depend on the chunking: separators (the JSON array's
brackets and commas, the CSV header) are written at join time.

Memory does not grow with the number of patients: patients are streamed from the generator into
buffered files, and joins copy in fixed-size blocks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from patientgen.formats import FORMATS, fhir, manifest, summary
from patientgen.formats import csv as csv_format
from patientgen.formats import json as json_format
from patientgen.formats import ndjson as ndjson_format
from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario

DEFAULT_CHUNK_SIZE = 10_000
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = manifest.FILE
PARTS_DIRNAME = ".parts"
_BLOCK = 1 << 20
_BUFFER = 1 << 20
_CSV_BATCH = 256
_SUMMARY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


@dataclass(frozen=True, slots=True)
class OutputFile:
    """One final output file (name is relative to the output folder, with `/`)."""

    name: str
    format: str
    bytes: int
    sha256: str
    records: int | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Spec:
    """How one final file is joined from its parts."""

    name: str
    format: str
    prefix: bytes = b""
    separator: bytes = b""
    suffix: bytes = b""
    empty: bytes = b""
    records: str = "patients"  # "patients": one record per patient; "lines": count the lines


def _specs(formats: tuple[str, ...]) -> list[_Spec]:
    specs: list[_Spec] = []
    if "json" in formats:
        specs.append(
            _Spec(
                json_format.FILE,
                "json",
                prefix=json_format.PREFIX,
                separator=json_format.SEPARATOR,
                suffix=json_format.SUFFIX,
                empty=json_format.EMPTY,
            )
        )
    if "ndjson" in formats:
        specs.append(_Spec(ndjson_format.FILE, "ndjson"))
    if "csv" in formats:
        specs.append(
            _Spec(csv_format.FILE, "csv", prefix=csv_format.HEADER, empty=csv_format.HEADER)
        )
    if "fhir" in formats:
        specs.extend(_Spec(fhir.FILES[t], "fhir", records="lines") for t in fhir.PATIENT_TYPES)
    return specs


def _final_names(formats: tuple[str, ...]) -> list[str]:
    """Every file finalize writes into the output folder for these formats, manifest last."""
    names = [spec.name for spec in _specs(formats)]
    if "ndjson" in formats:
        names.append(ndjson_format.INDEX_FILE)
    if "fhir" in formats:
        names.extend(fhir.FILES[t] for t in fhir.FACILITY_TYPES)
    return [*names, SUMMARY_FILE, MANIFEST_FILE]


def normalize_formats(formats: Iterable[str] | str) -> tuple[str, ...]:
    """Validated, de-duplicated formats in canonical order; ValueError names the bad ones."""
    if isinstance(formats, str):
        formats = [f for f in formats.split(",")]
    wanted = [f.strip().lower() for f in formats]
    unknown = sorted({f for f in wanted if f not in FORMATS})
    if unknown:
        raise ValueError(
            f"unknown format {', '.join(repr(f) for f in unknown)} "
            f"(choose from {', '.join(FORMATS)})"
        )
    if not wanted:
        raise ValueError(f"no format given (choose from {', '.join(FORMATS)})")
    return tuple(f for f in FORMATS if f in wanted)


def chunk_ranges(total: int, chunk_size: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most chunk_size patients covering [0, total), in order."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    if total < 0:
        raise ValueError(f"total must not be negative, got {total}")
    return [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]


def _part_path(parts_dir: Path, chunk: int, name: str) -> Path:
    return parts_dir / f"{chunk:06d}.{name.replace('/', '.')}"


def _tmp_path(path: Path, owner: str = "") -> Path:
    """A temporary name next to `path`, unique per process and thread (never taken for a part).

    In an output folder, which may hold anything (`generate --out DIR`), it also carries the
    writer's `owner` mark (see _owner_mark), so a run removes the leftovers of its own earlier
    attempts and nothing else.
    """
    mark = f"{owner}-" if owner else ""
    return path.with_name(f"{path.name}.tmp-{mark}{os.getpid()}-{threading.get_ident()}")


def _owner_mark(parts_dir: Path) -> str:
    """The mark of the run whose parts are in parts_dir (a job's parts folder is its own)."""
    return hashlib.sha256(os.path.abspath(parts_dir).encode()).hexdigest()[:16]


def _load_sync_file_range() -> Callable[[int], None] | None:
    """sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) where libc has it (Linux), else None."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    function.restype = ctypes.c_int
    return lambda fd: function(fd, 0, 0, 2)


#: Start writing a file's dirty pages to disk now, without waiting: the disk then works while
#: the CPU generates, and the fsync at the end of a part or output file waits far less.
_start_writeback = _load_sync_file_range()
_WRITEBACK_EVERY = 2048  # patients


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Parts:
    """The part files of one chunk: written under temporary names, renamed on commit."""

    def __init__(self, parts_dir: Path, chunk: int, names: list[str]) -> None:
        self._final = [_part_path(parts_dir, chunk, name) for name in names]
        self._tmp = [_tmp_path(path) for path in self._final]
        self.files: list[Any] = []
        try:
            for tmp in self._tmp:
                self.files.append(open(tmp, "wb", buffering=_BUFFER))  # noqa: SIM115
        except BaseException:
            self.abort()
            raise

    def writeback(self) -> None:
        if _start_writeback is not None:
            for f in self.files:
                f.flush()
                _start_writeback(f.fileno())

    def commit(self) -> None:
        for f in self.files:
            f.flush()
            os.fsync(f.fileno())
            f.close()
        for tmp, final in zip(self._tmp, self._final, strict=True):
            os.replace(tmp, final)
        if self._final:
            _fsync_dir(self._final[0].parent)

    def abort(self) -> None:
        for f in self.files:
            # closing flushes the buffer, which fails again on a full disk: close them all
            # anyway and remove every temporary file
            with contextlib.suppress(OSError):
                f.close()
        for tmp in self._tmp:
            tmp.unlink(missing_ok=True)


def _chunk_part_names(formats: tuple[str, ...]) -> list[str]:
    names = [spec.name for spec in _specs(formats)]
    if "ndjson" in formats:
        names.append(ndjson_format.INDEX_FILE)
    return names


def missing_chunks(parts_dir: Path, formats: Sequence[str], chunks: Iterable[int]) -> list[int]:
    """The chunks among `chunks` some of whose part files are not in parts_dir (removed after a
    failure that could not be recorded, or written on another host): write them again."""
    names = _chunk_part_names(normalize_formats(formats))
    parts_dir = Path(parts_dir)
    return sorted(
        chunk
        for chunk in chunks
        if not all(_part_path(parts_dir, chunk, name).is_file() for name in names)
    )


def is_finished(scenario: Scenario, formats: Sequence[str], out_dir: Path) -> bool:
    """True when out_dir holds a finished run of exactly this input (finalize returns it)."""
    return _finished(scenario, normalize_formats(formats), Path(out_dir)) is not None


def write_chunk(
    scenario: Scenario,
    formats: Sequence[str],
    parts_dir: Path,
    chunk: int,
    start: int,
    stop: int,
) -> dict[str, Any]:
    """Generate patients [start, stop) and write their part files for chunk number `chunk`.

    Returns the chunk's summary (JSON-serialisable, see summary.merge_summaries).
    """
    from patientgen.generator import generate

    if chunk < 0:
        raise ValueError(f"chunk must not be negative, got {chunk}")
    if not 0 <= start <= stop <= scenario.total_patients:
        raise ValueError(
            f"bad range [{start}, {stop}) for a scenario of {scenario.total_patients} patients"
        )
    return write_patients(
        scenario, formats, parts_dir, chunk, generate(scenario, start, stop), stop - start
    )


def write_patients(
    scenario: Scenario,
    formats: Sequence[str],
    parts_dir: Path,
    chunk: int,
    patients: Iterable[Patient],
    expected: int | None = None,
) -> dict[str, Any]:
    """write_chunk for patients given by the caller (write_chunk passes the generator's).

    With `expected`, a different number of patients fails the chunk (no part is committed).
    """
    formats = normalize_formats(formats)
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    names = _chunk_part_names(formats)
    parts = _Parts(parts_dir, chunk, names)
    try:
        files = dict(zip(names, parts.files, strict=True))
        builder = summary.SummaryBuilder(scenario)
        _write_records(formats, files, patients, builder, parts.writeback)
        if expected is not None and builder.patients != expected:
            raise RuntimeError(
                f"expected {expected} patients for chunk {chunk}, got {builder.patients}"
            )
        parts.commit()
    except BaseException:
        parts.abort()
        raise
    return builder.to_dict()


def _write_records(
    formats: tuple[str, ...],
    files: dict[str, Any],
    patients: Iterable[Patient],
    builder: summary.SummaryBuilder,
    writeback: Callable[[], None],
) -> None:
    dumps = orjson.dumps
    option = json_format.OPTIONS
    json_write = files[json_format.FILE].write if "json" in formats else None
    ndjson_write = files[ndjson_format.FILE].write if "ndjson" in formats else None
    offsets = array("Q")
    position = 0
    csv_file = files.get(csv_format.FILE)
    csv_encoder = csv_format.CsvEncoder() if csv_file is not None else None
    fhir_writes = (
        [files[fhir.FILES[t]].write for t in fhir.PATIENT_TYPES] if "fhir" in formats else None
    )
    fhir_encode = fhir.encode
    add = builder.add
    separator = json_format.SEPARATOR
    first = True
    pending_csv = 0
    for n, p in enumerate(patients, 1):
        if n % _WRITEBACK_EVERY == 0:
            writeback()
        if json_write is not None or ndjson_write is not None:
            record = dumps(p, option=option)
            if json_write is not None:
                json_write(record if first else separator + record)
            if ndjson_write is not None:
                offsets.append(position)
                line = record + b"\n"
                ndjson_write(line)
                position += len(line)
        first = False
        if csv_encoder is not None:
            csv_encoder.add(p)
            pending_csv += 1
            if pending_csv == _CSV_BATCH:
                assert csv_file is not None  # csv_encoder exists only when csv_file does
                csv_file.write(csv_encoder.drain())
                pending_csv = 0
        if fhir_writes is not None:
            for write, data in zip(fhir_writes, fhir_encode(p), strict=True):
                if data:
                    write(data)
        add(p)
    if csv_encoder is not None:
        assert csv_file is not None  # as above
        csv_file.write(csv_encoder.drain())
    if ndjson_write is not None:
        files[ndjson_format.INDEX_FILE].write(ndjson_format.offsets_to_bytes(offsets))


# ----------------------------------------------------------------------------------------------
# Joining


class _Sink:
    """A final file being written: temporary name, running sha256, size and line count.

    Parts are copied in the kernel (copy_file_range) and hashed from the page cache through one
    reused buffer: on the VMs this runs on, fresh user-space buffers and write() of fresh pages
    cost far more than the hashing itself.
    """

    def __init__(self, out_dir: Path, name: str, owner: str) -> None:
        self.path = out_dir / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _tmp_path(self.path, owner)
        self.file = open(self.tmp, "wb", buffering=0)  # noqa: SIM115
        self.hash = hashlib.sha256()
        self.size = 0
        self.lines = 0
        self._buffer = bytearray(_BLOCK)

    def write(self, data: bytes) -> None:
        if data:
            view = memoryview(data)
            while view:
                view = view[self.file.write(view) :]
            self.hash.update(data)
            self.size += len(data)
            self.lines += data.count(b"\n")

    def copy(self, path: Path) -> None:
        buffer = self._buffer
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as source:
            length = os.fstat(source.fileno()).st_size
            copied = _copy_range(source.fileno(), self.file.fileno(), length)
            if copied < length:  # no in-kernel copy here: copy through the buffer
                source.seek(copied)
                while n := source.readinto(buffer):
                    chunk = view[:n]
                    while chunk:
                        chunk = chunk[self.file.write(chunk) :]
            if _start_writeback is not None:
                _start_writeback(self.file.fileno())
            source.seek(0)
            while n := source.readinto(buffer):
                self.hash.update(view[:n])
                self.lines += buffer.count(b"\n", 0, n)
            self.size += length

    def commit(self, name: str, fmt: str, records: int | None) -> OutputFile:
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        return OutputFile(name, fmt, self.size, self.hash.hexdigest(), records)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def _copy_range(source: int, target: int, length: int) -> int:
    """Copy `length` bytes from the current offsets in the kernel; returns how many it copied."""
    copied = 0
    if not hasattr(os, "copy_file_range"):  # pragma: no cover - not Linux
        return 0
    try:
        while copied < length:
            n = os.copy_file_range(source, target, length - copied)
            if n == 0:
                break
            copied += n
    except OSError:  # EXDEV, ENOSYS, EINVAL on some filesystems: the caller copies the rest
        pass
    return copied


def _write_file(
    out_dir: Path, owner: str, name: str, fmt: str, fill: Callable[[_Sink], int | None]
) -> OutputFile:
    sink = _Sink(out_dir, name, owner)
    try:
        records = fill(sink)
        return sink.commit(name, fmt, records)
    except BaseException:
        sink.abort()
        raise


def _writer_of(data: bytes) -> Callable[[_Sink], int]:
    """A fill for _write_file that writes `data` and counts its lines."""

    def fill(sink: _Sink) -> int:
        sink.write(data)
        return sink.lines

    return fill


def _join(out_dir: Path, owner: str, spec: _Spec, parts: list[Path], patients: int) -> OutputFile:
    def fill(sink: _Sink) -> int | None:
        nonempty = [part for part in parts if part.stat().st_size > 0]
        if not nonempty:
            sink.write(spec.empty)
        else:
            sink.write(spec.prefix)
            for i, part in enumerate(nonempty):
                if i:
                    sink.write(spec.separator)
                sink.copy(part)
            sink.write(spec.suffix)
        return sink.lines if spec.records == "lines" else patients

    return _write_file(out_dir, owner, spec.name, spec.format, fill)


def _join_index(
    out_dir: Path, owner: str, index_parts: list[Path], ndjson_parts: list[Path]
) -> OutputFile:
    def fill(sink: _Sink) -> int:
        base = 0
        records = 0
        for index_part, ndjson_part in zip(index_parts, ndjson_parts, strict=True):
            offsets = ndjson_format.offsets_from_bytes(index_part.read_bytes())
            if base:
                offsets = array("Q", [offset + base for offset in offsets])
            sink.write(ndjson_format.offsets_to_bytes(offsets))
            records += len(offsets)
            base += ndjson_part.stat().st_size
        return records

    return _write_file(out_dir, owner, ndjson_format.INDEX_FILE, "index", fill)


def _load_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return orjson.loads((out_dir / MANIFEST_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _finished(
    scenario: Scenario, formats: tuple[str, ...], out_dir: Path
) -> list[OutputFile] | None:
    """The files of an already finished run of this input in out_dir, if complete."""
    found = _load_manifest(out_dir)
    if found is None or not manifest.matches(found, scenario, formats):
        return None
    files = [OutputFile(**entry) for entry in found["files"]]
    for f in files:
        path = out_dir / f.name
        if not path.is_file() or path.stat().st_size != f.bytes:
            return None
    data = (out_dir / MANIFEST_FILE).read_bytes()
    own = OutputFile(MANIFEST_FILE, "manifest", len(data), hashlib.sha256(data).hexdigest(), None)
    return [*files, own]


def _remove_own_leftovers(out_dir: Path, names: list[str], owner: str) -> None:
    """Remove the temporary files an earlier, interrupted finalize of this run left in out_dir.

    Only names this run itself would write (a final name of its formats, its owner mark): a
    user's own files, outputs of other formats or other runs, and other writers' temporary files
    stay as they are (`generate --out DIR` may point at a folder holding anything).
    """
    wanted: dict[Path, list[str]] = {}
    for name in names:
        path = out_dir / name
        wanted.setdefault(path.parent, []).append(f"{path.name}.tmp-{owner}-")
    for folder, prefixes in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(tuple(prefixes)) and entry.is_file(follow_symlinks=False):
                Path(entry.path).unlink(missing_ok=True)


def finalize(
    scenario: Scenario,
    formats: Sequence[str],
    parts_dir: Path,
    out_dir: Path,
    chunk_summaries: list[dict[str, Any]],
) -> list[OutputFile]:
    """Join the parts of chunks 0..len(chunk_summaries)-1 into the final files in out_dir.

    Writes summary.json and manifest.json (last), then removes parts_dir. Idempotent: calling it
    again after a crash half-way through finishes the job, and calling it after it finished
    returns the same files. out_dir may hold other files (`generate --out DIR`): finalize
    replaces only the files of the formats asked for and removes only the temporary files of
    its own earlier attempts (those that carry parts_dir's mark), never anything else.
    """
    formats = normalize_formats(formats)
    parts_dir = Path(parts_dir)
    out_dir = Path(out_dir)
    n_chunks = len(chunk_summaries)
    part_names = _chunk_part_names(formats)
    missing = [
        path
        for chunk in range(n_chunks)
        for name in part_names
        if not (path := _part_path(parts_dir, chunk, name)).is_file()
    ]
    if missing:
        done = _finished(scenario, formats, out_dir)
        if done is not None:
            shutil.rmtree(parts_dir, ignore_errors=True)
            return done
        raise FileNotFoundError(f"missing part file {missing[0]} (and {len(missing) - 1} more)")

    if "ndjson" in formats:  # the index part counts the chunk's records: it must match
        for chunk, chunk_summary in enumerate(chunk_summaries):
            path = _part_path(parts_dir, chunk, ndjson_format.INDEX_FILE)
            records = path.stat().st_size // ndjson_format.OFFSET_SIZE
            if records != chunk_summary.get("patients"):
                raise ValueError(
                    f"part files of chunk {chunk} hold {records} patients, its summary says "
                    f"{chunk_summary.get('patients')}"
                )
    out_dir.mkdir(parents=True, exist_ok=True)
    owner = _owner_mark(parts_dir)
    _remove_own_leftovers(out_dir, _final_names(formats), owner)
    merged = summary.merge_summaries(chunk_summaries)
    patients = merged["patients"]
    files: list[OutputFile] = []
    for spec in _specs(formats):
        parts = [_part_path(parts_dir, chunk, spec.name) for chunk in range(n_chunks)]
        files.append(_join(out_dir, owner, spec, parts, patients))
    if "ndjson" in formats:
        files.append(
            _join_index(
                out_dir,
                owner,
                [_part_path(parts_dir, c, ndjson_format.INDEX_FILE) for c in range(n_chunks)],
                [_part_path(parts_dir, c, ndjson_format.FILE) for c in range(n_chunks)],
            )
        )
    if "fhir" in formats:
        facilities = [(fid, entry["role"]) for fid, entry in merged["facilities"].items()]
        organizations, locations = fhir.facility_resources(facilities)
        for resource_type, data in (("Organization", organizations), ("Location", locations)):
            files.append(
                _write_file(
                    out_dir,
                    owner,
                    fhir.FILES[resource_type],
                    "fhir",
                    _writer_of(data),
                )
            )
    summary_bytes = orjson.dumps(merged, option=_SUMMARY_OPTIONS) + b"\n"
    files.append(
        _write_file(out_dir, owner, SUMMARY_FILE, "summary", lambda sink: sink.write(summary_bytes))
    )
    manifest_bytes = manifest.encode(
        manifest.build(scenario, formats, patients, [f.as_dict() for f in files])
    )
    files.append(
        _write_file(
            out_dir, owner, MANIFEST_FILE, "manifest", lambda sink: sink.write(manifest_bytes)
        )
    )
    _fsync_dir(out_dir)
    shutil.rmtree(parts_dir, ignore_errors=True)
    return files


def merge_summaries(chunk_summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge chunk summaries into the summary of the whole run (see formats.summary)."""
    return summary.merge_summaries(chunk_summaries)


def write_all(
    scenario: Scenario,
    formats: Sequence[str],
    out_dir: Path,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> list[OutputFile]:
    """Generate the whole scenario into out_dir, chunk by chunk, in this process."""
    formats = normalize_formats(formats)
    out_dir = Path(out_dir)
    parts_dir = out_dir / PARTS_DIRNAME
    ranges = chunk_ranges(scenario.total_patients, chunk_size)
    shutil.rmtree(parts_dir, ignore_errors=True)
    summaries: list[dict[str, Any]] = []
    total = scenario.total_patients
    if progress is not None:
        progress(0, total)
    for chunk, (start, stop) in enumerate(ranges):
        summaries.append(write_chunk(scenario, formats, parts_dir, chunk, start, stop))
        if progress is not None:
            progress(stop, total)
    return finalize(scenario, formats, parts_dir, out_dir, summaries)


def iter_index(out_dir: Path) -> Iterator[int]:
    """Every record offset of out_dir/patients.ndjson.idx, in order."""
    with open(Path(out_dir) / ndjson_format.INDEX_FILE, "rb") as f:
        while block := f.read(8 * 65536):
            yield from ndjson_format.offsets_from_bytes(block)


def read_patients(out_dir: Path, offset: int, limit: int) -> list[bytes]:
    """Records offset..offset+limit-1 of patients.ndjson (JSON bytes, no newline), via the index.

    Reads only the index entries and the bytes of the page; past the end gives fewer (or no)
    records.
    """
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
    out_dir = Path(out_dir)
    index_path = out_dir / ndjson_format.INDEX_FILE
    data_path = out_dir / ndjson_format.FILE
    count = index_path.stat().st_size // ndjson_format.OFFSET_SIZE
    if limit == 0 or offset >= count:
        return []
    end = min(count, offset + limit)
    with open(index_path, "rb") as f:
        f.seek(ndjson_format.OFFSET_SIZE * offset)
        wanted = end - offset + (1 if end < count else 0)
        offsets = ndjson_format.offsets_from_bytes(f.read(ndjson_format.OFFSET_SIZE * wanted))
    first = offsets[0]
    last = offsets[end - offset] if end < count else data_path.stat().st_size
    with open(data_path, "rb") as f:
        f.seek(first)
        blob = f.read(last - first)
    return blob.split(b"\n")[:-1]
