"""The layering of docs/ARCHITECTURE.md, checked on the imports of every module.

- ``triangulation/`` and ``fitting/`` import nothing from ``pipeline/`` or ``stages/``;
- ``stages/`` import only the file formats, the artifact and config types of
  ``pipeline/`` (never the runner, the commands, synth or the benchmarks);
- ``pipeline/formats/`` import no stage;
- no module imports itself through a cycle (imports inside functions count too);
- every stage module declares a ``STAGE`` and the runner's list holds each once;
- each stage's ``code`` covers every project module it imports, directly or not, so a
  change to any of them re-runs the stage (its cache cannot go stale).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
PACKAGES = ("pipeline", "stages", "triangulation", "fitting", "detection")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


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


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_pure_libraries_import_no_files_side(graph):
    for name, targets in graph.items():
        if name.split(".")[0] in ("triangulation", "fitting", "detection"):
            offending = sorted(t for t in targets if t.split(".")[0] in ("pipeline", "stages"))
            assert not offending, f"{name} imports {offending}"


def test_stages_use_only_the_base_layer_of_pipeline(graph):
    allowed = ("pipeline.formats", "pipeline.atomic", "pipeline.artifacts", "pipeline.config", "pipeline.ray_support", "pipeline.executor", "pipeline")
    for name, targets in graph.items():
        if name.startswith("stages"):
            offending = sorted(
                t for t in targets if t.startswith("pipeline") and not any(t == a or t.startswith(a + ".") for a in allowed[:-1]) and t != "pipeline"
            )
            assert not offending, f"{name} imports {offending}"


def test_formats_import_no_stage(graph):
    for name, targets in graph.items():
        if name.startswith("pipeline.formats"):
            offending = sorted(t for t in targets if t.startswith(("stages", "pipeline.runner", "pipeline.commands")))
            assert not offending, f"{name} imports {offending}"


def test_no_import_cycles(graph):
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                cycle = stack[stack.index(target) :] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_stage_module_declares_its_stage_and_the_runner_orders_it():
    from pipeline.config import load_config
    from pipeline.runner import STAGES
    from stages.base import StageSpec

    names = [spec.name for spec in STAGES]
    assert len(names) == len(set(names))
    for index, spec in enumerate(STAGES):
        assert isinstance(spec, StageSpec)
        assert set(spec.inputs) <= set(names[:index]), f"{spec.name} reads a stage that runs after it"
        optional = {s.name for s in STAGES if s.enabled_by}
        assert not set(spec.inputs) & optional, f"{spec.name} requires an optional stage (read it as an optional input)"
        assert set(spec.optional_inputs) <= optional & set(names[:index]), f"{spec.name}: optional inputs must be earlier optional stages"
        for path in spec.code:
            assert (ROOT / path).exists(), f"{spec.name}: code path {path} does not exist"
        for key in spec.execution_keys:  # settings of how it runs: they must be its own, and real
            section, name = key.split(".", 1)
            assert section in spec.config_sections and name in load_config().section(section), f"{spec.name}: {key}"


# Modules whose code carries no stage result, so a change to them need not re-run a stage:
# the stage and manifest plumbing, atomic writes, the config schema (the values a stage
# reads are fingerprinted section by section) and how detect schedules its work on Ray.
NOT_RESULT_CODE = {"stages/base.py", "pipeline/artifacts.py", "pipeline/atomic.py", "pipeline/config.py", "pipeline/ray_support.py", "pipeline/executor.py"}


def _has_code(path: Path) -> bool:
    """False for a module that is only a docstring (a package's ``__init__``)."""
    body = ast.parse(path.read_text(encoding="utf-8")).body
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in body)


def _imported_closure(graph: dict[str, set[str]], start: str, through: set[str] = frozenset()) -> set[str]:
    """Modules ``start`` imports, directly or not; the imports of ``through`` modules (the
    plumbing that carries no result, e.g. the settings loader importing the QA flags'
    schema) are not followed."""
    seen, stack = set(), [start]
    while stack:
        node = stack.pop()
        if node not in seen:
            seen.add(node)
            if node == start or node not in through:
                stack.extend(graph.get(node, ()))
    return seen


def test_each_stage_code_list_covers_what_it_imports(graph):
    """A stage's fingerprint hashes its ``code`` paths: a module it uses but does not list
    could change without re-running it (a stale cache)."""
    from pipeline.runner import STAGES

    modules = _modules()
    plumbing = {name for name, path in modules.items() if str(path.relative_to(ROOT)) in NOT_RESULT_CODE}
    for spec in STAGES:
        listed = [ROOT / path for path in spec.code]
        uncovered = sorted(
            relative
            for name in _imported_closure(graph, spec.run.__module__, plumbing)
            if (relative := str(modules[name].relative_to(ROOT))) not in NOT_RESULT_CODE
            and _has_code(modules[name])
            and not any(modules[name] == path or path in modules[name].parents for path in listed)
        )
        assert not uncovered, f"stage '{spec.name}': code list misses {uncovered} (imported, directly or not, by {spec.run.__module__})"


def test_the_stage_order_is_computed_from_what_the_stages_read():
    """The runner's order comes from the stages' declared inputs (no list kept by hand):
    any order of the same stages gives it; an unknown input and a cycle are refused."""
    import dataclasses
    import random

    from pipeline.runner import STAGES, discover_stages, stage_order

    assert [spec.name for spec in STAGES] == ["detect", "triangulate", "refine", "fit_body_model", "project_ego", "export", "qa"]
    found = discover_stages()
    assert {spec.name for spec in found} == {spec.name for spec in STAGES}
    for seed in range(5):
        shuffled = list(found)
        random.Random(seed).shuffle(shuffled)
        assert stage_order(shuffled) == STAGES
    by_name = {spec.name: spec for spec in found}
    with pytest.raises(ValueError, match="no stage writes"):
        stage_order([dataclasses.replace(by_name["triangulate"], inputs=("nothing",))])
    cyclic = [dataclasses.replace(by_name["detect"], inputs=("triangulate",)), by_name["triangulate"]]
    with pytest.raises(ValueError, match="cycle"):
        stage_order(cyclic)
