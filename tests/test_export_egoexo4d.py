"""The exported files, read the way the public Ego-Exo4D ego-pose code reads them.

The parsing below re-implements, from their documented layout, what
EGO4D/ego-exo4d-egopose does with each file (bodypose/data/dataset_egoexo.py,
handpose/data_preparation/dataloader.py and utils, the body and hand evaluation
scripts); see docs/ARCHITECTURE.md ("Export") for the rules and where they come from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import runner
from pipeline.atomic import load_npz
from pipeline.config import load_config
from pipeline.synth.take_writer import SynthConfig, synthesize_take

FRAMES = 150
PUBLIC_BODY_JOINTS = [
    "nose", "left-eye", "right-eye", "left-ear", "right-ear", "left-shoulder", "right-shoulder", "left-elbow",
    "right-elbow", "left-wrist", "right-wrist", "left-hip", "right-hip", "left-knee", "right-knee", "left-ankle", "right-ankle",
]  # fmt: skip
PUBLIC_HAND_ORDER = ("right", "left")
PUBLIC_HAND_JOINTS = {
    side: [f"{side}_wrist"] + [f"{side}_{finger}_{k}" for finger in ("thumb", "index", "middle", "ring", "pinky") for k in range(1, 5)]
    for side in PUBLIC_HAND_ORDER
}
PRECOMPUTED = ["detect.backend=precomputed"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    take_dir = root / "take"
    synthesize_take(take_dir, SynthConfig(seed=2, num_frames=FRAMES), render=False)
    report = runner.run_take(take_dir, root / "out", load_config(overrides=PRECOMPUTED))
    out = root / "out" / report.take
    files = {name: json.loads((out / "export" / f"{name}.json").read_text()) for name in ("body_annotation", "hand_annotation", "camera_pose", "body_benchmark_gt", "hand_benchmark_gt")}
    truth = {name: load_npz(take_dir / "gt" / f"{name}.npz") for name in ("joints_3d", "ego_camera")}
    return report, out, files, load_npz(out / "refine" / "joints_3d.npz"), truth, take_dir


# --------------------------------------------------------------------------------------
# The public readers, re-implemented from the documented layout
# --------------------------------------------------------------------------------------


def public_body_parse(document: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """dataset_egoexo.parse_skeleton over the frames in file order: frames, (F, 17, 3), flags (F, 17)."""
    frames = list(document)
    points = np.full((len(frames), 17, 3), -1.0)
    flags = np.zeros((len(frames), 17), dtype=int)
    for index, frame in enumerate(frames):
        annotation = document[frame][0]["annotation3D"]
        for j, name in enumerate(PUBLIC_BODY_JOINTS):
            if name in annotation:
                flags[index, j] = 1
                points[index, j] = [annotation[name]["x"], annotation[name]["y"], annotation[name]["z"]]
    return frames, points, flags


def public_hand_3d(entry: dict, side: str, annotation_type: str) -> np.ndarray:
    """dataloader: a joint is used when present and (automatic, or seen in >= 3 views)."""
    points = np.full((21, 3), np.nan)
    annotation = entry["annotation3D"]
    for j, name in enumerate(PUBLIC_HAND_JOINTS[side]):
        if name in annotation and (annotation_type == "auto" or annotation[name]["num_views_for_3d"] >= 3):
            points[j] = [annotation[name][axis] for axis in "xyz"]
    return points


def public_hand_2d(entry: dict, side: str, aria: str) -> np.ndarray:
    pixels = np.full((21, 2), np.nan)
    cameras = entry["annotation2D"]
    for j, name in enumerate(PUBLIC_HAND_JOINTS[side]):
        if aria in cameras and name in cameras[aria]:
            pixels[j] = [cameras[aria][name]["x"], cameras[aria][name]["y"]]
    return pixels


def filter_short_clips(frames: list[int], min_clip_len: int = 120) -> list[int]:
    """The body evaluation's clips: a gap > 3 frames starts a clip; clips shorter than min_clip_len go."""
    kept, clip = [], [frames[0]]
    for frame in frames[1:]:
        if frame - clip[-1] > 3:
            if clip[-1] - clip[0] + 3 >= min_clip_len:
                kept += clip
            clip = [frame]
        else:
            clip.append(frame)
    if clip[-1] - clip[0] + 3 >= min_clip_len:
        kept += clip
    return kept


def public_body_mpjpe_cm(ground_truth: dict, prediction: dict) -> tuple[float, int]:
    """bodypose/evaluation/evaluate.py: plain Euclidean error over non-NaN ground-truth joints, in cm."""
    total, count = 0.0, 0
    for uid, take in ground_truth.items():
        for frame in filter_short_clips(sorted(int(key) for key in take["body"])):
            gt = np.array(take["body"][str(frame)], dtype=float)
            pred = np.array(prediction[uid]["body"][str(frame)], dtype=float)
            assert pred.shape == gt.shape == (17, 3)
            for j in range(17):
                if np.isnan(gt[j][0]):
                    continue
                total += np.linalg.norm(gt[j] - pred[j])
                count += 1
    return total / count * 100, count


def public_hand_mpjpe_mm(ground_truth: dict, prediction: dict) -> tuple[float, int]:
    """handpose/evaluation/evaluate.py: per hand instance, mean error over its valid joints (mm), averaged."""
    errors = []
    for uid, frames in ground_truth.items():
        for frame, entry in frames.items():
            for side in PUBLIC_HAND_ORDER:
                gt = entry[f"{side}_hand_3d"]
                if not gt:
                    continue
                gt = np.array(gt, dtype=float) * 1000
                pred = np.array(prediction[uid][frame][f"{side}_hand_3d"], dtype=float) * 1000
                assert pred.shape == (21, 3)
                mask = np.array(entry[f"{side}_hand_valid_3d"], dtype=bool)
                errors.append(np.linalg.norm(gt[mask] - pred[mask], axis=1).mean())
    return float(np.mean(errors)), len(errors)


# --------------------------------------------------------------------------------------
# Annotation files
# --------------------------------------------------------------------------------------


def test_body_file_parses_with_the_public_joint_names(run):
    report, _, files, joints, _, _ = run
    frames, points, flags = public_body_parse(files["body_annotation"])
    assert [int(frame) for frame in frames] == sorted(int(frame) for frame in frames)  # file order is time
    for frame in frames:
        assert set(files["body_annotation"][frame][0]["annotation3D"]) <= set(PUBLIC_BODY_JOINTS)
    ours = joints["points"][[int(f) for f in frames], :17]
    found = np.isfinite(ours).all(axis=-1)
    np.testing.assert_array_equal(flags == 1, found)  # every reconstructed body joint is found by its public name
    np.testing.assert_allclose(points[found], ours[found], atol=1e-12)
    assert found.mean() > 0.95


def test_hand_file_parses_with_the_public_joint_names_and_aria_2d(run):
    _, _, files, joints, _, _ = run
    hands = files["hand_annotation"]
    camera_pose = files["camera_pose"]
    aria = next(key for key in camera_pose if "aria" in key)  # the body loader's rule
    assert aria == "aria01"
    K = np.array(camera_pose[aria]["camera_intrinsics"])
    found = reprojected = 0
    for frame, entries in hands.items():
        entry = entries[0]
        names = set(entry["annotation3D"])
        assert names <= set(PUBLIC_HAND_JOINTS["right"] + PUBLIC_HAND_JOINTS["left"])
        for side, offset in (("left", 17), ("right", 38)):
            points = public_hand_3d(entry, side, "auto")
            ours = joints["points"][int(frame), offset : offset + 21]
            np.testing.assert_array_equal(np.isfinite(points).all(axis=1), np.isfinite(ours).all(axis=1))
            found += int(np.isfinite(points).all(axis=1).sum())
            pixels = public_hand_2d(entry, side, aria)
            seen = np.isfinite(pixels).all(axis=1)
            if not seen.any():
                continue
            extrinsics = np.array(camera_pose[aria]["camera_extrinsics"][frame])  # world -> camera, 3x4
            camera = points[seen] @ extrinsics[:, :3].T + extrinsics[:, 3]
            projected = (camera @ K.T)[:, :2] / camera[:, 2:3]
            assert np.abs(projected - pixels[seen]).max() < 0.01  # the consumer's 30 px check passes with room
            assert ((pixels[seen] >= 0) & (pixels[seen] < 512)).all()
            reprojected += int(seen.sum())
    assert found > 0.9 * FRAMES * 42 and reprojected > 100


def test_aria_2d_lies_in_the_public_valid_mask(run):
    """The consumer's mask: an all-white 1408-style fisheye image undistorted into 512 / 150 (projectaria-tools)."""
    pytest.importorskip("projectaria_tools.core")
    from projectaria_tools.core import calibration, mps

    _, _, files, _, _, take_dir = run
    rgb = mps.read_online_calibration(str(take_dir / "trajectory" / "online_calibration.jsonl"))[0].get_camera_calib("camera-rgb")
    width, height = (int(v) for v in rgb.get_image_size())
    mask = calibration.distort_by_calibration(np.full((height, width), 255, np.uint8), calibration.get_linear_camera_calibration(512, 512, 150), rgb)
    inside = total = 0
    for entries in files["hand_annotation"].values():
        for joint in entries[0]["annotation2D"].get("aria01", {}).values():
            total += 1
            inside += bool(mask[int(joint["y"]), int(joint["x"])])
    print(f"\naria 2D in the public valid mask: {inside}/{total}")
    assert total > 100 and inside >= 0.99 * total


def test_camera_pose_has_what_the_loaders_need(run):
    _, _, files, _, _, _ = run
    camera_pose = files["camera_pose"]
    assert camera_pose["metadata"]["take_name"] and list(camera_pose)[:2] == ["metadata", "cam01"]
    np.testing.assert_allclose(camera_pose["aria01"]["camera_intrinsics"], [[150, 0, 255.5], [0, 150, 255.5], [0, 0, 1]])
    extrinsics = camera_pose["aria01"]["camera_extrinsics"]
    for part in ("body_annotation", "hand_annotation"):
        assert set(files[part]) <= set(extrinsics)  # every annotated frame has its pose under the same key
    assert all(np.array(pose).shape == (3, 4) for pose in extrinsics.values())
    assert np.array(camera_pose["cam01"]["camera_extrinsics"]).shape == (3, 4)


# --------------------------------------------------------------------------------------
# Benchmark files scored with the public metrics
# --------------------------------------------------------------------------------------


def test_body_benchmark_scores_our_labels_against_the_truth(run):
    _, _, files, joints, truth, _ = run
    gt_file = files["body_benchmark_gt"]
    (uid, take), = gt_file.items()
    prediction = {uid: {"take_name": take["take_name"], "body": {frame: truth["joints_3d"]["joints_3d"][int(frame), :17].tolist() for frame in take["body"]}}}
    score_cm, count = public_body_mpjpe_cm(gt_file, prediction)
    observed = np.isfinite(joints["points"][:, :17]).all(axis=-1) & ~joints["filled"][:, :17]
    direct = np.linalg.norm(joints["points"][:, :17] - truth["joints_3d"]["joints_3d"][:, :17], axis=-1)[observed]
    print(f"\nbody benchmark file, public MPJPE of our labels against the truth: {score_cm:.3f} cm over {count} joints "
          f"(direct {direct.mean() * 100:.3f} cm)")  # fmt: skip
    assert count == observed.sum()
    assert score_cm == pytest.approx(direct.mean() * 100, rel=1e-9)
    assert score_cm < 2.0  # refined labels on simulated detections are within centimetres


def test_hand_benchmark_scores_our_labels_against_the_truth(run):
    _, _, files, joints, truth, _ = run
    gt_file = files["hand_benchmark_gt"]
    (uid, frames), = gt_file.items()
    R, t = truth["ego_camera"]["R"], truth["ego_camera"]["t"]
    world = truth["joints_3d"]["joints_3d"]
    camera = np.einsum("fij,fkj->fki", R, world) + t[:, None]
    prediction = {uid: {frame: {"left_hand_3d": camera[int(frame), 17:38].tolist(), "right_hand_3d": camera[int(frame), 38:].tolist()} for frame in frames}}
    score_mm, hands = public_hand_mpjpe_mm(gt_file, prediction)
    direct = []
    for frame, entry in frames.items():
        for side, offset in (("right", 38), ("left", 17)):
            if entry[f"{side}_hand_3d"]:
                mask = np.array(entry[f"{side}_hand_valid_3d"])
                error = np.linalg.norm(joints["points"][int(frame), offset : offset + 21] - world[int(frame), offset : offset + 21], axis=1)
                direct.append(error[mask].mean() * 1000)
                assert mask.sum() >= 10 and not joints["filled"][int(frame), offset : offset + 21][mask].any()
    print(f"\nhand benchmark file, public MPJPE of our labels against the truth: {score_mm:.2f} mm over {hands} hands")
    assert hands == len(direct) > 20
    assert score_mm == pytest.approx(np.mean(direct), abs=1e-3)  # camera vs world: the same distances


# --------------------------------------------------------------------------------------
# Gap-filled joints
# --------------------------------------------------------------------------------------


def test_gap_filled_joints_are_marked_or_left_out(run, tmp_path):
    report, out, files, joints, _, take_dir = run
    filled = joints["filled"]
    assert filled.any()  # simulated detections leave gaps that refine fills
    marked = 0
    for part, offset, names in (("body_annotation", 0, PUBLIC_BODY_JOINTS), ("hand_annotation", 17, None)):
        for frame, entries in files[part].items():
            for name, joint in entries[0]["annotation3D"].items():
                index = names.index(name) if names else 17 + PUBLIC_HAND_JOINTS["left"].index(name) if name.startswith("left") else 38 + PUBLIC_HAND_JOINTS["right"].index(name)
                assert (joint["num_views_for_3d"] == 0) == bool(filled[int(frame), index])
                marked += joint["num_views_for_3d"] == 0
    assert marked == filled.sum()
    body_gt = next(iter(files["body_benchmark_gt"].values()))["body"]
    for frame, rows in body_gt.items():
        assert np.isnan(np.array(rows, dtype=float)[filled[int(frame), :17]]).all()
    omitted = runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED + ["export.filled_joints=omit"]))
    assert omitted.ran == ["export"]
    hands = json.loads((out / "export" / "hand_annotation.json").read_text())
    assert all(joint["num_views_for_3d"] > 0 for entries in hands.values() for joint in entries[0]["annotation3D"].values())
