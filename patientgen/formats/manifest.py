"""`manifest.json`: what a run produced and from what, with nothing time-dependent in it.

It lists every output file (bytes, sha256, record count) except itself, the scenario, the seed,
the formats and the generator version, so two runs of the same input give the same manifest.
"""

from __future__ import annotations

from typing import Any

import orjson

from patientgen.scenario import Scenario

FILE = "manifest.json"
MANIFEST_VERSION = 1
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z


def generator_version() -> str:
    """The generator's version string (it changes whenever the output for one input changes)."""
    from patientgen import generator

    return str(getattr(generator, "GENERATOR_VERSION", "unknown"))


def build(
    scenario: Scenario, formats: tuple[str, ...], patients: int, files: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator_version": generator_version(),
        "scenario": scenario.model_dump(mode="json"),
        "seed": scenario.seed,
        "patients": patients,
        "formats": list(formats),
        "files": files,
    }


def encode(manifest: dict[str, Any]) -> bytes:
    return orjson.dumps(manifest, option=OPTIONS) + b"\n"


def matches(manifest: dict[str, Any], scenario: Scenario, formats: tuple[str, ...]) -> bool:
    """True when `manifest` describes a finished run of exactly this input."""
    return (
        manifest.get("manifest_version") == MANIFEST_VERSION
        and manifest.get("generator_version") == generator_version()
        and manifest.get("scenario") == scenario.model_dump(mode="json")
        and manifest.get("formats") == list(formats)
    )
