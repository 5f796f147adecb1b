"""Joining a run: finalize joins the parts in chunk order into the final files and writes
`summary.json` and `manifest.json`, the manifest last (a manifest is never there before every
file it lists). A one-chunk run written whole (write.py) has its final files ready: they are
renamed into the output folder (copied where it is on another filesystem).

The joined files never depend on the chunking: separators (the JSON array's brackets and commas,
the CSV header) are written here, at join time, and the exercise files are merged from their
parts (exercise.py). Joins copy the parts in fixed-size blocks (disk.Sink).

The output folder may hold files that are not the run's (`generate --out DIR`): finalize
replaces the files of the formats asked for and removes nothing but its own leftovers (the
temporary files of its own earlier attempts, disk.remove_own_leftovers). It leaves the parts
folder for its caller to remove.
"""

from __future__ import annotations

import contextlib
import hashlib
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from patientgen.formats import attributes, fhir, manifest, summary
from patientgen.formats import ndjson as ndjson_format
from patientgen.formats.bundle import disk
from patientgen.formats.bundle.chain import care_chain
from patientgen.formats.bundle.exercise import merged_mel_parts, part_lines, write_exercise
from patientgen.formats.bundle.layout import (
    EXERCISE,
    MANIFEST_FILE,
    SUMMARY_FILE,
    OutputFile,
    Spec,
    chunk_part_names,
    final_names,
    has_chain,
    manifest_entry,
    manifest_order,
    normalize_formats,
    owner_mark,
    part_path,
    specs,
    summary_bytes,
    whole_path,
)
from patientgen.scenario import Scenario


def _has_whole(parts_dir: Path, formats: tuple[str, ...]) -> bool:
    return all(whole_path(parts_dir, name).is_file() for name in final_names(formats))


def missing_chunks(parts_dir: Path, formats: Sequence[str], chunks: Iterable[int]) -> list[int]:
    """The chunks among `chunks` some of whose part files are not in parts_dir (removed after a
    failure that could not be recorded, or written on another host): write them again."""
    formats = normalize_formats(formats)
    names = chunk_part_names(formats)
    parts_dir = Path(parts_dir)
    return sorted(
        chunk
        for chunk in chunks
        if not all(part_path(parts_dir, chunk, name).is_file() for name in names)
        and not (chunk == 0 and _has_whole(parts_dir, formats))
    )


def is_finished(scenario: Scenario, formats: Sequence[str], out_dir: Path) -> bool:
    """True when out_dir holds a finished run of exactly this input (finalize returns it)."""
    return _finished(scenario, normalize_formats(formats), Path(out_dir)) is not None


def _write_data(batch: disk.Batch, out_dir: Path, name: str, fmt: str, data: bytes) -> OutputFile:
    sink = disk.Sink(batch, out_dir, name)
    sink.write(data)
    return sink.output(name, fmt, sink.lines if fmt == "fhir" else None)


def _join(
    batch: disk.Batch, out_dir: Path, spec: Spec, parts: list[Path], patients: int
) -> OutputFile:
    sink = disk.Sink(batch, out_dir, spec.name)
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
    batch: disk.Batch, out_dir: Path, index_parts: list[Path], ndjson_parts: list[Path]
) -> OutputFile:
    sink = disk.Sink(batch, out_dir, ndjson_format.INDEX_FILE)
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
    return [*files, manifest_entry(data)]


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

    Writes summary.json, with the per-hour series of the care-chain result (read from the
    parts folder's checkpoint, or computed again, when this process does not hold it), and
    manifest.json (last). parts_dir is left for the caller to remove
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
    if n_chunks == 1 and whole_path(parts_dir, MANIFEST_FILE).is_file():
        try:
            return _finalize_whole(
                scenario, formats, parts_dir, out_dir, chunk_summaries, merged, attempt
            )
        except FileNotFoundError:  # the parts folder of a finished run, partly removed
            done = _finished(scenario, formats, out_dir)
            if done is None:
                raise
            return done
    done = _check_parts(scenario, formats, parts_dir, out_dir, chunk_summaries)
    if done is not None:
        return done
    disk.make_folders([out_dir])
    owner = owner_mark(parts_dir, attempt)
    disk.remove_own_leftovers(out_dir, final_names(formats), owner)
    if merged is None:
        merged = summary.merge_summaries(chunk_summaries)
    batch = disk.Batch(owner)
    try:
        chain = _chain_statistics(scenario, parts_dir)
        files = _write_final(batch, scenario, formats, parts_dir, out_dir, n_chunks, merged, chain)
        batch.commit()
    except BaseException:
        batch.abort()
        raise
    return manifest_order(files)


def _check_parts(
    scenario: Scenario,
    formats: tuple[str, ...],
    parts_dir: Path,
    out_dir: Path,
    chunk_summaries: list[dict[str, Any]],
) -> list[OutputFile] | None:
    """None when every part file of every chunk is there and the index parts count the
    patients each chunk's summary says; the final files when some parts are gone because the
    run was finalized already. Raises FileNotFoundError or ValueError otherwise."""
    n_chunks = len(chunk_summaries)
    part_names = chunk_part_names(formats)
    missing = [
        path
        for chunk in range(n_chunks)
        for name in part_names
        if not (path := part_path(parts_dir, chunk, name)).is_file()
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
                records = part_path(parts_dir, chunk, name).stat().st_size // size
                if records != chunk_summary.get("patients"):
                    raise ValueError(
                        f"part files of chunk {chunk} hold {records} patients, its summary "
                        f"says {chunk_summary.get('patients')}"
                    )
    return None


def _write_final(
    batch: disk.Batch,
    scenario: Scenario,
    formats: tuple[str, ...],
    parts_dir: Path,
    out_dir: Path,
    n_chunks: int,
    merged: dict[str, Any],
    chain: dict[str, Any] | None,
) -> list[OutputFile]:
    """Every final file of the run into `batch` (committed by the caller): each streaming
    format's parts joined, the NDJSON index and attribute dictionary, the FHIR facilities, the
    exercise formats, then summary.json and, opened last so renamed last, manifest.json."""
    patients = merged["patients"]
    files: list[OutputFile] = []
    for spec in specs(formats, has_chain(scenario)):
        parts = [part_path(parts_dir, chunk, spec.name) for chunk in range(n_chunks)]
        files.append(_join(batch, out_dir, spec, parts, patients))
    if "ndjson" in formats:
        files.append(
            _join_index(
                batch,
                out_dir,
                [part_path(parts_dir, c, ndjson_format.INDEX_FILE) for c in range(n_chunks)],
                [part_path(parts_dir, c, ndjson_format.FILE) for c in range(n_chunks)],
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
    for fmt, name in EXERCISE:
        if fmt not in formats:
            continue
        paths = [part_path(parts_dir, chunk, name) for chunk in range(n_chunks)]
        sink = disk.Sink(batch, out_dir, name)
        with contextlib.ExitStack() as stack:
            if fmt == "mel":
                sources = merged_mel_parts(stack, parts_dir, paths)
            else:  # read one after the other: one part open at a time
                sources = [part_lines(path) for path in paths]
            records = write_exercise(fmt, sink.write, sources, patients)
        files.append(sink.output(name, fmt, records))
    data = summary_bytes(merged, chain)
    files.append(_write_data(batch, out_dir, SUMMARY_FILE, "summary", data))
    manifest_bytes = manifest.encode(
        manifest.build(scenario, formats, patients, [f.as_dict() for f in files])
    )
    # opened last, so renamed last: a manifest is never there before every file it lists
    files.append(_write_data(batch, out_dir, MANIFEST_FILE, "manifest", manifest_bytes))
    return files


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
    manifest_bytes = whole_path(parts_dir, MANIFEST_FILE).read_bytes()
    found = orjson.loads(manifest_bytes)
    if not manifest.matches(found, scenario, formats):
        raise ValueError("the part files of chunk 0 were written for another input")
    files = [OutputFile(**entry) for entry in manifest.listed(found)]
    listed = {f.name: f for f in files}
    if merged is None:
        merged = summary.merge_summaries(chunk_summaries)
    data = summary_bytes(merged, _chain_statistics(scenario, parts_dir))
    if hashlib.sha256(data).hexdigest() != listed[SUMMARY_FILE].sha256:
        raise ValueError("the part files of chunk 0 do not match its summary")
    own = listed[MANIFEST_FILE] = manifest_entry(manifest_bytes)
    owner = owner_mark(parts_dir, attempt)
    names = final_names(formats)  # the manifest last: never there before what it lists
    disk.remove_own_leftovers(out_dir, names, owner)
    folders = list(dict.fromkeys((out_dir / name).parent for name in names))
    disk.make_folders(folders)
    for i, name in enumerate(names):
        target = out_dir / name
        try:
            disk.move(whole_path(parts_dir, name), target)
        except FileNotFoundError:
            if not disk.is_copy_of(target, listed[name]):
                raise
        except OSError as exc:
            if exc.errno not in disk.NO_RENAME:
                raise
            _copy_whole(parts_dir, out_dir, names[i:], owner)
            break
    else:
        for folder in folders:
            disk.fsync_dir(folder)
    return [*files, own]


def _copy_whole(parts_dir: Path, out_dir: Path, names: list[str], owner: str) -> None:
    """The final files of a one-chunk run copied into out_dir (on another filesystem)."""
    batch = disk.Batch(owner)
    try:
        for name in names:
            disk.Sink(batch, out_dir, name).copy(whole_path(parts_dir, name))
        batch.commit()
    except BaseException:
        batch.abort()
        raise


def _chain_statistics(scenario: Scenario, parts_dir: Path) -> dict[str, Any] | None:
    """The care-chain statistics of the run (None without a medical plan), for summary.json."""
    flow = care_chain(scenario, parts_dir)
    return None if flow is None else flow.statistics


def merge_summaries(chunk_summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Merge chunk summaries into the summary of the whole run (see formats.summary)."""
    return summary.merge_summaries(chunk_summaries)
