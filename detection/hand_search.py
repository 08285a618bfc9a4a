"""Finding both hands of the camera wearer in every view of one frame, from every prior there is.

Runs after the frame's body is detected in every view and triangulated
(:mod:`detection.track`). Per hand (its side is the side of the 3D body's wrist,
never the model's left/right label), each view tries hand regions
(:mod:`detection.hand_regions`) with a :class:`stages.detect.backend.HandModel`
until one gives a hand:

1. ``track``: the previous frame's 3D hand (triangulated from these detections),
   carried along with the forearm from its old position to this frame's 3D body
   (:func:`detection.hand_regions.move_hand`) and projected; without a 3D hand,
   the view's own previous 2D hand;
2. ``wrist``: the forearm of the 3D body (projected; its length at the wrist's depth
   sizes the region), else of the view's 2D body. A hand found here is looked at once
   more in the region of its own points (``hand_refit``), as MediaPipe's tracking does.

A hand is kept when the model's presence score reaches ``min_hand_presence`` and its
wrist lies within ``hand_max_distance`` forearm lengths of the body wrist. The hand
is then triangulated from the views that kept it (RANSAC, a threshold of
``hand_agreement_fraction`` of the hand's region side); a view agrees when at least
``hand_min_agreement`` of its 21 joints are inliers. Then:

3. ``multiview``: views without an agreeing hand look in the region of that 3D hand
   projected into them (kept if it agrees);
4. ``retry``: where no 3D hand was found, views still without a hand try the best
   region so far smaller and
   larger (``hand_retry_scale_step``), mirrored (``hand_retry_mirrored``: the model sees a left
   hand as a right one), and palm detection around the wrist (``hand_palm_search``).

Last, a view whose hand disagrees with a 3D hand that two other views agree on loses
it. The 3D hand and the 2D hands are the next frame's priors.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from detection import hand_regions as regions
from detection.hand_regions import HandRegion
from detection.hands import ELBOW, SIDES, WRIST, forearms, hand_box
from detection.settings import DetectionSettings
from fitting.skeleton import LEFT_HAND, NUM_HAND_JOINTS, RIGHT_HAND
from triangulation.cameras import Camera
from triangulation.triangulate import triangulate

HAND_SLICES = {"left": LEFT_HAND, "right": RIGHT_HAND}
SOURCES = ("track", "wrist", "multiview", "retry")
HAND_CROP_SIZE = 224  # the hand landmark model's input


@dataclass
class _SideState:
    """One hand's priors carried to the next frame."""

    hand_3d: np.ndarray | None = None  # (21, 3) metres
    elbow: np.ndarray | None = None  # (3,) the 3D body's elbow and wrist when the hand was seen
    wrist: np.ndarray | None = None
    age: int = 0
    hands_2d: dict[int, np.ndarray] = field(default_factory=dict)  # view -> (21, 3)
    ages_2d: dict[int, int] = field(default_factory=dict)


class HandTracker:
    """The hand search of one detect loop (a range of frames in lockstep over ``views`` views).

    ``counts``: hands found per view and source (:data:`SOURCES`), model calls, views
    dropped for disagreeing.
    """

    def __init__(self, model, cameras: list[Camera], settings: DetectionSettings) -> None:
        self.model = model
        self.cameras = cameras
        self.settings = settings
        self.sides = {side: _SideState() for side in SIDES}
        self.counts = [Counter() for _ in cameras]

    # -- one frame ------------------------------------------------------------------------

    def find(self, images: list[np.ndarray | None], keypoints: np.ndarray, body_3d: np.ndarray | None) -> None:
        """Fill the hands of ``keypoints (views, 59, 3)`` (this frame, bodies already in) in place.

        ``body_3d (17, 3)``: this frame's triangulated body, or None.
        """
        for side in SIDES:
            hands = self._find_side(side, images, keypoints, body_3d)
            keypoints[:, HAND_SLICES[side]] = hands

    def _find_side(self, side: str, images, keypoints, body_3d) -> np.ndarray:
        views = len(self.cameras)
        hands = np.full((views, NUM_HAND_JOINTS, 3), np.nan)
        used: dict[int, HandRegion] = {}  # the region each view's hand (or last try) came from
        sources: dict[int, str] = {}
        arm = self._arm_3d(side, body_3d)
        predicted = self._predicted_hand(side, arm)
        for v, image in enumerate(images):
            if image is not None:
                self._first_pass(v, side, image, keypoints[v], arm, predicted, hands, used, sources)
        hand_3d, agree = self._consensus(hands, used)
        if hand_3d is not None and self.settings.hand_multiview:
            for v, image in enumerate(images):
                if image is not None and not agree[v]:
                    self._multiview_pass(v, side, image, keypoints[v], arm, hand_3d, hands, used, sources)
        else:
            # Without a 3D hand to look where it projects, views without a hand retry; with
            # one, a view that still sees no hand most likely has it hidden.
            for v, image in enumerate(images):
                if image is not None and not np.isfinite(hands[v, 0, 0]):
                    hand = self._retry(v, image, used.get(v), keypoints[v], side, arm, hand_3d)
                    if hand is not None:
                        hands[v], sources[v] = hand, "retry"
        hand_3d, agree = self._consensus(hands, used)
        if hand_3d is not None and agree.sum() >= 2:
            for v in np.flatnonzero(np.isfinite(hands[:, 0, 0]) & ~agree):
                hands[v] = np.nan
                self.counts[v][f"{side}_dropped"] += 1
                sources.pop(int(v), None)
        for v, source in sources.items():
            self.counts[v][f"{side}_{source}"] += 1
        self._remember(side, hands, hand_3d, arm)
        return hands

    def _first_pass(self, v, side, image, body_2d, arm, predicted, hands, used, sources) -> None:
        """Tracking, then the forearm (with one more look in the found hand's own region)."""
        for source, region in self._first_regions(v, side, image, body_2d, arm, predicted):
            used[v] = region
            hand = self._look(v, image, region, body_2d, side, arm)
            if hand is not None and source == "wrist" and self.settings.hand_refit:
                refit = self._points_region(hand)
                again = self._look(v, image, refit, body_2d, side, arm) if refit is not None else None
                if again is not None:
                    hand, used[v] = again, refit
            if hand is not None:
                hands[v], sources[v] = hand, source
                return

    def _multiview_pass(self, v, side, image, body_2d, arm, hand_3d, hands, used, sources) -> None:
        """Look where the other views' 3D hand projects; keep the hand if it agrees with it."""
        region = self._hand_3d_region(v, hand_3d)
        if region is None or not region.inside(image.shape[1], image.shape[0]):
            return
        hand = self._look(v, image, region, body_2d, side, arm)
        if hand is not None and self._agrees(v, hand, hand_3d, region):
            hands[v], sources[v], used[v] = hand, "multiview", region

    # -- regions ---------------------------------------------------------------------------

    def _arm_3d(self, side: str, body_3d: np.ndarray | None):
        """(elbow, wrist) ``(3,)`` of the 3D body, or None."""
        if body_3d is None:
            return None
        elbow, wrist = body_3d[ELBOW[side]], body_3d[WRIST[side]]
        if not np.all(np.isfinite(wrist)):
            return None
        return elbow, wrist

    def _predicted_hand(self, side: str, arm) -> np.ndarray | None:
        """The previous 3D hand carried to this frame's forearm, or None."""
        state = self.sides[side]
        if state.hand_3d is None or state.age > self.settings.hand_track_max_age:
            return None
        if arm is None or state.wrist is None:
            return state.hand_3d
        return regions.move_hand(state.hand_3d, state.elbow, state.wrist, arm[0], arm[1])

    def _points_region(self, points: np.ndarray) -> HandRegion | None:
        return regions.region_from_points(points[:, :2], self.settings.hand_region_scale, self.settings.hand_region_shift)

    def _hand_3d_region(self, v: int, hand_3d: np.ndarray) -> HandRegion | None:
        return regions.project_hand_region(self.cameras[v], hand_3d, self.settings.hand_region_scale, self.settings.hand_region_shift)

    def _track_region(self, v: int, side: str, predicted) -> HandRegion | None:
        """The previous 3D hand carried to this frame, else this view's previous 2D hand."""
        state = self.sides[side]
        if predicted is not None:
            return self._hand_3d_region(v, predicted)
        if v in state.hands_2d and state.ages_2d[v] <= self.settings.hand_track_max_age:
            return self._points_region(state.hands_2d[v])
        return None

    def _first_regions(self, v: int, side: str, image, body_2d, arm, predicted):
        width, height = image.shape[1], image.shape[0]
        region = self._track_region(v, side, predicted) if self.settings.hand_track else None
        if region is not None and region.inside(width, height):
            yield "track", region
        region = self._arm_region(v, side, body_2d, arm)
        if region is not None and region.inside(width, height):
            yield "wrist", region

    def _arm_region(self, v: int, side: str, body_2d, arm) -> HandRegion | None:
        settings = self.settings
        offset, scale, min_side = settings.hand_arm_offset, settings.hand_arm_scale, settings.hand_crop_min_px
        if arm is not None:
            region = regions.project_arm_region(self.cameras[v], arm[0], arm[1], offset, scale, min_side)
            if region is not None:
                return region
        forearm = forearms(np.asarray(body_2d[:17], dtype=np.float64), settings.min_keypoint_confidence)[side]
        if forearm is None:
            return None
        wrist, length = forearm
        elbow = body_2d[ELBOW[side]]
        elbow = elbow[:2] if np.isfinite(elbow[2]) and elbow[2] >= settings.min_keypoint_confidence else None
        return regions.region_from_arm(wrist, elbow, length, offset, scale, min_side)

    def _expected_wrist(self, v: int, side: str, body_2d, arm) -> tuple[np.ndarray, float] | None:
        """Where this view should see the hand's wrist ``(2,)`` and a forearm length in pixels."""
        if arm is not None and np.all(np.isfinite(arm[0])):
            density = regions.pixels_per_metre(self.cameras[v], arm[1])
            if np.isfinite(density):
                return self.cameras[v].project(arm[1]), float(np.linalg.norm(arm[1] - arm[0])) * density
        return forearms(np.asarray(body_2d[:17], dtype=np.float64), self.settings.min_keypoint_confidence)[side]

    # -- the model -------------------------------------------------------------------------

    def _look(self, v: int, image, region: HandRegion, body_2d, side: str, arm, mirrored: bool = False) -> np.ndarray | None:
        """The hand in ``region`` if the model is present enough and its wrist is where the body's is."""
        self.counts[v]["hand_calls"] += 1
        hand = self.model.hand_in_region(image, region.crop(HAND_CROP_SIZE, mirrored))
        return hand if self._plausible(v, hand, body_2d, side, arm) else None

    def _plausible(self, v: int, hand: np.ndarray, body_2d, side: str, arm) -> bool:
        settings = self.settings
        if not np.all(np.isfinite(hand[:, :2])) or hand[0, 2] < settings.min_hand_presence:
            return False
        expected = self._expected_wrist(v, side, body_2d, arm)
        if expected is None:
            return True
        wrist, length = expected
        if not np.isfinite(length) or length <= 0:
            return True
        return bool(np.linalg.norm(hand[0, :2] - wrist) <= settings.hand_max_distance * length)

    def _retry(self, v: int, image, region: HandRegion | None, body_2d, side: str, arm, hand_3d) -> np.ndarray | None:
        """Other scales and the mirror image of the last region, then palm detection at the wrist."""
        settings = self.settings

        def accept(hand, around):
            if hand is None:
                return None
            if hand_3d is not None and not self._agrees(v, hand, hand_3d, around):
                return None
            return hand

        if region is not None:
            step = settings.hand_retry_scale_step
            for scale in (1.0 / step, step) if step > 1.0 else ():
                hand = accept(self._look(v, image, region.scaled(scale), body_2d, side, arm), region)
                if hand is not None:
                    return hand
            if settings.hand_retry_mirrored:
                hand = accept(self._look(v, image, region, body_2d, side, arm, mirrored=True), region)
                if hand is not None:
                    return hand
        if not settings.hand_palm_search:
            return None
        box = hand_box(
            np.asarray(body_2d[:17], dtype=np.float64), side, settings.min_keypoint_confidence,
            settings.hand_crop_offset, settings.hand_crop_scale, settings.hand_crop_min_px,
        )  # fmt: skip
        if box is None:
            return None
        self.counts[v]["palm_calls"] += 1
        candidates = self.model.hands_in_box(image, box)
        for candidate in candidates:
            found = self._points_region(candidate)
            if found is None:
                continue
            hand = accept(self._look(v, image, found, body_2d, side, arm), found)
            if hand is not None:
                return hand
        return None

    # -- agreement ---------------------------------------------------------------------------

    def _threshold(self, region: HandRegion | None) -> float:
        side = region.side if region is not None else self.settings.hand_crop_min_px
        return self.settings.hand_agreement_fraction * side

    def _agrees(self, v: int, hand: np.ndarray, hand_3d: np.ndarray, region: HandRegion | None) -> bool:
        known = np.all(np.isfinite(hand_3d), axis=1)
        if known.sum() < 3 or not bool(np.all(self.cameras[v].in_front(hand_3d[known]))):
            return False
        error = np.linalg.norm(self.cameras[v].project(hand_3d[known]) - hand[known, :2], axis=1)
        return bool((error <= self._threshold(region)).mean() >= self.settings.hand_min_agreement)

    def _consensus(self, hands: np.ndarray, used: dict[int, HandRegion]):
        """The 3D hand ``(21, 3)`` of the views' hands (None with fewer than two views
        or no palm point triangulated) and which views agree with it ``(views,)``."""
        views = len(self.cameras)
        found = np.isfinite(hands[:, 0, 0])
        agree = np.zeros(views, dtype=bool)
        if found.sum() < 2:
            return None, agree
        sides = [used[v].side for v in np.flatnonzero(found) if v in used]
        threshold = self.settings.hand_agreement_fraction * (float(np.median(sides)) if sides else self.settings.hand_crop_min_px)
        observed = hands.copy()
        observed[..., 2] = np.where(found[:, None], 1.0, np.nan)
        result = triangulate(
            self.cameras, observed[:, None], min_confidence=0.0, min_views=2, ransac=True,
            threshold_px=threshold, refine_iterations=0, min_ray_angle_deg=0.0,
        )  # fmt: skip
        points, inliers = result.points[0], result.inliers[:, 0]
        if not np.any(np.isfinite(points[list(regions.PALM_POINTS), 0])):
            return None, agree
        agree = found & (inliers.mean(axis=1) >= self.settings.hand_min_agreement)
        return points, agree

    def _remember(self, side: str, hands: np.ndarray, hand_3d: np.ndarray | None, arm) -> None:
        state = self.sides[side]
        if hand_3d is not None and np.all(np.isfinite(hand_3d[list(regions.PALM_POINTS)])):
            state.hand_3d, state.age = hand_3d, 0
            state.elbow, state.wrist = arm if arm is not None else (None, None)
            if state.elbow is not None and not np.all(np.isfinite(state.elbow)):
                state.elbow = None
        else:
            state.age += 1
        for v in range(len(self.cameras)):
            if np.isfinite(hands[v, 0, 0]):
                state.hands_2d[v], state.ages_2d[v] = hands[v].copy(), 0
            elif v in state.ages_2d:
                state.ages_2d[v] += 1
