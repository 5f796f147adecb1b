"""Imports go one way (docs: shared/design/architecture.md), checked on the source: every
`import` and `from ... import` of the package, at module level or inside functions.

api/cli → jobs.service → jobs.*, formats, generator → scenario. The service is the only door
into the job layer: the CLI and the API never import a store, the runner or the worker; the
runner and the worker never import the service; the generator never imports the job layer; the
job layer never imports FastAPI; no command module of the CLI imports another.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "patientgen"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The modules `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    here = _module(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # a submodule by its own name, else the module itself
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return found


def _violations(prefix: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{name} imports {target}"
        for name, path in MODULES.items()
        if name == prefix or name.startswith(prefix + ".")
        for target in sorted(_imports(path))
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    ]


JOB_INTERNALS = (
    "patientgen.jobs.store",
    "patientgen.jobs.sql_store",
    "patientgen.jobs.dialects",
    "patientgen.jobs.runner",
    "patientgen.jobs.worker",
    "patientgen.jobs.files",
)


@pytest.mark.parametrize(
    ("prefix", "forbidden"),
    [
        ("patientgen.api", JOB_INTERNALS),
        ("patientgen.cli", JOB_INTERNALS),
        ("patientgen.client", (*JOB_INTERNALS, "patientgen.jobs.service", "patientgen.api")),
        ("patientgen.jobs.runner", ("patientgen.jobs.service",)),
        ("patientgen.jobs.worker", ("patientgen.jobs.service",)),
        ("patientgen.jobs", ("fastapi", "starlette", "patientgen.api", "patientgen.cli")),
        ("patientgen.formats", ("patientgen.jobs", "patientgen.api", "patientgen.cli")),
        (
            "patientgen.generator",
            ("patientgen.jobs", "patientgen.api", "patientgen.cli", "patientgen.formats"),
        ),
    ],
)
def test_imports_go_one_way(prefix: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(prefix, forbidden) == []


def test_no_cli_command_imports_another() -> None:
    shared = {"patientgen.cli", "patientgen.cli.app", "patientgen.cli.common"}
    commands = {n for n in MODULES if n.startswith("patientgen.cli.")} - shared
    for name in commands:
        others = {t for t in _imports(MODULES[name]) if t in commands and t != name}
        assert not others, f"{name} imports {others}"


def test_no_import_cycles_at_module_level() -> None:
    graph = {
        name: {t for t in _imports(path, top_level_only=True) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(name) :], name]))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


BUNDLE = "patientgen.formats.bundle"
#: The modules of formats.bundle in the order they may import each other: each only those
#: before it (read, the reader of finished runs, none of them).
BUNDLE_STAGES = ("layout", "disk", "encode", "exercise", "chain", "write", "join", "run")


def test_bundle_modules_import_earlier_stages_only() -> None:
    for name, path in MODULES.items():
        if not name.startswith(BUNDLE + "."):
            continue
        own = name.rpartition(".")[2]
        allowed = set(BUNDLE_STAGES[: BUNDLE_STAGES.index(own)]) if own in BUNDLE_STAGES else set()
        targets = _imports(path)
        assert BUNDLE not in targets, f"{name} imports its own package"
        used = {t.rpartition(".")[2] for t in targets if t.startswith(BUNDLE + ".")}
        assert used <= allowed, f"{name} imports {sorted(used - allowed)}"


#: Calls that create, rename or remove a file or folder (the `os` and `shutil` functions, Path
#: methods).
_OS_FILE_CHANGES = {
    *("replace", "rename", "remove", "unlink", "rmdir", "removedirs", "link", "mkdir"),
    "makedirs",
}
_PATH_FILE_CHANGES = {"unlink", "rename", "rmdir", "touch", "write_bytes", "write_text", "mkdir"}


def _file_changes(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute):
            owner = function.value.id if isinstance(function.value, ast.Name) else None
            if (
                owner == "shutil"
                or (owner == "os" and function.attr in _OS_FILE_CHANGES)
                or (owner not in ("os", "shutil") and function.attr in _PATH_FILE_CHANGES)
            ):
                found.append(f"line {node.lineno}: {ast.unparse(function)}")
        elif isinstance(function, ast.Name) and function.id == "open":
            modes = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
            mode = modes[0].value if modes and isinstance(modes[0], ast.Constant) else "r"
            if any(c in str(mode) for c in "wax+"):
                found.append(f"line {node.lineno}: open(..., {mode!r})")
    return found


def test_bundle_changes_files_only_in_disk() -> None:
    """THE one place output files are written is formats.bundle, and inside it disk.py: every
    other module decides what is written where, and asks disk.py to do it."""
    assert _file_changes(MODULES[f"{BUNDLE}.disk"]), "the check finds nothing: is it broken?"
    for name, path in MODULES.items():
        if name.startswith(BUNDLE + ".") and name != f"{BUNDLE}.disk":
            assert _file_changes(path) == [], name


#: The job layer's modules that may change files: files.py owns every job folder; objects.py
#: writes the downloads files.py asks for; the SQLite database's folder is made where the
#: database is opened (migrations, sql_store).
_JOBS_CHANGING_FILES = {f"patientgen.jobs.{m}" for m in ("files", "objects", "migrations")} | {
    "patientgen.jobs.sql_store"
}


def test_jobs_change_job_files_only_in_files() -> None:
    """A reader finds where a job's folder is made, written or removed in jobs/files.py alone
    (the runner, worker, service and store ask it)."""
    assert _file_changes(MODULES["patientgen.jobs.files"]), "the check finds nothing"
    for name, path in MODULES.items():
        if name.startswith("patientgen.jobs.") and name not in _JOBS_CHANGING_FILES:
            assert _file_changes(path) == [], name
