"""What every stage declares, and what it gets when it runs.

A stage module defines one :class:`StageSpec` named ``STAGE``: its name, the stages it
reads, the config sections its result depends on, whether the take's frame files
(videos, 2D keypoint folders) are inputs, the files it writes, and ``run(context)``, the
stage's file side:
it loads its inputs (``context.inputs[stage].path(name)``), calls the pure libraries
and writes its files into ``context.work``. :mod:`workflow.runner` only orders the
stages, fingerprints them and moves finished folders into place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.artifacts import StageRecord
from pipeline.config import PipelineConfig
from pipeline.formats.take_folder import Take


@dataclass(frozen=True)
class StageContext:
    """What a stage's ``run`` gets: the take, its settings, its inputs and a folder to write.

    ``cache``: a folder of this stage and fingerprint that survives a killed run (partial
    results to resume from; removed once the stage is committed); ``progress(frames)``:
    for a stage to report the frames it has done (a batch's progress display).
    """

    take: Take
    config: PipelineConfig
    inputs: dict[str, StageRecord]
    work: Path
    cache: Path | None = None
    progress: Callable[[int], None] | None = None
    previous: StageRecord | None = None  # the stage's own last finished output (files it may keep)
    sections: tuple[str, ...] | None = None  # the config sections the stage declares (None: any)

    def settings(self, section: str):
        """The typed settings of ``section`` (its dataclass in :mod:`pipeline.config`, e.g.
        ``RefineConfig``); a section the stage does not declare is refused (its result would
        depend on settings its fingerprint leaves out)."""
        if self.sections is not None and section not in self.sections:
            raise KeyError(f"a stage read the settings section {section!r} it does not declare (config_sections: {', '.join(self.sections)})")
        return getattr(self.config, section)


@dataclass(frozen=True)
class StageSpec:
    """One stage: what it reads, which settings and code define its result, what it writes.

    Its code version is not declared: :mod:`workflow.code_graph` reads it from the imports
    of the module that defines ``run``, directly or not, and of ``runtime_modules`` (modules
    it imports by name at run time, e.g. a registry's entries).
    ``writes``: the names of its output files (keys of the manifest's ``files``); a name
    ending in ``?`` is optional (written only under some settings, e.g. the TRC file), one
    ending in ``*`` a family of optional names with that prefix (one overlay per camera).
    ``run(context) -> (files, summary)`` (every stage module names it ``run_stage``): ``files`` maps those names to file names in
    ``context.work``; ``summary`` holds counts a person can check (JSON-serialisable).
    ``enabled_by``: for an optional stage, the config section whose ``enabled`` key turns
    it on (off: the runner passes over it; no later stage may require it).
    ``optional_inputs``: optional stages read when they ran (their record is then in
    ``context.inputs`` and their fingerprint in this stage's).
    ``execution_keys``: keys of its config sections (``"section.key"``) that decide how the
    stage runs, never what it writes (executor, workers, retries): left out of its
    fingerprint, so changing them re-runs nothing.
    """

    name: str
    inputs: tuple[str, ...]
    config_sections: tuple[str, ...]
    reads_take_files: bool
    writes: tuple[str, ...]
    run: Callable[[StageContext], tuple[dict[str, str], dict]]
    enabled_by: str | None = None
    optional_inputs: tuple[str, ...] = ()
    execution_keys: tuple[str, ...] = ()
    runtime_modules: tuple[str, ...] = ()

    def result_settings(self, config: PipelineConfig) -> dict:
        """The settings of its config sections that define its result (``execution_keys`` left out)."""
        settings = {section: dict(config.section(section)) for section in self.config_sections}
        for key in self.execution_keys:
            section, name = key.split(".", 1)
            settings[section].pop(name)
        return settings

    def is_enabled(self, config: PipelineConfig) -> bool:
        return self.enabled_by is None or bool(config.section(self.enabled_by)["enabled"])

    def check_outputs(self, files: dict[str, str]) -> None:
        """Refuse outputs that differ from the declaration (a stage bug, caught before commit)."""
        required = {name for name in self.writes if not name.endswith(("?", "*"))}
        allowed = required | {name.rstrip("?") for name in self.writes if not name.endswith("*")}
        families = tuple(name[:-1] for name in self.writes if name.endswith("*"))
        missing = required - set(files)
        extra = {name for name in set(files) - allowed if not (families and name.startswith(families))}
        if missing or extra:
            raise RuntimeError(
                f"stage '{self.name}' declares outputs {sorted(allowed)} but wrote {sorted(files)}"
                + (f" (missing {sorted(missing)})" if missing else "")
                + (f" (undeclared {sorted(extra)})" if extra else "")
            )
