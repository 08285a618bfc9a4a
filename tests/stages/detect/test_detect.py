"""The detect stage: keypoint maps, crops, hand assignment, precomputed files, videos, executors."""

import dataclasses
import json
import shutil

import numpy as np
import pytest

from detection import hands
from detection.crops import Crop, extract, square_around
from detection.keypoint_maps import BLAZEPOSE_TO_COCO, blazepose_to_coco, wholebody_to_joints
from detection.prior import box_from_head, seed_box
from detection.track import mirror
from fitting.skeleton import BODY, JOINT_NAMES, LEFT_HAND, NUM_JOINTS, RIGHT_HAND
from pipeline.config import load_config
from pipeline.formats.openpose import openpose_files
from pipeline.formats.take_folder import read_take
from stages.detect.stage import detect_take
from stages.detect.tasks import DetectVideoError

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

# --------------------------------------------------------------------------------------
# Pure pieces
# --------------------------------------------------------------------------------------


def test_blazepose_and_wholebody_maps_follow_the_joint_order():
    landmarks = np.arange(33 * 3, dtype=float).reshape(33, 3)
    body = blazepose_to_coco(landmarks)
    assert body.shape == (17, 3)
    # BlazePose: 0 nose, 2 left eye, 5 right eye, 11/12 shoulders, 15/16 wrists, 27/28 ankles.
    assert list(body[:, 0] / 3) == list(BLAZEPOSE_TO_COCO)
    assert BLAZEPOSE_TO_COCO[JOINT_NAMES.index("left_wrist")] == 15
    assert BLAZEPOSE_TO_COCO[JOINT_NAMES.index("right_ankle")] == 28
    points = np.arange(133 * 3, dtype=float).reshape(133, 3)
    joints = wholebody_to_joints(points)
    assert joints.shape == (NUM_JOINTS, 3) and joints.dtype == np.float32
    assert joints[16, 0] == points[16, 0]
    assert joints[LEFT_HAND][0, 0] == points[91, 0] and joints[RIGHT_HAND][20, 0] == points[132, 0]


def test_crop_maps_pixels_back_exactly():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (400, 300, 3), dtype=np.uint8)
    crop = square_around([50.0, 80.0, 150.0, 280.0], 0.1, 128)
    assert np.isclose(crop.side, 240.0)
    points = rng.uniform(60, 140, (10, 2))
    assert np.allclose(crop.to_image(crop.to_crop(points)), points)
    # A bright dot lands where to_crop says, also when the crop shrinks the image a lot.
    for size in (128, 32):
        image = np.zeros((400, 300, 3), np.uint8)
        image[150:153, 100:103] = 255
        crop = square_around([0.0, 0.0, 299.0, 399.0], 0.0, size)
        pixels = extract(image, crop)
        peak = np.unravel_index(np.argmax(pixels[..., 0]), pixels.shape[:2])
        expected = crop.to_crop(np.array([101.0, 151.0]))
        assert np.hypot(peak[1] - expected[0], peak[0] - expected[1]) <= 1.0
    assert extract(image, Crop(-50.0, -50.0, 100.0, 64)).shape == (64, 64, 3)


def body_pose(left_wrist=(100.0, 200.0), right_wrist=(300.0, 200.0)):
    body = np.full((17, 3), np.nan)
    body[7] = (100.0, 100.0, 0.9)  # left elbow above the left wrist
    body[8] = (300.0, 100.0, 0.9)
    body[9] = (*left_wrist, 0.9)
    body[10] = (*right_wrist, 0.9)
    return body


def test_palm_search_boxes_lie_beyond_the_wrist():
    body = body_pose()
    box = hands.hand_box(body, "left", 0.3, offset=0.35, scale=1.6, min_side=48)
    centre = 0.5 * (box[:2] + box[2:])
    assert np.allclose(centre, [100.0, 235.0]) and np.isclose(box[2] - box[0], 160.0)
    body[7] = np.nan  # no elbow: a fifth of the body box, centred on the wrist
    box = hands.hand_box(body, "left", 0.3, offset=0.35, scale=1.6, min_side=48)
    assert np.allclose(0.5 * (box[:2] + box[2:]), [100.0, 200.0])


def test_mirror_swaps_sides_and_keeps_confidences():
    keypoints = np.zeros((NUM_JOINTS, 3), np.float32)
    keypoints[9] = (1, 2, 0.8)
    keypoints[LEFT_HAND] = (5, 6, 0.9)
    mirrored = mirror(keypoints)
    assert tuple(mirrored[10]) == (1, 2, np.float32(0.8))
    assert np.allclose(mirrored[RIGHT_HAND], [5, 6, 0.9]) and np.all(mirrored[LEFT_HAND] == 0)


def test_seed_prefers_the_large_central_person_and_head_box_covers_the_body():
    boxes = np.array([[10, 10, 60, 110, 1.0], [400, 300, 600, 700, 0.5], [900, 50, 1000, 250, 1.0]], float)
    assert np.allclose(seed_box(boxes, (1000, 1000)), [400, 300, 600, 700])
    from triangulation.cameras import make_camera

    # A camera 4 m in front of a person (z up) whose head is at 1.6 m: looking along +y.
    R = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    centre = np.array([0.0, -4.0, 1.0])
    camera = make_camera("c", "pinhole", [[800, 0, 640], [0, 800, 480], [0, 0, 1]], [0, 0, 0, 0], R, -R @ centre, (1280, 960))
    head = np.array([0.0, 0.0, 1.6])
    box = box_from_head(camera, head, (1280, 960), np.array([0.0, 0.0, 1.0]), 0.3, 1.9, 0.6)
    for point in ([0.0, 0.0, 1.75], [0.3, 0.0, 0.0], [-0.4, 0.1, 1.0]):  # top of the head, a foot, a hand
        x, y = camera.project(np.array(point))
        assert box[0] <= x <= box[2] and box[1] <= y <= box[3]
    assert box_from_head(camera, np.array([0.0, -6.0, 1.6]), (1280, 960), np.array([0.0, 0.0, 1.0]), 0.3, 1.9, 0.6) is None


# --------------------------------------------------------------------------------------
# Precomputed
# --------------------------------------------------------------------------------------


def test_precomputed_reads_the_pose2sim_openpose_files_exactly(pose2sim_balancing):
    take = read_take(pose2sim_balancing)
    settings = load_config(overrides=["detect.backend=precomputed", "detect.openpose_layout=BODY_25B"]).detect
    keypoints, summary = detect_take(take, settings)
    assert keypoints.shape == (4, 100, NUM_JOINTS, 3) and keypoints.dtype == np.float32
    empty = 0
    for v, name in enumerate(take.exo_names):
        files = openpose_files(take.keypoints_2d[name])
        for frame in range(100):
            if frame not in files:
                assert np.all(np.isnan(keypoints[v, frame]))
                continue
            people = json.loads(files[frame].read_text())["people"]
            flat = people[0].get("pose_keypoints_2d", []) if people else []
            values = np.array(flat, dtype=np.float64).reshape(-1, 3)[:17]
            if len(values) == 0:
                empty += 1
                assert np.all(np.isnan(keypoints[v, frame])), (name, frame)
                continue
            zero = values[:, 2] == 0
            assert np.all(np.isnan(keypoints[v, frame, BODY][zero]))
            assert np.array_equal(keypoints[v, frame, BODY][~zero], values[~zero].astype(np.float32)), (name, frame)
            assert np.all(np.isnan(keypoints[v, frame, 17:]))  # no hands in these files
    assert empty >= 1  # cam03.0052.json holds an empty person
    assert summary["backend"] == "precomputed" and summary["frames"] == 100


def test_precomputed_egoexo4d_annotation(tmp_path):
    from pipeline.formats.egoexo4d import read_egoexo4d_annotation

    body = {"3": [{"annotation2D": {"cam_01": {"nose": {"x": 10.5, "y": 20.25, "placement": "auto"}, "left-wrist": {"x": 1, "y": 2}}}}]}
    hand = {"3": [{"annotation2D": {"cam01": {"left_wrist": {"x": 5, "y": 6}, "right_pinky_4": {"x": 7, "y": 8}}}}]}
    (tmp_path / "body.json").write_text(json.dumps(body))
    (tmp_path / "hand.json").write_text(json.dumps(hand))
    out = read_egoexo4d_annotation(tmp_path / "body.json", ["cam01", "cam02"], 5, "body")
    read_egoexo4d_annotation(tmp_path / "hand.json", ["cam01", "cam02"], 5, "hand", out)
    assert tuple(out[0, 3, 0]) == (10.5, 20.25, 1.0)
    assert tuple(out[0, 3, 9]) == (1.0, 2.0, 1.0)  # body left wrist
    assert tuple(out[0, 3, LEFT_HAND.start]) == (5.0, 6.0, 1.0)  # hand file: the hand's wrist
    assert tuple(out[0, 3, NUM_JOINTS - 1]) == (7.0, 8.0, 1.0)
    assert np.isfinite(out[..., 0]).sum() == 4  # everything else missing
    (tmp_path / "bad.json").write_text(json.dumps({"3": [{"annotation2D": {"cam01": {"nose": {"x": "a"}}}}]}))
    with pytest.raises(ValueError, match=r"bad.json: frame 3: field 'annotation2D.cam01.nose'"):
        read_egoexo4d_annotation(tmp_path / "bad.json", ["cam01"], 5, "body")


# --------------------------------------------------------------------------------------
# Videos: the embedded detector on a rendered synthetic take
# --------------------------------------------------------------------------------------

FRAMES = 4


@pytest.fixture(scope="module")
def rendered_take(render_take):
    return render_take(seed=2, frames=FRAMES)


def mediapipe_settings(*overrides):
    return load_config(overrides=["detect.backend=mediapipe", *overrides]).detect


@pytest.fixture(scope="module")
def inprocess_result(rendered_take):
    return detect_take(read_take(rendered_take), mediapipe_settings("detect.frames_per_task=2", "detect.executor=inprocess"))


def test_embedded_detector_finds_the_rendered_body(rendered_take, inprocess_result):
    keypoints, summary = inprocess_result
    truth = np.load(rendered_take / "gt" / "joints_2d.npz")
    assert keypoints.shape == (4, FRAMES, NUM_JOINTS, 3)
    error = np.linalg.norm(keypoints[..., :2] - truth["pixels"], axis=-1)[:, :, BODY]
    seen = truth["in_image"][:, :, BODY] & np.isfinite(error)
    assert seen.mean() > 0.5
    assert np.median(error[seen]) < 15.0  # pixels, 960x540-class frames
    assert summary["per_view"]["cam01"]["roi_sources"].get("ego", 0) >= 1  # the ego camera seeded it
    assert summary["decode_errors"] == []


def test_ray_executor_gives_the_same_keypoints(rendered_take, inprocess_result):
    keypoints, summary = detect_take(
        read_take(rendered_take), mediapipe_settings("detect.frames_per_task=2", "detect.executor=ray", "detect.num_workers=2", "detect.cpus_per_model=1")
    )
    assert (summary["executor"], summary["workers"], summary["tasks"], summary["tasks_resumed"]) == ("ray", 2, 2, 0)
    assert np.array_equal(keypoints, inprocess_result[0], equal_nan=True)


def test_any_frame_range_can_be_detected(rendered_take, inprocess_result):
    keypoints, _ = detect_take(read_take(rendered_take), mediapipe_settings("detect.frames_per_task=2", "detect.executor=inprocess"), (2, 4))
    assert keypoints.shape[1] == 2
    assert np.array_equal(keypoints, inprocess_result[0][:, 2:4], equal_nan=True)


def copy_take(rendered_take, tmp_path):
    copy = tmp_path / "take"
    shutil.copytree(rendered_take, copy)
    return copy


def test_missing_video_is_named(rendered_take, tmp_path):
    copy = copy_take(rendered_take, tmp_path)
    (copy / "frame_aligned_videos" / "cam03.mp4").unlink()
    with pytest.raises(FileNotFoundError, match=r"no video for camera\(s\) cam03"):
        detect_take(read_take(copy), mediapipe_settings())


def test_corrupt_video_is_named(rendered_take, tmp_path):
    copy = copy_take(rendered_take, tmp_path)
    take = read_take(copy)
    (copy / "frame_aligned_videos" / "cam02.mp4").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DetectVideoError, match=r"cam02.mp4: camera 'cam02'"):
        detect_take(take, mediapipe_settings())


def test_truncated_video_fails_or_reports_the_lost_frames(rendered_take, tmp_path):
    copy = copy_take(rendered_take, tmp_path)
    take = read_take(copy)
    path = copy / "frame_aligned_videos" / "cam04.mp4"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(DetectVideoError, match=r"cam04.mp4: camera 'cam04': cannot decode frame \d"):
        detect_take(take, mediapipe_settings())
    keypoints, summary = detect_take(take, mediapipe_settings("detect.on_decode_error=mark_missing"))
    [error] = summary["decode_errors"]
    assert error["camera"] == "cam04" and error["file"] == str(path)
    first = error["first_frame"]
    # Frames held back by B-frame reordering die with the damaged packet: the first lost
    # frame can be well before the cut.
    assert 0 <= first < FRAMES and error["frames_missing"] == FRAMES - first
    assert np.all(np.isnan(keypoints[3, first:]))
    assert first == 0 or np.isfinite(keypoints[3, :first, BODY, 0]).any()
    assert np.isfinite(keypoints[:3, first:, BODY, 0]).any()  # the other views go on


def test_runner_runs_the_embedded_detector(rendered_take, tmp_path, inprocess_result):
    from workflow import runner

    report = runner.run_take(rendered_take, tmp_path, load_config(overrides=["detect.frames_per_task=2", "detect.executor=inprocess"]), until="detect")
    assert report.ran == ["detect"]
    stored = np.load(tmp_path / report.take / "detect" / "keypoints_2d.npz", allow_pickle=False)
    assert np.array_equal(stored["keypoints"], inprocess_result[0], equal_nan=True)
    assert list(stored["camera_names"]) == ["cam01", "cam02", "cam03", "cam04"]


def test_the_backend_registry_and_the_settings_agree():
    """Every registered backend is a detect.backend the config accepts and the other way
    round; each entry's settings sub-section exists and validates; its code and resource
    function load; only model backends make detectors."""
    import typing

    from pipeline.config import ConfigError, DetectConfig
    from stages.detect.backend import BACKENDS, ModelResources, make_detector

    assert set(BACKENDS) == set(typing.get_args(typing.get_type_hints(DetectConfig)["backend"]))
    for name, entry in BACKENDS.items():
        settings = load_config(overrides=[f"detect.backend={name}"]).detect
        if entry.settings_section is not None:
            assert dataclasses.is_dataclass(getattr(settings, entry.settings_section))
        needs = entry.model_resources(settings)
        assert isinstance(needs, ModelResources) and needs.cpus >= 1 and needs.gpus >= 0
        assert callable(entry.load()) if entry.kind == "files" else hasattr(entry.load(), "detect")
    with pytest.raises(ValueError, match="not a model backend"):
        make_detector(load_config(overrides=["detect.backend=precomputed"]).detect)
    with pytest.raises(ConfigError, match="detect.mmpose.device"):
        load_config(overrides=["detect.mmpose.device=gpu"])
