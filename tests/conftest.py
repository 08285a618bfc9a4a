"""Shared fixtures: the real third-party validation data in ../shared/validation."""

from pathlib import Path

import pytest

VALIDATION_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "validation"


@pytest.fixture(scope="session")
def pose2sim_balancing() -> Path:
    """The Pose2Sim balancing capture (4 cameras, calibration, OpenPose 2D, reference TRC).

    Skips the test when the folder is absent (e.g. a clone without ../shared).
    """
    folder = VALIDATION_ROOT / "pose2sim_balancing"
    if not (folder / "Calib_qualisys.toml").is_file():
        pytest.skip(f"validation data absent: {folder} (../shared/validation/pose2sim_balancing)")
    return folder
