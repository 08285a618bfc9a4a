"""The embedded detector: MediaPipe's legacy Pose (BlazePose 33 -> COCO-17) and Hands (21).

mediapipe 0.10.14 ships ``pose_detection``, ``pose_landmark_full`` (Pose with
``model_complexity=1``), ``palm_detection_{lite,full}`` and ``hand_landmark_{lite,full}``
inside its wheel, so this runs offline on CPU. Pose complexities 0 and 2 are not in the
wheel (MediaPipe would download them): they are refused here, never fetched.

- Body: the region of interest is cut out as a square (``body_crop_margin``), resized to
  ``body_crop_size`` pixels and given to Pose in static-image mode (each frame on its
  own: the crop already follows the subject); landmarks come back to full-image pixels.
  Confidence is BlazePose's per-landmark visibility. Landmarks outside the image are
  missing.
- Hands: for each body wrist, a square around the hand (see :mod:`stages.detect.hands`)
  is upscaled to ``hand_crop_size`` pixels for Hands (up to two hands per crop); each
  found hand goes to the body wrist nearest its own wrist point. Hands' left/right label
  assumes a mirrored image, so on our (non-mirrored) cameras its "Left" is the person's
  right; every joint of a hand gets as confidence the label's probability for the side
  it was assigned to (a hand that looks like the other hand gets a low confidence).
- Person boxes (seeding without a prior): Pose on the whole image and on three square
  windows along its longer side (``seed_image_size`` pixels each); OpenCV 5's main
  package has no HOG people detector any more, and Pose alone reports one person.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitting.skeleton import BODY, LEFT_HAND, NUM_HAND_JOINTS, RIGHT_HAND
from stages.detect import hands
from stages.detect.crops import box_iou, extract, square_around
from stages.detect.keypoint_maps import NUM_BLAZEPOSE, blazepose_to_coco, empty_keypoints

# Model files the solutions below load, relative to the mediapipe package.
POSE_MODELS = ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite")
HAND_MODELS = {
    0: ("modules/palm_detection/palm_detection_lite.tflite", "modules/hand_landmark/hand_landmark_lite.tflite"),
    1: ("modules/palm_detection/palm_detection_full.tflite", "modules/hand_landmark/hand_landmark_full.tflite"),
}
HAND_PART = {"left": LEFT_HAND, "right": RIGHT_HAND}


def _mediapipe():
    try:
        import mediapipe
        from mediapipe.python.solutions import hands as mp_hands
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as error:
        raise ImportError(
            f"detect backend 'mediapipe' needs mediapipe 0.10.14 (make setup installs it): {error}"
        ) from error
    return Path(mediapipe.__file__).parent, mp_pose, mp_hands


def check_model_files(root: Path, hand_complexity: int) -> list[Path]:
    """The model files this detector needs, all inside the mediapipe package; raises naming a missing one."""
    paths = [root / name for name in POSE_MODELS + HAND_MODELS[hand_complexity]]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: MediaPipe model file missing from the installed wheel (mediapipe 0.10.14 ships it); "
                "nothing is downloaded at run time"
            )
    return paths


class MediaPipeDetector:
    name = "mediapipe"

    def __init__(self, settings: dict) -> None:
        root, mp_pose, mp_hands = _mediapipe()
        complexity = int(settings["hand_model_complexity"])
        if complexity not in HAND_MODELS:
            raise ValueError(f"detect.hand_model_complexity must be 0 or 1, got {complexity}")
        self.model_files = check_model_files(root, complexity)
        self.settings = dict(settings)
        self._pose = mp_pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=float(settings["min_person_confidence"]),
        )
        self._hands = (
            mp_hands.Hands(
                static_image_mode=True,
                max_num_hands=2,
                model_complexity=complexity,
                min_detection_confidence=float(settings["min_hand_confidence"]),
            )
            if settings["detect_hands"]
            else None
        )
        # When a list, every image given to a model is appended as (model name, image):
        # the benchmark replays them to time the bare models on the same inputs.
        self.record: list | None = None

    # -- models ------------------------------------------------------------------------

    def pose_landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """``(33, 3)`` x, y (crop pixels), visibility of the most confident person, or None."""
        if self.record is not None:
            self.record.append(("pose", crop))
        result = self._pose.process(crop)
        if result.pose_landmarks is None:
            return None
        values = np.array([(lm.x, lm.y, lm.visibility) for lm in result.pose_landmarks.landmark], dtype=np.float64)
        if values.shape != (NUM_BLAZEPOSE, 3):
            return None
        values[:, 0] *= crop.shape[1]
        values[:, 1] *= crop.shape[0]
        return values

    def hand_landmarks(self, crop: np.ndarray) -> tuple[np.ndarray, list[tuple[str, float]]]:
        """``(N, 21, 3)`` x, y (crop pixels), 0 and each hand's (label, score)."""
        if self.record is not None:
            self.record.append(("hands", crop))
        result = self._hands.process(crop)
        if not result.multi_hand_landmarks:
            return np.zeros((0, NUM_HAND_JOINTS, 3)), []
        points = np.array(
            [[(lm.x * crop.shape[1], lm.y * crop.shape[0], 0.0) for lm in hand.landmark] for hand in result.multi_hand_landmarks]
        )
        labels = [(h.classification[0].label, float(h.classification[0].score)) for h in result.multi_handedness]
        return points, labels

    # -- Detector interface ------------------------------------------------------------

    def person_boxes(self, image: np.ndarray) -> np.ndarray:
        """Pose run on the whole image and on square windows along its longer side.

        Pose reports one person per image (its most confident); windows let it report
        others too. Each found body gives its box (landmarks with visibility >= 0.5)
        and its mean visibility as score; boxes found twice are merged (IoU > 0.5).
        """
        height, width = image.shape[:2]
        side = min(width, height)
        windows = [np.array([0.0, 0.0, width - 1.0, height - 1.0])]
        for offset in np.linspace(0.0, max(width, height) - side, 3):
            x0, y0 = (offset, 0.0) if width > height else (0.0, offset)
            windows.append(np.array([x0, y0, x0 + side - 1.0, y0 + side - 1.0]))
        found = []
        for window in windows:
            crop = square_around(window, 0.0, self.settings["seed_image_size"])
            landmarks = self.pose_landmarks(extract(image, crop))
            if landmarks is None:
                continue
            visible = landmarks[:, 2] >= 0.5
            if visible.sum() < 4:
                continue
            points = crop.to_image(landmarks[visible, :2])
            box = np.concatenate([points.min(axis=0), points.max(axis=0)])
            if found and box_iou(np.array([b[:4] for b in found]), box).max() > 0.5:
                continue
            found.append(np.append(box, landmarks[:, 2].mean()))
        return np.array(found).reshape(-1, 5)

    def detect(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        settings = self.settings
        height, width = image.shape[:2]
        result = empty_keypoints()
        crop = square_around(box, settings["body_crop_margin"], settings["body_crop_size"])
        landmarks = self.pose_landmarks(extract(image, crop))
        if landmarks is None:
            return result
        body = blazepose_to_coco(landmarks)
        body[:, :2] = crop.to_image(body[:, :2])
        outside = (body[:, 0] < 0) | (body[:, 0] > width - 1) | (body[:, 1] < 0) | (body[:, 1] > height - 1)
        body[outside] = np.nan
        result[BODY] = body
        if self._hands is not None:
            self._detect_hands(image, result)
        return result

    def _detect_hands(self, image: np.ndarray, result: np.ndarray) -> None:
        settings = self.settings
        body = result[BODY].astype(np.float64)
        min_confidence = settings["min_keypoint_confidence"]
        candidates, labels = [], []
        for side in hands.SIDES:
            box = hands.hand_box(
                body, side, min_confidence, settings["hand_crop_offset"], settings["hand_crop_scale"], settings["hand_crop_min_px"]
            )
            if box is None:
                continue
            crop = square_around(box, 0.0, settings["hand_crop_size"])
            points, found = self.hand_landmarks(extract(image, crop))
            if len(points):
                points[..., :2] = crop.to_image(points[..., :2])
                candidates.append(points)
                labels += found
        if not candidates:
            return
        candidates = np.concatenate(candidates)
        for side in hands.SIDES:
            index = hands.assign_hand(candidates, body, side, min_confidence, settings["hand_max_distance"])
            if index is None:
                continue
            label, score = labels[index]
            confidence = score if hands.mediapipe_side(label) == side else 1.0 - score
            hand = candidates[index].copy()
            hand[:, 2] = confidence
            result[HAND_PART[side]] = hand

    def close(self) -> None:
        for model in (self._pose, self._hands):
            if model is not None:
                model.close()
        self._pose = self._hands = None
