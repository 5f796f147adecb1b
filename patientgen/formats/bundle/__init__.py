"""THE one place output files are written.

A run's patients become files in stages, each a module of this package:

- write.py: a chunk of patients into its part files in a parts folder (write_chunk), or a
  one-chunk run whole, its parts being the run's final files (write_chunk, write_runs);
  encode.py turns patients into the records of each streaming format;
- chain.py: the care-chain checkpoint, the result of a job's first phase, in the parts folder;
- join.py: the parts joined in chunk order into the final files, summary.json and manifest.json
  (finalize); exercise.py merges the inject parts and renders the cards;
- run.py: all of it in one process (write_all); read.py: reading a finished run's records.

layout.py names every file (final, part, temporary) and knows how each final file is joined;
disk.py makes every change to the file system: it is where a file is written under a temporary
name, fsynced, renamed, copied or removed, and nothing else in the package does it.

Invariants, each kept where its stage is written down:

- A file is never visible under its final name before its bytes are on disk (disk.Batch); a
  leftover temporary file is never taken for a part; a crash never leaves a half file that looks
  whole. The manifest is renamed last: it is never there before every file it lists.
- Chunks can be written in any order, by any process, and rewritten after a crash: the same chunk
  always gives the same bytes, and the joined files never depend on the chunking (write.py,
  join.py, exercise.py).
- The output folder may hold files that are not the run's (`generate --out DIR`): finalize
  replaces the files of the formats asked for and removes nothing but its own leftovers
  (join.py). The parts folder is removed by the caller (the job layer, inside its fenced
  completion), never by finalize.
- Memory does not grow with the number of patients: patients are streamed into buffered files
  and joins copy in fixed-size blocks. Two bounded exceptions: a chunk holds its own injects and
  cards until it writes their parts (one chunk's worth), and the cards' PDF is held whole while
  it is rendered, which is why a job may ask for cards for at most cards.MAX_PATIENTS casualties
  (format_problems, checked at submit).

What callers outside the package use is listed in __all__; everything else is internal to it.
"""

from __future__ import annotations

from patientgen.formats.bundle.chain import CHAIN_FILE, care_chain
from patientgen.formats.bundle.join import finalize, is_finished, merge_summaries, missing_chunks
from patientgen.formats.bundle.layout import (
    OutputFile,
    chunk_files,
    chunk_ranges,
    concatenations,
    format_problems,
    normalize_formats,
    outputs,
)
from patientgen.formats.bundle.read import Records, iter_index, read_patients, read_records
from patientgen.formats.bundle.run import write_all
from patientgen.formats.bundle.write import SmallRun, write_chunk, write_patients, write_runs

__all__ = [
    "CHAIN_FILE",
    "OutputFile",
    "Records",
    "SmallRun",
    "care_chain",
    "chunk_files",
    "chunk_ranges",
    "concatenations",
    "finalize",
    "format_problems",
    "is_finished",
    "iter_index",
    "merge_summaries",
    "missing_chunks",
    "normalize_formats",
    "outputs",
    "read_patients",
    "read_records",
    "write_all",
    "write_chunk",
    "write_patients",
    "write_runs",
]
