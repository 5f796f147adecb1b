"""`manifest.json`: what a run produced and from what, with nothing time-dependent in it.

It lists every output file (bytes, sha256, record count) except itself, the scenario, the seed,
the formats, the generator version and the Faker version (names are drawn from Faker's word lists,
so byte-identical output needs the same Faker release), so two runs of the same input give the
same manifest.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import version
from typing import Any

import orjson

from patientgen.generator import GENERATOR_VERSION
from patientgen.scenario import Scenario

FILE = "manifest.json"
MANIFEST_VERSION = 1
OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2 | orjson.OPT_UTC_Z


@cache
def faker_version() -> str:
    """The installed Faker release: the source of every name pool."""
    return version("faker")


def build(
    scenario: Scenario, formats: tuple[str, ...], patients: int, files: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "generator_version": GENERATOR_VERSION,
        "faker_version": faker_version(),
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
        and manifest.get("generator_version") == GENERATOR_VERSION
        and manifest.get("faker_version") == faker_version()
        and manifest.get("scenario") == scenario.model_dump(mode="json")
        and manifest.get("formats") == list(formats)
    )
