"""The ``mmpose`` detector: mmdet person boxes + an mmpose top-down COCO-WholeBody model.

Optional extra (``make setup-mmpose``, docs/DEPENDENCIES.md). Config and checkpoint
files are given by path in the ``detect`` settings; nothing is downloaded: a missing
file is refused with its name. ``mmpose_checkpoint: null`` builds the model with random
weights (tests only). Without ``mmdet_config`` no person detector is used and the
region of interest itself is the person box.

- ``person_boxes(image)``: mmdet's boxes of label 0 (person) with score >=
  ``min_box_score``.
- ``detect(image, roi)``: the person box that overlaps the ROI most (IoU), or the ROI
  when no box overlaps it; the whole-body model's 133 keypoints on that box -> body 17
  + left hand 21 + right hand 21 (:func:`stages.detect.keypoint_maps.wholebody_to_joints`),
  with the model's keypoint scores as confidences. Keypoints outside the image are
  missing.

OpenMMLab models take BGR images; frames here are RGB and are converted.

``mmpose.apis`` imports torchvision only for ``transforms.ToPILImage`` in its
visualiser, and PyPI's torchvision does not load beside the CPU torch build. When
torchvision cannot be imported, a stand-in ``torchvision.transforms`` module whose
``ToPILImage`` raises is registered for this process (inference never calls it).
"""

from __future__ import annotations

import logging
import sys
import types
from pathlib import Path

import numpy as np

from stages.detect.crops import box_iou
from stages.detect.keypoint_maps import NUM_WHOLEBODY, empty_keypoints, wholebody_to_joints

logger = logging.getLogger(__name__)

INSTALL_NOTE = "the mmpose extra is not installed (make setup-mmpose; see docs/DEPENDENCIES.md)"


def _existing(settings: dict, key: str, required: bool) -> str | None:
    value = settings[key]
    if not value:
        if required:
            raise ValueError(f"detect.{key} must name a file for the mmpose backend")
        return None
    if not Path(value).is_file():
        raise FileNotFoundError(f"{value}: detect.{key}: no such file (model files are given by path, never downloaded)")
    return str(value)


def _torchvision_stand_in() -> None:
    """Register a stand-in ``torchvision.transforms`` when torchvision cannot be imported."""
    try:
        import torchvision  # noqa: F401
    except Exception as error:  # noqa: BLE001 - a broken install raises more than ImportError
        reason = str(error)  # `error` is unbound once the except clause ends
        for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
            del sys.modules[name]

        class ToPILImage:  # the only name mmpose imports (visualisation only)
            def __init__(self, *args, **kwargs) -> None:
                raise RuntimeError(f"torchvision is not available ({reason}); mmpose visualisation is disabled")

        package = types.ModuleType("torchvision")
        transforms = types.ModuleType("torchvision.transforms")
        transforms.ToPILImage = ToPILImage
        package.transforms = transforms
        sys.modules["torchvision"], sys.modules["torchvision.transforms"] = package, transforms
        logger.info("torchvision not importable (%s): mmpose runs without its visualiser", reason)


class MMPoseDetector:
    name = "mmpose"

    def __init__(self, settings: dict) -> None:
        try:
            import mmpose  # noqa: F401

            _torchvision_stand_in()
            from mmpose.apis import inference_topdown, init_model
        except ImportError as error:
            raise ImportError(f"detect backend 'mmpose': {INSTALL_NOTE}: {error}") from error
        self.settings = dict(settings)
        pose_config = _existing(settings, "mmpose_config", True)
        pose_checkpoint = _existing(settings, "mmpose_checkpoint", False)
        det_config = _existing(settings, "mmdet_config", False)
        det_checkpoint = _existing(settings, "mmdet_checkpoint", False)
        self._inference_topdown = inference_topdown
        self.pose_model = init_model(pose_config, pose_checkpoint, device=settings["device"])
        count = int(self.pose_model.dataset_meta.get("num_keypoints", 0))
        if count != NUM_WHOLEBODY:
            raise ValueError(
                f"{pose_config}: detect.mmpose_config must be a COCO-WholeBody model ({NUM_WHOLEBODY} keypoints), "
                f"it has {count}"
            )
        self.det_model = None
        if det_config is not None:
            try:
                from mmdet.apis import inference_detector, init_detector
            except ImportError as error:
                raise ImportError(f"detect backend 'mmpose': mmdet: {INSTALL_NOTE}: {error}") from error
            self._inference_detector = inference_detector
            self.det_model = init_detector(det_config, det_checkpoint, device=settings["device"])

    def person_boxes(self, image: np.ndarray) -> np.ndarray:
        if self.det_model is None:
            return np.zeros((0, 5))
        result = self._inference_detector(self.det_model, np.ascontiguousarray(image[..., ::-1]))
        instances = result.pred_instances
        boxes = instances.bboxes.detach().cpu().numpy().astype(np.float64)
        scores = instances.scores.detach().cpu().numpy().astype(np.float64)
        labels = instances.labels.detach().cpu().numpy()
        keep = (labels == 0) & (scores >= self.settings["min_box_score"])
        return np.column_stack([boxes[keep], scores[keep]]).reshape(-1, 5)

    def detect(self, image: np.ndarray, box: np.ndarray) -> np.ndarray:
        box = np.asarray(box, dtype=np.float64)
        person = box
        boxes = self.person_boxes(image)
        if len(boxes):
            overlap = box_iou(boxes[:, :4], box)
            if overlap.max() > 0:
                person = boxes[int(np.argmax(overlap)), :4]
        samples = self._inference_topdown(
            self.pose_model, np.ascontiguousarray(image[..., ::-1]), bboxes=person[None], bbox_format="xyxy"
        )
        result = empty_keypoints()
        if not samples:
            return result
        instances = samples[0].pred_instances
        points = np.asarray(instances.keypoints, dtype=np.float64)[0]
        scores = np.asarray(instances.keypoint_scores, dtype=np.float64)[0]
        result[:] = wholebody_to_joints(np.column_stack([points, scores]))
        height, width = image.shape[:2]
        outside = (result[:, 0] < 0) | (result[:, 0] > width - 1) | (result[:, 1] < 0) | (result[:, 1] > height - 1)
        result[outside] = np.nan
        return result

    def close(self) -> None:
        self.pose_model = self.det_model = None
