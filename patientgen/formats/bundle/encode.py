"""Patients encoded into the records of every streaming format of a run, written into files the
caller opened (a chunk's parts, or a one-chunk run's final files).

The joined files never depend on the chunking: the separators (the JSON array's brackets and
commas, the CSV header) are not written here but at join time (join.py), or by the caller of a
one-chunk run. Memory does not grow with the number of patients: patients are streamed from the
generator into buffered files; a chunk holds only its own injects and cards until it writes their
parts (one chunk's worth).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from patientgen.formats import attributes, cards, fhir, hl7, mel, summary
from patientgen.formats import csv as csv_format
from patientgen.formats import json as json_format
from patientgen.formats import ndjson as ndjson_format
from patientgen.formats.bundle.layout import has_chain
from patientgen.generator.patient import Patient
from patientgen.scenario import Scenario

_CSV_BATCH = 256
#: Every so many patients the files' writeback is started (disk.start_writeback): the disk then
#: works while the CPU generates.
_WRITEBACK_EVERY = 2048  # patients


def write_records(
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
    chain = has_chain(scenario)
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
