"""What the benchmarks share: machine facts, a process's memory, one-core pinning, the peer's camera rig, a quiet logger."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
from pathlib import Path

import numpy as np

from triangulation.cameras import rodrigues_from_rotation


def machine_info() -> dict:
    """Facts that make a benchmark's numbers comparable."""
    return {
        "python": platform.python_version(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }


def status_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process in MB (None where /proc does not tell)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def pin_to_one_core() -> int | None:
    """Run this process on one CPU (the goal is stated per core), with one BLAS thread;
    returns the CPU or None.

    The BLAS pools (OpenBLAS's threads, started with numpy) are capped at one thread for
    ours and the peer alike: pinned to one core, two BLAS threads only take turns, and a
    refine run measured 3.3-3.5 ms/frame with one against 9.7-21 with two (the peer
    70 against 109-589), which made the ratio a measure of the scheduler.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")  # for the rest of the process (not a context)
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def aniposelib_group(cameras):
    """The same rig as an aniposelib CameraGroup (fisheye cameras)."""
    from aniposelib.cameras import CameraGroup, FisheyeCamera

    return CameraGroup(
        [
            FisheyeCamera(
                matrix=camera.model.matrix,
                dist=camera.model.distortion,
                size=camera.image_size,
                rvec=rodrigues_from_rotation(camera.R),
                tvec=camera.t,
                name=camera.name,
            )
            for camera in cameras
        ]
    )


@contextlib.contextmanager
def quiet_logger(logger_name: str):
    """Silence a chatty library logger (numba logs every compilation step at INFO)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
