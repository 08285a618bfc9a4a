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

from pipeline.atomic import load_npz
from pipeline.config import load_config
from workflow import runner
from workflow.synth.take_writer import SynthConfig, synthesize_take

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

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
    meta = json.loads((take_dir / "take.json").read_text())
    meta["take_name"] = "synth_cooking_2"  # the public body evaluation asserts that a take name names its scenario
    (take_dir / "take.json").write_text(json.dumps(meta))
    report = runner.run_take(take_dir, root / "out", load_config(overrides=PRECOMPUTED))
    out = root / "out" / report.take
    files = {
        name: json.loads((out / "export" / f"{name}.json").read_text())
        for name in ("body_annotation", "hand_annotation", "camera_pose", "body_benchmark_gt", "hand_benchmark_gt")
    }
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


PUBLIC_BODY_SCENARIOS = {
    "basketball": ["basketball"], "bike": ["bike"], "cooking": ["cooking"], "dance": ["dance"], "soccer": ["soccer"],
    "health": ["cpr", "covid"], "bouldering": ["bouldering"], "music": ["piano", "violin", "guitar", "music"],
}  # fmt: skip


def public_body_scenario(take_name: str) -> str:
    """evaluate.py's infer_category_from_take_name: the first scenario whose word is in the name, else an assert."""
    found = next((scenario for scenario, words in PUBLIC_BODY_SCENARIOS.items() if any(word in take_name.lower() for word in words)), None)
    assert found is not None, take_name
    return found


def public_body_mpjpe_cm(ground_truth: dict, prediction: dict) -> tuple[float, int]:
    """bodypose/evaluation/evaluate.py: plain Euclidean error over non-NaN ground-truth joints, in cm."""
    total, count = 0.0, 0
    for uid, take in ground_truth.items():
        public_body_scenario(take["take_name"])
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
    found = np.isfinite(ours).all(axis=-1) & ~joints["filled"][[int(f) for f in frames], :17]
    np.testing.assert_array_equal(flags == 1, found)  # every observed body joint is found by its public name, no gap-filled one
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
            observed = np.isfinite(ours).all(axis=1) & ~joints["filled"][int(frame), offset : offset + 21]
            np.testing.assert_array_equal(np.isfinite(points).all(axis=1), observed)  # gap-filled joints are not there
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
    ((uid, take),) = gt_file.items()
    prediction = {uid: {"take_name": take["take_name"], "body": {frame: truth["joints_3d"]["joints_3d"][int(frame), :17].tolist() for frame in take["body"]}}}
    score_cm, count = public_body_mpjpe_cm(gt_file, prediction)
    observed = np.isfinite(joints["points"][:, :17]).all(axis=-1) & ~joints["filled"][:, :17]
    direct = np.linalg.norm(joints["points"][:, :17] - truth["joints_3d"]["joints_3d"][:, :17], axis=-1)[observed]
    print(f"\nbody benchmark file, public MPJPE of our labels against the truth: {score_cm:.3f} cm over {count} joints "
          f"(direct {direct.mean() * 100:.3f} cm)")  # fmt: skip
    assert count == observed.sum()
    assert score_cm == pytest.approx(direct.mean() * 100, rel=1e-9)
    assert score_cm < 2.0  # refined labels on simulated detections are within centimetres
    assert public_body_scenario(take["take_name"]) == "cooking" == run[0].summaries["export"]["body_benchmark_scenario"]
    with pytest.raises(AssertionError, match="synth_seed2"):  # a take name without a scenario fails the public script
        public_body_mpjpe_cm({uid: {**take, "take_name": "synth_seed2"}}, prediction)


def test_hand_benchmark_scores_our_labels_against_the_truth(run):
    _, _, files, joints, truth, _ = run
    gt_file = files["hand_benchmark_gt"]
    ((uid, frames),) = gt_file.items()
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


def _joint_index(part: str, name: str) -> int:
    """Index into the 59 of a released body or hand joint name."""
    if part == "body_annotation":
        return PUBLIC_BODY_JOINTS.index(name)
    side = "left" if name.startswith("left") else "right"
    return (17 if side == "left" else 38) + PUBLIC_HAND_JOINTS[side].index(name)


def test_gap_filled_joints_are_left_out_by_default_so_no_public_loader_takes_them(run):
    _, _, files, joints, _, _ = run
    filled = joints["filled"]
    assert filled.any()  # simulated detections leave gaps that refine fills
    for part in ("body_annotation", "hand_annotation"):
        for frame, entries in files[part].items():
            names = list(entries[0]["annotation3D"]) + [name for camera in entries[0]["annotation2D"].values() for name in camera]
            assert not any(filled[int(frame), _joint_index(part, name)] for name in names)
    # The public readers see exactly the observed joints (body: every key present is visible;
    # hand "auto": every key present is used).
    frames, _, flags = public_body_parse(files["body_annotation"])
    assert not (flags == 1)[filled[[int(f) for f in frames], :17]].any()
    body_gt = next(iter(files["body_benchmark_gt"].values()))["body"]
    for frame, rows in body_gt.items():
        assert np.isnan(np.array(rows, dtype=float)[filled[int(frame), :17]]).all()


def test_gap_filled_joints_written_with_zero_views_have_no_2d(run):
    report, out, _, joints, _, take_dir = run
    filled = joints["filled"]
    zero_views = runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED + ["export.filled_joints=zero_views"]))
    assert zero_views.ran == ["export"]
    marked = 0
    for part in ("body_annotation", "hand_annotation"):
        document = json.loads((out / "export" / f"{part}.json").read_text())
        for frame, entries in document.items():
            for name, joint in entries[0]["annotation3D"].items():
                assert (joint["num_views_for_3d"] == 0) == bool(filled[int(frame), _joint_index(part, name)])
                marked += joint["num_views_for_3d"] == 0
            shown = [name for camera in entries[0]["annotation2D"].values() for name in camera]
            assert not any(filled[int(frame), _joint_index(part, name)] for name in shown)  # the hand loader's 30 px check fails them
            for side in PUBLIC_HAND_ORDER if part == "hand_annotation" else ():
                manual = public_hand_3d(entries[0], side, "manual")  # >= 3 views: a gap-filled joint is NaN
                offset = 17 if side == "left" else 38
                assert np.isnan(manual[filled[int(frame), offset : offset + 21]]).all()
    assert marked == filled.sum()
    runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED))  # back to the default for the other tests


def test_hand_with_a_gap_filled_wrist_is_left_out_of_the_hand_benchmark():
    """The public preparation drops a hand whose wrist has no 3D: a gap-filled wrist is not 3D ground truth."""
    from fitting.release_rules import HandBenchmarkInputs
    from pipeline.formats.egoexo4d import hand_benchmark_frames

    rng = np.random.default_rng(0)
    points = rng.uniform(-0.1, 0.1, (2, 59, 3)) + [0.0, 0.0, 0.5]
    pixels = rng.uniform(100, 400, (2, 59, 2))
    observed = np.ones((2, 59), dtype=bool)
    observed[1, 38] = False  # frame 1: the right wrist was gap-filled
    inputs = HandBenchmarkInputs(points, pixels, pixels, observed | True, observed | True, observed | True, observed)
    frames = dict(hand_benchmark_frames(inputs, (512, 512), "take", "uid", 10, 20.0, 30.0))
    assert frames["0"]["right_hand_3d"] and frames["0"]["left_hand_3d"]
    assert frames["1"]["right_hand_3d"] == [] and frames["1"]["right_hand_valid_3d"] == [] and frames["1"]["left_hand_3d"]


# --------------------------------------------------------------------------------------
# Frames without an ego pose, a take whose ego camera has none, the release layout
# --------------------------------------------------------------------------------------

SMALL = 30


def _take_with_frame_times(tmp_path, edit) -> tuple:
    """A small take whose timesync timestamps (ns, the take's frames) go through ``edit``."""
    take_dir = tmp_path / "take"
    synthesize_take(take_dir, SynthConfig(seed=5, num_frames=SMALL), render=False)
    meta = json.loads((take_dir / "take.json").read_text())
    lines = (take_dir / "timesync.csv").read_text().splitlines()
    first = meta["timesync_start_idx"] + 2  # line of take frame 0 (+1 the header)
    stamps = np.array([float(line.split(",")[0]) for line in lines[first : first + SMALL]])
    for frame, stamp in enumerate(edit(stamps)):
        cells = lines[first + frame].split(",")
        cells[0] = "" if not np.isfinite(stamp) else str(int(stamp))
        lines[first + frame] = ",".join(cells)
    (take_dir / "timesync.csv").write_text("\n".join(lines) + "\n")
    return take_dir, meta["take_uid"]


def public_body_translate_poses(annotation: dict, camera_pose: dict) -> dict:
    """dataset_egoexo.translate_poses: the first aria key; the first annotated frame's extrinsic
    is read outside the try (a KeyError fails the take); later frames without one are dropped."""
    aria_key = next(key for key in camera_pose if "aria" in key)  # UnboundLocalError there when absent
    extrinsics = camera_pose[aria_key]["camera_extrinsics"]
    extrinsics[next(iter(annotation))]  # noqa: B018 - raises KeyError as the public code does
    return {frame: entries for frame, entries in annotation.items() if frame in extrinsics}


def test_a_take_whose_ego_camera_has_no_pose_is_exported_without_it(tmp_path):
    take_dir, uid = _take_with_frame_times(tmp_path, lambda stamps: stamps + 3600e9)  # an hour after the trajectory
    report = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED))
    assert report.ok, report.error
    assert report.ran[-1] == "qa"
    summary = report.summaries["export"]
    assert summary["ego_frames_with_pose"] == 0 and "no pose in any frame" in summary["ego"]
    export = tmp_path / "out" / report.take / "export"
    body, hand = (json.loads((export / f"{part}_annotation.json").read_text()) for part in ("body", "hand"))
    assert len(body) == SMALL and len(hand) > SMALL // 2  # the labels are all there
    assert all("aria01" not in entries[0]["annotation2D"] for entries in body.values())
    camera_pose = json.loads((export / "camera_pose.json").read_text())
    assert [key for key in camera_pose if key != "metadata"] == ["cam01", "cam02", "cam03", "cam04"]
    assert not (export / "hand_benchmark_gt.json").exists() and (export / "body_benchmark_gt.json").is_file()
    release = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED + ["export.release_split=train"]))
    assert release.ran == ["export"]
    root = export / "annotations" / "ego_pose" / "train"
    assert (root / "body" / "automatic" / f"{uid}.json").is_file() and (root / "hand" / "automatic" / f"{uid}.json").is_file()
    assert not (root / "camera_pose").exists()  # the public loaders skip a take without a camera_pose file


def test_frames_without_an_ego_pose_are_left_out_so_the_public_body_loader_reads_the_take(tmp_path):
    without = [0, 1, 2, 10]

    def edit(stamps):
        stamps = stamps.copy()
        stamps[without] = np.nan
        return stamps

    take_dir, _ = _take_with_frame_times(tmp_path, edit)
    report = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED))
    assert report.ok, report.error
    assert report.summaries["export"]["frames_left_out_without_ego_pose"] == len(without)
    export = tmp_path / "out" / report.take / "export"
    camera_pose = json.loads((export / "camera_pose.json").read_text())
    for part in ("body", "hand"):
        annotation = json.loads((export / f"{part}_annotation.json").read_text())
        assert not {str(frame) for frame in without} & set(annotation)
        assert set(annotation) <= set(camera_pose["aria01"]["camera_extrinsics"])
    body = json.loads((export / "body_annotation.json").read_text())
    assert len(public_body_translate_poses(body, camera_pose)) == len(body) == SMALL - len(without)
    body_gt = next(iter(json.loads((export / "body_benchmark_gt.json").read_text()).values()))["body"]
    assert set(body_gt) <= set(camera_pose["aria01"]["camera_extrinsics"])  # the body inference reads each frame's pose
    keep = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED + ["export.frames_without_ego_pose=keep"]))
    body = json.loads((export / "body_annotation.json").read_text())
    assert keep.ran == ["export"] and len(body) == SMALL
    with pytest.raises(KeyError):  # what "keep" costs with the public body loader: frame 0 has no pose
        public_body_translate_poses(body, camera_pose)


def public_body_dataset_takes(root, split: str, use_pseudo: bool, window: int = 5) -> dict:
    """Dataset_EgoExo.__init__'s listing: annotation/ always, automatic/ with use_pseudo,
    camera_pose/, takes.json; the takes it loads (uid -> frames). A missing folder raises."""
    import os

    root_poses = os.path.join(root, "annotations", "ego_pose", split, "body")
    manual = [name.split(".")[0] for name in os.listdir(os.path.join(root_poses, "annotation"))]
    pseudo = [name.split(".")[0] for name in os.listdir(os.path.join(root_poses, "automatic"))] if use_pseudo else []
    cameras = os.listdir(root_poses.replace("body", "camera_pose"))
    metadata = {take["take_uid"]: take for take in json.loads(open(os.path.join(root, "takes.json")).read())}
    loaded = {}
    for uid in pseudo if use_pseudo else manual:
        if uid not in metadata or "bouldering" in metadata[uid]["take_name"] or uid + ".json" not in cameras:
            continue
        folder = "automatic" if use_pseudo and uid in pseudo else "annotation"
        poses = json.loads(open(os.path.join(root_poses, folder, uid + ".json")).read())
        camera = json.loads(open(os.path.join(root_poses.replace("body", "camera_pose"), uid + ".json")).read())
        if split != "train" or len(poses) > window + 2:
            loaded[uid] = public_body_translate_poses(poses, camera)
    return loaded


def public_hand_preparation_takes(root, gt_output_dir, split: str, anno_type: str) -> list[str]:
    """ego_pose_anno_loader.load_raw_data's listing: the takes it would process (uids);
    an AssertionError where it stops, as the public code does."""
    import os

    folder = "annotation" if split == "test" or anno_type == "manual" else "automatic"
    anno_dir = os.path.join(root, f"annotations/ego_pose/{split}/hand", folder)
    if not os.path.exists(anno_dir):
        assert split == "test", f"No annotation found for {split} split at {anno_dir}"
        return []
    local = [name.split(".")[0] for name in os.listdir(anno_dir)]
    takes = json.loads(open(os.path.join(root, "takes.json")).read())
    splits = json.loads(open(os.path.join(root, "annotations/splits.json")).read())
    ego_pose = [uid for uid, benchmarks in splits["take_uid_to_benchmark"].items() if "ego_pose" in benchmarks]
    common = set(local) & set(splits["split_to_take_uids"][split]) & set(ego_pose)
    with_camera = common & {name.split(".")[0] for name in os.listdir(os.path.join(root, f"annotations/ego_pose/{split}/camera_pose"))}
    names = {take["take_uid"]: take["take_name"] for take in takes}
    return sorted(uid for uid in with_camera if os.path.exists(os.path.join(gt_output_dir, "aria_calib_json", f"{names[uid]}.json")))


def _release_root(export, root, uid: str, take_name: str, split: str) -> None:
    """A dataset root: our release folders, plus the dataset's takes.json and splits.json for this take."""
    import shutil

    shutil.copytree(export / "annotations", root / "annotations")
    take = {
        "take_uid": uid, "take_name": take_name, "root_dir": f"takes/{take_name}", "task_id": 0,
        "capture": {"cameras": [{"cam_id": "aria01", "is_ego": True}, {"cam_id": "cam01", "is_ego": False}]},
        "frame_aligned_videos": {"aria01": {}, "cam01": {}},
    }  # fmt: skip
    (root / "takes.json").write_text(json.dumps([take]))
    splits = {"split_to_take_uids": {split: [uid]}, "take_uid_to_benchmark": {uid: ["ego_pose"]}}
    (root / "annotations" / "splits.json").write_text(json.dumps(splits))


def test_release_layout_is_where_the_public_loaders_look(run, tmp_path):
    import os

    _, out, files, _, _, take_dir = run
    report = runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED + ["export.release_split=val"]))
    assert report.ran == ["export"]
    root = out / "export"
    body_dir = os.path.join(root, "annotations", "ego_pose", "val", "body")  # dataset_egoexo.py's root_poses
    (name,) = os.listdir(os.path.join(body_dir, "automatic"))
    uid = name.split(".")[0]
    assert uid == files["camera_pose"]["metadata"]["take_uid"] and not (root / "body_annotation.json").exists()
    assert os.listdir(os.path.join(body_dir, "annotation")) == []  # listed always; our labels are not manual ones
    assert json.loads(open(os.path.join(body_dir, "automatic", name)).read()) == files["body_annotation"]
    assert json.loads(open(os.path.join(body_dir.replace("body", "camera_pose"), uid + ".json")).read()) == files["camera_pose"]
    hand = json.loads((root / "annotations" / "ego_pose" / "val" / "hand" / "automatic" / f"{uid}.json").read_text())
    assert hand == files["hand_annotation"]
    take_name = files["camera_pose"]["metadata"]["take_name"]
    assert (root / "aria_calib_json" / f"{take_name}.json").is_file()

    dataset = tmp_path / "root"
    _release_root(root, dataset, uid, take_name, "val")
    assert public_body_dataset_takes(dataset, "val", use_pseudo=False) == {}  # no FileNotFoundError on annotation/
    loaded = public_body_dataset_takes(dataset, "val", use_pseudo=True)
    assert list(loaded) == [uid] and len(loaded[uid]) == len(files["body_annotation"])
    assert public_hand_preparation_takes(dataset, root, "val", "manual") == []  # no AssertionError on hand/annotation
    assert public_hand_preparation_takes(dataset, root, "val", "auto") == [uid]  # found with its aria_calib_json
    assert public_hand_preparation_takes(dataset, root, "test", "auto") == []  # "test" reads only manual labels
    runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED))  # back to the default for the other tests


def test_the_public_pose_dataset_needs_the_annotation_folder(run, tmp_path):
    """Without the (empty) annotation/ folder the public body dataset stops: the folder is
    needed. (It finds camera_pose/ by replacing "body" in the whole path: a root whose path
    contains "body" fails too.)"""
    import shutil

    _, out, files, _, _, take_dir = run
    runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED + ["export.release_split=train"]))
    uid, take_name = files["camera_pose"]["metadata"]["take_uid"], files["camera_pose"]["metadata"]["take_name"]
    dataset = tmp_path / "root"
    _release_root(out / "export", dataset, uid, take_name, "train")
    assert list(public_body_dataset_takes(dataset, "train", use_pseudo=True)) == [uid]
    _release_root(out / "export", tmp_path / "somebody", uid, take_name, "train")
    with pytest.raises(FileNotFoundError, match="somecamera_pose"):
        public_body_dataset_takes(tmp_path / "somebody", "train", use_pseudo=True)
    shutil.rmtree(dataset / "annotations" / "ego_pose" / "train" / "body" / "annotation")
    with pytest.raises(FileNotFoundError, match="body/annotation"):
        public_body_dataset_takes(dataset, "train", use_pseudo=True)
    runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED))


def test_export_errors_name_the_output_file_not_the_temporary_folder(run, tmp_path):
    import dataclasses

    from pipeline.artifacts import ArtifactStore
    from pipeline.formats.take_folder import read_take
    from stages import export
    from stages.base import StageContext
    from triangulation.cameras import CalibrationError

    _, out, _, _, _, take_dir = run
    take = read_take(take_dir, load_config().take)
    clash = dataclasses.replace(take, exo_cameras=(dataclasses.replace(take.exo_cameras[0], name="aria01"),) + take.exo_cameras[1:])
    store = ArtifactStore(out)
    work = store.begin("export")
    try:
        with pytest.raises(CalibrationError, match=r"export camera_pose.json: camera 'aria01'") as error:
            export.STAGE.run(StageContext(clash, load_config(overrides=PRECOMPUTED), {name: store.record(name) for name in ("refine", "project_ego")}, work))
    finally:
        store.abandon(work)
    assert work.name not in str(error.value) and str(tmp_path) not in str(error.value)


# --------------------------------------------------------------------------------------
# The public hand preparation on our files (tests/public_egopose.py)
# --------------------------------------------------------------------------------------


def _preparation_calibration(out, take_name: str):
    return out / "export" / "aria_calib_json" / f"{take_name}.json"


def test_the_public_hand_preparation_keeps_every_joint_we_mark_valid_and_draws_our_boxes(run):
    """Its loader re-run on our annotation, camera pose and Aria calibration files gives our hand benchmark file."""
    pytest.importorskip("projectaria_tools.core")
    from tests.public_egopose import compare_hand_benchmark, prepare_hands, valid_mask

    report, out, files, _, _, take_dir = run
    take_name = json.loads((take_dir / "take.json").read_text())["take_name"]
    mask = valid_mask(str(_preparation_calibration(out, take_name)))
    public = prepare_hands(files["hand_annotation"], files["camera_pose"], mask)
    (ours,) = files["hand_benchmark_gt"].values()
    comparison = compare_hand_benchmark(ours, public)
    checks = report.summaries["export"]["hand_benchmark_joints"]
    print(f"\npublic hand preparation on our files: {comparison}; our summary: {checks}")
    assert checks["dropped_by_structure_check"] > 0  # the synthetic hands bend past its angle limits: the check is exercised
    assert comparison["ours_valid_rejected"] == 0 and comparison["hands_only_ours"] == 0
    assert comparison["public_valid_not_ours"] == 0 and comparison["hands_only_public"] == 0
    assert set(ours) == set(public) and comparison["hands_both"] > 20
    assert comparison["max_box_px"] < 1e-3 and comparison["max_3d_m"] < 1e-5  # float32 in the public code
    for frame, entry in ours.items():
        for side in ("right", "left"):
            if entry[f"{side}_hand_2d"]:
                np.testing.assert_array_equal(np.isnan(np.array(entry[f"{side}_hand_2d"], dtype=float)), np.isnan(public[frame][f"{side}_hand_2d"]))


def test_hand_structure_check_is_the_public_one():
    """Vectorized float32 bone and angle rules against the public per-joint loop, NaN joints included."""
    from fitting.release_rules import hand_structure_ok
    from tests.public_egopose import structure_check

    rng = np.random.default_rng(3)
    hands = np.cumsum(rng.normal(0, 0.03, (400, 21, 3)), axis=1).astype(np.float32)  # bones of ~5 cm, random bends
    hands[rng.random((400, 21)) < 0.05] = np.nan
    ours = hand_structure_ok(hands)
    public = np.stack([np.isfinite(structure_check(hand)).all(axis=1) | np.isnan(hand).any(axis=1) for hand in hands])
    np.testing.assert_array_equal(ours | np.isnan(hands).any(axis=-1), public)
    assert 0.1 < (~ours).mean() < 0.9  # both outcomes are tested


def test_aria_calibration_file_reads_in_projectaria_tools_as_our_ego_camera(run):
    """aria_calib_json/<take_name>.json: device_calibration_from_json's camera-rgb is the camera the ego 2D came from."""
    pytest.importorskip("projectaria_tools.core")
    from projectaria_tools.core import calibration

    from pipeline.formats.take_folder import read_take

    report, out, _, _, _, take_dir = run
    take = read_take(take_dir, load_config().take)
    path = _preparation_calibration(out, take.name)
    assert report.summaries["export"]["hand_preparation_calibration"].startswith("the ego calibration")
    rgb = calibration.device_calibration_from_json(str(path)).get_camera_calib("camera-rgb")
    ego = take.ego_camera
    assert tuple(int(v) for v in rgb.get_image_size()) == ego.image_size
    assert rgb.get_valid_radius() == pytest.approx(ego.field_of_view.valid_radius_px)
    rays = np.random.default_rng(1).normal(0, 0.4, (500, 3)) + [0, 0, 1.0]
    rays = rays[np.arctan2(np.linalg.norm(rays[:, :2], axis=1), rays[:, 2]) < ego.field_of_view.max_angle_rad]  # its field of view
    ours = ego.model.project(rays)
    theirs = np.array([rgb.project_no_checks(ray) for ray in rays])
    assert np.abs(ours - theirs).max() < 1e-6
    T = rgb.get_transform_device_camera().to_matrix()
    c = take.ego_poses.calibration
    np.testing.assert_allclose(T[:3, :3], c.R_device_camera, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], c.t_device_camera, atol=1e-12)


# --------------------------------------------------------------------------------------
# The body evaluation's --min_clip_len
# --------------------------------------------------------------------------------------


def test_body_evaluation_frames_are_the_public_filter_short_clips():
    from fitting.release_rules import body_evaluation_frames

    rng = np.random.default_rng(4)
    for _ in range(200):
        steps = rng.choice([1, 1, 1, 2, 3, 4, 5, 40], size=rng.integers(1, 300))
        frames = np.cumsum(steps) + int(rng.integers(0, 50))
        length = int(rng.integers(1, 200))
        assert body_evaluation_frames(frames, length).tolist() == filter_short_clips(frames.tolist(), length)


def test_export_says_when_the_public_body_evaluation_scores_none_of_a_take(run, tmp_path):
    report = run[0]
    assert report.summaries["export"]["body_evaluation"] == {"min_clip_len": 120, "frames": FRAMES, "frames_scored": FRAMES}
    take_dir, _ = _take_with_frame_times(tmp_path, lambda stamps: stamps)  # 30 frames: shorter than 120
    short = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED))
    summary = short.summaries["export"]["body_evaluation"]
    assert summary["frames"] == SMALL and summary["frames_scored"] == 0 and "divides by zero" in summary["warning"]
    gt = json.loads((tmp_path / "out" / short.take / "export" / "body_benchmark_gt.json").read_text())
    with pytest.raises(ZeroDivisionError):  # what the public script does with it
        ((uid, take),) = gt.items()
        kept = filter_short_clips(sorted(int(frame) for frame in take["body"]), 120)
        _ = 0 / len(kept)
    relaxed = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=PRECOMPUTED + ["export.body_evaluation_min_clip_len=30"]))
    assert relaxed.summaries["export"]["body_evaluation"]["frames_scored"] == SMALL  # 29 + 3 >= 30


# --------------------------------------------------------------------------------------
# Exo 2D in the release's undistorted GoPro frames
# --------------------------------------------------------------------------------------


def test_exo_2d_are_in_the_undistorted_frame_opencv_makes(run):
    """Our undistorted exo pixels equal OpenCV's fisheye.undistortPoints of the raw projection with the tutorial's new K."""
    import cv2

    from pipeline.formats.take_folder import read_take
    from stages.project_ego import project_exo_undistorted
    from triangulation.visibility import VISIBLE, project_with_visibility

    _, out, files, joints, _, take_dir = run
    take = read_take(take_dir, load_config().take)
    points = joints["points"]
    arrays, rules = project_exo_undistorted(list(take.exo_cameras), points, 0.8)
    saved = load_npz(out / "project_ego" / "projections.npz")
    differences, worst = [], 0.0
    for v, camera in enumerate(take.exo_cameras):
        K, D = camera.model.matrix, camera.model.distortion.reshape(4, 1)
        new_K = cv2.fisheye.estimateNewCameraMatrixForUndistortRectify(K, D, camera.image_size, np.eye(3), balance=0.8)
        np.testing.assert_allclose(arrays["exo_undistorted_K"][v], new_K, rtol=0, atol=0)
        assert "balance 0.8" in rules[camera.name]
        raw, codes = project_with_visibility(camera, points)
        seen = codes == VISIBLE
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-15)
        opencv = cv2.fisheye.undistortPoints(raw[seen].reshape(-1, 1, 2), K, D, R=np.eye(3), P=new_K, criteria=criteria).reshape(-1, 2)
        ours = project_exo_undistorted([camera], points, 0.8)[0]["exo_undistorted_pixels"][0][seen]
        ours64 = np.einsum("ij,...j->...i", new_K, camera.world_to_camera(points)[seen])
        ours64 = ours64[:, :2] / ours64[:, 2:]
        assert np.abs(ours64 - opencv).max() < 1e-6
        worst = max(worst, float(np.abs(ours64 - opencv).max()))
        np.testing.assert_allclose(ours, opencv, atol=1e-3)  # the stored arrays are float32
        np.testing.assert_array_equal(saved["exo_undistorted_pixels"][v], arrays["exo_undistorted_pixels"][v])
        differences.append(np.linalg.norm(raw[seen] - opencv, axis=-1))
    print(
        f"\nexo 2D vs OpenCV undistortPoints: max {worst:.1e} px; undistorted vs raw fisheye: mean {np.mean(np.concatenate(differences)):.1f} px, max {np.max(np.concatenate(differences)):.1f} px"
    )


def test_camera_pose_exo_entries_project_the_3d_onto_the_exo_2d(run):
    """camera_pose.json's exo K [R | t] (a pinhole, no distortion) puts each 3D joint on its annotation2D; raw_camera keeps the video's model."""
    from pipeline.formats.calibration import read_camera_pose_json
    from pipeline.formats.take_folder import read_take

    _, out, files, _, _, take_dir = run
    take = read_take(take_dir, load_config().take)
    checked = 0
    for raw in take.exo_cameras:
        entry = files["camera_pose"][raw.name]
        assert entry["camera_model"] == "pinhole" and not any(entry["distortion_coeffs"]) and entry["image_size"] == list(raw.image_size)
        assert entry["raw_camera"]["camera_model"] == "fisheye"
        np.testing.assert_allclose(entry["raw_camera"]["camera_intrinsics"], raw.model.matrix)
        P = np.array(entry["camera_intrinsics"]) @ np.array(entry["camera_extrinsics"])  # a consumer's K [R | t]
        for entries in list(files["body_annotation"].values())[::10]:
            annotation = entries[0]
            for name, pixel in annotation["annotation2D"].get(raw.name, {}).items():
                joint = annotation["annotation3D"][name]
                projected = P @ [joint["x"], joint["y"], joint["z"], 1.0]
                assert np.abs(projected[:2] / projected[2] - [pixel["x"], pixel["y"]]).max() < 1e-3
                assert -0.5 <= pixel["x"] <= raw.image_size[0] - 0.5 and -0.5 <= pixel["y"] <= raw.image_size[1] - 0.5
                checked += 1
    assert checked > 500
    exo, _, _ = read_camera_pose_json(out / "export" / "camera_pose.json")  # read back: the raw videos' cameras
    for camera, raw in zip(exo, take.exo_cameras):
        assert camera.model.name == raw.model.name == "fisheye" and camera.image_size == raw.image_size
        np.testing.assert_allclose(camera.model.matrix, raw.model.matrix, rtol=1e-15)
        np.testing.assert_allclose(camera.model.distortion, raw.model.distortion, rtol=1e-15)
        np.testing.assert_allclose(camera.R, raw.R, atol=1e-15)


def test_exo_2d_frame_raw_writes_the_raw_fisheye_2d(run):
    _, out, files, _, _, take_dir = run
    raw = runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED + ["export.exo_2d_frame=raw"]))
    assert raw.ran == ["export"] and raw.summaries["export"]["exo_2d_frame"] == "raw"
    saved = load_npz(out / "project_ego" / "projections.npz")
    body = json.loads((out / "export" / "body_annotation.json").read_text())
    camera_pose = json.loads((out / "export" / "camera_pose.json").read_text())
    assert camera_pose["cam01"]["camera_model"] == "fisheye" and "raw_camera" not in camera_pose["cam01"]
    frame = next(iter(body))
    for name, pixel in body[frame][0]["annotation2D"]["cam01"].items():
        j = _joint_index("body_annotation", name)
        np.testing.assert_allclose([pixel["x"], pixel["y"]], saved["exo_pixels"][0, int(frame), j], rtol=0, atol=0)
    runner.run_take(take_dir, out.parent, load_config(overrides=PRECOMPUTED))  # back to the default for the other tests


@pytest.mark.parametrize("frame", ["undistorted", "raw"])
def test_our_exported_2d_read_back_as_precomputed_are_the_raw_video_pixels(run, frame, tmp_path):
    """detect's egoexo4d reader maps the (undistorted) exo annotation2D back to the raw
    fisheye frame the take's cameras describe: the exported labels read back equal the
    refined 3D's raw projections (``exo_pixels``) wherever both exist."""
    from pipeline.formats.take_folder import read_take
    from stages.detect.precomputed import read_precomputed

    _, out, _, _, _, take_dir = run
    export = out / "export"
    if frame == "raw":  # a second export, written in the raw frame
        report = runner.run_take(take_dir, tmp_path / "out", load_config(overrides=[*PRECOMPUTED, "export.exo_2d_frame=raw"]))
        export = tmp_path / "out" / report.take / "export"
    settings = load_config(
        overrides=[
            "detect.backend=precomputed", "detect.precomputed_format=egoexo4d", f"detect.egoexo4d_exo_2d_frame={frame}",
            f"detect.egoexo4d_body_annotation={export / 'body_annotation.json'}", f"detect.egoexo4d_hand_annotation={export / 'hand_annotation.json'}",
        ]
    ).detect  # fmt: skip
    take = read_take(take_dir, load_config().take)
    keypoints, summary = read_precomputed(take, settings)
    raw = load_npz(out / "project_ego" / "projections.npz")["exo_pixels"]
    both = np.isfinite(keypoints[..., 0]) & np.isfinite(raw[..., 0])
    assert summary["exo_2d_frame"] == frame and both.sum() > 1000
    error = np.linalg.norm(keypoints[..., :2][both] - raw[both], axis=-1)
    print(f"\n{frame}: {both.sum()} exported 2D read back, max {error.max():.2e} px from the raw projections")
    assert error.max() < 2e-3  # float32 in the files
