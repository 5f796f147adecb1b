"""A whole run in this process (`patientgen generate`, tests, benchmarks): every chunk written
one after the other into a parts folder inside the output folder, joined, the parts removed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from patientgen.formats.bundle import disk
from patientgen.formats.bundle.join import finalize
from patientgen.formats.bundle.layout import (
    DEFAULT_CHUNK_SIZE,
    PARTS_DIRNAME,
    OutputFile,
    chunk_ranges,
    normalize_formats,
)
from patientgen.formats.bundle.write import write_chunk
from patientgen.scenario import Scenario


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
    disk.remove_folder(parts_dir)
    summaries: list[dict[str, Any]] = []
    total = scenario.total_patients
    if progress is not None:
        progress(0, total)
    for chunk, (start, stop) in enumerate(ranges):
        summaries.append(write_chunk(scenario, formats, parts_dir, chunk, start, stop))
        if progress is not None:
            progress(stop, total)
    files = finalize(scenario, formats, parts_dir, out_dir, summaries)
    disk.remove_folder(parts_dir)  # in-process run: nobody else holds it
    return files
