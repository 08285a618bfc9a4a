"""Ray for the parts of the pipeline that run on it: started once per process, or joined.

- :func:`ensure_ray`: the initialised ``ray`` module (a cluster's address, or a local Ray).
- :func:`in_ray_task`: whether this code runs inside a Ray task or actor (a batch's take):
  then its own work stays in-process, the batch's takes being the parallelism (one
  scheduler, no nested oversubscription).
- :func:`available_cpus`: the CPUs this process may use, or a cluster's
  (:func:`cluster_cpus` of a running Ray).
- :func:`ray_start_failure`: why Ray cannot be started or joined (an ``auto`` executor
  then stays in-process).
- :func:`ray_map`: an ordered map over Ray tasks with a bounded number in flight (the
  refine fit's windows).
"""

from __future__ import annotations

import os
import sys
from collections import deque


def ensure_ray(address: str | None, num_cpus: int | None, purpose: str):
    """The ``ray`` module, initialised: joins ``address`` ("auto", "host:port") when given,
    else starts Ray on this machine with ``num_cpus`` (None: all). An already running Ray is reused."""
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=None if num_cpus is None else int(num_cpus), include_dashboard=False, log_to_driver=False)
    return ray


# An ``auto`` executor's reason to stay in-process inside a batch's take task.
IN_BATCH_TASK = "this take is a task of a batch on Ray (the takes are the parallelism)"


def ray_start_failure(address: str | None, purpose: str) -> str | None:
    """None once Ray runs (started here, or ``address`` joined); else why it did not start."""
    try:
        ensure_ray(address, None, purpose)
    except Exception as error:  # any failure: the caller can do the work without Ray
        return f"Ray did not start ({type(error).__name__}: {error})"
    return None


def in_ray_task() -> bool:
    """True inside a Ray task or actor (not in the driver)."""
    ray = sys.modules.get("ray")  # a Ray worker has imported it; nothing to import otherwise
    if ray is None or not ray.is_initialized():
        return False
    return ray.get_runtime_context().worker.mode == ray.WORKER_MODE


def local_cpus() -> int:
    """CPUs this process may run on (its affinity where the system tells it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def available_cpus(address: str | None) -> int:
    """CPUs of the cluster at ``address`` (joined), else of this machine."""
    if not address:
        return local_cpus()
    return cluster_cpus(ensure_ray(address, None, "counting the cluster's CPUs"))


def cluster_cpus(ray) -> int:
    """CPUs of the cluster the initialised ``ray`` module is connected to (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def current_node() -> str | None:
    """The Ray node this code runs on, inside a Ray task or actor; else None."""
    if not in_ray_task():
        return None
    import ray

    return ray.get_runtime_context().get_node_id()


def ray_map(function, items, address: str | None = None, in_flight_per_cpu: int = 2):
    """Like the builtin :func:`map`, one Ray task (one CPU) per item; the results in the
    order of ``items``, each as soon as it and those before it are done. Items are sent
    as they are needed: at most ``in_flight_per_cpu`` per CPU of the cluster wait or run
    at once (``items`` may be a generator of large items; they never all exist at once)."""
    ray = ensure_ray(address, None, "work split over Ray tasks")
    remote = ray.remote(num_cpus=1)(function)
    limit = max(2, in_flight_per_cpu * cluster_cpus(ray))
    pending = deque()
    for item in items:
        pending.append(remote.remote(item))
        if len(pending) >= limit:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())
