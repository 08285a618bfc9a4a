"""A video's frame against its calibration: cropped or padded edges, an exact resize, or
another camera (:mod:`triangulation.image_frames`, applied by the take reader)."""

from __future__ import annotations

import csv
import shutil

import cv2
import numpy as np
import pytest

from pipeline.formats.take_folder import TakeError, read_take
from tests.triangulation.test_camera_models import ALL_MODELS, max_angle, rays_within
from triangulation.cameras import Camera
from triangulation.image_frames import FRAME_EDGES, FRAME_SAME, FRAME_SCALED, camera_in_video_frame, match_image_frame

EDGE_PX = 16


@pytest.mark.parametrize(
    ("calibration", "video", "kind", "scale"),
    [
        ((1088, 1920), (1088, 1920), FRAME_SAME, 1.0),
        ((1088, 1920), (1080, 1920), FRAME_EDGES, 1.0),  # the Pose2Sim capture: H.264 coded width
        ((1920, 1080), (1920, 1088), FRAME_EDGES, 1.0),  # padded to a macroblock
        ((3840, 2160), (1920, 1080), FRAME_SCALED, 0.5),
        ((1920, 1080), (1500, 1000), None, None),  # another aspect ratio
        ((1088, 1920), (1080, 1904), FRAME_EDGES, 1.0),
        ((1920, 1080), (1280, 720), FRAME_SCALED, 2 / 3),
        ((1920, 1080), (1000, 540), None, None),
        ((1920, 1080), (1080, 1920), None, None),  # portrait against landscape: another camera
        ((1088, 1920), (1040, 1920), None, None),  # 48 columns: more than codec padding
    ],
)
def test_sizes_are_told_apart(calibration, video, kind, scale):
    match = match_image_frame(calibration, video, EDGE_PX, allow_scale=True)
    if kind is None:
        assert match is None
    else:
        assert match.kind == kind and match.scale == pytest.approx(scale)
        assert f"{video[0]}x{video[1]}" in match.describe() and f"{calibration[0]}x{calibration[1]}" in match.describe()


def test_settings_can_refuse_edges_and_scales():
    assert match_image_frame((1088, 1920), (1080, 1920), 0, allow_scale=True) is None
    assert match_image_frame((3840, 2160), (1920, 1080), EDGE_PX, allow_scale=False) is None


@pytest.mark.parametrize("name", sorted(ALL_MODELS))
def test_a_resized_camera_projects_where_the_resize_moves_the_pixels(name):
    """Every model: the scaled camera's pixel is ``s (u + 0.5) - 0.5`` of the original's, and
    an edge change keeps pixels and principal point."""
    model, size = ALL_MODELS[name]
    camera = Camera("cam", model, np.eye(3), np.zeros(3), size)
    points = rays_within(max_angle(name))
    for scale in (0.5, 2 / 3, 2.0):
        video = (round(size[0] * scale), round(size[1] * scale))
        match = match_image_frame(size, video, 0, allow_scale=True)
        if match is None:  # a size that does not scale exactly to whole pixels
            continue
        scaled = camera_in_video_frame(camera, match)
        assert scaled.image_size == video
        np.testing.assert_allclose(scaled.project(points), match.scale * (camera.project(points) + 0.5) - 0.5, atol=1e-9)
    edges = camera_in_video_frame(camera, match_image_frame(size, (size[0] - 8, size[1]), EDGE_PX, True))
    np.testing.assert_array_equal(edges.project(points), camera.project(points))
    assert edges.image_size == (size[0] - 8, size[1])


def test_the_pixel_centre_convention_is_opencv_resize():
    """A blob at a sub-pixel position, resized by OpenCV, lands at ``s (u + 0.5) - 0.5``."""
    size, centre = (400, 300), np.array([151.3, 97.6])
    u, v = np.meshgrid(np.arange(size[0]), np.arange(size[1]))
    image = np.exp(-((u - centre[0]) ** 2 + (v - centre[1]) ** 2) / (2 * 6.0**2))
    for scale in (0.5, 2.0):
        resized = cv2.resize(image, (round(size[0] * scale), round(size[1] * scale)), interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        ru, rv = np.meshgrid(np.arange(resized.shape[1]), np.arange(resized.shape[0]))
        found = np.array([(resized * ru).sum(), (resized * rv).sum()]) / resized.sum()
        np.testing.assert_allclose(found, scale * (centre + 0.5) - 0.5, atol=0.02)


# --------------------------------------------------------------------------------------
# The take reader
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    from workflow.synth.take_writer import SynthConfig, synthesize_take

    folder = tmp_path_factory.mktemp("frames") / "take"
    synthesize_take(folder, SynthConfig(seed=3, num_frames=3), render=True)
    return folder


def _rewrite_calibration(take, camera: str, change) -> None:
    """Apply ``change(row)`` to ``camera``'s row of the take's gopro_calibs.csv."""
    path = take / "trajectory" / "gopro_calibs.csv"
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    for row in rows:
        if row["cam_uid"] == camera:
            change(row)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _copy(take, tmp_path):
    copy = tmp_path / "take"
    shutil.copytree(take, copy)
    return copy


def test_a_calibration_of_the_coded_size_reads_as_the_video_frame(rendered, tmp_path):
    original = read_take(rendered)
    take = _copy(rendered, tmp_path)
    _rewrite_calibration(take, "cam02", lambda row: row.update(image_height=str(int(row["image_height"]) + 4)))
    read = read_take(take)
    assert set(read.video_frames) == {"cam02"} and read.video_frames["cam02"].kind == FRAME_EDGES
    camera, before = read.exo_camera("cam02"), original.exo_camera("cam02")
    assert camera.image_size == before.image_size  # the video's
    np.testing.assert_array_equal(camera.model.matrix, before.model.matrix)


def test_a_calibration_at_twice_the_video_size_is_scaled_to_it(rendered, tmp_path):
    """The calibration of the full-resolution image (2x, intrinsics scaled as a resize does)
    reads as the same camera as the video's own calibration."""
    original = read_take(rendered)
    take = _copy(rendered, tmp_path)

    def double(row):
        row["image_width"], row["image_height"] = str(2 * int(row["image_width"])), str(2 * int(row["image_height"]))
        for index in (0, 1):  # fx fy
            row[f"intrinsics_{index}"] = repr(2 * float(row[f"intrinsics_{index}"]))
        for index in (2, 3):  # cx cy
            row[f"intrinsics_{index}"] = repr(2 * (float(row[f"intrinsics_{index}"]) + 0.5) - 0.5)

    _rewrite_calibration(take, "cam03", double)
    read = read_take(take)
    match = read.video_frames["cam03"]
    assert match.kind == FRAME_SCALED and match.scale == 0.5
    camera, before = read.exo_camera("cam03"), original.exo_camera("cam03")
    assert camera.image_size == before.image_size
    np.testing.assert_allclose(camera.model.matrix, before.model.matrix, atol=1e-9)


def test_a_calibration_of_another_camera_is_refused_naming_video_camera_file_and_sizes(rendered, tmp_path):
    take = _copy(rendered, tmp_path)
    width = read_take(rendered).exo_camera("cam01").image_size[0]
    _rewrite_calibration(take, "cam01", lambda row: row.update(image_width=str(width + 40)))
    with pytest.raises(TakeError) as error:
        read_take(take)
    message = str(error.value)
    for part in ("cam01.mp4", "camera 'cam01'", "gopro_calibs.csv", "image_size", "take.max_video_edge_px"):
        assert part in message


def test_the_real_capture_has_two_videos_cropped_from_the_coded_width(pose2sim_balancing):
    """Pose2Sim's Qualisys calibration states 1088 columns; cam01 and cam02 are 1080 wide."""
    take = read_take(pose2sim_balancing)
    assert {name: match.kind for name, match in take.video_frames.items()} == {"cam_01": FRAME_EDGES, "cam_02": FRAME_EDGES}
    assert [camera.image_size for camera in take.exo_cameras] == [(1080, 1920), (1080, 1920), (1088, 1920), (1088, 1920)]
