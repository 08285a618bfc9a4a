"""Shared fixtures: the real third-party validation data in ../shared/validation.

A test that reads that data (through the ``pose2sim_balancing`` fixture) skips where the
folder is absent (a clone without ../shared); where it is present (CI has it), a skip of
such a test is reported as a failure: real data that we cannot read is a bug, not a skip.
"""

from pathlib import Path

import numpy as np
import pytest

from tests.paths import VALIDATION_ROOT

VALIDATION_FIXTURES = ("pose2sim_balancing",)


def validation_present() -> bool:
    return (VALIDATION_ROOT / "pose2sim_balancing" / "Calib_qualisys.toml").is_file()


def pytest_collection_modifyitems(config, items):
    """Every test not marked ``integration`` (its module's ``pytestmark``) is a ``unit`` test:
    ``pytest -m unit`` runs the fast ones, ``-m integration`` the ones that run stages,
    the pipeline, videos or the real capture."""
    for item in items:
        if item.get_closest_marker("integration") is None:
            item.add_marker(pytest.mark.unit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test that uses the validation data fails while the data is there."""
    outcome = yield
    report = outcome.get_result()
    uses_validation = any(name in getattr(item, "fixturenames", ()) for name in VALIDATION_FIXTURES)
    if report.skipped and uses_validation and validation_present() and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped although {VALIDATION_ROOT} is present (a test of real data must run): {reason}"


@pytest.fixture(scope="session")
def pose2sim_balancing() -> Path:
    """The Pose2Sim balancing capture (4 cameras, calibration, OpenPose 2D, reference TRC).

    Skips the test when the folder is absent (e.g. a clone without ../shared).
    """
    folder = VALIDATION_ROOT / "pose2sim_balancing"
    if not validation_present():
        pytest.skip(f"validation data absent: {folder} (../shared/validation/pose2sim_balancing)")
    return folder


@pytest.fixture(scope="session")
def pose2sim_openpose(pose2sim_balancing):
    """Its cameras (from the TOML) and OpenPose BODY_25B keypoints ``(4, 100, 59, 3)``."""
    from pipeline.formats.calibration import read_toml_calibration
    from pipeline.formats.openpose import read_openpose_folder

    cameras = read_toml_calibration(pose2sim_balancing / "Calib_qualisys.toml")
    keypoints = np.stack(
        [read_openpose_folder(pose2sim_balancing / "pose-associated" / f"cam{v + 1:02d}_json", 100, layout="BODY_25B") for v in range(len(cameras))]
    )
    return cameras, keypoints


@pytest.fixture(scope="session")
def render_take(tmp_path_factory):
    """``render_take(seed, frames)``: a rendered synthetic take (videos) for the embedded
    detector, in a new folder; skips the test without mediapipe."""

    def render(seed: int, frames: int) -> Path:
        pytest.importorskip("mediapipe", reason="the embedded detector needs mediapipe (make setup installs it)")
        from workflow.synth.take_writer import SynthConfig, synthesize_take

        folder = tmp_path_factory.mktemp("rendered") / "take"
        synthesize_take(folder, SynthConfig(seed=seed, num_frames=frames), render=True)
        return folder

    return render
