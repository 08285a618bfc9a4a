"""Which source files define a stage's result: the project's import graph, read from the code.

A stage's fingerprint hashes the code its result depends on (:mod:`workflow.runner`). That
list is not kept by hand: it is every project module the stage's module imports, directly
or not (module level or inside functions), plus the modules it imports by name at run
time (``StageSpec.runtime_modules``: a registry's entries) and theirs. The modules that
carry no result (:data:`NOT_RESULT_CODE`: stage and manifest plumbing, atomic writes, the
settings loader, Ray start-up and the executor rule) are left out and their imports not
followed: the settings a stage reads are fingerprinted value by value, and the loader
imports every library's settings schema. ``tests/pipeline/test_architecture.py`` checks the
layering on the same graph.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "workflow", "stages", "triangulation", "fitting", "detection")
NOT_RESULT_CODE = frozenset(
    {"stages.base", "pipeline.artifacts", "pipeline.atomic", "pipeline.config", "pipeline.ray_support", "pipeline.executor", "workflow.code_graph"}
)


def module_name(path: Path, root: Path = PROJECT_ROOT) -> str:
    """``stages/detect/stage.py`` -> ``stages.detect.stage`` (a package's ``__init__``: the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (module level or inside functions)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _has_code(path: Path) -> bool:
    """False for a module that is only a docstring (a package's ``__init__``)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


@dataclass(frozen=True)
class CodeGraph:
    """The project's modules (``name -> path``) and what each imports (``name -> names``)."""

    paths: dict[str, Path]
    imports: dict[str, frozenset[str]]
    root: Path

    def closure(self, starts: tuple[str, ...], through: frozenset[str] = NOT_RESULT_CODE) -> set[str]:
        """``starts`` and every module they import, directly or not; the imports of
        ``through`` modules are not followed (unless one is a start)."""
        unknown = sorted(set(starts) - set(self.paths))
        if unknown:
            raise ValueError(f"not project modules: {', '.join(unknown)}")
        seen, stack = set(), list(starts)
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                if node in starts or node not in through:
                    stack.extend(self.imports.get(node, ()))
        return seen

    def with_module(self, name: str, path: Path) -> CodeGraph:
        """This graph and one more module (a stage defined outside the project's packages,
        e.g. a plug-in or a test's), with its imports of project modules."""
        paths = {**self.paths, name: Path(path)}
        return CodeGraph(paths, {**self.imports, name: frozenset(_imports(name, Path(path), set(paths)))}, self.root)

    def code_paths(self, starts: tuple[str, ...]) -> tuple[str, ...]:
        """The source files (sorted; relative to the root, absolute outside it) that define
        what ``starts`` compute: their closure without :data:`NOT_RESULT_CODE` and
        docstring-only modules."""
        names = self.closure(starts) - NOT_RESULT_CODE
        files = (self.paths[name] for name in names if _has_code(self.paths[name]))
        return tuple(sorted(str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path) for path in files))


def read_code_graph(root: Path = PROJECT_ROOT, packages: tuple[str, ...] = PACKAGES) -> CodeGraph:
    """The import graph of the project's packages under ``root`` (parsed, nothing imported)."""
    paths = {module_name(path, root): path for package in packages for path in sorted((root / package).rglob("*.py"))}
    known = set(paths)
    return CodeGraph(paths, {name: frozenset(_imports(name, path, known)) for name, path in paths.items()}, root)
