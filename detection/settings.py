"""The detect loop's settings: what :mod:`detection` reads (configs/default.yaml's ``detect``
section explains each key; units in the names).

It is also the schema of those keys: ``pipeline.config.DetectConfig`` extends it with the
stage's own keys (backend, precomputed files, executor, model files), so the YAML section
stays one flat ``detect`` mapping and the loader checks each value against its field's range.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from triangulation.schema import bounds


@dataclass(frozen=True)
class DetectionSettings:
    """Subject selection (ego prior, pose prior, redetection) and the hand search, tracking and checks."""

    # subject selection
    ego_prior: bool
    world_up: Literal["+x", "-x", "+y", "-y", "+z", "-z"]
    ego_box_above_m: float = field(metadata=bounds(0.0))
    ego_box_below_m: float = field(metadata=bounds(0.0))
    ego_box_radius_m: float = field(metadata=bounds(0.0, low_open=True))
    ego_head_radius_m: float = field(metadata=bounds(0.0, low_open=True))
    pose_box_margin: float = field(metadata=bounds(0.0, 2.0))
    prior_threshold_px: float = field(metadata=bounds(0.0, low_open=True))
    prior_min_joints: int = field(metadata=bounds(2, 17))
    prior_max_age: int = field(metadata=bounds(0))
    redetect_inconsistent: bool
    min_keypoint_confidence: float = field(metadata=bounds(0.0, 1.0))
    # hands
    detect_hands: bool
    hand_region_scale: float = field(metadata=bounds(0.5, 5.0))
    hand_region_shift: float = field(metadata=bounds(-1.0, 1.0))
    hand_arm_offset: float = field(metadata=bounds(-1.0, 2.0))
    hand_arm_scale: float = field(metadata=bounds(0.0, 10.0, low_open=True))
    hand_track: bool
    hand_multiview: bool
    hand_refit: bool
    min_hand_presence: float = field(metadata=bounds(0.0, 1.0))
    hand_max_distance: float = field(metadata=bounds(0.0, low_open=True))
    hand_track_max_age: int = field(metadata=bounds(0))
    hand_agreement_fraction: float = field(metadata=bounds(0.0, 2.0, low_open=True))
    hand_min_agreement: float = field(metadata=bounds(0.0, 1.0))
    hand_retry_scale_step: float = field(metadata=bounds(1.0, 4.0))
    hand_retry_mirrored: bool
    hand_palm_search: bool
    hand_bone_tolerance: float = field(metadata=bounds(0.0, low_open=True))
    hand_confirmed_confidence: float = field(metadata=bounds(0.0, 1.0))
    hand_crop_offset: float = field(metadata=bounds(-1.0, 2.0))
    hand_crop_scale: float = field(metadata=bounds(0.0, 10.0, low_open=True))
    hand_crop_min_px: float = field(metadata=bounds(1.0))
