"""The care-chain checkpoint: the result of a job's first phase, the care-chain simulation over
the whole casualty stream (generator/chainphase.py), kept in the run's parts folder.

One file (CHAIN_FILE), written like a part (temporary name, fsync, rename). Its result depends
only on the scenario and seed, so the same input always gives the same bytes, and a file
written by any worker, before any crash, is the one to read. The last few results are also
kept in this process.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from patientgen.formats.bundle import disk
from patientgen.scenario import Scenario

log = logging.getLogger(__name__)

#: The care-chain result's file in a parts folder.
CHAIN_FILE = "care-chain.json"
_chains: dict[str, Any] = {}  # scenario digest -> FlowResult, the last few of this process


def care_chain(scenario: Scenario, parts_dir: Path | None, *, create: bool = True) -> Any:
    """The care-chain result of the scenario (a generator.chainphase.FlowResult), None without a
    medical plan. Read from parts_dir when a run computed it there already, else computed and
    written there (`parts_dir` None: computed only; `create` False: FileNotFoundError when it is
    not there, nothing written). The same (scenario, seed) always gives the same bytes, so a file
    written by any worker, before any crash, is the one to read."""
    from patientgen.generator import chainphase

    if scenario.medical_plan is None:
        return None
    digest = chainphase.scenario_digest(scenario)
    path = Path(parts_dir) / CHAIN_FILE if parts_dir is not None else None
    if not create and path is not None and not path.is_file():
        raise FileNotFoundError(f"no care-chain result {path}")
    result = _chains.get(digest)
    if result is None and path is not None and path.is_file():
        try:
            result = chainphase.decode(path.read_bytes(), scenario)
            log.info("care-chain phase read from its checkpoint %s", path.name)
        except ValueError:  # another scenario's: computed again below
            result = None
    if result is None:
        started = time.perf_counter()
        result = chainphase.run_phase(scenario)
        log.info(
            "care-chain phase computed: %d patients in %.2f s",
            scenario.total_patients,
            time.perf_counter() - started,
        )
    if create and path is not None and not path.is_file():
        disk.make_folders([path.parent])
        batch = disk.Batch(sync_folders=False)
        try:
            disk.write_raw(batch.open(path, buffering=0), chainphase.encode(result))
            batch.commit()
        except BaseException:
            batch.abort()
            raise
    if len(_chains) >= 2:
        _chains.pop(next(iter(_chains)))
    _chains[digest] = result
    return result
