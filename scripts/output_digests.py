"""Digests of every file a set of scenarios writes, to show a change moved no output byte.

Run it with the code before a change (PYTHONPATH naming a checkout of the old commit: the
package is imported from there) and with the change, then compare the two files:

    PYTHONPATH=/path/to/old/checkout .venv/bin/python scripts/output_digests.py before.json
    .venv/bin/python scripts/output_digests.py after.json
    .venv/bin/python scripts/output_digests.py --compare before.json after.json

The scenarios: presets under the sized plan, a starved and an ample plan (tests/
care_chain_support.py) and unlimited capacity, 2,000 to 20,000 patients, several chunk sizes,
every format a scenario of that size can have; for scenarios with a plan, also a digest of the
care-chain result itself (records and statistics, whatever its file's encoding). The figures are
written, never compared with numbers kept in the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from care_chain_support import drill, with_capacity  # noqa: E402

from patientgen.formats import FORMATS, bundle  # noqa: E402
from patientgen.generator import chainphase  # noqa: E402
from patientgen.scenario import PRESETS, Scenario  # noqa: E402

ALL = list(FORMATS)
NO_CARDS = [f for f in FORMATS if f != "cards"]
DEFAULT = ["json", "ndjson", "csv", "fhir"]


def _preset(name: str, size: str, n: int) -> Scenario:
    return with_capacity(PRESETS[name].scenario, size, total_patients=n)


def cases() -> list[tuple[str, Scenario, list[str], int]]:
    return [
        ("drill-starved-3000-c700", drill("starved", total_patients=3000), ALL, 700),
        ("drill-starved-3000-c3000", drill("starved", total_patients=3000), ALL, 3000),
        ("drill-ample-2000", drill("ample", total_patients=2000), DEFAULT, 2000),
        ("hid-sized-20000-c10000", _preset("high-intensity-defence", "sized", 20000),
         [*DEFAULT, "hl7"], 10000),
        ("hid-starved-8000-c3000", _preset("high-intensity-defence", "starved", 8000), DEFAULT,
         3000),
        ("urban-sized-5000-c1000", _preset("urban-assault", "sized", 5000), NO_CARDS, 1000),
        ("peace-sized-2000", _preset("peacekeeping", "sized", 2000), ALL, 2000),
        ("sustained-sized-10000-c3000", _preset("sustained-operation", "sized", 10000),
         ["ndjson", "csv"], 3000),
        ("hid-unlimited-5000", _preset("high-intensity-defence", "unlimited", 5000), DEFAULT,
         2500),
        ("drill-unlimited-3000", drill("unlimited", total_patients=3000), ALL, 1000),
    ]  # fmt: skip


def _forget_care_chains() -> None:
    """Empty the care-chain results kept in this process, so each case computes its own. They
    are in formats.bundle.chain, or in formats.bundle itself in a checkout from before bundle
    became a package (this script also runs against older code, see above)."""
    getattr(bundle, "chain", bundle)._chains.clear()


def digests() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    tmp = Path(tempfile.mkdtemp(prefix="output-digests-"))
    try:
        for label, scenario, formats, chunk in cases():
            _forget_care_chains()
            out = tmp / label
            bundle.write_all(scenario, formats, out, chunk_size=chunk)
            found: dict[str, Any] = {
                p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(out.rglob("*"))
                if p.is_file()
            }
            if scenario.medical_plan is not None:
                flow = chainphase.run_phase(scenario)
                records = {i: r.to_json() for i, r in sorted(flow.records.items())}
                option = orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS
                both = orjson.dumps([records, flow.statistics], option=option)
                found["#care-chain result"] = hashlib.sha256(both).hexdigest()
                found["#records"] = len(records)
            result[label] = found
            print(label, len(found), "files", flush=True)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def compare(before: Path, after: Path) -> int:
    a, b = json.loads(before.read_text()), json.loads(after.read_text())
    differences = [
        f"{label}: {name}"
        for label in sorted(set(a) | set(b))
        for name in sorted(set(a.get(label, {})) | set(b.get(label, {})))
        if a.get(label, {}).get(name) != b.get(label, {}).get(name)
    ]
    for line in differences:
        print("differs:", line)
    print(f"{len(a)} scenarios, {len(differences)} differences")
    return 1 if differences else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, help="where to write the digests (JSON)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    args = parser.parse_args()
    if args.compare:
        raise SystemExit(compare(*args.compare))
    if args.out is None:
        parser.error("name the file to write, or --compare BEFORE AFTER")
    args.out.write_text(json.dumps(digests(), indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
