"""Rendered videos of synthetic takes (workflow/synth/render.py), on small images."""

from __future__ import annotations

import numpy as np
import pytest

from fitting.skeleton import JOINT_NAMES, LEFT_HAND, NUM_JOINTS, RIGHT_HAND
from pipeline.formats.video import iter_frames, video_info
from triangulation.camera_models import Fisheye624Model, FisheyeModel
from triangulation.cameras import Camera, MovingCamera
from workflow.synth.render import (
    EGO_HIDDEN_PARTS,
    PART,
    PART_NAMES,
    CameraRenderer,
    FigureStyle,
    Room,
    _Cones,
    _Ellipsoids,
    _hit_cones,
    _hit_ellipsoids,
    build_figure,
    joint_visibility,
    render_take_videos,
)

pytestmark = pytest.mark.integration  # runs stages or the pipeline on take folders, videos or the real capture

J = {name: index for index, name in enumerate(JOINT_NAMES)}


def _hand(wrist: np.ndarray, down: np.ndarray, across: np.ndarray) -> np.ndarray:
    """21 hand joints hanging from ``wrist``: fingers along ``down``, spread along ``across``."""
    joints = [wrist]
    for finger in range(5):
        if finger == 0:  # thumb: starts near the wrist, on the ``across`` side
            base = wrist + down * 0.025 + across * 0.025
            step = down * 0.025 + across * 0.012
        else:
            base = wrist + down * 0.09 + across * (0.03 - 0.018 * (finger - 1))
            step = down * (0.032 - 0.002 * finger)
        joints += [base + step * k for k in range(4)]
    return np.array(joints)


def standing_pose(x: float = 0.0, y: float = 0.0) -> np.ndarray:
    """A person standing at (x, y) facing +y, arms a little away from the body."""
    pose = np.full((NUM_JOINTS, 3), np.nan)
    body = {
        "nose": (0, 0.1, 1.6), "left_eye": (-0.033, 0.085, 1.635), "right_eye": (0.033, 0.085, 1.635),
        "left_ear": (-0.075, 0.0, 1.61), "right_ear": (0.075, 0.0, 1.61),
        "left_shoulder": (-0.19, 0, 1.42), "right_shoulder": (0.19, 0, 1.42),
        "left_elbow": (-0.27, 0.02, 1.13), "right_elbow": (0.27, 0.02, 1.13),
        "left_wrist": (-0.31, 0.1, 0.89), "right_wrist": (0.31, 0.1, 0.89),
        "left_hip": (-0.1, 0, 0.92), "right_hip": (0.1, 0, 0.92),
        "left_knee": (-0.11, 0.03, 0.5), "right_knee": (0.11, 0.03, 0.5),
        "left_ankle": (-0.11, -0.01, 0.08), "right_ankle": (0.11, -0.01, 0.08),
    }  # fmt: skip
    for name, position in body.items():
        pose[J[name]] = position
    for hand, wrist in ((LEFT_HAND, "left_wrist"), (RIGHT_HAND, "right_wrist")):
        down = pose[J[wrist]] - pose[J[wrist.replace("wrist", "elbow")]]
        down /= np.linalg.norm(down)
        pose[hand] = _hand(pose[J[wrist]], down, np.array([0.0, 1.0, 0.0]))
    return pose + np.array([x, y, 0.0])


def look_at(name: str, centre, target, model, size) -> Camera:
    centre, target = np.asarray(centre, float), np.asarray(target, float)
    z = (target - centre) / np.linalg.norm(target - centre)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return Camera(name, model, R, -R @ centre, size)


def exo_cameras(width: int = 320, height: int = 180) -> list[Camera]:
    f = 150.0 * width / 320
    model = FisheyeModel(f, f, width / 2, height / 2, np.array([0.03, -0.01, 0.002, 0.0]))
    return [
        look_at("cam01", (0.3, 3.0, 1.5), (0, 0, 0.9), model, (width, height)),
        look_at("cam02", (-2.8, -1.0, 1.8), (0, 0, 0.9), model, (width, height)),
    ]


def ego_camera(poses: np.ndarray, size: int = 128) -> MovingCamera:
    """An Aria-like camera between the eyes, looking forward and 35 degrees down."""
    f = 60.0 * size / 128
    model = Fisheye624Model(f, f, size / 2, size / 2, np.array([0.02, -0.01, 0, 0, 0, 0]), np.zeros(2), np.zeros(4))
    Rs, ts = [], []
    pitch = np.deg2rad(35)
    for pose in poses:
        centre = (pose[J["left_eye"]] + pose[J["right_eye"]]) / 2 + np.array([0, 0.02, 0])
        forward = np.array([0.0, np.cos(pitch), -np.sin(pitch)])
        x = np.array([1.0, 0.0, 0.0])
        R = np.stack([x, np.cross(forward, x), forward])
        Rs.append(R)
        ts.append(-R @ centre)
    return MovingCamera("aria01", model, np.array(Rs), np.array(ts), (size, size))


@pytest.fixture(scope="module")
def scene():
    cameras = exo_cameras()
    pose = standing_pose()
    room = Room.around(np.vstack([c.center for c in cameras] + [pose]), seed=3)
    style = FigureStyle.from_seed(3)
    return cameras, pose, room, style


def test_silhouette_lands_on_projected_joints(scene):
    cameras, pose, room, style = scene
    figure = build_figure(pose, style)
    for index, camera in enumerate(cameras):
        renderer = CameraRenderer(camera, room, seed=3, camera_index=index, noise=False)
        image, labels = renderer.render(figure, 0, with_labels=True)
        empty = renderer.render(None, 0)
        assert image.shape == (180, 320, 3) and labels.shape == (180, 320)
        pixels = np.round(camera.project(pose[5:17])).astype(int)  # shoulders to ankles
        for joint, (u, v) in zip(range(5, 17), pixels, strict=True):
            assert labels[v, u] >= 0, f"{camera.name}: {JOINT_NAMES[joint]} at ({u}, {v}) not covered"
            assert np.abs(image[v, u].astype(int) - empty[v, u]).max() > 0
        # The figure stays near the joints: nothing is drawn far outside their image box.
        all_pixels = camera.project(pose)
        low, high = np.nanmin(all_pixels, axis=0) - 25, np.nanmax(all_pixels, axis=0) + 25
        v, u = np.nonzero(labels >= 0)
        assert np.all((u >= low[0]) & (u <= high[0]) & (v >= low[1]) & (v <= high[1]))
        # Away from the figure the image is the room.
        outside = labels < 0
        outside[max(0, int(low[1])) : int(high[1]), max(0, int(low[0])) : int(high[0])] = False
        assert np.array_equal(image[outside], empty[outside])


def test_nan_joints_are_not_drawn(scene):
    cameras, pose, room, style = scene
    renderer = CameraRenderer(cameras[0], room, noise=False)
    _, labels = renderer.render(build_figure(np.full_like(pose, np.nan), style), 0, with_labels=True)
    assert np.all(labels < 0)
    no_legs = pose.copy()
    no_legs[[J["left_knee"], J["right_knee"]]] = np.nan
    _, labels = renderer.render(build_figure(no_legs, style), 0, with_labels=True)
    present = {PART_NAMES[k] for k in np.unique(labels[labels >= 0])}
    assert not present & {"left_thigh", "right_thigh", "left_shin", "right_shin", "left_foot", "right_foot"}
    assert {"torso", "head", "left_forearm"} <= present


@pytest.mark.parametrize("forearm_nearer", [True, False])
def test_occlusion_order(forearm_nearer):
    """A horizontal forearm and a vertical shin cross in the image: the nearer one is seen."""
    camera = look_at("cam", (0.0, -3.0, 1.0), (0.0, 0.0, 1.0), FisheyeModel(300, 300, 160, 90, np.zeros(4)), (320, 180))
    forearm_y, shin_y = (-1.0, 0.0) if forearm_nearer else (0.0, -1.0)
    pose = np.full((NUM_JOINTS, 3), np.nan)
    pose[J["left_elbow"]], pose[J["left_wrist"]] = (-0.3, forearm_y, 1.0), (0.3, forearm_y, 1.0)
    pose[J["right_knee"]], pose[J["right_ankle"]] = (0.0, shin_y, 1.3), (0.0, shin_y, 0.7)
    style = FigureStyle.from_seed(0)
    renderer = CameraRenderer(camera, Room.around(np.vstack([camera.center, pose]), 0), noise=False)
    image, labels = renderer.render(build_figure(pose, style), 0, with_labels=True)
    u, v = np.round(camera.project(np.array([0.0, min(forearm_y, shin_y), 1.0]))).astype(int)
    expected = "left_forearm" if forearm_nearer else "right_shin"
    assert PART_NAMES[labels[v, u]] == expected
    # The colour at the crossing is the near limb's: same as further along that limb.
    if forearm_nearer:
        along = np.round(camera.project(np.array([0.2, forearm_y, 1.0]))).astype(int)
    else:
        along = np.round(camera.project(np.array([0.0, shin_y, 1.2]))).astype(int)
    assert PART_NAMES[labels[along[1], along[0]]] == expected
    assert np.abs(image[v, u].astype(int) - image[along[1], along[0]]).max() <= 12


def test_ego_view_hides_the_head_and_sees_the_hands():
    poses = np.stack([standing_pose()])
    for side, hand, prefix in ((-1, LEFT_HAND, "left"), (1, RIGHT_HAND, "right")):  # forearms forward
        elbow, wrist = J[f"{prefix}_elbow"], J[f"{prefix}_wrist"]
        poses[0, elbow], poses[0, wrist] = (side * 0.22, 0.05, 1.15), (side * 0.15, 0.32, 1.1)
        along = (poses[0, wrist] - poses[0, elbow]) / np.linalg.norm(poses[0, wrist] - poses[0, elbow])
        poses[0, hand] = _hand(poses[0, wrist], along, np.array([-side, 0.0, 0.0]))
    ego = ego_camera(poses)
    room = Room.around(np.vstack([poses[0], ego.centers]), 1)
    renderer = CameraRenderer(ego, room, noise=False)
    _, labels = renderer.render(build_figure(poses[0], FigureStyle.from_seed(1)), 0, with_labels=True)
    present = {PART_NAMES[k] for k in np.unique(labels[labels >= 0])}
    assert not present & set(EGO_HIDDEN_PARTS)
    assert {"left_hand", "right_hand"} <= present
    assert np.mean(labels >= 0) < 0.5  # the body does not fill the view
    for hand in (LEFT_HAND, RIGHT_HAND):
        u, v = np.round(ego.at_frame(0).project(poses[0, hand.start + 9])).astype(int)  # middle finger base
        assert PART_NAMES[labels[v, u]].endswith("hand")


def test_frame_without_ego_pose_is_black(scene):
    _, pose, room, _ = scene
    ego = ego_camera(np.stack([pose, pose]))
    R, t = ego.R.copy(), ego.t.copy()
    R[1], t[1] = np.nan, np.nan
    ego = MovingCamera(ego.name, ego.model, R, t, ego.image_size)
    renderer = CameraRenderer(ego, room)
    assert renderer.render(None, 1).mean() < 5
    assert renderer.render(None, 0).mean() > 50


def test_ego_room_follows_the_camera(scene):
    _, pose, room, _ = scene
    poses = np.stack([pose, standing_pose(0.4, 0.3)])
    ego = ego_camera(poses)
    renderer = CameraRenderer(ego, room, noise=False)
    first, second = renderer.render(None, 0), renderer.render(None, 1)
    assert np.abs(first.astype(int) - second).mean() > 3
    # the same pose gives the same room image
    static = CameraRenderer(ego.at_frame(1), room, noise=False)
    assert np.array_equal(static.render(None, 0), second)


def _balls(a, b, ra, rb, samples=1001):
    """The round cone as balls: the convex hull of the spheres at a and b is the union of
    the balls centred at ``a + u (b - a)`` with radius ``ra + u (rb - ra)``, 0 <= u <= 1."""
    u = np.linspace(0.0, 1.0, samples)
    return a + (b - a) * u[:, None], ra + (rb - ra) * u


def _gap_to_segment(rays, length, centres, radii):
    """Smallest ``distance(ball centre, ray segment [0, length]) - radius`` per ray."""
    along = np.clip(rays @ centres.T, 0.0, length[:, None])  # (rays, balls)
    nearest = rays[:, None, :] * along[..., None]
    return np.min(np.linalg.norm(centres[None] - nearest, axis=2) - radii[None], axis=1)


def test_round_cone_intersection_against_brute_force():
    rng = np.random.default_rng(0)
    a, b = np.array([0.1, -0.05, 2.0]), np.array([-0.15, 0.2, 2.35])
    ra, rb = 0.06, 0.035
    targets = (a + b) / 2 + rng.normal(0, 0.12, size=(300, 3))
    rays = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    cones = _Cones.of(a[None], b[None], np.array([ra]), np.array([rb]))
    t, _, _ = _hit_cones(rays, cones, np.zeros(len(rays), int))
    hit = np.isfinite(t)
    assert 50 < hit.sum() < 250
    centres, radii = _balls(a, b, ra, rb)
    # The ray up to the hit touches the solid at its end only, and the hit is on the surface.
    assert np.abs(_gap_to_segment(rays[hit], t[hit], centres, radii)).max() < 1e-3
    assert _gap_to_segment(rays[hit], t[hit] - 2e-3, centres, radii).min() > 0
    # Missed rays pass outside the solid.
    assert _gap_to_segment(rays[~hit], np.full((~hit).sum(), 10.0), centres, radii).min() > -1e-3


def test_ellipsoid_intersection_lies_on_the_surface():
    rng = np.random.default_rng(1)
    centre = np.array([0.2, -0.1, 1.5])
    axes = np.linalg.qr(rng.normal(size=(3, 3)))[0]  # columns: the ellipsoid's axes
    radii = np.array([0.2, 0.1, 0.05])
    targets = centre + rng.normal(0, 0.15, size=(400, 3))
    rays = targets / np.linalg.norm(targets, axis=1, keepdims=True)
    ellipsoids = _Ellipsoids.of(centre[None], axes[None], radii[None])
    t = _hit_ellipsoids(rays, ellipsoids, np.zeros(len(rays), int))
    hit = np.isfinite(t)
    assert 50 < hit.sum() < 350

    def level(points):  # < 1 inside, 1 on the surface
        return np.sum(((points - centre) @ axes / radii) ** 2, axis=1)

    assert np.abs(level(rays[hit] * t[hit, None]) - 1).max() < 1e-9
    depths = np.linspace(0.5, 3.0, 2000)  # every missed ray stays outside
    assert min(level(rays[~hit] * d).min() for d in depths) > 1 - 1e-3


def _take(tmp_path, seed, frames=3):
    cameras = exo_cameras(160, 96)
    poses = np.stack([standing_pose(0.05 * k, 0.0) for k in range(frames)])
    ego = ego_camera(poses, 96)
    take = tmp_path / f"take_{seed}"
    render_take_videos(take, poses, cameras, ego, 30.0, seed)
    return take, cameras + [ego]


def test_videos_are_written_and_deterministic(tmp_path):
    take, cameras = _take(tmp_path, seed=5)
    again, _ = _take(tmp_path / "again", seed=5)
    other, _ = _take(tmp_path / "other", seed=6)
    folder = take / "frame_aligned_videos"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{c.name}.mp4" for c in cameras)
    for camera in cameras:
        name = f"{camera.name}.mp4"
        info = video_info(folder / name)
        assert (info.width, info.height, info.num_frames) == (*camera.image_size, 3)
        assert info.fps == pytest.approx(30.0)
        first = [(i, image) for i, image in iter_frames(folder / name)]
        second = [image for _, image in iter_frames(again / "frame_aligned_videos" / name)]
        third = [image for _, image in iter_frames(other / "frame_aligned_videos" / name)]
        assert [i for i, _ in first] == [0, 1, 2]
        assert all(image.shape == (camera.image_size[1], camera.image_size[0], 3) for _, image in first)
        # libx264 is deterministic: the same seed decodes to identical frames
        assert all(np.array_equal(a, b) for (_, a), b in zip(first, second, strict=True))
        assert any(not np.array_equal(a, b) for (_, a), b in zip(first, third, strict=True))


def test_a_hand_curled_around_something_holds_an_object(scene):
    from workflow.synth import motion

    _, pose, _, style = scene
    shape = motion.sample_body_shape(np.random.default_rng(0))
    wrist, elbow = pose[J["right_wrist"]], pose[J["right_elbow"]]
    down = (wrist - elbow) / np.linalg.norm(wrist - elbow)
    palm = np.stack([down, np.array([0.0, 1.0, 0.0]), np.cross(down, [0.0, 1.0, 0.0])], axis=1)  # hand axes in the world
    counts = {}
    for name in ("cylinder", "open", "grasp", "point"):
        index = motion.HAND_POSE_NAMES.index(name)
        flexion, abduction = np.radians(motion._HAND_POSE_FLEXION[index])[None], np.radians(motion._HAND_POSE_ABDUCTION[index])[None]
        held = pose.copy()
        held[RIGHT_HAND] = wrist + motion.hand_points(shape.hand, flexion, abduction, left=False)[0] @ palm.T
        figure = build_figure(held, style)
        counts[name] = int((figure.part == PART["held_object"]).sum())
    assert counts == {"cylinder": 1, "open": 0, "grasp": 0, "point": 0}


def test_a_joint_is_visible_where_its_own_part_is_the_surface():
    labels = np.full((20, 30), -1, dtype=np.int8)
    labels[5:10, 5:10] = PART["left_hand"]
    labels[5:10, 10:15] = PART["torso"]
    pixels = np.full((NUM_JOINTS, 2), np.nan)
    pixels[LEFT_HAND.start] = (7.0, 7.0)  # on its hand
    pixels[LEFT_HAND.start + 1] = (10.2, 7.0)  # on the torso, beside its hand: the outline counts
    pixels[LEFT_HAND.start + 2] = (13.0, 7.0)  # behind the torso
    pixels[RIGHT_HAND.start] = (7.0, 7.0)  # the other hand's surface
    pixels[J["left_shoulder"]] = (12.0, 6.0)  # a shoulder on the torso
    pixels[J["left_wrist"]] = (40.0, 7.0)  # outside the image
    visible = joint_visibility(labels, pixels)
    assert np.flatnonzero(visible).tolist() == [J["left_shoulder"], LEFT_HAND.start, LEFT_HAND.start + 1]


def test_rendering_returns_the_truth_visibility(tmp_path):
    cameras = exo_cameras(160, 96)
    poses = np.stack([standing_pose(0.05 * k, 0.0) for k in range(2)])
    visible = render_take_videos(tmp_path / "take", poses, cameras, ego_camera(poses, 96), 30.0, 1)
    assert visible.shape == (2, 2, NUM_JOINTS) and visible.dtype == bool
    assert visible[0, :, 5:17].all()  # cam01 faces the person: shoulders to ankles seen
    assert visible[0, :, LEFT_HAND].mean() > 0.5 and visible[0, :, RIGHT_HAND].mean() > 0.5


def test_input_errors(tmp_path, scene):
    cameras, pose, _, _ = scene
    poses = np.stack([pose, pose])
    with pytest.raises(ValueError, match="poses for 2 frames"):
        render_take_videos(tmp_path, poses, cameras, ego_camera(poses[:1]), 30.0, 0)
    with pytest.raises(ValueError, match="shape"):
        render_take_videos(tmp_path, poses[:, :17], cameras, ego_camera(poses), 30.0, 0)
    no_size = Camera("cam09", cameras[0].model, cameras[0].R, cameras[0].t)
    with pytest.raises(ValueError, match="cam09"):
        render_take_videos(tmp_path, poses, [no_size], ego_camera(poses), 30.0, 0)
    assert not (tmp_path / "frame_aligned_videos").exists() or not any((tmp_path / "frame_aligned_videos").iterdir())
