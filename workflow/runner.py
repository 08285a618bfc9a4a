"""Run the stages of one take, or a batch of takes, with caching and resume.

The runner only orders stages. Each stage module declares a
:class:`stages.base.StageSpec` (``STAGE``): the stages it reads, the config sections
it depends on, its code and the files it writes, and runs its own file side. A stage's
fingerprint hashes all of these (see :mod:`pipeline.artifacts`); a stage whose stored
fingerprint matches is skipped, so re-running after a parameter change recomputes only the stages that
depend on it. ``force_from`` recomputes a stage and everything after it.

One failing take never stops a batch: its error is recorded in the batch summary and
the batch's exit status says that something failed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import logging
import pkgutil
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import stages
from pipeline.artifacts import RUN_FILE, ArtifactStore, StageRecord, file_fingerprint, fingerprint, source_fingerprint
from pipeline.atomic import atomic_write_text
from pipeline.config import PipelineConfig
from pipeline.formats.take_folder import Take, read_take, take_name
from pipeline.ray_support import current_node, ensure_ray
from stages.base import StageContext, StageSpec
from workflow.batch_report import write_batch_files
from workflow.code_graph import CodeGraph, read_code_graph
from workflow.progress import BatchProgress

logger = logging.getLogger(__name__)


def discover_stages() -> list[StageSpec]:
    """Every stage of the ``stages`` package: the ``STAGE`` of each module ``stages/<name>.py``
    and of each package's ``stages/<name>/stage.py``."""
    found = []
    for module in pkgutil.iter_modules(stages.__path__):
        name = f"stages.{module.name}.stage" if module.ispkg else f"stages.{module.name}"
        if module.ispkg and importlib.util.find_spec(name) is None:
            continue
        spec = getattr(importlib.import_module(name), "STAGE", None)
        if isinstance(spec, StageSpec):
            found.append(spec)
    return found


def stage_order(specs: list[StageSpec]) -> tuple[StageSpec, ...]:
    """``specs`` in an order where every stage comes after the stages it reads (``inputs``
    and ``optional_inputs``), ties broken by name; raises naming an unknown input or a cycle."""
    by_name = {spec.name: spec for spec in specs}
    needs = {}
    for spec in specs:
        reads = set(spec.inputs) | set(spec.optional_inputs)
        if unknown := sorted(reads - set(by_name)):
            raise ValueError(f"stage '{spec.name}' reads {unknown}, which no stage writes")
        needs[spec.name] = reads
    ordered: list[StageSpec] = []
    while needs:
        ready = sorted(name for name, reads in needs.items() if not reads - {spec.name for spec in ordered})
        if not ready:
            raise ValueError(f"stages {sorted(needs)} read each other in a cycle")
        ordered.append(by_name[ready[0]])
        del needs[ready[0]]
    return tuple(ordered)


# The stages in the order they run, computed from what each module's STAGE reads.
STAGES: tuple[StageSpec, ...] = stage_order(discover_stages())
STAGE_NAMES = tuple(spec.name for spec in STAGES)


def stage_names(config: PipelineConfig) -> tuple[str, ...]:
    """The stages that run under ``config`` (optional stages that are off left out)."""
    return tuple(spec.name for spec in STAGES if spec.is_enabled(config))


# --------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------


@dataclass
class TakeReport:
    """What happened to one take."""

    take: str
    output: str
    ok: bool = True
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    summaries: dict = field(default_factory=dict)
    stage_seconds: dict = field(default_factory=dict)
    ray_node: str | None = None  # the Ray node that ran the take (a batch on Ray)


TAKE_READER = "pipeline.formats.take_folder"  # the module that turns a take folder into a Take


def stage_code(graph: CodeGraph, spec: StageSpec) -> tuple[str, ...]:
    """The source files that define ``spec``'s result: what the module of its ``run`` and its
    ``runtime_modules`` import, directly or not (:mod:`workflow.code_graph`)."""
    module = spec.run.__module__
    if module not in graph.paths:  # a stage defined outside the project's packages
        graph = graph.with_module(module, Path(inspect.getsourcefile(spec.run)))
    return graph.code_paths((module, *spec.runtime_modules))


def _take_fingerprint(take: Take, settings: dict, with_files: bool, graph: CodeGraph) -> str:
    """The take's calibration and ego inputs (and with ``with_files`` its videos and 2D
    keypoint folders), the settings it was read with and the code that read it."""
    paths = list(take.input_files)
    if with_files:
        paths += list(take.keypoints_2d.values()) + list(take.videos.values())
        paths += [take.scene_points] if take.scene_points is not None else []
    return fingerprint({"files": file_fingerprint(paths), "settings": settings, "readers": source_fingerprint(graph.code_paths((TAKE_READER,)))})


def _stage_fingerprint(spec: StageSpec, take: Take, config: PipelineConfig, records: dict[str, StageRecord], graph: CodeGraph) -> str:
    take_settings = config.section("take")
    return fingerprint(
        {
            "stage": spec.name,
            "code": source_fingerprint(stage_code(graph, spec)),
            "settings": spec.result_settings(config),
            "inputs": {name: records[name].fingerprint for name in spec.inputs + spec.optional_inputs if name in records},
            "take": _take_fingerprint(take, take_settings, spec.reads_take_files, graph),
        }
    )


def _run_stage(
    spec: StageSpec, take: Take, config: PipelineConfig, store: ArtifactStore, records: dict, stage_fingerprint: str, progress=None
) -> tuple[StageRecord, float]:
    """Run one stage into a temporary folder and move it into place (nothing half-written
    stays; partial results in its cache survive a kill); returns the record and its seconds."""
    logger.info("%s: running %s", take.name, spec.name)
    start = time.perf_counter()
    if progress is not None:
        progress.start_stage(spec.name)
    work = store.begin(spec.name)
    try:
        inputs = {name: records[name] for name in spec.inputs + spec.optional_inputs if name in records}
        context = StageContext(
            take,
            config,
            inputs,
            work,
            cache=store.cache(spec.name, stage_fingerprint),
            progress=None if progress is None else progress.frames_done,
            previous=store.record(spec.name),
            sections=spec.config_sections,
        )
        files, summary = spec.run(context)
        spec.check_outputs(files)
        record = store.commit(spec.name, work, stage_fingerprint, files, summary)
    except BaseException:
        store.abandon(work)
        raise
    store.clear_cache(spec.name)
    seconds = time.perf_counter() - start
    logger.info("%s: %s done in %.1f s: %s", take.name, spec.name, seconds, json.dumps(summary))
    return record, seconds


def run_take(
    take_dir: str | Path,
    out_root: str | Path,
    config: PipelineConfig,
    force_from: str | None = None,
    until: str | None = None,
    progress=None,
) -> TakeReport:
    """Run every stage of one take (up to ``until``) into ``out_root/<take name>/``.

    Raises on the first failing stage (a batch catches it); finished stages stay.
    ``OUT/<take>/run.json`` records the take folder and the settings used.
    """
    if force_from is not None and force_from not in STAGE_NAMES:
        raise ValueError(f"unknown stage {force_from!r} (stages: {', '.join(STAGE_NAMES)})")
    start = time.perf_counter()
    take = read_take(take_dir, config.take)
    store = ArtifactStore(Path(out_root) / take.name)
    store.remove_leftovers()
    node = current_node()
    atomic_write_text(
        store.root / RUN_FILE,
        json.dumps({"take_dir": str(Path(take_dir).resolve()), "ray_node": node, "settings": asdict(config)}, indent=1) + "\n",
    )
    report = TakeReport(take=take.name, output=str(store.root), ray_node=node)
    with blas_threads(config):
        _run_stages(take, config, store, report, force_from, until, progress)
    report.seconds = time.perf_counter() - start
    return report


def blas_threads(config: PipelineConfig):
    """A context that caps the BLAS threads of this process at ``batch.blas_threads`` (0: as is)."""
    if config.batch.blas_threads == 0:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=config.batch.blas_threads, user_api="blas")


def _run_stages(take: Take, config: PipelineConfig, store: ArtifactStore, report: TakeReport, force_from, until, progress) -> None:
    forced = False
    records: dict[str, StageRecord] = {}
    graph = read_code_graph()
    for spec in STAGES:
        forced = forced or spec.name == force_from
        if not spec.is_enabled(config):
            logger.info("%s: %s is off (%s.enabled: false)", take.name, spec.name, spec.enabled_by)
            if spec.name == until:
                break
            continue
        stage_fingerprint = _stage_fingerprint(spec, take, config, records, graph)
        if not forced and store.is_current(spec.name, stage_fingerprint):
            records[spec.name] = store.record(spec.name)
            report.skipped.append(spec.name)
            logger.info("%s: %s is up to date", take.name, spec.name)
        else:
            if forced:
                store.clear_cache(spec.name)  # recompute: no partial result of an earlier run
            records[spec.name], report.stage_seconds[spec.name] = _run_stage(spec, take, config, store, records, stage_fingerprint, progress)
            report.ran.append(spec.name)
        report.summaries[spec.name] = records[spec.name].manifest.get("summary", {})
        if spec.name == until:
            break


def rerun_stage(take_output: str | Path, stage: str, overrides: list[str] = ()) -> TakeReport:
    """Run one stage of a take output again from its stored inputs, no other stage.

    The take folder and settings come from ``take_output/run.json`` (the last run),
    ``overrides`` (``section.key=value``) on top. Every input stage must have finished.
    """
    from pipeline.config import load_config

    start = time.perf_counter()
    store = ArtifactStore(Path(take_output))
    run_file = store.root / RUN_FILE
    if not run_file.is_file():
        raise FileNotFoundError(f"{run_file}: not found: {store.root} is not a take output of `run_pipeline.py run`")
    stored = json.loads(run_file.read_text(encoding="utf-8"))
    config = load_config(overrides=list(overrides), base=stored["settings"])
    spec = next((spec for spec in STAGES if spec.name == stage), None)
    if spec is None:
        raise ValueError(f"unknown stage {stage!r} (stages: {', '.join(STAGE_NAMES)})")
    records = {}
    for name in spec.inputs:
        record = store.record(name)
        if record is None:
            raise FileNotFoundError(f"{store.root}: stage '{name}' has no finished output; run the pipeline first")
        records[name] = record
    for name in spec.optional_inputs:
        optional = next(stage for stage in STAGES if stage.name == name)
        if optional.is_enabled(config) and (record := store.record(name)) is not None:
            records[name] = record
    take = read_take(stored["take_dir"], config.take)
    store.remove_leftovers()
    with blas_threads(config):
        record, seconds = _run_stage(spec, take, config, store, records, _stage_fingerprint(spec, take, config, records, read_code_graph()))
    report = TakeReport(take=take.name, output=str(store.root), ran=[stage], summaries={stage: record.manifest.get("summary", {})})
    report.stage_seconds[stage] = seconds
    report.seconds = time.perf_counter() - start
    return report


def _run_take_reported(take_dir, out_root, config, force_from, until, progress=None) -> TakeReport:
    """:func:`run_take`, with a failure turned into a report (one take must not stop a batch)."""
    try:
        return run_take(take_dir, out_root, config, force_from, until, progress)
    except Exception as error:
        logger.error("take %s failed: %s", take_dir, error)
        logger.debug("%s", traceback.format_exc())
        return TakeReport(take=str(take_dir), output="", ok=False, error=f"{type(error).__name__}: {error}")


def _run_batch_here(take_dirs: list, out_root, config: PipelineConfig, force_from, until, progress: BatchProgress) -> list[TakeReport]:
    """The takes one after another in this process."""
    reports = []
    for index, take_dir in enumerate(take_dirs, 1):
        logger.info("take %d/%d: %s", index, len(take_dirs), take_dir)
        progress.start_take(Path(take_dir).name)
        reports.append(_run_take_reported(take_dir, out_root, config, force_from, until, progress))
        progress.finish_take(reports[-1].ok)
    return reports


def _name_clashes(take_dirs: list) -> dict[int, TakeReport]:
    """Failed reports for takes whose name an earlier take of the batch has (same output folder)."""
    first: dict[str, object] = {}
    clashes = {}
    for index, take_dir in enumerate(take_dirs):
        try:
            name = take_name(take_dir)
        except Exception:  # reported when the take itself runs
            continue
        if name in first:
            clashes[index] = TakeReport(
                take=str(take_dir),
                output="",
                ok=False,
                error=f"TakeError: take name '{name}' is also the name of {first[name]}: both would write OUT/{name}/",
            )
        else:
            first[name] = take_dir
    return clashes


def cpus_per_take(config: PipelineConfig) -> int:
    """CPUs a take asks of Ray in a batch: what one instance of the detect backend keeps
    busy (its detection runs in-process inside the take's task; 1 to read 2D files)."""
    from stages.detect.backend import backend_entry

    settings = config.detect
    return backend_entry(settings).model_resources(settings).cpus


def _run_batch_on_ray(take_dirs: list, out_root, config: PipelineConfig, force_from, until, progress: BatchProgress) -> list[TakeReport]:
    """One Ray task per take (:func:`cpus_per_take` CPUs each: one scheduler for the whole
    batch, nothing nested); reports in the order of ``take_dirs``.

    A take whose worker or node dies is run again (``batch.ray_retries`` times) and resumes
    from its finished stages and chunks; one that still fails is reported as failed.
    """
    settings = config.batch
    cpus = cpus_per_take(config)
    ray = ensure_ray(settings.ray_address, settings.parallel_takes * cpus, "batch.parallel_takes > 1")
    remote = ray.remote(num_cpus=cpus, max_retries=settings.ray_retries)(_run_take_reported)
    pending = {remote.remote(take_dir, out_root, config, force_from, until): index for index, take_dir in enumerate(take_dirs)}
    reports: dict[int, TakeReport] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        try:
            reports[index] = ray.get(done[0])
        except Exception as error:  # the retries are spent (a node lost again and again)
            logger.error("take %s failed on Ray: %s", take_dirs[index], error)
            reports[index] = TakeReport(take=str(take_dirs[index]), output="", ok=False, error=f"{type(error).__name__}: {error}")
        progress.finish_take(reports[index].ok)
        logger.info("take %d/%d finished: %s (%s)", len(reports), len(take_dirs), reports[index].take, "ok" if reports[index].ok else "FAILED")
    return [reports[index] for index in range(len(take_dirs))]


def run_batch(
    take_dirs: list[str | Path],
    out_root: str | Path,
    config: PipelineConfig,
    force_from: str | None = None,
    until: str | None = None,
) -> list[TakeReport]:
    """Run several takes; a failing take is reported and the others go on.

    With ``batch.parallel_takes`` > 1 the takes run as Ray tasks (on this machine, or on
    the cluster of ``batch.ray_address``), else one after another in this process. One
    progress display covers the batch (:class:`workflow.progress.BatchProgress`).
    Writes ``out_root/batch_summary.json`` (this run's take reports, with the error of
    failed ones, and every take under ``out_root`` ranked by QA quality, worst first) and
    ``out_root/batch_report.html`` (:func:`workflow.batch_report.write_batch_files`).
    """
    take_dirs = list(take_dirs)
    clashes = _name_clashes(take_dirs)
    runnable = [take_dir for index, take_dir in enumerate(take_dirs) if index not in clashes]
    progress = BatchProgress(len(runnable))
    if config.batch.parallel_takes > 1 and len(runnable) > 1:
        ran = iter(_run_batch_on_ray(runnable, out_root, config, force_from, until, progress))
    else:
        ran = iter(_run_batch_here(runnable, out_root, config, force_from, until, progress))
    reports = [clashes[index] if index in clashes else next(ran) for index in range(len(take_dirs))]
    write_batch_files(Path(out_root), [asdict(report) for report in reports])
    return reports
