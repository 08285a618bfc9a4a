"""The README's own examples on the real capture in ../shared/validation, run as a user runs
them: the command lines are read from README.md and executed (output folder moved to a
temporary one), so the front door cannot break while the suite stays green.

Checks what a user would: exit status 0, every stage's folder, the size assumption
recorded for the two 1080-wide videos of a 1088-wide calibration (detect summary and QA
metrics), and the labels near Pose2Sim's own triangulation of the same capture (a
peer's result, not ground truth: MediaPipe and OpenPose also place joints differently).
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import numpy as np
import pytest

from fitting.skeleton import JOINT_NAMES
from pipeline.formats.trc import read_trc
from tests.paths import REPO_ROOT
from tests.triangulation.test_validation_pose2sim import TRC_TO_COCO

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

ROOT = REPO_ROOT
STAGES = ("detect", "triangulate", "refine", "project_ego", "export", "qa")


def readme_examples() -> list[list[str]]:
    """The ``run_pipeline.py run ../shared/validation/...`` command lines of README.md."""
    lines, commands, current = (ROOT / "README.md").read_text(encoding="utf-8").splitlines(), [], ""
    for line in lines:
        stripped = line.strip()
        if current or stripped.startswith(".venv/bin/python run_pipeline.py run ../shared/validation"):
            current += " " + stripped.rstrip("\\")
            if not stripped.endswith("\\"):
                commands.append(shlex.split(current))
                current = ""
    return commands


def test_the_readme_has_both_examples():
    examples = readme_examples()
    assert len(examples) == 2 and all(command[3] == "../shared/validation/pose2sim_balancing" for command in examples)


@pytest.mark.parametrize("index", [0, 1], ids=["embedded_detector", "openpose_files"])
def test_readme_example_runs_on_the_real_capture(index, pose2sim_balancing, tmp_path):
    command = readme_examples()[index]
    command[0] = sys.executable
    out = tmp_path / "out"
    command[command.index("--out") + 1] = str(out)
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    take = out / "pose2sim_balancing"
    for stage in STAGES:
        assert (take / stage / "manifest.json").is_file(), stage
    detect = json.loads((take / "detect" / "manifest.json").read_text())["summary"]
    assert {name: entry["kind"] for name, entry in detect["video_frames"].items()} == {"cam_01": "edges", "cam_02": "edges"}
    assert "1080x1920" in detect["video_frames"]["cam_01"]["assumed"]
    metrics = json.loads((take / "qa" / "metrics.json").read_text())
    assert set(metrics["video_frames"]) == {"cam_01", "cam_02"}
    assert "1088x1920" in (take / "qa" / "report.html").read_text(encoding="utf-8")

    points = np.load(take / "refine" / "joints_3d.npz")["points"]
    trc = read_trc(pose2sim_balancing / "pose-3d" / "S00_P00_T01_BalancingTrial_0-100.trc")
    world = trc.to_world()
    distance = np.stack(
        [np.linalg.norm(points[:, JOINT_NAMES.index(joint)] - world[:, trc.marker_names.index(marker)], axis=-1) for marker, joint in TRC_TO_COCO.items()],
        axis=1,
    )
    print(f"\n{' '.join(command[1:])}: refined body vs Pose2Sim's TRC: median {1000 * np.nanmedian(distance):.1f} mm over {np.isfinite(distance).sum()} joints")
    assert np.isfinite(distance).mean() > 0.99
    assert np.nanmedian(distance) < (0.06 if index == 0 else 0.02)
