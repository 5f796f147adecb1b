"""Shared helpers of the format tests: where patients come from, and file digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from patientgen.formats import bundle
from patientgen.scenario import Scenario

write_chunk = bundle.write_chunk


def run(
    scenario: Scenario, formats, out_dir: Path, ranges: list[tuple[int, int]], order=None
) -> list[bundle.OutputFile]:
    """Write the chunks `ranges` (in `order`, default as given) and finalize into out_dir."""
    parts_dir = out_dir.parent / f"{out_dir.name}.parts"
    summaries: list[dict[str, Any] | None] = [None] * len(ranges)
    for chunk in order if order is not None else range(len(ranges)):
        start, stop = ranges[chunk]
        summaries[chunk] = write_chunk(scenario, formats, parts_dir, chunk, start, stop)
    return bundle.finalize(scenario, formats, parts_dir, out_dir, summaries)  # type: ignore[arg-type]


def digests(out_dir: Path) -> dict[str, str]:
    """sha256 of every file under out_dir, by relative path."""
    return {
        path.relative_to(out_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out_dir.rglob("*"))
        if path.is_file()
    }
