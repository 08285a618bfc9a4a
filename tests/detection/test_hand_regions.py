"""Hand regions (detection/hand_regions.py) and turned crops (detection/crops.py): geometry only."""

import numpy as np
import pytest

from detection import hand_regions as regions
from detection.crops import RotatedCrop, extract
from triangulation.cameras import make_camera


def upright_hand(wrist=(100.0, 200.0), length=40.0, angle_deg=0.0) -> np.ndarray:
    """21 image points of a flat hand pointing up the image (fingers toward -y), turned by ``angle_deg``."""
    local = [(0.0, 0.0)]
    for finger, x in enumerate((-0.45, -0.24, 0.0, 0.24, 0.42)):
        base = 0.25 if finger == 0 else 0.55
        local += [(x * (1.2 if finger == 0 else 1.0), -(base + 0.14 * k)) for k in range(4)]
    local = np.array(local) * length
    angle = np.radians(angle_deg)
    turn = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return local @ turn.T + np.asarray(wrist)


@pytest.mark.parametrize("mirrored", [False, True])
def test_turned_crop_maps_pixels_back_exactly(mirrored):
    rng = np.random.default_rng(0)
    crop = RotatedCrop((150.0, 120.0), 80.0, (np.sin(0.4), -np.cos(0.4)), 224, mirrored)
    points = rng.uniform(100, 200, (20, 2))
    assert np.allclose(crop.to_image(crop.to_crop(points)), points)
    # The region's centre is the crop's centre and its "up" the crop's up.
    assert np.allclose(crop.to_crop(np.array(crop.centre)), 111.5)
    up = crop.to_crop(np.array(crop.centre) + 10.0 * np.array(crop.up)) - 111.5
    assert np.allclose(up, [0.0, -28.0])
    # A bright dot lands where to_crop says, also when the image is shrunk first.
    for side in (80.0, 900.0):
        image = np.zeros((1000, 1000, 3), np.uint8)
        image[300:303, 400:403] = 255
        crop = RotatedCrop((420.0, 330.0), side, (np.sin(0.4), -np.cos(0.4)), 224, mirrored)
        weights = extract(image, crop)[..., 0].astype(np.float64)
        v, u = np.mgrid[: crop.size, : crop.size]
        centroid = np.array([(u * weights).sum(), (v * weights).sum()]) / weights.sum()
        assert np.linalg.norm(centroid - crop.to_crop(np.array([401.0, 301.0]))) <= 1.0


def test_region_from_points_follows_mediapipe_tracking_rule():
    hand = upright_hand()
    region = regions.region_from_points(hand)
    assert np.allclose(region.up, [0.0, -1.0])
    palm = hand[list(regions.PALM_POINTS)]
    width, height = np.ptp(palm, axis=0)
    assert np.isclose(region.side, 2.0 * max(width, height))
    # Centred on the palm box, moved a tenth of its height toward the fingers.
    box_centre = 0.5 * (palm.min(axis=0) + palm.max(axis=0))
    assert np.allclose(region.centre, box_centre + [0.0, -0.1 * height])
    # The rule turns with the hand.
    turned = regions.region_from_points(upright_hand(angle_deg=90.0))
    assert np.allclose(turned.up, [1.0, 0.0], atol=1e-9) and np.isclose(turned.side, region.side)
    centres, sides, ups = regions.palm_boxes(np.stack([hand, upright_hand(angle_deg=90.0)]))
    assert np.allclose(centres[0], region.centre) and np.allclose(sides, region.side) and np.allclose(ups[1], turned.up)
    missing = hand.copy()
    missing[9] = np.nan
    assert regions.region_from_points(missing) is None


def test_forearm_regions_in_2d_and_from_the_3d_arm():
    region = regions.region_from_arm(np.array([100.0, 200.0]), np.array([100.0, 100.0]), 100.0, 0.27, 0.95, 8.0)
    assert np.allclose(region.up, [0.0, 1.0]) and np.allclose(region.centre, [100.0, 227.0]) and np.isclose(region.side, 95.0)
    end_on = regions.region_from_arm(np.array([100.0, 200.0]), np.array([101.0, 195.0]), 100.0, 0.27, 0.95, 8.0)
    assert np.allclose(end_on.centre, [100.0, 200.0]) and end_on.side > 95.0  # no direction: around the wrist
    # A camera 2 m in front of an arm: the region's size is the 3D forearm's length at the wrist's depth,
    # also when the forearm points at the camera.
    R = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    camera = make_camera("c", "pinhole", [[500, 0, 320], [0, 500, 240], [0, 0, 1]], [0, 0, 0, 0], R, -R @ np.array([0.0, -2.0, 1.0]), (640, 480))
    wrist = np.array([0.0, 0.0, 1.0])
    sideways = regions.project_arm_region(camera, wrist + [0.0, 0.0, 0.26], wrist, 0.27, 0.95, 8.0)
    towards = regions.project_arm_region(camera, wrist + [0.0, 0.26, 0.0], wrist, 0.27, 0.95, 8.0)
    assert np.isclose(sideways.side, 0.95 * 0.26 * 500 / 2.0, rtol=1e-3)
    assert np.isclose(towards.side, 1.25 * 0.95 * 0.26 * 500 / 2.0, rtol=1e-3)
    assert np.allclose(sideways.up, [0.0, 1.0]) and sideways.centre[1] > camera.project(wrist)[1]
    assert regions.pixels_per_metre(camera, np.array([0.0, -3.0, 1.0])) != regions.pixels_per_metre(camera, wrist)
    assert np.isnan(regions.pixels_per_metre(camera, np.array([0.0, -3.0, 1.0])))  # behind the camera


def test_a_hand_moves_and_turns_with_its_forearm():
    rng = np.random.default_rng(1)
    hand = rng.normal(0.0, 0.05, (21, 3)) + [0.0, 0.0, 0.9]
    elbow, wrist = np.array([0.0, 0.0, 1.15]), np.array([0.0, 0.0, 0.9])
    hand[0] = wrist
    # The forearm swings up by 90 degrees about the elbow and the body walks 0.5 m.
    new_elbow = elbow + [0.5, 0.0, 0.0]
    new_wrist = new_elbow + [0.25, 0.0, 0.0]
    moved = regions.move_hand(hand, elbow, wrist, new_elbow, new_wrist)
    assert np.allclose(moved[0], new_wrist)
    assert np.allclose(np.linalg.norm(moved - moved[0], axis=1), np.linalg.norm(hand - hand[0], axis=1))
    assert np.allclose(moved[1:] - new_wrist, (hand[1:] - wrist) @ np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]]).T)
    assert np.allclose(regions.move_hand(hand, None, wrist, new_elbow, new_wrist), hand + (new_wrist - wrist))
