"""The names of a run's files: final files, part files, temporary files; the formats a run asks
for, its chunks, and how each final file is joined from its parts. No I/O.

A part is named after its chunk (`000012.patients.ndjson`): chunks can be written in any order,
by any process. The one chunk of a one-chunk run keeps the run's final files under
WHOLE_PREFIX names in the parts folder. A temporary name is unique per process and thread and
never taken for a part; in an output folder it also carries the run's owner mark (owner_mark),
so a run finds and removes the leftovers of its own earlier attempts and nothing else.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from patientgen.formats import FORMATS, attributes, cards, fhir, hl7, manifest, mel, summary
from patientgen.formats import csv as csv_format
from patientgen.formats import json as json_format
from patientgen.formats import ndjson as ndjson_format
from patientgen.scenario import Scenario

DEFAULT_CHUNK_SIZE = 10_000
SUMMARY_FILE = "summary.json"
MANIFEST_FILE = manifest.FILE
PARTS_DIRNAME = ".parts"
#: Part names of the final files of a one-chunk run, written whole by its only chunk.
WHOLE_PREFIX = "whole."
#: The exercise files (format, file), built from intermediate parts rather than concatenated.
EXERCISE: tuple[tuple[str, str], ...] = (("mel", mel.FILE), ("cards", cards.FILE))
#: How summary.json is encoded (the merged summary, see formats.summary).
SUMMARY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2


#: Stands for the per-hour series while the rest of summary.json is encoded (orjson writes the
#: NUL as \u0000: no other value of a summary can be written so).
_SERIES_MARK = "\x00series"


def summary_bytes(merged: dict[str, Any], chain: dict[str, Any] | None) -> bytes:
    """summary.json: the merged summary, indented, with the per-hour series of the care-chain
    statistics `chain` (None without a medical plan) put back (formats.summary.with_series),
    each unit's series on one line: indented one number per line, a year of 1,200 units made
    a 315 MB file, 42 MB as compact JSON."""
    series = None if chain is None else chain.get(summary.SERIES)
    if not series:
        return orjson.dumps(summary.with_series(merged, chain), option=SUMMARY_OPTIONS) + b"\n"
    marked = summary.with_series(merged, {summary.SERIES: _SERIES_MARK})
    data = orjson.dumps(marked, option=SUMMARY_OPTIONS) + b"\n"
    mark = orjson.dumps(_SERIES_MARK)
    at = data.find(mark)
    if at < 0:  # a summary without the simulation's statistics: nothing to put back
        return data
    indent = at - data.rindex(b"\n", 0, at) - 1 - len(orjson.dumps(summary.SERIES) + b": ")
    inner = b" " * (indent + 2)
    units = b",\n".join(
        inner + orjson.dumps(unit) + b": " + orjson.dumps(series[unit], option=orjson.OPT_SORT_KEYS)
        for unit in sorted(series)
    )
    value = b"{\n" + units + b"\n" + b" " * indent + b"}"
    return data[:at] + value + data[at + len(mark) :]


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
class Spec:
    """How one final file is joined from its parts."""

    name: str
    format: str
    prefix: bytes = b""
    separator: bytes = b""
    suffix: bytes = b""
    empty: bytes = b""
    records: str = "patients"  # "patients": one record per patient; "lines": count the lines


def has_chain(scenario: Scenario) -> bool:
    return scenario.medical_plan is not None


def specs(formats: tuple[str, ...], chain: bool = False) -> list[Spec]:
    """How each final file is joined; `chain`: the scenario has a medical plan (the CSV has the
    columns of the waits)."""
    specs: list[Spec] = []
    header = csv_format.CHAIN_HEADER if chain else csv_format.HEADER
    if "json" in formats:
        specs.append(
            Spec(
                json_format.FILE,
                "json",
                prefix=json_format.PREFIX,
                separator=json_format.SEPARATOR,
                suffix=json_format.SUFFIX,
                empty=json_format.EMPTY,
            )
        )
    if "ndjson" in formats:
        specs.append(Spec(ndjson_format.FILE, "ndjson"))
        # internal: the attribute index of patients.ndjson, its records simply concatenated
        specs.append(Spec(attributes.FILE, attributes.FORMAT))
    if "csv" in formats:
        specs.append(Spec(csv_format.FILE, "csv", prefix=header, empty=header))
    if "fhir" in formats:
        specs.extend(Spec(fhir.FILES[t], "fhir", records="lines") for t in fhir.PATIENT_TYPES)
    if "fhir-bundle" in formats:
        specs.append(Spec(fhir.BUNDLE_FILE, "fhir-bundle"))
    if "hl7" in formats:  # records: messages, one per line
        specs.append(Spec(hl7.FILE, "hl7", records="lines"))
    return specs


def final_names(formats: tuple[str, ...]) -> list[str]:
    """Every file finalize writes into the output folder for these formats, manifest last."""
    names = [spec.name for spec in specs(formats)]
    if "ndjson" in formats:
        names.extend((ndjson_format.INDEX_FILE, attributes.DICTIONARY_FILE))
    if "fhir" in formats:
        names.extend(fhir.FILES[t] for t in fhir.FACILITY_TYPES)
    names.extend(exercise_names(formats))
    return [*names, SUMMARY_FILE, MANIFEST_FILE]


def exercise_names(formats: tuple[str, ...]) -> list[str]:
    return [name for fmt, name in EXERCISE if fmt in formats]


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


def manifest_order(files: list[OutputFile]) -> list[OutputFile]:
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


def part_path(parts_dir: Path, chunk: int, name: str) -> Path:
    return parts_dir / part_name(chunk, name)


def part_name(chunk: int, name: str) -> str:
    return f"{chunk:06d}.{name.replace('/', '.')}"


def concatenations(formats: Sequence[str], chunks: int) -> dict[str, list[str]]:
    """The final files of a run of `chunks` chunks that are their chunks' part files end to end
    (no header, separator or footer), each with those parts' names in order: object storage may
    compose them from the parts without sending their bytes again."""
    return {
        spec.name: [part_name(chunk, spec.name) for chunk in range(chunks)]
        for spec in specs(normalize_formats(formats))
        if not (spec.prefix or spec.separator or spec.suffix or spec.empty)
    }


def chunk_files(formats: Sequence[str], chunk: int) -> list[str]:
    """The names of chunk `chunk`'s part files in a parts folder (written by write_chunk with
    whole=False)."""
    return [part_name(chunk, name) for name in chunk_part_names(normalize_formats(formats))]


def tmp_path(path: Path, owner: str = "") -> Path:
    """A temporary name next to `path`, unique per process and thread (never taken for a part).

    In an output folder, which may hold anything (`generate --out DIR`), it also carries the
    writer's `owner` mark (see owner_mark), so a run removes the leftovers of its own earlier
    attempts and nothing else.
    """
    mark = f"{owner}-" if owner else ""
    return path.with_name(f"{path.name}.tmp-{mark}{os.getpid()}-{threading.get_ident()}")


def owner_mark(parts_dir: Path, attempt: int = 0) -> str:
    """The mark of attempt `attempt` of the run whose parts are in parts_dir (a job's parts
    folder is its own): `<run>.<attempt>`."""
    run = hashlib.sha256(os.path.abspath(parts_dir).encode()).hexdigest()[:16]
    return f"{run}.{attempt}"


def chunk_part_names(formats: tuple[str, ...]) -> list[str]:
    names = [spec.name for spec in specs(formats)]
    if "ndjson" in formats:
        names.append(ndjson_format.INDEX_FILE)
    return [*names, *exercise_names(formats)]


def whole_path(parts_dir: Path, name: str) -> Path:
    """Where the one chunk of a one-chunk run keeps final file `name`, ready to be moved."""
    return parts_dir / f"{WHOLE_PREFIX}{name.replace('/', '.')}"


def manifest_entry(data: bytes) -> OutputFile:
    """The output-list entry of manifest.json holding `data` (it lists every file but itself)."""
    return OutputFile(MANIFEST_FILE, "manifest", len(data), hashlib.sha256(data).hexdigest(), None)
