"""The public Ego-Exo4D hand data preparation, re-implemented from its published rules.

EGO4D/ego-exo4d-egopose handpose/data_preparation (dataloader.py ``load_take_raw_data``,
``one_hand_kpts_valid_check``, utils.py ``joint_dist_angle_check``, ``reproj_error_check``,
``hand_pad_bbox_from_kpts``), written here per hand and joint the way it reads (loops,
float32), not the way pipeline/formats/egoexo4d.py computes it (vectorized), so that a
test comparing the two can fail. Used by tests/stages/test_export_egoexo4d.py and to measure
our export against it (docs/RESULTS.md, "Public Ego-Exo4D loaders on our export").
"""

from __future__ import annotations

import numpy as np

HAND_ORDER = ("right", "left")
FINGERS = ("thumb", "index", "middle", "ring", "pinky")
UNDISTORTED = (512, 512)  # the preparation's undist_img_dim (H, W)


def hand_joint_names(side: str) -> list[str]:
    return [f"{side}_wrist"] + [f"{side}_{finger}_{k}" for finger in FINGERS for k in range(1, 5)]


def valid_mask(calibration_json: str) -> np.ndarray:
    """load_aria_calib: an all-white 1408 x 1408 image undistorted into the 512 / 150 linear camera, 0/1."""
    from projectaria_tools.core import calibration

    rgb = calibration.device_calibration_from_json(calibration_json).get_camera_calib("camera-rgb")
    mask = np.full((1408, 1408), 255, dtype=np.uint8)
    return calibration.distort_by_calibration(mask, calibration.get_linear_camera_calibration(512, 512, 150), rgb) / 255


def _angle(v1: np.ndarray, v2: np.ndarray) -> float:
    u1 = v1 / (np.linalg.norm(v1) + 1e-8)
    u2 = v2 / (np.linalg.norm(v2) + 1e-8)
    return np.arccos(np.clip(np.dot(u1, u2), -1.0, 1.0)) * 180.0 / np.pi


def structure_check(hand: np.ndarray) -> np.ndarray:
    """joint_dist_angle_check: the hand (21, 3) with the joints that fail set to NaN."""
    hand = hand.copy()
    wrist_children = (1, 5, 9, 13, 17)
    long_bones = (5, 9, 13, 17)
    invalid = np.zeros(21, dtype=bool)
    for j in range(1, 21):
        parent = 0 if j in wrist_children else j - 1
        distance = np.linalg.norm(hand[j] - hand[parent])
        low, high = (0.06, 0.12) if j in long_bones else (0.005, 0.08)
        invalid[j] |= bool(distance < low or distance > high)
    minimum = dict(zip((1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19), (100, 90, 90, 60, 70, 80, 60, 70, 80, 60, 70, 80, 60, 70, 80)))
    for j, low in minimum.items():
        parent = 0 if j in wrist_children else j - 1
        angle = _angle(hand[parent] - hand[j], hand[j + 1] - hand[j])
        invalid[j] |= bool(angle < low or angle > 180)
    hand[invalid] = np.nan
    return hand


def kpts_valid_check(kpts: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """one_hand_kpts_valid_check: present, in [0, W) x [0, H), set in the mask at (int(y), int(x))."""
    new = kpts.copy()
    missing = np.any(np.isnan(kpts), axis=1)
    new[missing] = 0
    out = (new[:, 0] < 0) | (new[:, 0] >= UNDISTORTED[1]) | (new[:, 1] < 0) | (new[:, 1] >= UNDISTORTED[0])
    new[out] = 0
    invisible = mask[new[:, 1].astype(np.int64), new[:, 0].astype(np.int64)] == 0
    invalid = missing | out | invisible
    new[invalid] = np.nan
    return new, ~invalid


def _frame_keypoints(entry: dict, aria: str) -> tuple[np.ndarray, np.ndarray]:
    """load_frame_hand_2d_3d_kpts in "auto" mode: (42, 2) and (42, 3) float32, right hand first."""
    names = hand_joint_names("right") + hand_joint_names("left")
    cameras = entry.get("annotation2D", {})
    two_d = cameras.get(aria, {})
    three_d = entry["annotation3D"]
    kpts_2d = [[two_d[n]["x"], two_d[n]["y"]] if n in two_d else [np.nan, np.nan] for n in names]
    kpts_3d = [[three_d[n][a] for a in "xyz"] if n in three_d else [np.nan] * 3 for n in names]
    return np.array(kpts_2d, dtype=np.float32), np.array(kpts_3d, dtype=np.float32)


def prepare_hands(
    annotation: dict, camera_pose: dict, mask: np.ndarray, aria: str = "aria01", reprojection_px: float = 30, min_valid: int = 10, padding: float = 20
) -> dict:
    """load_take_raw_data for one take ("auto" annotations, train/val boxes): {frame: entry}."""
    frames = {}
    for frame, entries in annotation.items():
        if not entries or not entries[0].get("annotation3D"):
            continue
        extrinsics = camera_pose.get(aria, {}).get("camera_extrinsics", {})
        if frame not in extrinsics:
            continue
        K = np.array(camera_pose[aria]["camera_intrinsics"], dtype=np.float32)
        pose = np.array(extrinsics[frame], dtype=np.float32)
        kpts_2d, kpts_3d = _frame_keypoints(entries[0], aria)
        out, any_valid = {}, False
        for h, side in enumerate(HAND_ORDER):
            hand_2d, hand_3d = kpts_2d[21 * h : 21 * (h + 1)], kpts_3d[21 * h : 21 * (h + 1)].copy()
            if np.any(np.isnan(hand_3d[0])):
                hand_3d[:, :] = np.nan
            hand_3d = structure_check(hand_3d)
            camera = (pose @ np.append(hand_3d, np.ones((21, 1), dtype=np.float32), axis=1).T).T
            projected = K @ camera.T
            projected = (projected / projected[2, :])[:2].T
            projected, projected_ok = kpts_valid_check(projected, mask)
            annotated, _ = kpts_valid_check(hand_2d, mask)
            distance = np.linalg.norm(projected - annotated, axis=1)
            distance[0] = 0
            valid = projected_ok * (distance <= reprojection_px)
            if valid.sum() >= min_valid:
                any_valid = True
                kept = camera.copy()
                kept[~valid] = np.nan
                kept[0] = camera[0]
                points = projected[valid]
                box = np.array(
                    [
                        np.clip(points[:, 0].min() - padding, 0, UNDISTORTED[1] - 1),
                        np.clip(points[:, 1].min() - padding, 0, UNDISTORTED[0] - 1),
                        np.clip(points[:, 0].max() + padding, 0, UNDISTORTED[1] - 1),
                        np.clip(points[:, 1].max() + padding, 0, UNDISTORTED[0] - 1),
                    ]
                )
                out.update({f"{side}_hand_3d": kept, f"{side}_hand_2d": annotated, f"{side}_hand_bbox": box, f"{side}_hand_valid_3d": valid})
            else:
                out.update(
                    {f"{side}_hand_3d": np.array([]), f"{side}_hand_2d": np.array([]), f"{side}_hand_bbox": np.array([]), f"{side}_hand_valid_3d": np.array([])}
                )
        if any_valid:
            frames[frame] = out
    return frames


def compare_hand_benchmark(ours: dict, public: dict) -> dict:
    """Our hand benchmark frames against the public preparation's: joints we mark valid
    that it rejects (and the hands they are in), joints it keeps that we do not, hands
    kept by one only, the largest box difference (pixels) and 3D difference (metres)."""
    report = {
        "ours_valid_rejected": 0,
        "hands_with_rejected": 0,
        "public_valid_not_ours": 0,
        "hands_only_ours": 0,
        "hands_only_public": 0,
        "hands_both": 0,
        "max_box_px": 0.0,
        "max_3d_m": 0.0,
    }
    for frame in sorted(set(ours) | set(public), key=int):
        for side in HAND_ORDER:
            a = np.array(ours[frame][f"{side}_hand_valid_3d"], dtype=bool) if frame in ours else np.array([])
            b = np.asarray(public[frame][f"{side}_hand_valid_3d"], dtype=bool) if frame in public else np.array([])
            if a.size and not b.size:
                report["hands_only_ours"] += 1
                report["ours_valid_rejected"] += int(a.sum())
                report["hands_with_rejected"] += 1
                continue
            if b.size and not a.size:
                report["hands_only_public"] += 1
                continue
            if not a.size:
                continue
            report["hands_both"] += 1
            rejected = int((a & ~b).sum())
            report["ours_valid_rejected"] += rejected
            report["hands_with_rejected"] += rejected > 0
            report["public_valid_not_ours"] += int((b & ~a).sum())
            box = np.abs(np.array(ours[frame][f"{side}_hand_bbox"]) - public[frame][f"{side}_hand_bbox"]).max()
            report["max_box_px"] = max(report["max_box_px"], float(box))
            ours_3d, public_3d = np.array(ours[frame][f"{side}_hand_3d"], dtype=float), public[frame][f"{side}_hand_3d"]
            both = np.isfinite(ours_3d).all(axis=1) & np.isfinite(public_3d).all(axis=1)
            if both.any():
                report["max_3d_m"] = max(report["max_3d_m"], float(np.abs(ours_3d[both] - public_3d[both]).max()))
    return report


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.public_egopose OUT/<take>/export [CALIBRATION_JSON]``: the public
    hand preparation on an export folder (flat layout), against its hand benchmark file."""
    import argparse
    import glob
    import json
    import os

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("export", help="OUT/<take>/export")
    parser.add_argument("calibration", nargs="?", help="the Aria calibration JSON (default: the export's aria_calib_json/*.json)")
    args = parser.parse_args(argv)
    calibration = args.calibration or glob.glob(os.path.join(args.export, "aria_calib_json", "*.json"))[0]
    read = lambda name: json.load(open(os.path.join(args.export, name)))  # noqa: E731
    public = prepare_hands(read("hand_annotation.json"), read("camera_pose.json"), valid_mask(calibration))
    (ours,) = read("hand_benchmark_gt.json").values()
    print(json.dumps(compare_hand_benchmark(ours, public)))


if __name__ == "__main__":
    main()
