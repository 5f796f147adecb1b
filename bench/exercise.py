"""Benchmark: the exercise package. Casualty cards per second and inject-list rows per second,
each split into the work a chunk does and the work of the join, plus a whole run; medians.

- cards, chunk: `cards.record` of each patient (the QR matrix is made here) and its part line;
- cards, join: `cards.render` of every card into one PDF (reportlab), with the PDF's bytes per
  card and the peak RSS of a fresh process rendering them (reportlab holds every page until it
  saves: the reason for cards.MAX_PATIENTS);
- mel, chunk: `mel.Collector` over the patients and its sorted part;
- mel, join: the k-way merge of the parts (chunks of 1,000 patients) and the CSV encoding;
- whole run: `bundle.write_all` of the format alone, generation included, in chunks of 1,000.

    python bench/exercise.py                        # 2,000 patients, 3 repeats
    python bench/exercise.py --patients 20000 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PRESET = "mass-casualty-drill"
CHUNK = 1000


def _scenario(patients: int) -> Any:
    from patientgen.scenario import PRESETS

    return PRESETS[PRESET].scenario.model_copy(update={"total_patients": patients})


def _median(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def child_render(patients: int) -> None:
    """Render the cards of `patients` casualties once (run in a fresh process for its RSS)."""
    from patientgen.formats import cards
    from patientgen.generator import generate

    # streamed, as the join streams the cards from the parts
    data = cards.render(cards.record(p) for p in generate(_scenario(patients)))
    print(len(data))


def render_peak_rss(patients: int) -> tuple[float, int]:
    """Peak RSS (MB) of a fresh process that makes and renders the cards, and the PDF's bytes."""
    process = subprocess.Popen(
        [sys.executable, __file__, "--child-render", str(patients)], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"the render child failed ({status})")
    return usage.ru_maxrss / 1024, int(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the whole runs")
    parser.add_argument("--child-render", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_render is not None:
        child_render(args.child_render)
        return

    from patientgen.formats import bundle, cards, mel
    from patientgen.generator import generate

    n, repeats = args.patients, args.repeats
    scenario = _scenario(n)
    patients = list(generate(scenario))
    chunks = [patients[i : i + CHUNK] for i in range(0, n, CHUNK)]

    record_s, lines = _median(lambda: [cards.encode(p) for p in patients], repeats)
    records = [r for r in cards.read_part(lines)]
    render_s, pdf = _median(lambda: cards.render(records), repeats)

    def collect() -> list[bytes]:
        parts = []
        for chunk in chunks:
            collector = mel.Collector(scenario)
            for p in chunk:
                collector.add(p)
            parts.append(collector.part())
        return parts

    collect_s, parts = _median(collect, repeats)

    def join() -> int:
        rows = 0
        for block in mel.encode(mel.merge(mel.read_part(part.splitlines()) for part in parts)):
            rows += block.count(b"\r\n")
        return rows - 1  # the header

    join_s, rows = _median(join, repeats)

    tmp = Path(tempfile.mkdtemp(prefix="bench-exercise-", dir=args.tmp))
    try:

        def whole(fmt: str) -> float:
            out = tmp / fmt
            seconds, _ = _median(
                lambda: bundle.write_all(scenario, [fmt], out, chunk_size=CHUNK), repeats
            )
            shutil.rmtree(out, ignore_errors=True)
            return seconds

        whole_cards = whole("cards")
        whole_mel = whole("mel")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rss, pdf_bytes = render_peak_rss(n)

    print(f"{n:,} patients of {PRESET!r}, {rows:,} injects; medians of {repeats}")
    print(f"{'measure':<34}{'rate':>12}  unit")
    table = [
        ("cards, chunk (record + QR)", n / record_s, "cards/s"),
        ("cards, join (render PDF)", n / render_s, "cards/s"),
        ("cards, whole run (generation incl.)", n / whole_cards, "cards/s"),
        ("mel, chunk (collect + sort)", rows / collect_s, "rows/s"),
        ("mel, join (merge + CSV)", rows / join_s, "rows/s"),
        ("mel, whole run (generation incl.)", rows / whole_mel, "rows/s"),
    ]
    for name, rate, unit in table:
        print(f"{name:<34}{rate:>12,.0f}  {unit}")
    print(f"{'cards.pdf bytes per card':<34}{len(pdf) / n:>12,.0f}  bytes")
    print(f"{'render peak RSS (fresh process)':<34}{rss:>12,.0f}  MB ({pdf_bytes:,} bytes of PDF)")


if __name__ == "__main__":
    main()
