"""Streaming writers: patients -> files (JSON, NDJSON, CSV, FHIR R4 bulk NDJSON, FHIR R4
transaction bundles, HL7 v2 ADT messages, and the exercise package: an inject list and casualty
cards).

`bundle` is the one module that writes files; the format modules only turn patients into bytes.
Every format writes a range of patients as a *part* and the parts join into the final file, so the
joined bytes never depend on how the range was chunked.
"""

from __future__ import annotations

#: Every format, in canonical order.
FORMATS: tuple[str, ...] = (
    "json", "ndjson", "csv", "fhir", "fhir-bundle", "hl7", "mel", "cards",
)  # fmt: skip
#: What a job writes when it names no formats (the bundles repeat the bulk FHIR output, the
#: HL7 messages are for a tracking system, the inject list (`mel`) and casualty cards (`cards`)
#: for an exercise: on request only).
DEFAULT_FORMATS: tuple[str, ...] = ("json", "ndjson", "csv", "fhir")

__all__ = ["DEFAULT_FORMATS", "FORMATS"]
