"""The layering of docs/ARCHITECTURE.md, checked on the imports of every module.

- ``triangulation/``, ``fitting/`` and ``detection/`` import nothing from ``pipeline/``,
  ``workflow/`` or ``stages/``;
- ``stages/`` and ``pipeline/`` (what the stages use) import nothing from ``workflow/``
  (what uses the stages: runner, commands, synth, benchmarks); ``pipeline/`` imports no stage;
- no module imports itself through a cycle (imports inside functions count too);
- every stage module declares a ``STAGE`` and the runner's order holds each once;
- each stage's code version is read from its imports (``workflow/code_graph.py``).
"""

from __future__ import annotations

import pytest

from tests.paths import REPO_ROOT
from workflow.code_graph import NOT_RESULT_CODE, CodeGraph, read_code_graph

ROOT = REPO_ROOT


@pytest.fixture(scope="module")
def code() -> CodeGraph:
    return read_code_graph(ROOT)


@pytest.fixture(scope="module")
def graph(code) -> dict[str, frozenset[str]]:
    return code.imports


def test_pure_libraries_import_no_files_side(graph):
    for name, targets in graph.items():
        if name.split(".")[0] in ("triangulation", "fitting", "detection"):
            offending = sorted(t for t in targets if t.split(".")[0] in ("pipeline", "workflow", "stages"))
            assert not offending, f"{name} imports {offending}"


def test_what_the_stages_use_never_imports_what_uses_them(graph):
    """``pipeline/`` is below the stages, ``workflow/`` above: two packages, one direction."""
    for name, targets in graph.items():
        top = name.split(".")[0]
        if top in ("stages", "pipeline"):
            offending = sorted(t for t in targets if t.split(".")[0] == "workflow")
            assert not offending, f"{name} imports {offending}"
        if top == "pipeline":
            offending = sorted(t for t in targets if t.split(".")[0] == "stages")
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
    from stages.base import StageSpec
    from workflow.runner import STAGES

    names = [spec.name for spec in STAGES]
    assert len(names) == len(set(names))
    for index, spec in enumerate(STAGES):
        assert isinstance(spec, StageSpec)
        assert set(spec.inputs) <= set(names[:index]), f"{spec.name} reads a stage that runs after it"
        optional = {s.name for s in STAGES if s.enabled_by}
        assert not set(spec.inputs) & optional, f"{spec.name} requires an optional stage (read it as an optional input)"
        assert set(spec.optional_inputs) <= optional & set(names[:index]), f"{spec.name}: optional inputs must be earlier optional stages"
        assert spec.run.__name__ == "run_stage", f"{spec.name}: one entry-point name for every stage"
        for key in spec.execution_keys:  # settings of how it runs: they must be its own, and real
            section, name = key.split(".", 1)
            assert section in spec.config_sections and name in load_config().section(section), f"{spec.name}: {key}"


def test_each_stage_code_is_read_from_its_imports(code):
    """A stage's fingerprint hashes the code its result depends on, read from the imports
    (no list kept by hand): every module its ``run`` module imports, directly or not, and
    the registry entries it imports by name; not the plumbing, whose imports (the settings
    loader's of every schema) are not followed."""
    from workflow.runner import STAGES, TAKE_READER, stage_code

    by_name = {spec.name: stage_code(code, spec) for spec in STAGES}
    for spec in STAGES:
        paths = by_name[spec.name]
        assert paths == tuple(sorted(set(paths))) and all((ROOT / path).is_file() for path in paths)
        assert str(code.paths[spec.run.__module__].relative_to(ROOT)) in paths
        assert not {str(code.paths[name].relative_to(ROOT)) for name in NOT_RESULT_CODE} & set(paths), spec.name
    # imported directly, through another module, inside a function, and by name (registry)
    assert {"detection/hand_search.py", "triangulation/visibility.py", "stages/detect/mmpose_backend.py", "stages/detect/precomputed.py"} <= set(
        by_name["detect"]
    )
    assert {"fitting/bone_fit.py", "fitting/banded.py", "triangulation/camera_models.py"} <= set(by_name["refine"])
    assert "fitting/body_model/fit.py" in by_name["fit_body_model"] and "fitting/body_model/fit.py" not in by_name["refine"]
    # the settings loader imports every schema; a stage gets only what it uses itself
    assert "detection/settings.py" not in by_name["triangulate"] and "fitting/refine.py" not in by_name["triangulate"]
    assert "pipeline/formats/calibration.py" in code.code_paths((TAKE_READER,))


def test_a_new_import_two_modules_away_joins_the_stage_code(tmp_path):
    """The code list follows the imports as they are edited: a module that starts importing
    another brings it (and its imports) into every stage that reaches it."""
    import shutil

    for package in ("pipeline", "workflow", "stages", "triangulation", "fitting", "detection"):
        shutil.copytree(ROOT / package, tmp_path / package)
    from workflow.runner import STAGES, stage_code

    refine = next(spec for spec in STAGES if spec.name == "refine")
    copy = read_code_graph(tmp_path)
    before = stage_code(copy, refine)
    assert "fitting/banded.py" in before  # refine -> fitting.refine -> fitting.bone_fit -> fitting.banded
    (tmp_path / "fitting" / "banded.py").write_text((tmp_path / "fitting" / "banded.py").read_text() + "\nfrom fitting import metrics  # noqa\n")
    assert stage_code(read_code_graph(tmp_path), refine) == before
    (tmp_path / "fitting" / "banded.py").write_text((tmp_path / "fitting" / "banded.py").read_text() + "\nfrom fitting.body_model import fit  # noqa\n")
    assert "fitting/body_model/fit.py" in stage_code(read_code_graph(tmp_path), refine)


def test_the_stage_order_is_computed_from_what_the_stages_read():
    """The runner's order comes from the stages' declared inputs (no list kept by hand):
    any order of the same stages gives it; an unknown input and a cycle are refused."""
    import dataclasses
    import random

    from workflow.runner import STAGES, discover_stages, stage_order

    assert [spec.name for spec in STAGES] == ["detect", "triangulate", "calibrate_check", "refine", "fit_body_model", "project_ego", "export", "qa"]
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
