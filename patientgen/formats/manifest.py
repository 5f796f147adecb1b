"""`manifest.json`: what a run produced and from what, with nothing time-dependent in it.

It lists every output file (bytes, sha256, record count) except itself under `files`, the run's
internal files (the indexes of patients.ndjson, which are no output) under `internal_files`, the
scenario, the seed,
the formats, the generator version and the Faker version (names are drawn from Faker's word lists,
so byte-identical output needs the same Faker release), so two runs of the same input give the
same manifest.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from typing import Any

import orjson

from patientgen.formats.attributes import INTERNAL_FORMATS
from patientgen.generator import GENERATOR_VERSION
from patientgen.scenario import Scenario

FILE = "manifest.json"
MANIFEST_VERSION = 2  # 2: internal files listed apart
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z


@cache
def faker_version() -> str:
    """The installed Faker release: the source of every name pool."""
    return version("faker")


def build(
    scenario: Scenario, formats: tuple[str, ...], patients: int, files: list[dict[str, Any]]
) -> dict[str, Any]:
    """The manifest of a run that wrote `files` (each file's dict: name, format, …)."""
    outputs = [f for f in files if f["format"] not in INTERNAL_FORMATS]
    internal = [f for f in files if f["format"] in INTERNAL_FORMATS]
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator_version": GENERATOR_VERSION,
        "faker_version": faker_version(),
        "scenario": scenario.model_dump(mode="json"),
        "seed": scenario.seed,
        "patients": patients,
        "formats": list(formats),
        "files": outputs,
        "internal_files": internal,
    }


def listed(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file the manifest lists: outputs, then internal files."""
    return [*manifest["files"], *manifest.get("internal_files", [])]


def encode(manifest: dict[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=OPTIONS) + b"\n"


def matches(manifest: dict[str, Any], scenario: Scenario, formats: tuple[str, ...]) -> bool:
    """True when `manifest` describes a finished run of exactly this input."""
    return (
        manifest.get("manifest_version") == MANIFEST_VERSION
        and manifest.get("generator_version") == GENERATOR_VERSION
        and manifest.get("faker_version") == faker_version()
        and manifest.get("scenario") == scenario.model_dump(mode="json")
        and manifest.get("formats") == list(formats)
    )
