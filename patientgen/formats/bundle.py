"""THE one place output files are written.

A run is split into chunks of patients. `write_chunk` writes each requested format's *part* files
for one chunk into a parts folder; `finalize` joins the parts in chunk order into the final files,
writes `summary.json` and `manifest.json`. Chunks can be written in any order,
by any process, and rewritten after a crash: a part is written under a temporary name, fsynced and
renamed, so a leftover temporary file is never taken for a part, and the same chunk always gives
the same bytes. The joined files never depend on the chunking: separators (the JSON array's
brackets and commas, the CSV header) are written at join time.

The exercise files are not concatenations: the inject list (`mel.csv`) is sorted by exercise
time across all patients, and a PDF (`cards.pdf`) cannot be joined by appending. Their parts hold
compact intermediate records instead (formats.mel, formats.cards: sorted injects, one card per
line), and the join k-way merges the inject parts (streaming, at most _FAN_IN parts open at once,
larger joins merged in rounds through scratch files) and renders the cards from the card parts.
A one-chunk run writes its part in memory and converts it the same way, so every chunking gives
the same bytes.

The only chunk of a one-chunk run is written whole: its part files are the run's final files
(summary and manifest included), and finalize renames them into the output folder, so a small
job writes each byte once. Files are written in batches: every file of a batch is fsynced before
any is renamed, each folder is fsynced once after the renames, and the manifest comes last.

The output folder may hold files that are not the run's (`generate --out DIR`): finalize
replaces the files of the formats asked for and removes nothing but its own leftovers.

Memory does not grow with the number of patients: patients are streamed from the generator into
buffered files, and joins copy in fixed-size blocks. Two bounded exceptions: a chunk holds its own
injects and cards until it writes their parts (one chunk's worth), and the cards' PDF is held
whole while it is rendered (reportlab keeps every page until it saves), which is why a job may
ask for cards for at most cards.MAX_PATIENTS casualties (format_problems, checked at submit).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import logging
import os
import shutil
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import orjson

from patientgen.formats import FORMATS, attributes, cards, fhir, hl7, manifest, mel, summary
from patientgen.formats import csv as csv_format
from patientgen.formats import json as json_format
from patientgen.formats import ndjson as ndjson_format
from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 10_000
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = manifest.FILE
PARTS_DIRNAME = ".parts"
#: Part names of the final files of a one-chunk run, written whole by its only chunk.
WHOLE_PREFIX = "whole."
_BLOCK = 1 << 20
_BUFFER = 1 << 20
_CSV_BATCH = 256
#: The most inject parts merged at once (each an open file); more are merged in rounds.
_FAN_IN = 256
#: The exercise files (format, file), built from intermediate parts rather than concatenated.
_EXERCISE: tuple[tuple[str, str], ...] = (("mel", mel.FILE), ("cards", cards.FILE))
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
        # written out: dataclasses.asdict deep-copies recursively, a cost every job pays
        return {
            "name": self.name,
            "format": self.format,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "records": self.records,
        }


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


def _has_chain(scenario: Scenario) -> bool:
    return scenario.medical_plan is not None


def _specs(formats: tuple[str, ...], chain: bool = False) -> list[_Spec]:
    """How each final file is joined; `chain`: the scenario has a medical plan (the CSV has the
    columns of the waits)."""
    specs: list[_Spec] = []
    header = csv_format.CHAIN_HEADER if chain else csv_format.HEADER
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
        # internal: the attribute index of patients.ndjson, its records simply concatenated
        specs.append(_Spec(attributes.FILE, attributes.FORMAT))
    if "csv" in formats:
        specs.append(_Spec(csv_format.FILE, "csv", prefix=header, empty=header))
    if "fhir" in formats:
        specs.extend(_Spec(fhir.FILES[t], "fhir", records="lines") for t in fhir.PATIENT_TYPES)
    if "fhir-bundle" in formats:
        specs.append(_Spec(fhir.BUNDLE_FILE, "fhir-bundle"))
    if "hl7" in formats:  # records: messages, one per line
        specs.append(_Spec(hl7.FILE, "hl7", records="lines"))
    return specs


def _final_names(formats: tuple[str, ...]) -> list[str]:
    """Every file finalize writes into the output folder for these formats, manifest last."""
    names = [spec.name for spec in _specs(formats)]
    if "ndjson" in formats:
        names.extend((ndjson_format.INDEX_FILE, attributes.DICTIONARY_FILE))
    if "fhir" in formats:
        names.extend(fhir.FILES[t] for t in fhir.FACILITY_TYPES)
    names.extend(_exercise_names(formats))
    return [*names, SUMMARY_FILE, MANIFEST_FILE]


def _exercise_names(formats: tuple[str, ...]) -> list[str]:
    return [name for fmt, name in _EXERCISE if fmt in formats]


def format_problems(total_patients: int, formats: Iterable[str]) -> list[str]:
    """What makes these formats unfit for a job of `total_patients` (empty: nothing); checked at
    submit, with the scenario."""
    problems = []
    if "cards" in formats and total_patients > cards.MAX_PATIENTS:
        problems.append(
            f"casualty cards (format 'cards') are made for at most {cards.MAX_PATIENTS:,} "
            f"patients, one PDF page each; the scenario asks for {total_patients:,}"
        )
    return problems


def outputs(files: Iterable[OutputFile]) -> list[OutputFile]:
    """The job's outputs among the files a run wrote: all but the internal indexes
    (patients.ndjson.idx, patients.attrs and its dictionary), which only serve the API's reads."""
    return [f for f in files if f.format not in attributes.INTERNAL_FORMATS]


def _manifest_order(files: list[OutputFile]) -> list[OutputFile]:
    """A run's files in the order its manifest lists them: the outputs (manifest last), then the
    internal files (so a finished run read back from its manifest compares equal)."""
    internal = [f for f in files if f.format in attributes.INTERNAL_FORMATS]
    outputs = [f for f in files if f.format not in attributes.INTERNAL_FORMATS]
    if outputs and outputs[-1].name == MANIFEST_FILE:
        return [*outputs[:-1], *internal, outputs[-1]]
    return [*outputs, *internal]


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
    return parts_dir / _part_name(chunk, name)


def _part_name(chunk: int, name: str) -> str:
    return f"{chunk:06d}.{name.replace('/', '.')}"


def concatenations(formats: Sequence[str], chunks: int) -> dict[str, list[str]]:
    """The final files of a run of `chunks` chunks that are their chunks' part files end to end
    (no header, separator or footer), each with those parts' names in order: object storage may
    compose them from the parts without sending their bytes again."""
    return {
        spec.name: [_part_name(chunk, spec.name) for chunk in range(chunks)]
        for spec in _specs(normalize_formats(formats))
        if not (spec.prefix or spec.separator or spec.suffix or spec.empty)
    }


def chunk_files(formats: Sequence[str], chunk: int) -> list[str]:
    """The names of chunk `chunk`'s part files in a parts folder (written by write_chunk with
    whole=False)."""
    return [_part_name(chunk, name) for name in _chunk_part_names(normalize_formats(formats))]


def _tmp_path(path: Path, owner: str = "") -> Path:
    """A temporary name next to `path`, unique per process and thread (never taken for a part).

    In an output folder, which may hold anything (`generate --out DIR`), it also carries the
    writer's `owner` mark (see _owner_mark), so a run removes the leftovers of its own earlier
    attempts and nothing else.
    """
    mark = f"{owner}-" if owner else ""
    return path.with_name(f"{path.name}.tmp-{mark}{os.getpid()}-{threading.get_ident()}")


def _owner_mark(parts_dir: Path, attempt: int = 0) -> str:
    """The mark of attempt `attempt` of the run whose parts are in parts_dir (a job's parts
    folder is its own): `<run>.<attempt>`."""
    run = hashlib.sha256(os.path.abspath(parts_dir).encode()).hexdigest()[:16]
    return f"{run}.{attempt}"


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


_buffers = threading.local()


def _block_buffer() -> bytearray:
    """This thread's one copy/hash buffer (a fresh 1 MiB buffer per file costs more than the
    copying and hashing of a small file)."""
    buffer: bytearray | None = getattr(_buffers, "buffer", None)
    if buffer is None:
        buffer = _buffers.buffer = bytearray(_BLOCK)
    return buffer


class _Batch:
    """Files written under temporary names and made visible together, in order.

    commit(): flush every file and start the writeback of all of them, then fsync each (the disk
    writes them at once, so the fsyncs after the first mostly find their data there already),
    rename each onto its final name in the order they were opened, and fsync each folder once.
    Nothing is ever visible under a final name before its bytes are on disk. abort() removes every
    temporary file.
    """

    def __init__(self, owner: str = "", *, sync_folders: bool = True) -> None:
        self.owner = owner
        self.sync_folders = sync_folders
        self.files: list[Any] = []
        self.tmp: list[Path] = []
        self.final: list[Path] = []

    def open(self, final: Path, buffering: int = _BUFFER, owner: str | None = None) -> Any:
        """A new temporary file for `final`, open for writing (and reading back: _digest);
        its name carries `owner` (default: the batch's)."""
        tmp = _tmp_path(final, self.owner if owner is None else owner)
        f = open(tmp, "w+b", buffering=buffering)  # noqa: SIM115
        self.files.append(f)
        self.tmp.append(tmp)
        self.final.append(final)
        return f

    def writeback(self) -> None:
        if _start_writeback is not None:
            for f in self.files:
                f.flush()
                _start_writeback(f.fileno())

    def commit(self, folders: Iterable[Path] = ()) -> None:
        """Make every file visible under its final name; `folders`: more folders to fsync
        (the parents of folders this batch's files are the first entries of)."""
        for f in self.files:
            f.flush()
            if _start_writeback is not None:
                _start_writeback(f.fileno())
        for f in self.files:
            os.fsync(f.fileno())
            f.close()
        for tmp, final in zip(self.tmp, self.final, strict=True):
            os.replace(tmp, final)
        if self.sync_folders:
            for folder in dict.fromkeys([*(path.parent for path in self.final), *folders]):
                _fsync_dir(folder)

    def abort(self) -> None:
        for f in self.files:
            # closing flushes the buffer, which fails again on a full disk: close them all
            # anyway and remove every temporary file
            with contextlib.suppress(OSError):
                f.close()
        for tmp in self.tmp:
            tmp.unlink(missing_ok=True)


def _chunk_part_names(formats: tuple[str, ...]) -> list[str]:
    names = [spec.name for spec in _specs(formats)]
    if "ndjson" in formats:
        names.append(ndjson_format.INDEX_FILE)
    return [*names, *_exercise_names(formats)]


def _whole_path(parts_dir: Path, name: str) -> Path:
    """Where the one chunk of a one-chunk run keeps final file `name`, ready to be moved."""
    return parts_dir / f"{WHOLE_PREFIX}{name.replace('/', '.')}"


def _has_whole(parts_dir: Path, formats: tuple[str, ...]) -> bool:
    return all(_whole_path(parts_dir, name).is_file() for name in _final_names(formats))


def missing_chunks(parts_dir: Path, formats: Sequence[str], chunks: Iterable[int]) -> list[int]:
    """The chunks among `chunks` some of whose part files are not in parts_dir (removed after a
    failure that could not be recorded, or written on another host): write them again."""
    formats = normalize_formats(formats)
    names = _chunk_part_names(formats)
    parts_dir = Path(parts_dir)
    return sorted(
        chunk
        for chunk in chunks
        if not all(_part_path(parts_dir, chunk, name).is_file() for name in names)
        and not (chunk == 0 and _has_whole(parts_dir, formats))
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
    *,
    whole: bool | None = None,
    create: bool = True,
) -> dict[str, Any]:
    """Generate patients [start, stop) and write their part files for chunk number `chunk`.

    Returns the chunk's summary (JSON-serialisable, see summary.merge_summaries).

    `create` False (a worker helping with another's job): parts_dir, and the care-chain result
    in it when the scenario has a medical plan, must be there already; nothing creates a folder
    or the care-chain file (FileNotFoundError instead), so a writer that comes late, after the
    parts folder was removed, leaves nothing behind.

    The one chunk of a one-chunk run (chunk 0 covering every patient; `whole=None` decides so,
    `whole=False` writes ordinary parts) is written as the run's final files, summary and manifest
    included: finalize then only renames them into the output folder instead of copying them.
    """
    from patientgen.generator import generate

    if chunk < 0:
        raise ValueError(f"chunk must not be negative, got {chunk}")
    if not 0 <= start <= stop <= scenario.total_patients:
        raise ValueError(
            f"bad range [{start}, {stop}) for a scenario of {scenario.total_patients} patients"
        )
    if whole is None:
        whole = chunk == 0 and start == 0 and stop == scenario.total_patients
    elif whole and not (chunk == 0 and start == 0 and stop == scenario.total_patients):
        raise ValueError("only chunk 0 covering every patient can be written whole")
    if not create and not Path(parts_dir).is_dir():
        raise FileNotFoundError(f"no parts folder {parts_dir}")
    flow = care_chain(scenario, parts_dir, create=create)
    return write_patients(
        scenario,
        formats,
        parts_dir,
        chunk,
        generate(scenario, start, stop, flow),
        stop - start,
        whole=whole,
        chain=None if flow is None or chunk != 0 else flow.statistics,
        create=create,
    )


#: The care-chain simulation's result in a parts folder (the job's first phase, see
#: generator/chainphase.py): one file, written like a part (temporary name, fsync, rename).
CHAIN_FILE = "care-chain.json"
_chains: dict[str, Any] = {}  # scenario digest -> FlowResult, the last few of this process


def care_chain(scenario: Scenario, parts_dir: Path | None, *, create: bool = True) -> Any:
    """The care-chain result of the scenario (a generator.chainphase.FlowResult), None without a
    medical plan. Read from parts_dir when a run computed it there already, else computed and
    written there (`parts_dir` None: computed only; `create` False: FileNotFoundError when it is
    not there, nothing written). The same (scenario, seed) always gives the same bytes, so a file
    written by any worker, before any crash, is the one to read."""
    from patientgen.generator import chainphase

    if scenario.medical_plan is None:
        return None
    digest = chainphase.scenario_digest(scenario)
    path = Path(parts_dir) / CHAIN_FILE if parts_dir is not None else None
    if not create and path is not None and not path.is_file():
        raise FileNotFoundError(f"no care-chain result {path}")
    result = _chains.get(digest)
    if result is None and path is not None and path.is_file():
        try:
            result = chainphase.decode(path.read_bytes(), scenario)
            log.info("care-chain phase read from its checkpoint %s", path.name)
        except ValueError:  # another scenario's: computed again below
            result = None
    if result is None:
        started = time.perf_counter()
        result = chainphase.run_phase(scenario)
        log.info(
            "care-chain phase computed: %d patients in %.2f s",
            scenario.total_patients,
            time.perf_counter() - started,
        )
    if create and path is not None and not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        batch = _Batch(sync_folders=False)
        try:
            _write_raw(batch.open(path, buffering=0), chainphase.encode(result))
            batch.commit()
        except BaseException:
            batch.abort()
            raise
    if len(_chains) >= 2:
        _chains.pop(next(iter(_chains)))
    _chains[digest] = result
    return result


def write_patients(
    scenario: Scenario,
    formats: Sequence[str],
    parts_dir: Path,
    chunk: int,
    patients: Iterable[Patient],
    expected: int | None = None,
    *,
    whole: bool = False,
    chain: dict[str, Any] | None = None,
    create: bool = True,
) -> dict[str, Any]:
    """write_chunk for patients given by the caller (write_chunk passes the generator's).

    With `expected`, a different number of patients fails the chunk (no part is committed).
    With `whole`, the patients are the whole run (chunk 0): its final files are written.
    `chain`: the statistics of the care-chain simulation, given to chunk 0 only (its summary
    carries them into the merged one).
    """
    formats = normalize_formats(formats)
    parts_dir = Path(parts_dir)
    if create:
        parts_dir.mkdir(parents=True, exist_ok=True)
    if whole and chunk != 0:
        raise ValueError("only chunk 0 can be written whole")
    names = _chunk_part_names(formats)
    # No fsync of the parts folder: a part is fsynced before it is renamed, so a part name that
    # survives a crash names a whole part; a name lost in a crash is a missing part, and the
    # runner writes such a chunk again (missing_chunks).
    batch = _Batch(sync_folders=False)
    try:
        if whole:
            chunk_summary, _, _ = _write_whole(
                scenario,
                formats,
                patients,
                expected,
                batch,
                lambda n: _whole_path(parts_dir, n),
                chain=chain,
            )
        else:
            files = {name: batch.open(_part_path(parts_dir, chunk, name)) for name in names}
            builder = summary.SummaryBuilder(scenario, chain)
            exercise = _write_records(scenario, formats, files, patients, builder, batch.writeback)
            _check_count(builder, expected, chunk)
            for name, part in exercise.items():
                files[name].write(part)
            chunk_summary = builder.to_dict()
        batch.commit()
    except BaseException:
        batch.abort()
        raise
    return chunk_summary


def _check_count(builder: summary.SummaryBuilder, expected: int | None, chunk: int) -> None:
    if expected is not None and builder.patients != expected:
        got = builder.patients
        raise RuntimeError(f"expected {expected} patients for chunk {chunk}, got {got}")


def _write_whole(
    scenario: Scenario,
    formats: tuple[str, ...],
    patients: Iterable[Patient],
    expected: int | None,
    batch: _Batch,
    place: Callable[[str], Path],
    owner: str | None = None,
    chain: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[OutputFile]]:
    """The final files of a one-chunk run, opened in `batch` for final names place(name) (its
    temporary names marked `owner`). Returns the chunk's summary, the run's (merged) summary and
    the run's files, manifest last."""
    files = {name: batch.open(place(name), owner=owner) for name in _chunk_part_names(formats)}
    builder = summary.SummaryBuilder(scenario, chain)
    for spec in _specs(formats, _has_chain(scenario)):
        files[spec.name].write(spec.prefix)
    exercise = _write_records(scenario, formats, files, patients, builder, batch.writeback)
    _check_count(builder, expected, 0)
    chunk_summary = builder.to_dict()
    merged, listed = _finish_whole(
        scenario, formats, batch, files, exercise, chunk_summary, place, owner
    )
    return chunk_summary, merged, listed


class SmallRun(NamedTuple):
    """A run of one chunk written straight into its output folder by write_runs."""

    scenario: Scenario
    formats: tuple[str, ...]
    out_dir: Path
    #: the run's parts folder (never created): it names the mark of the temporary files, so a
    #: finalize of a later attempt of the same run removes what an interrupted write_runs left
    parts_dir: Path
    #: the attempt of the run (a job's attempt number)
    attempt: int = 0


def write_runs(runs: Sequence[SmallRun]) -> list[tuple[dict[str, Any], list[OutputFile]]]:
    """Write several small runs whole, each straight into its output folder (no parts folder):
    one batch for all of them, so the disk is waited for once per batch rather than per file
    (flush and writeback of every file, fsyncs, renames in order with each run's manifest
    last, each folder fsynced once, the output folders' parents included). Returns each run's
    summary and files. Nothing is renamed unless every run was written: on an error every
    temporary file is removed and the error raised. The output folders must hold nothing
    but earlier attempts of the same runs."""
    from patientgen.generator import generate

    batch = _Batch()
    results: list[tuple[dict[str, Any], list[OutputFile]]] = []
    try:
        for run in runs:
            formats = normalize_formats(run.formats)
            out_dir = Path(run.out_dir)
            for folder in dict.fromkeys((out_dir / name).parent for name in _final_names(formats)):
                folder.mkdir(parents=True, exist_ok=True)
            flow = care_chain(run.scenario, None)
            _, merged, listed = _write_whole(
                run.scenario,
                formats,
                generate(run.scenario, 0, run.scenario.total_patients, flow),
                run.scenario.total_patients,
                batch,
                out_dir.joinpath,
                _owner_mark(run.parts_dir, run.attempt),
                chain=None if flow is None else flow.statistics,
            )
            results.append((merged, listed))
        batch.commit(folders=dict.fromkeys(Path(run.out_dir).parent for run in runs))
    except BaseException:
        batch.abort()
        raise
    return results


def _finish_whole(
    scenario: Scenario,
    formats: tuple[str, ...],
    batch: _Batch,
    files: dict[str, Any],
    exercise: dict[str, bytes],
    chunk_summary: dict[str, Any],
    place: Callable[[str], Path],
    owner: str | None,
) -> tuple[dict[str, Any], list[OutputFile]]:
    """Complete the final files of a one-chunk run: the JSON array's end (or the empty forms),
    the facility resources, the exercise files from their one part (`exercise`), summary.json
    and manifest.json, each exactly as finalize's join of one ordinary part would write it."""
    patients = chunk_summary["patients"]
    for spec in _specs(formats, _has_chain(scenario)):
        f = files[spec.name]
        if spec.prefix and f.tell() == len(spec.prefix):  # no record: the empty form
            f.seek(0)
            f.truncate()
            f.write(spec.empty)
        elif f.tell() == 0:
            f.write(spec.empty)
        else:
            f.write(spec.suffix)
    merged = summary.merge_summaries([chunk_summary])
    extra: list[tuple[str, str, bytes, bool]] = []  # name, format, bytes, count lines
    if "fhir" in formats:
        facilities = [(fid, entry["role"]) for fid, entry in merged["facilities"].items()]
        organizations, locations = fhir.facility_resources(facilities)
        extra.append((fhir.FILES["Organization"], "fhir", organizations, True))
        extra.append((fhir.FILES["Location"], "fhir", locations, True))
    listed: list[OutputFile] = []
    for spec in _specs(formats):
        size, sha, lines = _digest(files[spec.name])
        records = lines if spec.records == "lines" else patients
        listed.append(OutputFile(spec.name, spec.format, size, sha, records))
    if "ndjson" in formats:
        size, sha, _ = _digest(files[ndjson_format.INDEX_FILE])
        listed.append(
            OutputFile(
                ndjson_format.INDEX_FILE, "index", size, sha, size // ndjson_format.OFFSET_SIZE
            )
        )
        data = attributes.dictionary_bytes(scenario)
        extra.insert(0, (attributes.DICTIONARY_FILE, attributes.FORMAT, data, False))
    summary_bytes = orjson.dumps(merged, option=_SUMMARY_OPTIONS) + b"\n"
    for name, fmt, data, count in extra:
        _write_raw(batch.open(place(name), buffering=0, owner=owner), data)
        records = data.count(b"\n") if count else None
        listed.append(OutputFile(name, fmt, len(data), hashlib.sha256(data).hexdigest(), records))
    for fmt, name in _EXERCISE:
        if fmt in formats:
            f = files[name]
            records = _write_exercise(fmt, f.write, [exercise[name].splitlines()], patients)
            size, sha, _ = _digest(f)
            listed.append(OutputFile(name, fmt, size, sha, records))
    _write_raw(batch.open(place(SUMMARY_FILE), buffering=0, owner=owner), summary_bytes)
    listed.append(
        OutputFile(
            SUMMARY_FILE,
            "summary",
            len(summary_bytes),
            hashlib.sha256(summary_bytes).hexdigest(),
            None,
        )
    )
    manifest_bytes = manifest.encode(
        manifest.build(scenario, formats, patients, [f.as_dict() for f in listed])
    )
    _write_raw(batch.open(place(MANIFEST_FILE), buffering=0, owner=owner), manifest_bytes)
    return merged, _manifest_order([*listed, _manifest_entry(manifest_bytes)])


def _manifest_entry(data: bytes) -> OutputFile:
    """The output-list entry of manifest.json holding `data` (it lists every file but itself)."""
    return OutputFile(MANIFEST_FILE, "manifest", len(data), hashlib.sha256(data).hexdigest(), None)


def _write_raw(f: Any, data: bytes) -> None:
    """All of `data` to an unbuffered file (a raw write may write less than it was given)."""
    view = memoryview(data)
    while view:
        view = view[f.write(view) :]


def _digest(f: Any) -> tuple[int, str, int]:
    """Size, sha256 and line count of a file being written (read back from the page cache,
    through its own descriptor: no open, and the file's offset is left as it is)."""
    f.flush()
    fd = f.fileno()
    size = 0
    digest = hashlib.sha256()
    lines = 0
    buffer = _block_buffer()
    view = memoryview(buffer)
    while n := _pread_into(fd, buffer, size):
        digest.update(view[:n])
        lines += buffer.count(b"\n", 0, n)
        size += n
    return size, digest.hexdigest(), lines


def _pread_into(fd: int, buffer: bytearray, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    data = os.pread(fd, len(buffer), offset)  # pragma: no cover - no preadv here
    buffer[: len(data)] = data  # pragma: no cover
    return len(data)  # pragma: no cover


def _write_records(
    scenario: Scenario,
    formats: tuple[str, ...],
    files: dict[str, Any],
    patients: Iterable[Patient],
    builder: summary.SummaryBuilder,
    writeback: Callable[[], None],
) -> dict[str, bytes]:
    """Write the records of the streaming formats into `files`; returns the part of each
    exercise format (written by the caller: as a part, or converted into the final file)."""
    dumps = orjson.dumps
    option = json_format.OPTIONS
    line_option = option | orjson.OPT_APPEND_NEWLINE
    json_write = files[json_format.FILE].write if "json" in formats else None
    ndjson_write = files[ndjson_format.FILE].write if "ndjson" in formats else None
    offsets = array("Q")
    position = 0
    encode_attributes = attributes.Encoder(scenario).encode if ndjson_write is not None else None
    records: list[bytes] = []
    csv_file = files.get(csv_format.FILE)
    chain = _has_chain(scenario)
    csv_encoder = csv_format.CsvEncoder(chain) if csv_file is not None else None
    fhir_writes = (
        [files[fhir.FILES[t]].write for t in fhir.PATIENT_TYPES] if "fhir" in formats else None
    )
    fhir_encode = fhir.encode
    wants_fhir = "fhir" in formats or "fhir-bundle" in formats
    fhir_job = fhir.scope(scenario) if wants_fhir else b""  # a digest of the whole scenario
    bundle_write = files[fhir.BUNDLE_FILE].write if "fhir-bundle" in formats else None
    fhir_bundle = fhir.bundle
    hl7_write = files[hl7.FILE].write if "hl7" in formats else None
    hl7_encode = hl7.encode
    injects = mel.Collector(scenario) if "mel" in formats else None
    card_lines: list[bytes] | None = [] if "cards" in formats else None
    card_encode = cards.encode
    add = builder.add
    separator = json_format.SEPARATOR
    first = True
    pending_csv = 0
    for n, p in enumerate(patients, 1):
        if n % _WRITEBACK_EVERY == 0:
            writeback()
        if json_write is not None or ndjson_write is not None:
            if json_write is not None:
                record = dumps(p, option=option)
                json_write(record if first else separator + record)
            if ndjson_write is not None:
                offsets.append(position)
                # without JSON, orjson appends the newline itself (no copy of the record)
                line = dumps(p, option=line_option) if json_write is None else record + b"\n"
                ndjson_write(line)
                position += len(line)
                records.append(encode_attributes(p))  # type: ignore[misc]
        first = False
        if csv_encoder is not None:
            csv_encoder.add(p)
            pending_csv += 1
            if pending_csv == _CSV_BATCH:
                assert csv_file is not None  # csv_encoder exists only when csv_file does
                csv_file.write(csv_encoder.drain())
                pending_csv = 0
        if fhir_writes is not None or bundle_write is not None:
            encoded = fhir_encode(p, fhir_job)
            if fhir_writes is not None:
                for write, data in zip(fhir_writes, encoded, strict=True):
                    if data:
                        write(data)
            if bundle_write is not None:
                bundle_write(fhir_bundle(p, fhir_job, encoded))
        if hl7_write is not None:
            hl7_write(hl7_encode(p))
        if injects is not None:
            injects.add(p)
        if card_lines is not None:
            card_lines.append(card_encode(p))
        add(p)
    if csv_encoder is not None:
        assert csv_file is not None  # as above
        csv_file.write(csv_encoder.drain())
    if ndjson_write is not None:
        files[ndjson_format.INDEX_FILE].write(ndjson_format.offsets_to_bytes(offsets))
        files[attributes.FILE].write(b"".join(records))
    exercise: dict[str, bytes] = {}
    if injects is not None:
        exercise[mel.FILE] = injects.part()
    if card_lines is not None:
        exercise[cards.FILE] = b"".join(card_lines)
    return exercise


def _write_exercise(
    fmt: str, write: Callable[[bytes], Any], parts: Sequence[Iterable[bytes]], patients: int
) -> int:
    """Write exercise file `fmt` from its parts (each an iterable of its lines, in chunk
    order); returns its record count (injects, or cards)."""
    if fmt == "mel":
        counted = [0]

        def rows() -> Iterator[list[Any]]:
            for row in mel.merge(mel.read_part(part) for part in parts):
                counted[0] += 1
                yield row

        for block in mel.encode(rows()):
            write(block)
        return counted[0]
    write(cards.render(cards.read_part(itertools.chain.from_iterable(parts))))
    return patients


def _lines(path: Path) -> Iterator[bytes]:
    """The lines of a part, the file opened only when the first is read."""
    with open(path, "rb") as f:
        yield from f


def _merged_mel_parts(
    stack: contextlib.ExitStack, parts_dir: Path, paths: list[Path]
) -> list[Iterable[bytes]]:
    """The inject parts `paths`, open for reading, at most _FAN_IN of them: beyond that, groups
    of _FAN_IN are merged first into scratch files (temporary names in parts_dir, removed when
    `stack` closes), round after round."""
    scratch = 0
    while len(paths) > _FAN_IN:
        merged: list[Path] = []
        for start in range(0, len(paths), _FAN_IN):
            group = paths[start : start + _FAN_IN]
            scratch += 1
            target = _tmp_path(parts_dir / f"mel-merge-{scratch:06d}")
            stack.callback(target.unlink, missing_ok=True)
            with contextlib.ExitStack() as inner, open(target, "wb") as out:
                sources = [inner.enter_context(open(path, "rb")) for path in group]
                rows = mel.merge(mel.read_part(source) for source in sources)
                out.writelines(mel.encode_part_rows(rows))
            merged.append(target)
        paths = merged
    return [stack.enter_context(open(path, "rb")) for path in paths]


# ----------------------------------------------------------------------------------------------
# Joining


class _Sink:
    """A final file being written (a temporary file of a _Batch): running sha256, size, lines.

    Parts are copied in the kernel (copy_file_range) and hashed from the page cache through one
    reused buffer: on the VMs this runs on, fresh user-space buffers and write() of fresh pages
    cost far more than the hashing itself.
    """

    def __init__(self, batch: _Batch, out_dir: Path, name: str) -> None:
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = batch.open(path, buffering=0)
        self.hash = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def write(self, data: bytes) -> None:
        if data:
            view = memoryview(data)
            while view:
                view = view[self.file.write(view) :]
            self.hash.update(data)
            self.size += len(data)
            self.lines += data.count(b"\n")

    def copy(self, path: Path) -> None:
        buffer = _block_buffer()
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

    def output(self, name: str, fmt: str, records: int | None) -> OutputFile:
        return OutputFile(name, fmt, self.size, self.hash.hexdigest(), records)


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


def _write_data(batch: _Batch, out_dir: Path, name: str, fmt: str, data: bytes) -> OutputFile:
    sink = _Sink(batch, out_dir, name)
    sink.write(data)
    return sink.output(name, fmt, sink.lines if fmt == "fhir" else None)


def _join(
    batch: _Batch, out_dir: Path, spec: _Spec, parts: list[Path], patients: int
) -> OutputFile:
    sink = _Sink(batch, out_dir, spec.name)
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
    return sink.output(spec.name, spec.format, sink.lines if spec.records == "lines" else patients)


def _join_index(
    batch: _Batch, out_dir: Path, index_parts: list[Path], ndjson_parts: list[Path]
) -> OutputFile:
    sink = _Sink(batch, out_dir, ndjson_format.INDEX_FILE)
    base = 0
    records = 0
    for index_part, ndjson_part in zip(index_parts, ndjson_parts, strict=True):
        offsets = ndjson_format.offsets_from_bytes(index_part.read_bytes())
        if base:
            offsets = array("Q", [offset + base for offset in offsets])
        sink.write(ndjson_format.offsets_to_bytes(offsets))
        records += len(offsets)
        base += ndjson_part.stat().st_size
    return sink.output(ndjson_format.INDEX_FILE, "index", records)


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
    files = [OutputFile(**entry) for entry in manifest.listed(found)]
    for f in files:
        path = out_dir / f.name
        if not path.is_file() or path.stat().st_size != f.bytes:
            return None
    data = (out_dir / MANIFEST_FILE).read_bytes()
    return [*files, _manifest_entry(data)]


def _remove_own_leftovers(out_dir: Path, names: list[str], owner: str) -> None:
    """Remove the temporary files that earlier, interrupted attempts of this run left in out_dir.

    Only names this run itself would write (a final name of its formats, its run mark) of an
    attempt no later than this one (`owner` is `<run>.<attempt>`): a user's own files, outputs of
    other formats or other runs, and other writers' temporary files stay as they are (`generate
    --out DIR` may point at a folder holding anything), and so do those of a later attempt: a
    worker paused past its lease that wakes inside finalize leaves its successor's files alone.
    """
    run, _, attempt = owner.rpartition(".")
    wanted: dict[Path, list[str]] = {}
    for name in names:
        path = out_dir / name
        wanted.setdefault(path.parent, []).append(f"{path.name}.tmp-{run}")
    for folder, prefixes in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(tuple(prefixes)) or not entry.is_file(
                follow_symlinks=False
            ):
                continue
            rest = entry.name.rpartition(f".tmp-{run}")[2]  # ".<attempt>-pid-thread"
            theirs = rest[1:].partition("-")[0] if rest.startswith(".") else "0"  # 0: unmarked
            if theirs.isdigit() and int(theirs) <= int(attempt):
                Path(entry.path).unlink(missing_ok=True)


def finalize(
    scenario: Scenario,
    formats: Sequence[str],
    parts_dir: Path,
    out_dir: Path,
    chunk_summaries: list[dict[str, Any]],
    *,
    merged: dict[str, Any] | None = None,
    attempt: int = 0,
) -> list[OutputFile]:
    """Join the parts of chunks 0..len(chunk_summaries)-1 into the final files in out_dir.
    `merged`: merge_summaries(chunk_summaries), when the caller has it already. `attempt`: which
    attempt of the run this is (a job's attempt number; it only ever grows): the temporary files
    of earlier attempts are removed, those of later ones never.

    Writes summary.json and manifest.json (last). parts_dir is left for the caller to remove
    once the run is recorded as finished (the job layer does it inside its fenced completion,
    jobs/files.py: a worker that lost its lease must never remove another's parts).
    Idempotent: calling it again after a crash half-way through finishes the job, and calling
    it after it finished returns the same files. out_dir may hold other files (`generate --out
    DIR`): finalize replaces only the files of the formats asked for and removes only the
    temporary files of its own earlier attempts (those that carry parts_dir's mark).

    A one-chunk run whose chunk was written whole (see write_chunk) has its final files in
    parts_dir already: they are renamed into out_dir (copied where out_dir is on another
    filesystem), so its files are written once.
    """
    formats = normalize_formats(formats)
    parts_dir = Path(parts_dir)
    out_dir = Path(out_dir)
    n_chunks = len(chunk_summaries)
    if n_chunks == 1 and _whole_path(parts_dir, MANIFEST_FILE).is_file():
        try:
            return _finalize_whole(
                scenario, formats, parts_dir, out_dir, chunk_summaries, merged, attempt
            )
        except FileNotFoundError:  # the parts folder of a finished run, partly removed
            done = _finished(scenario, formats, out_dir)
            if done is None:
                raise
            return done
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
            return done
        raise FileNotFoundError(f"missing part file {missing[0]} (and {len(missing) - 1} more)")

    if "ndjson" in formats:  # the index parts count the chunk's records: they must match
        for chunk, chunk_summary in enumerate(chunk_summaries):
            for name, size in (
                (ndjson_format.INDEX_FILE, ndjson_format.OFFSET_SIZE),
                (attributes.FILE, attributes.RECORD_SIZE),
            ):
                records = _part_path(parts_dir, chunk, name).stat().st_size // size
                if records != chunk_summary.get("patients"):
                    raise ValueError(
                        f"part files of chunk {chunk} hold {records} patients, its summary "
                        f"says {chunk_summary.get('patients')}"
                    )
    out_dir.mkdir(parents=True, exist_ok=True)
    owner = _owner_mark(parts_dir, attempt)
    _remove_own_leftovers(out_dir, _final_names(formats), owner)
    if merged is None:
        merged = summary.merge_summaries(chunk_summaries)
    patients = merged["patients"]
    files: list[OutputFile] = []
    batch = _Batch(owner)
    try:
        for spec in _specs(formats, _has_chain(scenario)):
            parts = [_part_path(parts_dir, chunk, spec.name) for chunk in range(n_chunks)]
            files.append(_join(batch, out_dir, spec, parts, patients))
        if "ndjson" in formats:
            files.append(
                _join_index(
                    batch,
                    out_dir,
                    [_part_path(parts_dir, c, ndjson_format.INDEX_FILE) for c in range(n_chunks)],
                    [_part_path(parts_dir, c, ndjson_format.FILE) for c in range(n_chunks)],
                )
            )
            data = attributes.dictionary_bytes(scenario)
            files.append(
                _write_data(batch, out_dir, attributes.DICTIONARY_FILE, attributes.FORMAT, data)
            )
        if "fhir" in formats:
            facilities = [(fid, entry["role"]) for fid, entry in merged["facilities"].items()]
            organizations, locations = fhir.facility_resources(facilities)
            for resource_type, data in (("Organization", organizations), ("Location", locations)):
                files.append(_write_data(batch, out_dir, fhir.FILES[resource_type], "fhir", data))
        for fmt, name in _EXERCISE:
            if fmt not in formats:
                continue
            paths = [_part_path(parts_dir, chunk, name) for chunk in range(n_chunks)]
            sink = _Sink(batch, out_dir, name)
            with contextlib.ExitStack() as stack:
                if fmt == "mel":
                    sources = _merged_mel_parts(stack, parts_dir, paths)
                else:  # read one after the other: one part open at a time
                    sources = [_lines(path) for path in paths]
                records = _write_exercise(fmt, sink.write, sources, patients)
            files.append(sink.output(name, fmt, records))
        summary_bytes = orjson.dumps(merged, option=_SUMMARY_OPTIONS) + b"\n"
        files.append(_write_data(batch, out_dir, SUMMARY_FILE, "summary", summary_bytes))
        manifest_bytes = manifest.encode(
            manifest.build(scenario, formats, patients, [f.as_dict() for f in files])
        )
        # opened last, so renamed last: a manifest is never there before every file it lists
        files.append(_write_data(batch, out_dir, MANIFEST_FILE, "manifest", manifest_bytes))
        batch.commit()
    except BaseException:
        batch.abort()
        raise
    return _manifest_order(files)


def _finalize_whole(
    scenario: Scenario,
    formats: tuple[str, ...],
    parts_dir: Path,
    out_dir: Path,
    chunk_summaries: list[dict[str, Any]],
    merged: dict[str, Any] | None,
    attempt: int,
) -> list[OutputFile]:
    """finalize of a one-chunk run written whole: move its final files into out_dir.

    Renamed in order, manifest last, then each output folder fsynced once. A crash half-way
    leaves each file either in parts_dir or in out_dir; the next call moves the rest (a file
    already moved is recognised by its size and sha256 in the manifest, still in parts_dir).
    """
    manifest_bytes = _whole_path(parts_dir, MANIFEST_FILE).read_bytes()
    found = orjson.loads(manifest_bytes)
    if not manifest.matches(found, scenario, formats):
        raise ValueError("the part files of chunk 0 were written for another input")
    files = [OutputFile(**entry) for entry in manifest.listed(found)]
    listed = {f.name: f for f in files}
    if merged is None:
        merged = summary.merge_summaries(chunk_summaries)
    summary_bytes = orjson.dumps(merged, option=_SUMMARY_OPTIONS) + b"\n"
    if hashlib.sha256(summary_bytes).hexdigest() != listed[SUMMARY_FILE].sha256:
        raise ValueError("the part files of chunk 0 do not match its summary")
    own = listed[MANIFEST_FILE] = _manifest_entry(manifest_bytes)
    owner = _owner_mark(parts_dir, attempt)
    names = _final_names(formats)  # the manifest last: never there before what it lists
    _remove_own_leftovers(out_dir, names, owner)
    folders = dict.fromkeys((out_dir / name).parent for name in names)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        target = out_dir / name
        try:
            _move(_whole_path(parts_dir, name), target)
        except FileNotFoundError:
            if not _is_copy_of(target, listed[name]):
                raise
        except OSError as exc:
            if exc.errno not in _NO_RENAME:
                raise
            _copy_whole(parts_dir, out_dir, names[i:], owner)
            break
    else:
        for folder in folders:
            _fsync_dir(folder)
    return [*files, own]


#: rename() cannot move a file there: out_dir is on another filesystem; copy instead.
_NO_RENAME = frozenset({errno.EXDEV})


def _move(source: Path, target: Path) -> None:
    """Rename the complete, fsynced file `source` onto `target` (atomically)."""
    os.replace(source, target)


def _is_copy_of(path: Path, expected: OutputFile) -> bool:
    """True when `path` holds exactly the bytes `expected` describes."""
    try:
        if path.stat().st_size != expected.bytes:
            return False
        digest = hashlib.sha256()
        buffer = _block_buffer()
        view = memoryview(buffer)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buffer):
                digest.update(view[:n])
    except OSError:
        return False
    return digest.hexdigest() == expected.sha256


def _copy_whole(parts_dir: Path, out_dir: Path, names: list[str], owner: str) -> None:
    """The final files of a one-chunk run copied into out_dir (on another filesystem)."""
    batch = _Batch(owner)
    try:
        for name in names:
            _Sink(batch, out_dir, name).copy(_whole_path(parts_dir, name))
        batch.commit()
    except BaseException:
        batch.abort()
        raise


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
    files = finalize(scenario, formats, parts_dir, out_dir, summaries)
    shutil.rmtree(parts_dir, ignore_errors=True)  # in-process run: nobody else holds it
    return files


def iter_index(out_dir: Path) -> Iterator[int]:
    """Every record offset of out_dir/patients.ndjson.idx, in order."""
    with open(Path(out_dir) / ndjson_format.INDEX_FILE, "rb") as f:
        while block := f.read(8 * 65536):
            yield from ndjson_format.offsets_from_bytes(block)


class Records(Protocol):
    """Where the bytes of patients.ndjson are read: a local file (FileRecords), or elsewhere (an
    object in shared storage, jobs/files.py)."""

    def size(self) -> int: ...

    def read(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        """The bytes at each (offset, length), in the order given."""
        ...


class FileRecords:
    """patients.ndjson in a folder: one pread per span."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        return self.path.stat().st_size

    def read(self, spans: Sequence[tuple[int, int]]) -> list[bytes]:
        with open(self.path, "rb", buffering=0) as f:
            return [os.pread(f.fileno(), length, offset) for offset, length in spans]


def read_patients(
    out_dir: Path, offset: int, limit: int, records: Records | None = None
) -> list[bytes]:
    """Records offset..offset+limit-1 of patients.ndjson (JSON bytes, no newline), via the index
    in out_dir; the NDJSON is read from `records` (default: the file in out_dir).

    Reads only the index entries and the bytes of the page, in one read; past the end gives
    fewer (or no) records.
    """
    if offset < 0 or limit < 0:
        raise ValueError(f"offset and limit must not be negative, got {offset}, {limit}")
    out_dir = Path(out_dir)
    data = records or FileRecords(out_dir / ndjson_format.FILE)
    index_path = out_dir / ndjson_format.INDEX_FILE
    count = index_path.stat().st_size // ndjson_format.OFFSET_SIZE
    if limit == 0 or offset >= count:
        return []
    end = min(count, offset + limit)
    with open(index_path, "rb") as f:
        f.seek(ndjson_format.OFFSET_SIZE * offset)
        wanted = end - offset + (1 if end < count else 0)
        offsets = ndjson_format.offsets_from_bytes(f.read(ndjson_format.OFFSET_SIZE * wanted))
    first = offsets[0]
    last = offsets[end - offset] if end < count else data.size()
    (blob,) = data.read([(first, last - first)])
    return blob.split(b"\n")[:-1]


def read_records(
    out_dir: Path, positions: Sequence[int], records: Records | None = None
) -> list[bytes]:
    """Records at these positions of patients.ndjson (JSON bytes, no newline), in the order
    given: each located through the offsets index in out_dir, all read in one call of
    `records` (default: the file in out_dir)."""
    out_dir = Path(out_dir)
    data = records or FileRecords(out_dir / ndjson_format.FILE)
    size = ndjson_format.OFFSET_SIZE
    spans = []
    with open(out_dir / ndjson_format.INDEX_FILE, "rb", buffering=0) as index:
        count = os.fstat(index.fileno()).st_size // size
        for position in positions:
            if not 0 <= position < count:
                raise IndexError(f"no record {position} (the file holds {count})")
            wanted = 2 if position + 1 < count else 1  # the last record ends with the file
            offsets = ndjson_format.offsets_from_bytes(
                os.pread(index.fileno(), size * wanted, size * position)
            )
            last = offsets[1] if wanted == 2 else data.size()
            spans.append((offsets[0], last - offsets[0]))
    return [record.rstrip(b"\n") for record in data.read(spans)]
