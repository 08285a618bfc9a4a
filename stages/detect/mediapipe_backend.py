"""The embedded detector: MediaPipe's legacy Pose (BlazePose 33 -> COCO-17) and hand models (21).

mediapipe 0.10.14 ships ``pose_detection``, ``pose_landmark_full`` (Pose with
``model_complexity=1``), ``palm_detection_{lite,full}`` and ``hand_landmark_{lite,full}``
inside its wheel, so this runs offline on CPU. Pose complexities 0 and 2 are not in the
wheel (MediaPipe would download them): they are refused here, never fetched.

- Body (``detect``): the region of interest is cut out as a square
  (``body_crop_margin``), resized to ``body_crop_size`` pixels and given to Pose in
  static-image mode (each frame on its own: the crop already follows the subject);
  landmarks come back to full-image pixels. Confidence is BlazePose's per-landmark
  visibility. Landmarks outside the image are missing. Hands are not part of it: the
  detect loop finds them (:mod:`detection.hand_search`) with the two hand calls
  below.
- ``hand_in_region(image, crop)``: the hand landmark model alone on a turned square
  (:class:`detection.crops.RotatedCrop`, 224 pixels, the model's input), as
  MediaPipe's own tracking runs it on the region of the previous frame's landmarks: a
  graph of MediaPipe's calculators (image to tensor, inference, landmarks) that also
  returns the model's hand-presence score (the legacy Hands solution keeps it inside).
  No palm detection: the region comes from this project's priors.
- ``hands_in_box(image, box)``: palm detection, then landmarks (the legacy Hands
  solution, up to two hands) on a square crop upscaled to ``hand_crop_size``: for
  hands no prior region finds.
- Person boxes (seeding without a prior): Pose on the whole image and on three square
  windows along its longer side (``seed_image_size`` pixels each); OpenCV 5's main
  package has no HOG people detector any more, and Pose alone reports one person.

The models' left/right labels are not used: a hand's side is the side of the body
wrist its region came from (the 3D body's, where known).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from detection.crops import RotatedCrop, box_iou, extract, square_around
from detection.keypoint_maps import NUM_BLAZEPOSE, blazepose_to_coco, empty_keypoints
from fitting.skeleton import BODY, NUM_HAND_JOINTS
from stages.detect.backend import ModelResources

if TYPE_CHECKING:
    from pipeline.config import DetectConfig

# Model files the solutions below load, relative to the mediapipe package.
POSE_MODELS = ("modules/pose_detection/pose_detection.tflite", "modules/pose_landmark/pose_landmark_full.tflite")
HAND_MODELS = {
    0: ("modules/palm_detection/palm_detection_lite.tflite", "modules/hand_landmark/hand_landmark_lite.tflite"),
    1: ("modules/palm_detection/palm_detection_full.tflite", "modules/hand_landmark/hand_landmark_full.tflite"),
}
HAND_LANDMARK_INPUT = 224  # pixels: the hand landmark model's input square

# The hand landmark model on a ready 224 x 224 crop: MediaPipe's HandLandmarkCpu subgraph
# without its region cropping and presence gate, with the presence score as an output.
_HAND_LANDMARK_GRAPH = """
input_stream: "IMAGE:image"
output_stream: "PRESENCE:presence"
output_stream: "LANDMARKS:landmarks"
node {
  calculator: "ImageToTensorCalculator"
  input_stream: "IMAGE:image"
  output_stream: "TENSORS:input_tensor"
  options: { [mediapipe.ImageToTensorCalculatorOptions.ext] {
    output_tensor_width: 224 output_tensor_height: 224 keep_aspect_ratio: true
    output_tensor_float_range { min: 0.0 max: 1.0 } } }
}
node {
  calculator: "InferenceCalculator"
  input_stream: "TENSORS:input_tensor"
  output_stream: "TENSORS:output_tensors"
  options: { [mediapipe.InferenceCalculatorOptions.ext] { model_path: "MODEL" delegate { xnnpack {} } } }
}
node {
  calculator: "SplitTensorVectorCalculator"
  input_stream: "output_tensors"
  output_stream: "landmark_tensors"
  output_stream: "presence_tensor"
  options: { [mediapipe.SplitVectorCalculatorOptions.ext] { ranges: { begin: 0 end: 1 } ranges: { begin: 1 end: 2 } } }
}
node { calculator: "TensorsToFloatsCalculator" input_stream: "TENSORS:presence_tensor" output_stream: "FLOAT:presence" }
node {
  calculator: "TensorsToLandmarksCalculator"
  input_stream: "TENSORS:landmark_tensors"
  output_stream: "NORM_LANDMARKS:landmarks"
  options: { [mediapipe.TensorsToLandmarksCalculatorOptions.ext] {
    num_landmarks: 21 input_image_width: 224 input_image_height: 224 normalize_z: 0.4 } }
}
"""


def _mediapipe():
    try:
        import mediapipe
        from mediapipe.python.solutions import hands as mp_hands
        from mediapipe.python.solutions import pose as mp_pose
    except ImportError as error:
        raise ImportError(f"detect backend 'mediapipe' needs mediapipe 0.10.14 (make setup installs it): {error}") from error
    return Path(mediapipe.__file__).parent, mp_pose, mp_hands


def hand_landmark_model(hand_complexity: int):
    """The hand landmark model as a MediaPipe graph: ``process({"image": (224, 224, 3) uint8})``
    gives ``presence`` (float) and ``landmarks`` (21 normalised landmarks)."""
    from mediapipe.calculators.core import split_vector_calculator_pb2  # noqa: F401 - registers the options
    from mediapipe.calculators.tensor import (  # noqa: F401 - register the options
        image_to_tensor_calculator_pb2,
        inference_calculator_pb2,
        tensors_to_floats_calculator_pb2,
        tensors_to_landmarks_calculator_pb2,
    )
    from mediapipe.python.solution_base import SolutionBase

    model = "mediapipe/" + HAND_MODELS[hand_complexity][1]
    return SolutionBase(graph_config=_HAND_LANDMARK_GRAPH.replace('"MODEL"', f'"{model}"'))


def check_model_files(root: Path, hand_complexity: int) -> list[Path]:
    """The model files this detector needs, all inside the mediapipe package; raises naming a missing one."""
    paths = [root / name for name in POSE_MODELS + HAND_MODELS[hand_complexity]]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: MediaPipe model file missing from the installed wheel (mediapipe 0.10.14 ships it); nothing is downloaded at run time"
            )
    return paths


def resources(settings: DetectConfig) -> ModelResources:
    """One model instance: ``detect.cpus_per_model`` CPUs (its graphs run one thread each)."""
    return ModelResources(int(settings.cpus_per_model))


class MediaPipeDetector:
    name = "mediapipe"

    def __init__(self, settings: DetectConfig) -> None:
        root, mp_pose, mp_hands = _mediapipe()
        complexity = int(settings.hand_model_complexity)
        if complexity not in HAND_MODELS:
            raise ValueError(f"detect.hand_model_complexity must be 0 or 1, got {complexity}")
        self.model_files = check_model_files(root, complexity)
        self.settings = settings
        self._pose = mp_pose.Pose(
            static_image_mode=True,
            model_complexity=1,
            smooth_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=float(settings.min_person_confidence),
        )
        self._hands = (
            mp_hands.Hands(
                static_image_mode=True,
                max_num_hands=2,
                model_complexity=complexity,
                min_detection_confidence=float(settings.min_hand_confidence),
            )
            if settings.detect_hands
            else None
        )
        self._hand_landmarks = hand_landmark_model(complexity) if settings.detect_hands else None
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

    def hand_landmarks(self, crop: np.ndarray) -> np.ndarray:
        """``(N, 21, 3)`` x, y (crop pixels), 0 of the hands palm detection finds in ``crop``."""
        if self.record is not None:
            self.record.append(("hands", crop))
        result = self._hands.process(crop)
        if not result.multi_hand_landmarks:
            return np.zeros((0, NUM_HAND_JOINTS, 3))
        return np.array([[(lm.x * crop.shape[1] - 0.5, lm.y * crop.shape[0] - 0.5, 0.0) for lm in hand.landmark] for hand in result.multi_hand_landmarks])

    def hand_landmarks_in_crop(self, crop: np.ndarray) -> tuple[np.ndarray, float]:
        """``(21, 2)`` x, y (crop pixels) of the hand landmark model on a 224 x 224 crop, and its presence score."""
        if self.record is not None:
            self.record.append(("hand_landmarks", crop))
        result = self._hand_landmarks.process({"image": crop})
        size = crop.shape[1]
        points = np.array([(lm.x * size - 0.5, lm.y * size - 0.5) for lm in result.landmarks.landmark])
        return points, float(result.presence)

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
            crop = square_around(window, 0.0, self.settings.seed_image_size)
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
        crop = square_around(box, settings.body_crop_margin, settings.body_crop_size)
        landmarks = self.pose_landmarks(extract(image, crop))
        if landmarks is None:
            return result
        body = blazepose_to_coco(landmarks)
        body[:, :2] = crop.to_image(body[:, :2])
        outside = (body[:, 0] < 0) | (body[:, 0] > width - 1) | (body[:, 1] < 0) | (body[:, 1] > height - 1)
        body[outside] = np.nan
        result[BODY] = body
        return result

    # -- hand model interface (detection.hand_search) -------------------------------

    def hand_in_region(self, image: np.ndarray, crop: RotatedCrop) -> np.ndarray:
        """``(21, 3)`` float64 x, y (full-image pixels) of the hand in ``crop`` and, in every
        row, the model's hand-presence score (0-1)."""
        if self._hand_landmarks is None:
            raise RuntimeError("detect.detect_hands is false: the hand models are not loaded")
        if crop.size != HAND_LANDMARK_INPUT:
            raise ValueError(f"hand landmark crops are {HAND_LANDMARK_INPUT} pixels, got {crop.size}")
        points, presence = self.hand_landmarks_in_crop(extract(image, crop))
        return np.column_stack([crop.to_image(points), np.full(NUM_HAND_JOINTS, presence)])

    def hands_in_box(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        """``(N, 21, 3)`` x, y (full-image pixels), 0 of every hand palm detection finds in
        the square around ``box`` (upscaled to ``hand_crop_size``)."""
        if self._hands is None:
            raise RuntimeError("detect.detect_hands is false: the hand models are not loaded")
        crop = square_around(box, 0.0, self.settings.hand_crop_size)
        points = self.hand_landmarks(extract(image, crop))
        if len(points):
            points[..., :2] = crop.to_image(points[..., :2])
        return points

    def close(self) -> None:
        for model in (self._pose, self._hands, self._hand_landmarks):
            if model is not None:
                model.close()
        self._pose = self._hands = self._hand_landmarks = None
