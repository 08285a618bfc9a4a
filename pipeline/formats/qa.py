"""QA's files: ``qa/metrics.json`` and ``qa/flags.npz`` (written atomically, no pickle).

- ``metrics.json``: the take's quality summary (:func:`fitting.quality.take_metrics`):
  coverage, errors by camera and joint, flagged frames by reason, ``flagged`` (every
  flagged frame per part and reason with its value, threshold and camera),
  ``stretches`` (each flagged stretch with its culprit camera and evidence),
  ``quality_score``; plus the stage's own entries (ego, video frames, body model).
- ``flags.npz``: ``flags (frames, parts, reasons)`` bool with ``parts``, ``reasons`` and
  ``camera_names`` names; the evidence ``value`` / ``threshold (frames, parts, reasons)``
  float32 and ``camera (frames, parts, reasons)`` int16 (-1: none); ``view_tripped
  (views, frames, parts, view_reasons)`` bool with ``view_reasons`` names;
  ``view_error_px`` / ``view_shift_px`` float32 and ``view_flagged`` bool ``(views,
  frames, parts)``; ``score (frames, parts)`` float32.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from fitting.quality import PART_NAMES, REASONS, VIEW_REASONS, QualityFlags
from pipeline.atomic import atomic_save_npz, atomic_write_text


def write_metrics(path: str | os.PathLike, metrics: dict) -> None:
    """``metrics.json`` (one space indent; :func:`fitting.quality.take_metrics` writes
    values it could not measure as null)."""
    atomic_write_text(path, json.dumps(metrics, indent=1) + "\n")


def write_flags(path: str | os.PathLike, quality: QualityFlags, camera_names: Sequence[str]) -> None:
    """``flags.npz`` of :class:`fitting.quality.QualityFlags` (see the module docstring)."""
    atomic_save_npz(
        path,
        flags=quality.flags,
        parts=np.array(PART_NAMES),
        reasons=np.array(REASONS),
        view_reasons=np.array(VIEW_REASONS),
        value=quality.value.astype(np.float32),
        threshold=quality.threshold.astype(np.float32),
        camera=quality.camera.astype(np.int16),
        view_tripped=quality.view_tripped,
        view_error_px=quality.view_error_px.astype(np.float32),
        view_shift_px=quality.view_shift_px.astype(np.float32),
        view_flagged=quality.view_flagged,
        score=quality.score.astype(np.float32),
        camera_names=np.array(list(camera_names)),
    )
