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
