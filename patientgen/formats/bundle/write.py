"""Writing a run's patients: one chunk's part files (write_chunk), or a one-chunk run whole.

A run is split into chunks of patients. `write_chunk` writes each requested format's *part*
files for one chunk into a parts folder. Chunks can be written in any order, by any process, and
rewritten after a crash: a part is written under a temporary name, fsynced and renamed (disk.py),
so a leftover temporary file is never taken for a part, and the same chunk always gives the same
bytes.

The only chunk of a one-chunk run is written whole: its part files are the run's final files
(summary and manifest included, each exactly as a join of one ordinary part would write it), and
finalize renames them into the output folder, so a small job writes each byte once. Several small
runs can be written whole in one batch straight into their output folders (write_runs), so the
disk is waited for once per batch rather than per file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from patientgen.formats import attributes, fhir, manifest, summary
from patientgen.formats import ndjson as ndjson_format
from patientgen.formats.bundle import disk
from patientgen.formats.bundle.chain import care_chain
from patientgen.formats.bundle.encode import write_records
from patientgen.formats.bundle.exercise import write_exercise
from patientgen.formats.bundle.layout import (
    EXERCISE,
    MANIFEST_FILE,
    SUMMARY_FILE,
    OutputFile,
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
from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario


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
        disk.make_folders([parts_dir])
    if whole and chunk != 0:
        raise ValueError("only chunk 0 can be written whole")
    names = chunk_part_names(formats)
    # No fsync of the parts folder: a part is fsynced before it is renamed, so a part name that
    # survives a crash names a whole part; a name lost in a crash is a missing part, and the
    # runner writes such a chunk again (missing_chunks).
    batch = disk.Batch(sync_folders=False)
    try:
        if whole:
            chunk_summary, _, _ = _write_whole(
                scenario,
                formats,
                patients,
                expected,
                batch,
                lambda n: whole_path(parts_dir, n),
                chain=chain,
            )
        else:
            files = {name: batch.open(part_path(parts_dir, chunk, name)) for name in names}
            builder = summary.SummaryBuilder(scenario, chain)
            exercise = write_records(scenario, formats, files, patients, builder, batch.writeback)
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
    batch: disk.Batch,
    place: Callable[[str], Path],
    owner: str | None = None,
    chain: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[OutputFile]]:
    """The final files of a one-chunk run, opened in `batch` for final names place(name) (its
    temporary names marked `owner`). Returns the chunk's summary, the run's (merged) summary and
    the run's files, manifest last."""
    files = {name: batch.open(place(name), owner=owner) for name in chunk_part_names(formats)}
    builder = summary.SummaryBuilder(scenario, chain)
    for spec in specs(formats, has_chain(scenario)):
        files[spec.name].write(spec.prefix)
    exercise = write_records(scenario, formats, files, patients, builder, batch.writeback)
    _check_count(builder, expected, 0)
    chunk_summary = builder.to_dict()
    merged, listed = _finish_whole(
        scenario, formats, batch, files, exercise, chunk_summary, place, owner, chain
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

    batch = disk.Batch()
    results: list[tuple[dict[str, Any], list[OutputFile]]] = []
    try:
        for run in runs:
            formats = normalize_formats(run.formats)
            out_dir = Path(run.out_dir)
            disk.make_folders((out_dir / name).parent for name in final_names(formats))
            flow = care_chain(run.scenario, None)
            _, merged, listed = _write_whole(
                run.scenario,
                formats,
                generate(run.scenario, 0, run.scenario.total_patients, flow),
                run.scenario.total_patients,
                batch,
                out_dir.joinpath,
                owner_mark(run.parts_dir, run.attempt),
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
    batch: disk.Batch,
    files: dict[str, Any],
    exercise: dict[str, bytes],
    chunk_summary: dict[str, Any],
    place: Callable[[str], Path],
    owner: str | None,
    chain: dict[str, Any] | None,
) -> tuple[dict[str, Any], list[OutputFile]]:
    """Complete the final files of a one-chunk run: the JSON array's end (or the empty forms),
    the facility resources, the exercise files from their one part (`exercise`), summary.json
    (with the per-hour series of the care-chain statistics `chain`) and manifest.json, each
    exactly as finalize's join of one ordinary part would write it. Returns the merged summary
    (without the series, as the job stores it) and the files."""
    patients = chunk_summary["patients"]
    for spec in specs(formats, has_chain(scenario)):
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
    for spec in specs(formats):
        size, sha, lines = disk.digest(files[spec.name])
        records = lines if spec.records == "lines" else patients
        listed.append(OutputFile(spec.name, spec.format, size, sha, records))
    if "ndjson" in formats:
        size, sha, _ = disk.digest(files[ndjson_format.INDEX_FILE])
        listed.append(
            OutputFile(
                ndjson_format.INDEX_FILE, "index", size, sha, size // ndjson_format.OFFSET_SIZE
            )
        )
        data = attributes.dictionary_bytes(scenario)
        extra.insert(0, (attributes.DICTIONARY_FILE, attributes.FORMAT, data, False))
    whole_summary = summary_bytes(merged, chain)
    for name, fmt, data, count in extra:
        disk.write_raw(batch.open(place(name), buffering=0, owner=owner), data)
        records = data.count(b"\n") if count else None
        listed.append(OutputFile(name, fmt, len(data), hashlib.sha256(data).hexdigest(), records))
    for fmt, name in EXERCISE:
        if fmt in formats:
            f = files[name]
            records = write_exercise(fmt, f.write, [exercise[name].splitlines()], patients)
            size, sha, _ = disk.digest(f)
            listed.append(OutputFile(name, fmt, size, sha, records))
    disk.write_raw(batch.open(place(SUMMARY_FILE), buffering=0, owner=owner), whole_summary)
    listed.append(
        OutputFile(
            SUMMARY_FILE,
            "summary",
            len(whole_summary),
            hashlib.sha256(whole_summary).hexdigest(),
            None,
        )
    )
    manifest_bytes = manifest.encode(
        manifest.build(scenario, formats, patients, [f.as_dict() for f in listed])
    )
    disk.write_raw(batch.open(place(MANIFEST_FILE), buffering=0, owner=owner), manifest_bytes)
    return merged, manifest_order([*listed, manifest_entry(manifest_bytes)])
