"""Where a stage's independent pieces of work run: in this process or on Ray, by one rule.

Every stage that can spread its work (detect's frame-range tasks on model actors, refine's
fit windows as tasks) asks :func:`choose` with its ``<stage>.executor`` setting:

- ``inprocess`` / ``ray``: as set (``ray`` counts the CPUs only to size the workers);
- ``auto``: in-process inside a batch's take task (the takes are the parallelism: one
  scheduler, no nested oversubscription), or where the stage says Ray is not worth it
  (``stay_inprocess``); else on Ray when a worker needs a GPU, or when the CPUs (this
  machine's, or the cluster's at ``address``) hold two or more workers of
  ``cpus_per_worker`` CPUs and there are two or more pieces; else in-process. A Ray that
  does not start then leaves the work in-process with that reason (Ray would only
  have been faster).

The answer carries the reason, which the stage writes in its summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pipeline import ray_support

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutorChoice:
    """``kind`` (``inprocess`` or ``ray``), ``workers`` (Ray workers to start, 1 in-process)
    and ``reason`` (a sentence for the summary)."""

    kind: str
    workers: int
    reason: str


def choose(
    setting: str,
    key: str,
    *,
    pieces: int,
    cpus_per_worker: int,
    address: str | None,
    worker: str,
    gpu: bool = False,
    num_workers: int = 0,
    stay_inprocess: str | None = None,
    context: str = "",
    start_ray: bool = True,
) -> ExecutorChoice:
    """The executor for ``pieces`` independent pieces of work under ``setting`` (the value of
    config key ``key``, e.g. ``detect.executor``).

    ``cpus_per_worker``: CPUs one worker keeps busy; ``worker``: what a worker is, plural,
    for the reason ("model instances"); ``gpu``: a worker runs on a GPU; ``num_workers``:
    at most this many (0: as the CPUs allow); ``stay_inprocess``: the stage's own reason
    for ``auto`` to stay in-process (None: none); ``context``: said before the CPU count
    ("6000 frames, "); ``start_ray``: with ``auto``, start (or join) Ray now and fall back
    to in-process when it does not start.
    """
    if setting == "inprocess":
        return ExecutorChoice("inprocess", 1, f"{key} is inprocess")
    if setting == "auto" and ray_support.in_ray_task():
        return ExecutorChoice("inprocess", 1, ray_support.IN_BATCH_TASK)
    if setting == "auto" and stay_inprocess:
        return ExecutorChoice("inprocess", 1, stay_inprocess)
    cpus = ray_support.available_cpus(address)
    fit = max(1, cpus) if gpu else max(1, cpus // cpus_per_worker)
    workers = min(fit if num_workers == 0 else int(num_workers), max(pieces, 1))
    where = f"{context}{cpus} CPU(s){' on the cluster' if address else ''}"
    if setting == "ray":
        return ExecutorChoice("ray", workers, f"{key} is ray ({where})")
    if gpu:
        choice = ExecutorChoice("ray", workers, "the model runs on a GPU")
    elif fit >= 2 and pieces >= 2:
        choice = ExecutorChoice("ray", workers, f"{where} hold {fit} {worker} of {cpus_per_worker} CPU(s)")
    elif pieces < 2:
        return ExecutorChoice("inprocess", 1, "a single task")
    else:
        return ExecutorChoice("inprocess", 1, f"{where}: one of the {worker} ({cpus_per_worker} CPU(s)) keeps them busy")
    if start_ray and (failure := ray_support.ray_start_failure(address, f"{key} auto")):
        logger.warning("%s auto: %s; running in-process", key, failure)
        return ExecutorChoice("inprocess", 1, failure)
    return choice
