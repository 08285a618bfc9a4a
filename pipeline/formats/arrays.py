"""The stages' array files (``.npz``, no pickle, written atomically).

- ``detect/keypoints_2d.npz``: ``keypoints (views, frames, 59, 3)`` float32 x, y
  (pixels), confidence; NaN = missing; ``camera_names (views,)``.
- ``triangulate/joints_3d.npz`` and ``refine/joints_3d.npz``: ``points (frames, 59, 3)``
  float64 metres (NaN = missing), ``num_views (frames, 59)`` int16, ``inliers (views,
  frames, 59)`` bool, ``reprojection_error (views, frames, 59)`` float32 pixels,
  ``confidence (frames, 59)`` float32, ``camera_names (views,)``, ``joint_names (59,)``;
  refine adds ``bone_lengths (59,)`` metres in :data:`fitting.skeleton.BONES` order,
  ``outliers`` and ``filled (frames, 59)`` bool.
- ``project_ego/projections.npz``: see :mod:`stages.project_ego`.
- detection chunks (``OUT/<take>/.cache/detect-<fingerprint>/chunk_<start>_<stop>.npz``):
  one finished task's ``keypoints`` and its ``summary`` (JSON text), kept across a
  killed run (:func:`save_detect_chunk`, :func:`load_detect_chunk`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from fitting.skeleton import JOINT_NAMES
from pipeline.atomic import atomic_save_npz, load_npz


def save_keypoints_2d(path: str | os.PathLike, keypoints: np.ndarray, camera_names: Sequence[str]) -> None:
    atomic_save_npz(path, keypoints=np.asarray(keypoints, dtype=np.float32), camera_names=np.array(list(camera_names)))


def save_joints_3d(path: str | os.PathLike, result, camera_names: Sequence[str], **extra: np.ndarray) -> None:
    """The 3D joints file of triangulate and refine (``result``: a Triangulation-like object), plus stage extras."""
    atomic_save_npz(
        path,
        points=result.points,
        num_views=result.num_views.astype(np.int16),
        inliers=result.inliers,
        reprojection_error=result.reprojection_error.astype(np.float32),
        confidence=result.confidence.astype(np.float32),
        camera_names=np.array(list(camera_names)),
        joint_names=np.array(JOINT_NAMES),
        **extra,
    )


def load_arrays(path: str | os.PathLike, required: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`pipeline.atomic.load_npz`, refusing a file without one of the ``required`` arrays (named)."""
    arrays = load_npz(path)
    missing = [name for name in required if name not in arrays]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (has: {', '.join(sorted(arrays))})")
    return arrays


def save_projections(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """``project_ego/projections.npz`` (keys in :mod:`stages.project_ego`)."""
    atomic_save_npz(path, **arrays)


def save_detect_chunk(path: str | os.PathLike, keypoints: np.ndarray, summary: dict) -> None:
    """One finished detection task, atomically: its keypoints and its summary (JSON text)."""
    atomic_save_npz(path, keypoints=keypoints, summary=np.array(json.dumps(summary)))


def load_detect_chunk(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """A chunk written by :func:`save_detect_chunk`; raises ValueError, KeyError or
    json.JSONDecodeError when it is damaged."""
    stored = load_npz(path)
    return stored["keypoints"], json.loads(str(stored["summary"]))
