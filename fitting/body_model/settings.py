"""The body model fit's settings (torch-free: the settings loader imports it).

:class:`FitSettings` is what :func:`fitting.body_model.fit.fit_body_model` reads and the
schema of those keys of configs/default.yaml's ``fit_body_model`` section
(``pipeline.config.FitBodyModelConfig`` extends it with the backend and mesh keys): one
definition, in the YAML's units (millimetres for the data sigmas).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from triangulation.schema import POSITIVE, bounds


@dataclass(frozen=True)
class FitSettings:
    """Weights (standard deviations, units in the names) and iteration counts of the fit."""

    body_sigma_mm: float = field(metadata=POSITIVE)
    hand_sigma_mm: float = field(metadata=POSITIVE)
    robust_scale: float = field(metadata=POSITIVE)
    filled_weight: float = field(metadata=bounds(0.0, 1.0))
    body_pose_sigma_rad: float = field(metadata=POSITIVE)
    hand_pose_sigma_rad: float = field(metadata=POSITIVE)
    shape_sigma: float = field(metadata=POSITIVE)
    pose_acceleration_sigma_rad_s2: float = field(metadata=POSITIVE)
    rotation_acceleration_sigma_rad_s2: float = field(metadata=POSITIVE)
    translation_acceleration_sigma_m_s2: float = field(metadata=POSITIVE)
    shape_frames: int = field(metadata=bounds(1))
    shape_iterations: int = field(metadata=bounds(1))
    window_frames: int = field(metadata=bounds(2))
    window_iterations: int = field(metadata=bounds(1))
