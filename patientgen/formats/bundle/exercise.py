"""The exercise files, built from intermediate parts rather than concatenated.

The inject list (`mel.csv`) is sorted by exercise time across all patients, and a PDF
(`cards.pdf`) cannot be joined by appending. Their parts hold compact intermediate records
instead (formats.mel, formats.cards: sorted injects, one card per line), and the join k-way
merges the inject parts (streaming, at most FAN_IN parts open at once, larger joins merged in
rounds through scratch files) and renders the cards from the card parts. A one-chunk run writes
its part in memory and converts it the same way, so every chunking gives the same bytes.

The cards' PDF is held whole while it is rendered (reportlab keeps every page until it saves),
which is why a job may ask for cards for at most cards.MAX_PATIENTS casualties
(layout.format_problems, checked at submit).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from patientgen.formats import cards, mel
from patientgen.formats.bundle import disk

#: The most inject parts merged at once (each an open file); more are merged in rounds.
FAN_IN = 256


def write_exercise(
    fmt: str, write: Callable[[bytes], Any], parts: Sequence[Iterable[bytes]], patients: int
) -> int:
    """Write exercise file `fmt` from its parts (each an iterable of its lines, in chunk
    order); returns its record count (injects, or cards)."""
    if fmt == "mel":
        counted = [0]

        def rows() -> Iterator[list[Any]]:
            for row in mel.merge(mel.read_part(part) for part in parts):
                counted[0] += 1
                yield row

        for block in mel.encode(rows()):
            write(block)
        return counted[0]
    write(cards.render(cards.read_part(itertools.chain.from_iterable(parts))))
    return patients


def part_lines(path: Path) -> Iterator[bytes]:
    """The lines of a part, the file opened only when the first is read."""
    with open(path, "rb") as f:
        yield from f


def merged_mel_parts(
    stack: contextlib.ExitStack, parts_dir: Path, paths: list[Path]
) -> list[Iterable[bytes]]:
    """The inject parts `paths`, open for reading, at most FAN_IN of them: beyond that, groups
    of FAN_IN are merged first into scratch files (temporary names in parts_dir, removed when
    `stack` closes), round after round."""
    scratch = 0
    while len(paths) > FAN_IN:
        merged: list[Path] = []
        for start in range(0, len(paths), FAN_IN):
            group = paths[start : start + FAN_IN]
            scratch += 1
            with contextlib.ExitStack() as inner:
                sources = [inner.enter_context(open(path, "rb")) for path in group]
                rows = mel.merge(mel.read_part(source) for source in sources)
                target = parts_dir / f"mel-merge-{scratch:06d}"
                merged.append(disk.write_scratch(stack, target, mel.encode_part_rows(rows)))
        paths = merged
    return [stack.enter_context(open(path, "rb")) for path in paths]
